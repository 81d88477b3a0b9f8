"""Data-driven structured pruning: unit groups and gates (`structure`), importance scores
(`importance`), and the iterative schedule with distillation fine-tuning (`schedule`)."""

from .importance import HardConcreteGates, l0_importance, taylor_importance
from .schedule import (
    PruningSettings,
    compare_to_unpruned,
    prune,
    prune_checkpoint,
    resolve_target,
    select_units,
    step_targets,
)
from .structure import PruningError, UnitGroup, gated, prune_model, structure_of, validate_keep

__all__ = [
    "HardConcreteGates",
    "PruningError",
    "PruningSettings",
    "UnitGroup",
    "compare_to_unpruned",
    "gated",
    "l0_importance",
    "prune",
    "prune_checkpoint",
    "prune_model",
    "resolve_target",
    "select_units",
    "step_targets",
    "structure_of",
    "taylor_importance",
    "validate_keep",
]
