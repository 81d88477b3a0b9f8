"""Training: batching, the distillation Trainer."""

from .collator import MOSCollator
from .distillation import DistillationTrainer, distillation_example_losses

__all__ = ["DistillationTrainer", "MOSCollator", "distillation_example_losses"]
