"""DistillationTrainer: a `transformers.Trainer` that trains a student on teacher MOS and human MOS.

Per example, with student score s, teacher score t and human MOS h (NaN where missing):

    both t and h:    alpha * L(s, t) + (1 - alpha) * L(s, h)     (labelled examples)
    only t:          L(s, t)                                     (pseudo-labelled / degraded speech)
    only h:          L(s, h)

L is MSE or L1. The batch loss is the sum of example losses divided by the number of examples in the
whole gradient-accumulation window (`num_items_in_batch`), so accumulating k batches of n equals one batch
of k*n; `loss_is_scaled_for_ga` tells the Trainer not to divide again. Under DDP each process normalises by
its own count and DDP averages the gradients.

The teacher is either online (a model given to the trainer: eval mode, no gradients, on the trainer's
device, run on exactly the student's input crop) or offline (a `teacher_mos` column, from
`hf-sqa pseudo-label`; needs `remove_unused_columns=False`). Both loss terms are logged as
`loss_teacher` and `loss_human` (means over the examples that have them since the last log).
"""

from __future__ import annotations

import torch
from transformers import Trainer

_LOSSES = {
    "mse": lambda a, b: (a - b) ** 2,
    "l1": lambda a, b: (a - b).abs(),
}


def distillation_example_losses(student, teacher, human, alpha: float, loss: str = "mse"):
    """(per-example loss, teacher-term values, human-term values) for (batch,) tensors with NaN for missing."""
    elementwise = _LOSSES[loss]
    has_teacher = torch.isfinite(teacher)
    has_human = torch.isfinite(human)
    if not bool((has_teacher | has_human).all()):
        raise ValueError("every training example needs a teacher score or a human MOS")
    teacher_term = torch.where(has_teacher, elementwise(student, torch.nan_to_num(teacher)), 0.0)
    human_term = torch.where(has_human, elementwise(student, torch.nan_to_num(human)), 0.0)
    teacher_weight = torch.where(has_human, alpha, 1.0) * has_teacher
    human_weight = torch.where(has_teacher, 1.0 - alpha, 1.0) * has_human
    example_loss = teacher_weight * teacher_term + human_weight * human_term
    return example_loss, teacher_term[has_teacher], human_term[has_human]


class DistillationTrainer(Trainer):
    loss_is_scaled_for_ga = True

    def __init__(self, *args, teacher: torch.nn.Module | None = None, alpha: float = 0.5,
                 distillation_loss: str = "mse", **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if distillation_loss not in _LOSSES:
            raise ValueError(f"distillation_loss must be one of {sorted(_LOSSES)}, got {distillation_loss!r}")
        self.alpha = alpha
        self.distillation_loss = distillation_loss
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)
            teacher.to(self.args.device)
        self._term_sums = {"loss_teacher": [0.0, 0], "loss_human": [0.0, 0]}

    def _get_num_items_in_batch(self, batch_samples, device):
        """Examples in the accumulation window: the loss is a mean over examples, not tokens."""
        return torch.tensor(sum(batch["input_values"].shape[0] for batch in batch_samples), device=device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        human = inputs.pop("labels", None)
        teacher = inputs.pop("teacher_mos", None)
        outputs = model(input_values=inputs["input_values"], attention_mask=inputs.get("attention_mask"))
        student = outputs.mos.float()
        if self.teacher is not None:
            with torch.no_grad():
                teacher = self.teacher(input_values=inputs["input_values"],
                                       attention_mask=inputs.get("attention_mask")).mos.float()
        nan = torch.full_like(student, float("nan"))
        teacher = nan if teacher is None else teacher.to(student)
        human = nan if human is None else human.to(student)
        example_loss, teacher_terms, human_terms = distillation_example_losses(
            student, teacher, human, self.alpha, self.distillation_loss
        )
        count = num_items_in_batch if num_items_in_batch is not None else student.shape[0]
        loss = example_loss.sum() / count
        if model.training:
            for name, terms in (("loss_teacher", teacher_terms), ("loss_human", human_terms)):
                self._term_sums[name][0] += float(terms.detach().sum())
                self._term_sums[name][1] += int(terms.numel())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs):
        if "loss" in logs:  # a training log: add the two terms since the previous one
            for name, (total, count) in self._term_sums.items():
                if count:
                    logs[name] = round(total / count, 6)
            self._term_sums = {name: [0.0, 0] for name in self._term_sums}
        super().log(logs, *args, **kwargs)
