"""Iterative pruning to a parameter target, with distillation fine-tuning from the unpruned model between
steps, and the report `hf-sqa prune` writes.

    targets: P0 > P1 > ... > Pk = target, geometric between the model's size and the target
    for each step:  importance (calibration clips)  ->  select units  ->  prune_model  ->  fine-tune
                    (DistillationTrainer, the unpruned model as online teacher)  ->  save step-k/
    then:           a longer final fine-tune of the pruned model  ->  save final/

A killed run resumes at the first stage whose folder is not complete.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..complexity import macs_per_second, parameter_count
from ..data.specs import resolve
from ..evaluation import spec_clips
from ..metrics import mos_metrics, point_metrics
from ..models import MOSPreTrainedModel
from ..scoring import load_model, score
from ..training.collator import MOSCollator
from .importance import l0_importance, taylor_importance
from .structure import PruningError, prune_model, structure_of, validate_keep

METHODS = ("taylor", "l0")


def resolve_target(model: MOSPreTrainedModel, target_params: int | None = None,
                   target_ratio: float | None = None) -> int:
    """The parameter target from exactly one of a count or a ratio of the model's parameters, checked."""
    total = parameter_count(model)
    if (target_params is None) == (target_ratio is None):
        raise PruningError("give exactly one of target_params and target_ratio")
    if target_ratio is not None:
        if not 0.0 < target_ratio < 1.0:
            raise PruningError(f"target ratio must be strictly between 0 and 1, got {target_ratio}")
        target_params = int(round(target_ratio * total))
    if target_params <= 0:
        raise PruningError(f"target parameter count must be positive, got {target_params}")
    if target_params >= total:
        raise PruningError(f"target of {target_params:,} parameters is not below the model's {total:,}")
    smallest = structure_of(model).minimum_parameter_count()
    if target_params < smallest:
        raise PruningError(
            f"target of {target_params:,} parameters is below the smallest structure this model can be pruned "
            f"to ({smallest:,}: every block removed, one channel per conv layer)")
    return target_params


def select_units(model: MOSPreTrainedModel, importance: dict[str, torch.Tensor], target_params: int,
                 per_parameter: bool = True, group_sizes: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """The pruning plan (group -> kept mask) that removes the least important units until the model has at
    most `target_params` parameters.

    `group_sizes` fixes the size of some groups (e.g. the conv layers, which hold few parameters but most
    of the MACs): each first loses its least important units down to that size; the rest of the target is
    then met from the other groups. Units go in order of importance, divided by the parameters each removes
    when `per_parameter` (Taylor scores are loss increases: the cheapest loss per parameter saved goes
    first). A block goes as one unit; the last head / FFN unit of a block only with its block; a conv layer
    keeps at least one channel.
    """
    family = structure_of(model)
    groups = {g.name: g for g in family.groups()}
    sizes = dict(family.sizes())
    keep = {name: torch.ones(g.size, dtype=torch.bool) for name, g in groups.items()}
    for name, size in (group_sizes or {}).items():
        if name not in groups:
            raise PruningError(f"unknown unit group {name!r}; groups: {sorted(groups)}")
        if not 1 <= size <= groups[name].size or groups[name].kind in ("attention", "feed_forward"):
            raise PruningError(f"group {name} can be fixed to 1..{groups[name].size} units, not {size}")
        order = importance[name].float().flatten().argsort()  # least important first
        keep[name][order[: groups[name].size - size]] = False
        sizes[name] = size
    current = int(family.parameter_count(sizes))
    candidates = []
    for name, group in groups.items():
        if name in (group_sizes or {}):
            continue
        reduced = dict(sizes)
        if group.kind in ("attention", "feed_forward"):
            reduced[name] = 0
        else:
            reduced[name] = sizes[name] - 1
        cost = max(current - int(family.parameter_count(reduced)), 1)
        values = importance[name].float().flatten()
        if values.numel() != group.size:
            raise PruningError(f"importance of {name} has {values.numel()} entries, the group has {group.size}")
        for unit, value in enumerate(values.tolist()):
            candidates.append((value / cost if per_parameter else value, name, unit))
    candidates.sort()
    blocks_of = {g.block: g.name for g in groups.values() if g.block}
    for _, name, unit in candidates:
        if current <= target_params:
            break
        group = groups[name]
        if group.block is not None and sizes[group.block] == 0:
            continue  # its block is gone already
        if group.kind in ("attention", "feed_forward"):
            sizes[name] = 0
            keep[name][:] = False
            sizes[blocks_of[name]] = 0
        else:
            if sizes[name] <= 1:
                continue  # a conv layer keeps one channel; a block's last unit goes with the block
            sizes[name] -= 1
            keep[name][unit] = False
        current = int(family.parameter_count(sizes))
    if current > target_params:
        raise PruningError(f"cannot reach {target_params:,} parameters: the smallest plan found has {current:,}")
    for block, units in blocks_of.items():  # removed blocks: all their units go too
        if not keep[block].any():
            keep[units][:] = False
    return validate_keep(model, keep)


def step_targets(start: int, target: int, steps: int) -> list[int]:
    """`steps` parameter targets, geometric from `start` down to exactly `target`."""
    if steps < 1:
        raise PruningError(f"the schedule needs at least one step, got {steps}")
    ratio = (target / start) ** (1.0 / steps)
    return [int(round(start * ratio ** (k + 1))) for k in range(steps - 1)] + [target]


def calibration_split(spec: str, clips: int, eval_clips: int = 0, seed: int = 0) -> tuple[list[int], list[int]]:
    """Rows of a SPEC for calibration (up to `clips`, a seeded random choice) and, disjoint from them, rows
    held out for evaluating the pruned model: `eval_clips`, but at most a quarter of the SPEC (at least 3
    when it has 6 clips or more, none below that)."""
    rows = list(range(len(resolve(spec))))
    random.Random(seed).shuffle(rows)
    held = min(eval_clips, max(3, len(rows) // 4)) if len(rows) >= 6 else 0
    held_out, calib = rows[:held], rows[held : held + clips]
    if not calib:
        raise PruningError(f"{spec}: no clips to calibrate on")
    return calib, held_out


def calibration_batches(spec: str, window_length: int, rows: list[int], batch_size: int) -> list[dict]:
    """The given rows of a SPEC, centre-cropped to one window, in batches."""
    dataset = resolve(spec)
    collate = MOSCollator(window_length=window_length, random_crop=False)
    examples = [dataset[i] for i in rows]
    return [collate(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]


def recalibrate_batchnorm(model: MOSPreTrainedModel, batches: list[dict]) -> None:
    """Re-estimate every BatchNorm's running statistics on the calibration batches (a plain average over
    them), weights unchanged.

    Removing conv channels or head units shifts the statistics every later BatchNorm sees; with the old
    running statistics the pruned model's outputs drift towards the sigmoid's flat ends and its scores
    collapse to nearly a constant (Distill-MOS halved: 0.01 MOS standard deviation over 214 real clips).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    model.eval()
    saved = [(m, m.momentum) for m in norms]
    device = next(model.parameters()).device
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
        norm.train()
    with torch.no_grad():
        for batch in batches:
            model(input_values=batch["input_values"].to(device), attention_mask=batch["attention_mask"].to(device))
    for norm, momentum in saved:
        norm.momentum = momentum
    model.train(was_training)


@dataclass
class PruningSettings:
    target_params: int
    method: str = "taylor"
    steps: int = 3
    importance_loss: str = "distill"
    calib_clips: int = 64
    batch_size: int = 8
    finetune_steps: int = 0
    final_finetune_steps: int = 0
    finetune_data: str | None = None
    frame_weight: float = 1.0
    learning_rate: float = 3e-4
    # the final structure's fine-tuning starts from a model the steps already repaired: at 3e-4 it first
    # loses agreement with the unpruned model (halved Distill-MOS: PCC 0.917 -> 0.877 in 200 steps)
    final_learning_rate: float = 1e-4
    l0_steps: int = 100
    seed: int = 0
    group_sizes: dict[str, int] | None = None
    eval_clips: int = 0
    eval_every: int = 0
    recalibrate_batchnorm: bool = True
    freeze_batchnorm: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            raise PruningError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.importance_loss not in ("distill", "mos"):
            raise PruningError(f"importance loss must be 'distill' or 'mos', got {self.importance_loss!r}")


@dataclass
class StepRecord:
    step: int
    target_params: int
    parameters: int
    removed: dict[str, int] = field(default_factory=dict)
    finetune_loss: float | None = None
    finetune_curve: list[dict] | None = None
    l0_final_distill: float | None = None


@dataclass
class FinetuneResult:
    loss: float  # the last logged training loss
    curve: list[dict] | None = None  # {"step", **agreement} at step 0, every `every` steps and the last


def warmup_steps(steps: int) -> int:
    """Linear warm-up of a fine-tuning run: a tenth of it, but at least 5 steps (all of a shorter run).
    Without it a short run's first AdamW step, which moves every weight by about the full learning rate,
    can wreck a pruned model (halved Distill-MOS, one step at 3e-4: held-out RMSE 0.52 -> 1.3)."""
    return min(steps, max(steps // 10, 5))


def _held_out_curve(measure: Callable[[MOSPreTrainedModel], dict], every: int, points: list[dict]):
    """A TrainerCallback appending {"step", **measure(model)} to `points` before training, every `every`
    steps and after the last (the model in eval mode meanwhile), and printing it to stderr: a long
    fine-tuning shows its progress."""
    from transformers import TrainerCallback

    class HeldOutCurve(TrainerCallback):
        def _measure(self, step, model):
            was_training = model.training
            model.eval()
            with torch.no_grad():
                points.append({"step": step, **measure(model)})
            model.train(was_training)
            print(f"fine-tuning step {step}: " + ", ".join(f"{key} {value:.4f}" for key, value in points[-1].items()
                                                           if key != "step"), file=sys.stderr, flush=True)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._measure(0, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                self._measure(state.global_step, model)

    return HeldOutCurve()


def finetune(model: MOSPreTrainedModel, teacher: MOSPreTrainedModel, data: str, steps: int,
             settings: PruningSettings, output_dir: Path, exclude_ids: set[str] = frozenset(),
             measure: Callable[[MOSPreTrainedModel], dict] | None = None, seed: int | None = None,
             learning_rate: float | None = None) -> FinetuneResult:
    """Distillation fine-tuning of a pruned model from the unpruned one (online teacher) for `steps` steps
    on a SPEC, leaving out the examples in `exclude_ids` (held out for evaluation); BatchNorm statistics
    stay fixed when `settings.freeze_batchnorm`. With `settings.frame_weight` > 0 the pruned model's head
    hidden states are also matched to the unpruned model's, layer by layer (pruning keeps the head's
    width, so they compare as they are). With `measure` and `settings.eval_every` > 0, the result's curve
    holds measure(model) (e.g. agreement on held-out clips) along the way. `seed` (default
    `settings.seed`) sets the data order; `learning_rate` (default `settings.learning_rate`) the peak rate."""
    from transformers import PrinterCallback, TrainingArguments

    from ..training.distillation import DistillationTrainer
    from ..training.recipe import build_train_stream

    seed = settings.seed if seed is None else seed
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate if learning_rate is None else learning_rate,
        warmup_steps=warmup_steps(steps), logging_steps=max(steps // 5, 1),
        save_strategy="no", report_to=[], remove_unused_columns=False, seed=seed,
        use_cpu=next(model.parameters()).device.type == "cpu", disable_tqdm=True,  # stay where --device put it
        accelerator_config={"dispatch_batches": False, "split_batches": False},
    )
    stream = build_train_stream({"unlabelled": data}, seed=seed)
    if exclude_ids:
        stream = stream.filter(lambda example: example["id"] not in exclude_ids)
    trainer = DistillationTrainer(
        model=model, args=args, train_dataset=stream, teacher=teacher,
        freeze_batchnorm=settings.freeze_batchnorm,
        frame_teacher=teacher if settings.frame_weight > 0 else None, frame_weight=settings.frame_weight,
        data_collator=MOSCollator(window_length=model.config.window_length, seed=seed),
    )
    trainer.remove_callback(PrinterCallback)  # the losses go into the pruning report instead
    curve = [] if measure is not None and settings.eval_every > 0 else None
    if curve is not None:
        trainer.add_callback(_held_out_curve(measure, settings.eval_every, curve))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    model.eval()
    return FinetuneResult(float(losses[-1]) if losses else float("nan"), curve)


def _unit_ids(model: MOSPreTrainedModel) -> dict[str, list[int]]:
    return {g.name: list(range(g.size)) for g in structure_of(model).groups()}


def step_group_sizes(model: MOSPreTrainedModel, final: dict[str, int] | None, step: int, steps: int) -> dict[str, int] | None:
    """Fixed group sizes at a schedule step: geometric from the model's sizes to `final`."""
    if not final:
        return None
    sizes = dict(structure_of(model).sizes())
    return {name: max(size, int(round(sizes[name] * (size / sizes[name]) ** ((step + 1) / steps))))
            for name, size in final.items()}


def _save_stage(model: MOSPreTrainedModel, folder: Path, saved: dict) -> None:
    """Write a finished stage's model and record; the folder appears only complete (a kill leaves at most
    a .partial folder, which the rerun replaces)."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    (partial / "record.json").write_text(json.dumps(saved))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def prune(model: MOSPreTrainedModel, calib: str, settings: PruningSettings,
          work_dir: str | os.PathLike, reference: MOSPreTrainedModel | None = None,
          calib_rows: list[int] | None = None, exclude_ids: set[str] = frozenset(),
          measure: Callable[[MOSPreTrainedModel], dict] | None = None) -> tuple[MOSPreTrainedModel, dict]:
    """Iterative pruning of `model` (which is not changed) to `settings.target_params`, then
    `settings.final_finetune_steps` more fine-tuning of the result at `settings.final_learning_rate`.

    `reference` is the unpruned model the importance and the fine-tuning distil from (default: `model`;
    give the original when `model` is already pruned). `measure` (model -> metrics) is recorded along each
    fine-tuning every `settings.eval_every` steps. Returns the pruned model and the schedule's record (per
    step; which of `model`'s units were removed; the final fine-tuning). Each finished stage is saved under
    work_dir/steps/ (step-K, final: model, unit ids, record), so a rerun with the same arguments continues
    after the last finished stage.
    """
    reference = copy.deepcopy(reference if reference is not None else model).eval()
    reference.requires_grad_(False)
    current = copy.deepcopy(model).eval()
    unit_ids = _unit_ids(model)
    targets = step_targets(parameter_count(model), settings.target_params, settings.steps)
    if calib_rows is None:
        calib_rows, _ = calibration_split(calib, settings.calib_clips, 0, settings.seed)
    batches = calibration_batches(calib, model.config.window_length, calib_rows, settings.batch_size)
    steps_dir = Path(work_dir) / "steps"
    records: list[StepRecord] = []
    for step, target in enumerate(targets):
        done = steps_dir / f"step-{step}"
        if (done / "record.json").is_file():  # finished before a kill: reuse it
            saved = json.loads((done / "record.json").read_text())
            records.append(StepRecord(**saved["record"]))
            unit_ids = saved["unit_ids"]
            current = type(model).from_pretrained(done).to(next(model.parameters()).device).eval()
            continue
        record = StepRecord(step=step, target_params=target, parameters=0)
        if settings.method == "taylor":
            importance = taylor_importance(current, batches, reference, settings.importance_loss)
            keep = select_units(current, importance, target, per_parameter=True,
                                group_sizes=step_group_sizes(model, settings.group_sizes, step, settings.steps))
        else:
            importance, log = l0_importance(current, batches, reference, target, steps=settings.l0_steps,
                                            learning_rate=settings.learning_rate, seed=settings.seed + step)
            record.l0_final_distill = log[-1]["distill"] if log else None
            keep = select_units(current, importance, target, per_parameter=False,
                                group_sizes=step_group_sizes(model, settings.group_sizes, step, settings.steps))
        record.removed = {name: int((~mask).sum()) for name, mask in keep.items() if not mask.all()}
        unit_ids = {name: [uid for uid, kept in zip(unit_ids[name], keep[name].tolist()) if kept]
                    for name in keep}
        current = prune_model(current, keep).eval()
        unit_ids = {name: ids for name, ids in unit_ids.items() if ids}
        record.parameters = parameter_count(current)
        if settings.recalibrate_batchnorm:
            recalibrate_batchnorm(current, batches)
        if settings.finetune_steps > 0:
            result = finetune(current, reference, settings.finetune_data or calib, settings.finetune_steps,
                              settings, done.with_name(f"trainer-{step}"), exclude_ids=exclude_ids, measure=measure)
            record.finetune_loss, record.finetune_curve = result.loss, result.curve
        _save_stage(current, done, {"record": asdict(record), "unit_ids": unit_ids})
        records.append(record)
    schedule = {"steps": [asdict(r) for r in records], "unit_ids": unit_ids}
    if settings.final_finetune_steps > 0:
        # the pruned structure settled, its weights get the longest fine-tuning (the steps' fine-tuning
        # only repairs each cut before the next one)
        done = steps_dir / "final"
        if (done / "record.json").is_file():
            final = json.loads((done / "record.json").read_text())["final"]
            current = type(model).from_pretrained(done).to(next(model.parameters()).device).eval()
        else:
            result = finetune(current, reference, settings.finetune_data or calib, settings.final_finetune_steps,
                              settings, steps_dir / "trainer-final", exclude_ids=exclude_ids, measure=measure,
                              seed=settings.seed + 1,  # the steps' fine-tunings all read the data in one order
                              learning_rate=settings.final_learning_rate)
            final = {"steps": settings.final_finetune_steps, "learning_rate": settings.final_learning_rate,
                     "finetune_loss": result.loss, "finetune_curve": result.curve}
            _save_stage(current, done, {"final": final})
        schedule["final_finetune"] = final
    return current, schedule


class UnprunedAgreement:
    """The unpruned model's scores on a SPEC's clips (or the given rows of it), computed once, and a pruned
    model compared with them: `report` (the pruning report's evaluation) and, as a `measure` for the
    fine-tuning curve, calling it (PCC / SRCC / RMSE)."""

    def __init__(self, unpruned: MOSPreTrainedModel, spec: str, rows: list[int] | None = None, batch_size: int = 8):
        clips = spec_clips(spec)
        self.spec, self.batch_size = spec, batch_size
        self.audios, self.mos = clips.audios, clips.mos  # human MOS: NaN where the SPEC has none
        if rows is not None:
            self.audios, self.mos = [clips.audios[i] for i in rows], clips.mos[rows]
        self.unpruned_scores = self.scores(unpruned)

    def scores(self, model: MOSPreTrainedModel) -> np.ndarray:
        """`model`'s scores of the evaluation clips."""
        return score(self.audios, model=model.eval(), sampling_rate=16000, batch_size=self.batch_size)

    def __call__(self, model: MOSPreTrainedModel) -> dict:
        metrics = point_metrics(self.scores(model), self.unpruned_scores)
        return {key: metrics[key] for key in ("pcc", "srcc", "rmse")}

    def report(self, pruned: MOSPreTrainedModel) -> dict:
        """PCC / SRCC / KTAU / RMSE of the pruned model against the unpruned one, and of both against human
        MOS where the SPEC has it, with 95 % bootstrap CIs of PCC and SRCC."""
        ours, theirs = self.scores(pruned), self.unpruned_scores
        report = {"data": self.spec, "clips": len(self.audios), "pruned_vs_unpruned": mos_metrics(ours, theirs),
                  # a collapsed model scores nearly a constant: its spread shows it where PCC is undefined
                  "pruned_score_std": float(np.std(ours)), "unpruned_score_std": float(np.std(theirs))}
        labelled = np.isfinite(self.mos)
        if labelled.sum() >= 3:
            report["pruned_vs_human"] = mos_metrics(ours[labelled], self.mos[labelled])
            report["unpruned_vs_human"] = mos_metrics(theirs[labelled], self.mos[labelled])
        return report


def compare_to_unpruned(pruned: MOSPreTrainedModel, unpruned: MOSPreTrainedModel, spec: str,
                        batch_size: int = 8, rows: list[int] | None = None) -> dict:
    """PCC / SRCC / KTAU / RMSE of the pruned model's scores against the unpruned model's on a SPEC's
    clips (or the given rows of it), and of both against human MOS where the SPEC has it."""
    return UnprunedAgreement(unpruned, spec, rows, batch_size).report(pruned)


def model_summary(model: MOSPreTrainedModel) -> dict:
    return {"parameters": parameter_count(model), "macs_per_second": macs_per_second(model),
            "structure": structure_of(model).sizes()}


def prune_checkpoint(model_name: str, calib: str, output_dir: str | os.PathLike,
                     target_params: int | None = None, target_ratio: float | None = None,
                     eval_data: str | None = None, device: str | None = None, **setting_fields) -> dict:
    """What `hf-sqa prune` does: prune a model (name, folder or Hub id) and write the pruned checkpoint,
    `pruning_report.json` (removed units per layer, parameters and MACs before and after, evaluation
    against the unpruned model) to output_dir. Returns the report. Steps in progress are kept in
    output_dir/work (a rerun resumes there) and removed at the end."""
    output = Path(output_dir)
    cpu_start, wall_start = time.process_time(), time.time()
    model = load_model(model_name, device=device)
    target = resolve_target(model, target_params, target_ratio)
    settings = PruningSettings(target_params=target, **setting_fields)
    torch.manual_seed(settings.seed)
    finetune_data = settings.finetune_data or calib
    if eval_data is None:
        # no evaluation SPEC: hold out calibration clips that neither calibration nor fine-tuning sees
        calib_rows, eval_rows = calibration_split(calib, settings.calib_clips, settings.eval_clips or 64, settings.seed)
        if len(eval_rows) < 3:
            raise PruningError(f"{calib} has too few clips to hold out an evaluation set beyond the "
                               f"{len(calib_rows)} calibration clips; give --eval-data or fewer --calib-clips")
        ids = resolve(calib).with_format(None)["id"]  # the id column only: no audio decoded
        eval_ids = {ids[i] for i in eval_rows}
    else:
        calib_rows, eval_rows, eval_ids = None, None, set()
        if eval_data in (calib, finetune_data):
            warnings.warn(f"--eval-data {eval_data} is also the calibration or fine-tuning data: the reported "
                          "agreement is measured on clips the pruning saw and overstates it on new audio")
    # the unpruned model scores the evaluation clips once, for the curve and the report
    agreement = UnprunedAgreement(model, eval_data or calib, rows=eval_rows, batch_size=settings.batch_size)
    pruned, schedule = prune(model, calib, settings, output / "work", calib_rows=calib_rows,
                             exclude_ids=eval_ids if finetune_data == calib else set(),
                             measure=agreement if settings.eval_every > 0 else None)
    pruned.save_pretrained(output)
    before, after = model_summary(model), model_summary(pruned)
    removed = {}
    for name, size in before["structure"].items():
        kept = schedule["unit_ids"].get(name, [])
        if len(kept) < size:
            removed[name] = {"before": size, "after": len(kept),
                             "removed_units": sorted(set(range(size)) - set(kept))}
    report = {
        "model": model_name, "calibration": calib, "settings": asdict(settings),
        "target_params": target, "target_ratio": target_ratio,
        "before": before, "after": after,
        "parameter_ratio": after["parameters"] / before["parameters"],
        "mac_ratio": after["macs_per_second"] / before["macs_per_second"],
        "removed": removed, "steps": schedule["steps"], "final_finetune": schedule.get("final_finetune"),
        "evaluation": agreement.report(pruned),
        "evaluation_data": eval_data or f"{len(eval_rows)} clips of {calib} held out from calibration and fine-tuning",
        "evaluated_on_training_data": eval_data is not None and eval_data in (calib, finetune_data),
        # this process's CPU time (all threads) and wall time, evaluation included; a resumed run counts
        # only its own part
        "cpu_seconds": time.process_time() - cpu_start, "wall_seconds": time.time() - wall_start,
    }
    (output / "pruning_report.json").write_text(json.dumps(report, indent=1))
    shutil.rmtree(output / "work")  # the step folders only serve resuming; OUTPUT is the checkpoint
    return report
