"""Training: batching, the distillation Trainer."""

from .collator import MOSCollator

__all__ = ["MOSCollator"]
