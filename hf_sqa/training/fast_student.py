"""Training the fast student (`FastMOSForMOSRegression`) on packed, teacher-labelled clips.

One function, `train_fast_student`, runs the three methods the package compares on the same data and
budget:

    scratch   random initialisation, loss on the clip score                        (dense_weight 0)
    dense     random initialisation, clip score + the teacher's per-window scores  (dense_weight > 0)
    pruned    initialised from a pruned teacher (`hf-sqa prune` output), then long distillation

Any of them can add frame targets (`frame_weight`): the teacher's head hidden states, matched through
fitted linear maps (`fit_frame_projections`; measured in README: no gain beyond the noise for the refined
student).

It uses the `DistillationTrainer` (offline teacher labels), saves a checkpoint at every evaluation (a killed
run resumes from the newest complete one with `resume=True`) and, at every evaluation, scores held-out
clips and appends PCC / SRCC with the teacher, steps, audio hours seen and CPU time to
`OUTPUT/eval_history.jsonl` (one line per step; after a resume the last line of a step counts).

`train_online_student` (`hf-sqa train-online`) trains on clean speech degraded afresh for every batch
and labelled by the teacher inside the training step (online distillation, meant for a GPU, where the
teacher costs little): no stored labels, no draw seen twice.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import TrainerCallback, TrainingArguments, set_seed

from ..metrics import point_metrics
from ..models import ConvTransformerMOSConfig, FastMOSConfig, FastMOSForMOSRegression, student_config
from ..scoring import score
from .distillation import DistillationTrainer, last_complete_checkpoint
from .packed import PackedClips, collate_clips


def fast_student_from(model_or_path) -> FastMOSForMOSRegression:
    """A ConvTransformer checkpoint (Distill-MOS import, pruned or trained student; folder or model) as a
    fast student with the same weights."""
    from ..scoring import load_model

    model = load_model(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    if isinstance(model, FastMOSForMOSRegression):
        return model
    fast = FastMOSForMOSRegression(as_fast_config(model.config))
    fast.load_state_dict(model.state_dict(), strict=True)
    return fast


def as_fast_config(config: ConvTransformerMOSConfig) -> FastMOSConfig:
    """The same layers (every ConvTransformer field) as a FastMOSConfig."""
    layer_fields = set(ConvTransformerMOSConfig().to_dict()) - {"model_type", "architectures", "auto_map",
                                                               "transformers_version"}
    return FastMOSConfig(**{k: v for k, v in config.to_dict().items() if k in layer_fields})


def fast_config(preset: str = "fast", **overrides) -> FastMOSConfig:
    """A FastMOSConfig with a student preset's layer sizes."""
    return as_fast_config(student_config(preset, **overrides))


def spread_clip_rows(heldout: PackedClips, clips: int | None = None) -> np.ndarray:
    """Indices of `clips` held-out clips (all when None) spread evenly over the set, so over every source."""
    count = len(heldout) if clips is None else min(clips, len(heldout))
    return np.unique(np.linspace(0, len(heldout) - 1, count).astype(int))


def heldout_agreement(model, heldout: PackedClips, clips: int | None = None) -> dict:
    """PCC / SRCC / KTAU / RMSE of the model's clip scores against the teacher's on held-out packed clips."""
    rows = spread_clip_rows(heldout, clips)
    audios = [heldout.clip(k) for k in rows]
    was_training = model.training
    ours = score(audios, model=model.eval(), sampling_rate=16000, batch_size=8)
    model.train(was_training)
    return point_metrics(ours, heldout.teacher_mos[rows])


class HeldoutEvaluation(TrainerCallback):
    """Scores held-out clips every `eval_steps` and appends a line to eval_history.jsonl."""

    def __init__(self, heldout: PackedClips, history: Path, eval_steps: int, clips: int, seconds_per_step: float):
        self.heldout, self.history, self.eval_steps, self.clips = heldout, history, eval_steps, clips
        self.seconds_per_step = seconds_per_step
        previous = read_history(history)
        self.cpu_base = previous[-1]["cpu_s"] if previous else 0.0
        self.wall_base = previous[-1]["wall_s"] if previous else 0.0
        self.base_step = previous[-1]["step"] if previous else 0
        self.cpu_start, self.wall_start = time.process_time(), time.time()

    def _record(self, step: int, model) -> None:
        metrics = heldout_agreement(model, self.heldout, self.clips)
        line = {"step": step, "pcc": metrics["pcc"], "srcc": metrics["srcc"], "rmse": metrics["rmse"],
                "audio_hours": step * self.seconds_per_step / 3600,
                # CPU seconds of this process (all its threads), carried over resumes
                "cpu_s": self.cpu_base + time.process_time() - self.cpu_start,
                "wall_s": self.wall_base + time.time() - self.wall_start}
        with open(self.history, "a") as handle:
            handle.write(json.dumps(line) + "\n")

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0 and not read_history(self.history):
            self._record(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.eval_steps == 0 or state.global_step == state.max_steps:
            self._record(state.global_step, model)


def read_history(path: Path) -> list[dict]:
    """eval_history.jsonl, one entry per step (the last written wins)."""
    if not Path(path).is_file():
        return []
    by_step = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            by_step[entry["step"]] = entry
    return [by_step[k] for k in sorted(by_step)]


def _sample_batches(data: PackedClips, count: int, batch_size: int, seed: int) -> list[dict]:
    """`count` random clips of `data` (seeded), collated in batches of `batch_size`."""
    rows = np.random.default_rng(seed).permutation(len(data))[:count]
    return [collate_clips([data[int(k)] for k in rows[i : i + batch_size]]) for i in range(0, len(rows), batch_size)]


def _frame_teacher(model_or_path) -> FastMOSForMOSRegression:
    """The teacher of frame targets: run as a fast model that zero-pads short clips to a window, so its
    frames are computed as the teacher computes them."""
    teacher = fast_student_from(model_or_path)
    teacher.config.pad_short_clips = True
    return teacher.eval()  # BatchNorm with its running statistics (a fast model built from a checkpoint trains)


@torch.no_grad()
def fit_frame_projections(model, teacher, batches, ridge: float = 1e-3) -> dict:
    """Set `model.frame_projections` to the least-squares linear maps (ridge-regularised, with bias) from the
    student's head hidden states to the teacher's, over every window frame of `batches` (collated clips), so
    frame distillation starts from the best linear read-out instead of a random one (whose error would first
    pull the student's hidden states around). Returns per hidden state the fraction of the teacher's
    variance the fit leaves unexplained (1 - R^2)."""
    if teacher.training:
        raise ValueError("the frame teacher must be in eval mode (BatchNorm with its running statistics, as in training)")
    was_training = model.training
    model.eval()
    hop = model.config.window_max_hop
    sums = None
    for batch in batches:
        ours = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"],
                     output_hidden_states=True)
        theirs = teacher(input_values=batch["input_values"], attention_mask=batch["attention_mask"],
                         window_max_hop=hop, output_hidden_states=True)
        mask = ours.hidden_mask
        pairs = [(torch.nn.functional.pad(x[mask].double(), (0, 1), value=1.0),  # (frames, d_s + 1): bias column
                  y[:, : mask.shape[1]][mask].double()) for x, y in zip(ours.hidden_states, theirs.hidden_states)]
        update = [(x.T @ x, x.T @ y, y.sum(0), (y**2).sum(0), y.shape[0]) for x, y in pairs]
        sums = update if sums is None else [tuple(a + b for a, b in zip(s, u)) for s, u in zip(sums, update)]
    unexplained = []
    for projection, (xx, xy, y_sum, y_square, count) in zip(model.frame_projections, sums, strict=True):
        regulariser = ridge * xx.diagonal().mean() * torch.eye(xx.shape[0], dtype=xx.dtype)
        solution = torch.linalg.solve(xx + regulariser, xy)  # (d_s + 1, d_t)
        projection.weight.copy_(solution[:-1].T)
        projection.bias.copy_(solution[-1])
        # residual sum of squares from the normal equations: y'y - 2 w'X'y + w'X'X w
        residual = (y_square.sum() - 2 * (solution * xy).sum() + (solution * (xx @ solution)).sum())
        total = y_square.sum() - (y_sum**2).sum() / count
        unexplained.append(float(residual / total))
    model.train(was_training)
    return {"unexplained_variance": unexplained, "frames": int(sums[0][4])}


def _names(folders) -> str | list[str]:
    return str(folders) if isinstance(folders, (str, os.PathLike)) else [str(f) for f in folders]


def _training_arguments(output: Path, max_steps: int, batch_size: int, learning_rate: float, save_steps: int,
                        seed: int, bf16: bool, num_workers: int, **overrides) -> TrainingArguments:
    """The fast student's schedule: AdamW, cosine decay after 5 % warm-up, checkpoints every `save_steps`
    (the last two kept, for resuming). On the GPU when there is one, else the CPU."""
    return TrainingArguments(
        output_dir=str(output), max_steps=max_steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=max(max_steps // 20, 1),
        weight_decay=0.01, max_grad_norm=1.0, logging_steps=50, save_strategy="steps", save_steps=save_steps,
        save_total_limit=2, report_to=[], remove_unused_columns=False, seed=seed,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=num_workers,
        dataloader_persistent_workers=num_workers > 0, disable_tqdm=True,
        # autocast: on the CPU the conv stack in bfloat16 (AMX / AVX512-BF16: 2.5x the fp32 step here), the
        # head stays float32 (it disables autocast); evaluation and the saved weights are float32
        bf16=bf16, **overrides,
    )


def _save_final(model, output: Path, recipe: dict, init: str | None) -> Path:
    """OUTPUT/final with training_recipe.yaml (with `init`'s recipe when it is a run this one continues),
    written atomically; the resume checkpoints go."""
    if init and (Path(init) / "training_recipe.yaml").is_file():
        recipe = {**recipe, "init_recipe": yaml.safe_load((Path(init) / "training_recipe.yaml").read_text())}
    final = output / "final"
    partial = output / "final.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    (partial / "training_recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    partial.rename(final)
    for checkpoint in output.glob("checkpoint-*"):  # only for resuming; final/ is the result
        shutil.rmtree(checkpoint)
    return final


def _run_folder(output_dir, seed: int, resume: bool) -> tuple[Path, Path | None, str | None]:
    """(the run's folder, created; its final model when the run is complete, else None; the newest
    complete checkpoint to resume from, if `resume`). Seeds the run."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    final = output / "final"
    if (final / "training_recipe.yaml").is_file():
        return output, final, None
    set_seed(seed)
    return output, None, last_complete_checkpoint(output) if resume else None


def train_fast_student(
    train: str | os.PathLike | list,
    heldout: str | os.PathLike | list,
    output_dir: str | os.PathLike,
    init: str | None = None,
    preset: str = "fast",
    max_steps: int = 2000,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    dense_weight: float = 0.0,
    freeze_batchnorm: bool = False,
    eval_steps: int = 200,
    eval_clips: int = 400,
    seed: int = 0,
    bf16: bool = True,
    resume: bool = True,
    description: dict | None = None,
    pad_short_clips: bool = False,
    train_head_only: bool = False,
    frame_weight: float = 0.0,
    frame_teacher: str = "distillmos",
    label_window_max_hop: int = ConvTransformerMOSConfig.window_max_hop,
    distillation_loss: str = "mse",
) -> Path:
    """Train a fast student on packed set(s) `train`, evaluating on packed set(s) `heldout` (a folder or a
    list, see PackedClips); returns OUTPUT/final (with training_recipe.yaml). pad_short_clips: the
    student's `FastMOSConfig.pad_short_clips` (score clips shorter than a window zero-padded, as the
    teacher does). train_head_only: the front end (STFT + conv stack) keeps `init`'s weights and the
    feature norm its statistics; only the feature norm's scale and shift and the transformer head learn.
    frame_weight > 0: also match `frame_teacher`'s head hidden states frame by frame (run as a fast model
    that pads short clips as the teacher does; see DistillationTrainer); the student needs its head depth
    and hidden size, as a student pruned from it has. label_window_max_hop: the windows of the labels'
    per-window scores (the teacher's rule; Distill-MOS: 1 s): the student trains and is evaluated on them,
    whatever `init`'s scoring rule (a shipped `fast` scores with windows up to 3.84 s apart).
    distillation_loss: the clip and window terms' loss (`LOSSES` of hf_sqa.training.distillation)."""
    output, done, resume_point = _run_folder(output_dir, seed, resume)
    if done:
        return done
    model = fast_student_from(init) if init else FastMOSForMOSRegression(fast_config(preset))
    model.config.pad_short_clips = pad_short_clips
    model.config.window_max_hop = label_window_max_hop
    if train_head_only:
        model.frontend.requires_grad_(False)  # the Trainer's optimizer takes only parameters that need grad
        freeze_batchnorm = True  # and the feature norm's statistics stay as they are (not re-estimated)
    frame_targets = _frame_teacher(frame_teacher) if frame_weight > 0 else None
    if frame_targets is not None:  # student width -> teacher width, per hidden state; trained, then dropped
        widths = (model.config.head_hidden_size, frame_targets.config.head_hidden_size)
        model.frame_projections = torch.nn.ModuleList(
            torch.nn.Linear(*widths) for _ in range(1 + model.config.head_num_layers))
    data = PackedClips(train)
    held = PackedClips(heldout)
    seconds_per_step = data.seconds() / len(data) * batch_size
    if freeze_batchnorm and not train_head_only:
        # statistics of the fast front end on the training audio (a pruned teacher's were estimated on
        # zero-padded windows), then fixed for the whole run
        from ..pruning.schedule import recalibrate_batchnorm

        recalibrate_batchnorm(model, _sample_batches(data, 256, batch_size, seed))
    if frame_targets is not None and not resume_point:  # on a resume the checkpoint holds the maps
        fit = fit_frame_projections(model, frame_targets, _sample_batches(data, 256, batch_size, seed + 1))
        (output / "frame_projection_fit.json").write_text(json.dumps(fit))
    args = _training_arguments(output, max_steps, batch_size, learning_rate, eval_steps, seed, bf16,
                               num_workers=1)
    trainer = DistillationTrainer(
        model=model, args=args, train_dataset=data, data_collator=collate_clips, alpha=1.0,
        distillation_loss=distillation_loss, dense_weight=dense_weight, freeze_batchnorm=freeze_batchnorm,
        frame_teacher=frame_targets, frame_weight=frame_weight,
        callbacks=[HeldoutEvaluation(held, output / "eval_history.jsonl", eval_steps, eval_clips, seconds_per_step)],
    )
    trainer.train(resume_from_checkpoint=resume_point)
    history = read_history(output / "eval_history.jsonl")
    recipe = {
        "teacher": "distillmos", "init": init or f"random ({preset})", "train_data": _names(train),
        "heldout_data": _names(heldout), "steps": max_steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "bf16": bf16, "dense_weight": dense_weight, "freeze_batchnorm": freeze_batchnorm,
        "pad_short_clips": pad_short_clips, "train_head_only": train_head_only, "frame_weight": frame_weight,
        **({"frame_teacher": frame_teacher} if frame_weight > 0 else {}),
        **({"distillation_loss": distillation_loss} if distillation_loss != "mse" else {}),
        "distinct_clips": len(data), "distinct_audio_hours": round(data.seconds() / 3600, 3),
        "audio_hours_seen": round(max_steps * seconds_per_step / 3600, 2),
        "cpu_hours": round(history[-1]["cpu_s"] / 3600, 3) if history else None,
        "heldout_pcc": history[-1]["pcc"] if history else None, **(description or {}),
    }
    if frame_targets is not None:
        del model.frame_projections  # a training aid, not part of the model
    return _save_final(model, output, recipe, init)


class StopAfter(TrainerCallback):
    """Ends training (with a checkpoint) at the first step end after `seconds` of wall time: a run that must
    fit a fixed budget (a borrowed GPU, a session) keeps what it learnt; the recipe records the steps done."""

    def __init__(self, seconds: float):
        self.deadline = time.time() + seconds

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() > self.deadline:
            control.should_training_stop = True
            control.should_save = True


def train_online_student(
    clean: str | os.PathLike | list,
    output_dir: str | os.PathLike,
    init: str | None = None,
    preset: str = "fast",
    teacher: str = "distillmos",
    noise: str | os.PathLike | None = None,
    catalogues: dict | None = None,
    max_steps: int = 2000,
    batch_size: int = 64,
    learning_rate: float = 3e-4,
    dense_weight: float = 1.0,
    freeze_batchnorm: bool = False,
    heldout: str | os.PathLike | list | None = None,
    eval_steps: int = 500,
    eval_clips: int = 400,
    num_workers: int = 2,
    seed: int = 0,
    bf16: bool = True,
    resume: bool = True,
    time_limit_s: float | None = None,
    description: dict | None = None,
) -> Path:
    """Online distillation: train a fast student on clean clips degraded afresh for every batch
    (`DegradedClipStream`, `num_workers` DataLoader processes) and labelled in the training step by the
    teacher (clip score and per-window scores, the dense target), on the GPU when there is one. No draw is
    seen twice, so the data are limited by the clean speech and the compute, not by stored labels.

    The student trains on the teacher's windows (its window_max_hop), whatever `init`'s scoring rule.
    heldout: packed set(s) scored every `eval_steps` (eval_history.jsonl); time_limit_s: stop and save after
    that much wall time. Resumes from the newest checkpoint (the stream then continues with other draws).
    Returns OUTPUT/final."""
    from ..data.degrade import DegradedClipStream
    from ..scoring import load_model

    output, done, resume_point = _run_folder(output_dir, seed, resume)
    if done:
        return done
    resumed_at = int(resume_point.rsplit("-", 1)[-1]) if resume_point else 0
    # after a resume the stream draws anew (other seed) instead of replaying the draws already trained on
    stream = DegradedClipStream(clean, noise=noise, catalogues=catalogues, seed=seed + resumed_at)
    seconds_per_step = stream.mean_seconds() * batch_size
    teacher_model = load_model(teacher)
    model = fast_student_from(init) if init else FastMOSForMOSRegression(fast_config(preset))
    model.config.window_max_hop = teacher_model.config.window_max_hop  # the dense target's windows
    callbacks = [StopAfter(time_limit_s)] if time_limit_s else []
    if heldout is not None:
        callbacks.append(HeldoutEvaluation(PackedClips(heldout), output / "eval_history.jsonl", eval_steps,
                                           eval_clips, seconds_per_step))
    args = _training_arguments(output, max_steps, batch_size, learning_rate, eval_steps, seed, bf16,
                               num_workers=num_workers, ignore_data_skip=True,
                               dataloader_prefetch_factor=4 if num_workers else None)
    trainer = DistillationTrainer(
        model=model, args=args, train_dataset=stream, data_collator=collate_clips, teacher=teacher_model,
        alpha=1.0, dense_weight=dense_weight, freeze_batchnorm=freeze_batchnorm, callbacks=callbacks)
    started = time.time()
    trainer.train(resume_from_checkpoint=resume_point)
    steps = trainer.state.global_step
    (output / "log_history.json").write_text(json.dumps(trainer.state.log_history))
    history = read_history(output / "eval_history.jsonl")
    recipe = {
        "teacher": teacher, "labels": "online (the teacher scores every training clip in the step)",
        "init": init or f"random ({preset})", "clean_data": _names(clean), "noise": None if noise is None else str(noise),
        "catalogues": stream.catalogues, "steps": steps, "planned_steps": max_steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "bf16": bf16, "dense_weight": dense_weight,
        "freeze_batchnorm": freeze_batchnorm, "distinct_clean_clips": len(stream.files),
        "degradation_draws": steps * batch_size, "audio_hours_seen": round(steps * seconds_per_step / 3600, 2),
        "device": str(args.device), "wall_hours_this_run": round((time.time() - started) / 3600, 3),
        **({"heldout_data": _names(heldout), "heldout_pcc": history[-1]["pcc"]} if history else {}),
        **(description or {}),
    }
    return _save_final(model, output, recipe, init)
