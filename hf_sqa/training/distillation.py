"""DistillationTrainer: a `transformers.Trainer` that trains a student on teacher MOS and human MOS.

Per example, with student score s, teacher score t and human MOS h (NaN where missing):

    both t and h:    alpha * L(s, t) + (1 - alpha) * L(s, h)     (labelled examples)
    only t:          L(s, t)                                     (pseudo-labelled / degraded speech)
    only h:          L(s, h)

L is MSE, L1 or the squared error of the logits the scores come from (`LOSSES`). With `dense_weight` w > 0
and the teacher's per-window scores in the batch (`teacher_window_mos`, (batch, windows), NaN-padded;
`hf-sqa pseudo-label` writes them), each example adds w times the mean over its windows of L(student window
score, teacher window score): a dense target that says which part of the clip is bad, not only how bad the
clip is on average. The student must cut the
same windows as the teacher (same windowing rule), which is checked.

With a `frame_teacher` and `frame_weight` w > 0, each example also adds w times the mean squared distance
between the student's head hidden states (the input projection and every transformer layer) and that
teacher's, over the student's window frames: a FitNets / DistilHuBERT-style frame target. Two uses:

- a pruned model distilled from the model it was pruned from (`hf-sqa prune`; frame_teacher = teacher, run
  once per step): its hidden states are still in the teacher's coordinates, so they are compared as they
  are, layer by layer as in DPHuBERT;
- a fast student and the Distill-MOS import run as a fast model (with `pad_short_clips` so its frames see
  what the real teacher sees): each student state goes through its own linear map, `frame_projections` on
  the student (an nn.ModuleList, so the optimiser and the checkpoints of a run hold them; drop it before the
  final save). A distilled student has moved away from its teacher's coordinates (its hidden states were as
  far from the teacher's as zeros are) even when it started as a pruned teacher.

`freeze_batchnorm` keeps BatchNorm layers in eval mode while training (running statistics fixed), for
fine-tuning a pretrained or pruned model on data narrower than what its statistics were estimated on.

The batch loss is the sum of example losses divided by the number of examples in the
whole gradient-accumulation window (`num_items_in_batch`), so accumulating k batches of n equals one batch
of k*n; `loss_is_scaled_for_ga` tells the Trainer not to divide again. Under DDP each process normalises by
its own count and DDP averages the gradients.

The teacher is either online (a model given to the trainer: eval mode, no gradients, on the trainer's
device, run on exactly the student's input crop; its window scores are the dense target) or offline (a `teacher_mos` column, from
`hf-sqa pseudo-label`; needs `remove_unused_columns=False`). Both loss terms are logged as
`loss_teacher` and `loss_human` (means over the examples that have them since the last log).

`last_complete_checkpoint` is the checkpoint every training entry point resumes from after a kill.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import Trainer

from ..models.windowing import average_per_item


def mos_logit(mos: torch.Tensor) -> torch.Tensor:
    """The logit a MOS in [1, 5] comes from (the MOS head's 1 + 4 * sigmoid), clamped off the ends."""
    share = ((mos - 1.0) / 4.0).clamp(1e-4, 1.0 - 1e-4)
    return torch.log(share) - torch.log1p(-share)


LOSSES = {
    "mse": lambda a, b: (a - b) ** 2,
    "l1": lambda a, b: (a - b).abs(),
    # squared error of the logits: the sigmoid no longer shrinks the gradient of scores near the ends of
    # the scale (at MOS 1.5 or 4.5 a MOS error weighs 5.2 times what it weighs at 3)
    "logit_mse": lambda a, b: (mos_logit(a) - mos_logit(b)) ** 2,
}


def distillation_example_losses(student, teacher, human, alpha: float, loss: str = "mse"):
    """(per-example loss, teacher-term values, human-term values) for (batch,) tensors with NaN for missing."""
    elementwise = LOSSES[loss]
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


def dense_window_losses(student_windows, teacher_windows, loss: str = "mse"):
    """(per-example mean window loss (batch,), the valid window terms) for (batch, windows) scores, NaN
    where a clip has no such window."""
    if student_windows.shape != teacher_windows.shape or not bool(
            (torch.isfinite(student_windows) == torch.isfinite(teacher_windows)).all()):
        raise ValueError(
            f"the student cuts other windows than the teacher's labels: {tuple(student_windows.shape)} vs "
            f"{tuple(teacher_windows.shape)}; use the teacher's window_length and window_max_hop")
    valid = torch.isfinite(teacher_windows)
    terms = torch.where(valid, LOSSES[loss](torch.nan_to_num(student_windows), torch.nan_to_num(teacher_windows)), 0.0)
    return terms.sum(dim=1) / valid.sum(dim=1).clamp_min(1), terms[valid]


def frame_losses(student, teacher, window_mask, projections):
    """Per-example mean squared distance (batch,) between two models' head hidden states.

    student / teacher: the `MOSRegressionOutput`s of one batch with `hidden_states` (the same windows, in the
    same order; the teacher's windows may be longer: a short clip zero-padded to one window, of which the
    student's frames are the first); window_mask: (batch, max_windows), which windows belong to which clip;
    projections: one module per hidden state, student width -> teacher width, or None: compared as they are
    (same width).
    Each window's distance is the mean over the student's frames, the hidden size and the layers."""
    if projections is None:
        projections = [torch.nn.Identity()] * len(student.hidden_states)
        widths = {state.shape[-1] for state in (*student.hidden_states, *teacher.hidden_states)}
        if len(widths) > 1:
            raise ValueError(f"the student's and the frame teacher's hidden states have widths {sorted(widths)}: "
                             "a student of another width needs frame_projections")
    if not len(student.hidden_states) == len(teacher.hidden_states) == len(projections) or (
            student.hidden_mask.shape[0] != teacher.hidden_mask.shape[0]):
        raise ValueError(
            f"the frame teacher has {len(teacher.hidden_states)} hidden states of {teacher.hidden_mask.shape[0]} "
            f"windows, the student {len(student.hidden_states)} of {student.hidden_mask.shape[0]} and "
            f"{len(projections)} projections: it needs the student's head depth and windowing rule")
    mask = student.hidden_mask  # (windows, frames)
    frames = mask.shape[1]
    per_window = 0.0
    for ours, theirs, projection in zip(student.hidden_states, teacher.hidden_states, projections, strict=True):
        squared = ((projection(ours.float()) - theirs[:, :frames].to(ours.device, torch.float32)) ** 2).mean(dim=-1)
        per_window = per_window + (squared * mask).sum(dim=1) / mask.sum(dim=1)
    per_window = per_window / len(student.hidden_states)  # (windows,)
    item = torch.nonzero(window_mask)[:, 0]  # each window's clip, windows in clip order
    return average_per_item(per_window, item, window_mask.shape[0])


class DistillationTrainer(Trainer):
    loss_is_scaled_for_ga = True

    def __init__(self, *args, teacher: torch.nn.Module | None = None, alpha: float = 0.5,
                 distillation_loss: str = "mse", dense_weight: float = 0.0, freeze_batchnorm: bool = False,
                 frame_teacher: torch.nn.Module | None = None, frame_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if distillation_loss not in LOSSES:
            raise ValueError(f"distillation_loss must be one of {sorted(LOSSES)}, got {distillation_loss!r}")
        if dense_weight < 0:
            raise ValueError(f"dense_weight must be >= 0, got {dense_weight}")
        self.alpha = alpha
        self.dense_weight = dense_weight
        self.freeze_batchnorm = freeze_batchnorm
        self.distillation_loss = distillation_loss
        if frame_weight < 0:
            raise ValueError(f"frame_weight must be >= 0, got {frame_weight}")
        if frame_weight > 0 and frame_teacher is None:
            raise ValueError("frame_weight > 0 needs a frame_teacher")
        self.frame_weight = frame_weight
        self.teacher, self.frame_teacher = teacher, frame_teacher
        for fixed in (teacher, frame_teacher):
            if fixed is not None:
                fixed.eval()
                fixed.requires_grad_(False)
                fixed.to(self.args.device)
        self._term_sums = {name: [0.0, 0] for name in ("loss_teacher", "loss_human", "loss_windows", "loss_frames")}

    def _get_num_items_in_batch(self, batch_samples, device):
        """Examples in the accumulation window: the loss is a mean over examples, not tokens."""
        return torch.tensor(sum(batch["input_values"].shape[0] for batch in batch_samples), device=device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        human = inputs.pop("labels", None)
        teacher = inputs.pop("teacher_mos", None)
        teacher_windows = inputs.pop("teacher_window_mos", None)
        if self.freeze_batchnorm and model.training:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        frames = self.frame_weight > 0 and model.training
        outputs = model(input_values=inputs["input_values"], attention_mask=inputs.get("attention_mask"),
                        output_hidden_states=frames)
        student = outputs.mos.float()
        if self.teacher is not None:
            with torch.no_grad():  # the hidden states too when the teacher is the frame teacher: one forward
                online = self.teacher(input_values=inputs["input_values"], attention_mask=inputs.get("attention_mask"),
                                      output_hidden_states=frames and self.frame_teacher is self.teacher)
            teacher = online.mos.float()
            if teacher_windows is None:  # the dense target of an online teacher: its window scores
                teacher_windows = online.window_mos.float()
        nan = torch.full_like(student, float("nan"))
        teacher = nan if teacher is None else teacher.to(student)
        human = nan if human is None else human.to(student)
        example_loss, teacher_terms, human_terms = distillation_example_losses(
            student, teacher, human, self.alpha, self.distillation_loss
        )
        window_terms = torch.zeros(0)
        if self.dense_weight > 0 and teacher_windows is not None:
            window_loss, window_terms = dense_window_losses(outputs.window_mos.float(), teacher_windows.to(student),
                                                            self.distillation_loss)
            example_loss = example_loss + self.dense_weight * window_loss
        frame_terms = torch.zeros(0)
        if frames:
            if self.frame_teacher is self.teacher:  # its hidden states came with its scores above
                target = online
            else:
                with torch.no_grad():
                    target = self.frame_teacher(
                        input_values=inputs["input_values"], attention_mask=inputs.get("attention_mask"),
                        window_max_hop=self.accelerator.unwrap_model(model).config.window_max_hop,
                        output_hidden_states=True)
            frame_terms = frame_losses(outputs, target, outputs.window_mask,
                                       getattr(self.accelerator.unwrap_model(model), "frame_projections", None))
            example_loss = example_loss + self.frame_weight * frame_terms
        count = num_items_in_batch if num_items_in_batch is not None else student.shape[0]
        loss = example_loss.sum() / count
        if model.training:
            for name, terms in (("loss_teacher", teacher_terms), ("loss_human", human_terms),
                                ("loss_windows", window_terms), ("loss_frames", frame_terms)):
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


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint of a Trainer run in `output_dir` that a resume can load, or None. The Trainer
    writes trainer_state.json last, so a checkpoint without a readable one was cut short by a kill: its
    folder exists, or even the file, not yet complete (a kill during that write leaves a truncated JSON)."""
    def complete(folder: Path) -> bool:
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            return False
        return True

    checkpoints = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and complete(p)]
    return str(max(checkpoints, key=lambda p: int(p.name.split("-")[-1]))) if checkpoints else None
