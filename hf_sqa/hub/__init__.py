"""Publishing on the Hugging Face Hub: model cards (`cards`) and uploads (`push`)."""

from .cards import CardError, build_model_card, checkpoint_facts, eval_results_files, validate_card_metadata
from .push import push_checkpoint, stage_checkpoint

__all__ = [
    "CardError",
    "build_model_card",
    "checkpoint_facts",
    "eval_results_files",
    "push_checkpoint",
    "stage_checkpoint",
    "validate_card_metadata",
]
