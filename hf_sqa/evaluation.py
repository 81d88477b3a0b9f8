"""Evaluate MOS models on labelled SPECs: per-corpus and pooled metrics, a JSON report, scatter plots.

Report layout: ``{"<corpus>": {"<model>": {"n", "pcc", "srcc", "ktau", "rmse", CIs, system_*, "reference"}}}``.
``reference`` says what the corpus's MOS column holds: ``"human"`` ratings, or ``"teacher:<name>"`` for the
teacher's scores of `hf-sqa pseudo-label` shards read with ``#mos=teacher_mos`` (a student's held-out
speakers). Corpora are pooled only with corpora of the same reference: ``"pooled"`` when every corpus has
one reference, else ``"pooled (<reference>)"`` for each reference held by two corpora or more.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.pseudo_label import TEACHER_MOS
from .data.specs import Spec, SpecError, parse_spec, resolve
from .metrics import mos_metrics
from .scoring import iter_scores, load_model

POOLED = "pooled"
HUMAN = "human"


def mos_reference(spec: Spec) -> str:
    """What a SPEC's MOS column holds: "teacher:<name>" when it is the `teacher_mos` column of
    `hf-sqa pseudo-label` shards (the name from the folder's manifest.json; "teacher" without one), else
    "human" (a MOS folder's or a dataset's ratings)."""
    if spec.options.get("mos", "mos") != TEACHER_MOS:
        return HUMAN
    manifest = Path(spec.location) / "manifest.json"
    teacher = json.loads(manifest.read_text()).get("teacher") if manifest.is_file() else None
    return f"teacher:{teacher}" if teacher else "teacher"


def describe_reference(reference: str | None) -> str:
    """A report's reference in words, for tables and plots ("human MOS", "teacher's MOS (distillmos)")."""
    if reference is None:
        return "the corpus's MOS (source not recorded)"  # reports written before the reference was
    if reference == HUMAN:
        return "human MOS"
    _, _, teacher = reference.partition(":")
    return f"teacher's MOS ({teacher})" if teacher else "a teacher's MOS"


@dataclass
class CorpusScores:
    """Reference MOS (human, or a teacher's: `reference`) and each model's predictions for one corpus (items
    in the corpus' order)."""

    targets: np.ndarray
    conditions: list
    reference: str = HUMAN
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SpecClips:
    """The decoded clips of a SPEC, in its order, with their MOS (NaN where a row has none) and what that MOS
    is (`mos_reference`)."""

    corpus: str
    ids: list[str]
    audios: list[np.ndarray]
    mos: np.ndarray
    conditions: list
    reference: str


def spec_clips(spec: str) -> SpecClips:
    parsed = parse_spec(spec)
    rows = list(resolve(parsed))
    return SpecClips(
        corpus=parsed.corpus, ids=[row["id"] for row in rows], audios=[row["audio"] for row in rows],
        mos=np.array([np.nan if row["mos"] is None else row["mos"] for row in rows], dtype=np.float64),
        conditions=[row["condition"] for row in rows], reference=mos_reference(parsed),
    )


def _labelled_clips(spec: str) -> SpecClips:
    clips = spec_clips(spec)
    unlabelled = np.flatnonzero(np.isnan(clips.mos))
    if unlabelled.size:
        raise SpecError(f"{spec}: row {clips.ids[unlabelled[0]]} has no MOS label; evaluation needs labelled data")
    if not clips.audios:
        raise SpecError(f"{spec}: no rows to evaluate")
    return clips


def evaluate_models(
    models: list[str], specs: list[str], batch_size: int = 8, device: str | None = None,
    precision: str = "fp32", n_boot: int = 1000, seed: int = 0,
) -> tuple[dict, dict[str, CorpusScores]]:
    """(report, scores) for every model on every labelled SPEC, and pooled over the SPECs of each reference."""
    corpora: dict[str, tuple[list[np.ndarray], CorpusScores]] = {}
    for spec in specs:
        clips = _labelled_clips(spec)
        key, suffix = clips.corpus, 2
        while key in corpora:  # two SPECs with one corpus name stay apart
            key, suffix = f"{clips.corpus}_{suffix}", suffix + 1
        corpora[key] = (clips.audios, CorpusScores(targets=clips.mos, conditions=clips.conditions,
                                                   reference=clips.reference))
    for model_name in models:
        model = load_model(model_name, device=device)
        for audios, scores in corpora.values():
            results = list(iter_scores(audios, model, batch_size=batch_size, sampling_rate=16000,
                                       precision=precision))
            scores.predictions[model_name] = np.array([r.mos for r in results])
    scores = {key: value for key, (_, value) in corpora.items()}
    by_reference: dict[str, dict[str, CorpusScores]] = {}
    for key, value in scores.items():
        by_reference.setdefault(value.reference, {})[key] = value
    for reference, group in by_reference.items():
        if len(group) > 1:  # human ratings and a teacher's scores are different scales: never pooled together
            scores[POOLED if len(by_reference) == 1 else f"{POOLED} ({reference})"] = CorpusScores(
                targets=np.concatenate([s.targets for s in group.values()]),
                conditions=[f"{key}/{c}" if c is not None else None for key, s in group.items() for c in s.conditions],
                reference=reference,
                predictions={m: np.concatenate([s.predictions[m] for s in group.values()]) for m in models},
            )
    report = {
        corpus: {m: {**mos_metrics(s.predictions[m], s.targets, s.conditions, n_boot=n_boot, seed=seed),
                     "reference": s.reference} for m in models}
        for corpus, s in scores.items()
    }
    return report, scores


@dataclass
class Agreement:
    """`model_agreement`'s result: a model against a reference model on the same sampled inputs."""

    inputs: list  # the sampled inputs, in their original order
    total: int  # inputs sampled from
    model_mos: np.ndarray  # (len(inputs),) NaN where an input could not be scored
    reference_mos: np.ndarray
    errors: list  # per sampled input: None, or why it could not be scored (by either model)
    metrics: dict  # `mos_metrics(model_mos, reference_mos)` over the inputs both scored
    mean_difference: float  # model - reference, MOS, over the same inputs
    seconds: dict  # {"model", "reference"}: scoring wall time (decoding included)
    audio_seconds: float  # audio scored (inputs both scored)


def model_agreement(
    inputs: list, model, reference, sample: int | None = 200, seed: int = 0, batch_size: int = 8,
    device: str | None = None, precision: str = "fp32", n_boot: int = 1000, **score_options,
) -> Agreement:
    """How closely `model` follows `reference` on your own audio, before scoring all of it with the cheaper
    one: both score the same random sample of `inputs` (`sample` of them, all when None or more; seeded),
    and the agreement is the MOS metrics of the model against the reference's scores, with 95 % bootstrap
    CIs, plus the mean difference and each model's wall time. model / reference: hf_sqa models, or names /
    folders / Hub ids. Inputs that fail (with either model) are reported in `errors` and left out."""
    total = len(inputs)
    chosen = sorted(np.random.default_rng(seed).choice(total, size=sample, replace=False)) \
        if sample is not None and sample < total else range(total)
    inputs = [inputs[index] for index in chosen]
    scores, seconds, errors, audio = {}, {}, [None] * len(inputs), np.zeros(len(inputs))
    for role, which in (("model", model), ("reference", reference)):
        loaded = which if not isinstance(which, (str, os.PathLike)) else load_model(which, device=device)
        start = time.perf_counter()
        values = np.full(len(inputs), np.nan)
        for result in iter_scores(inputs, loaded, batch_size=batch_size, precision=precision, **score_options):
            if result.error is not None:
                errors[result.index] = errors[result.index] or result.error
            else:
                values[result.index], audio[result.index] = result.mos, result.duration
        seconds[role], scores[role] = time.perf_counter() - start, values
    both = np.isfinite(scores["model"]) & np.isfinite(scores["reference"])
    if both.sum() < 3:
        raise ValueError(f"only {int(both.sum())} of {len(inputs)} sampled inputs could be scored by both models; "
                         "at least 3 are needed")
    ours, theirs = scores["model"][both], scores["reference"][both]
    return Agreement(inputs=inputs, total=total, model_mos=scores["model"], reference_mos=scores["reference"],
                     errors=errors, metrics=mos_metrics(ours, theirs, n_boot=n_boot, seed=seed),
                     mean_difference=float(np.mean(ours - theirs)), seconds=seconds,
                     audio_seconds=float(audio[both].sum()))


def format_report(report: dict) -> str:
    lines = [f"{'corpus':<22} {'model':<28} {'n':>5} {'PCC':>7} {'(95% CI)':>15} {'SRCC':>7} {'KTAU':>7} {'RMSE':>7}"
             "  reference"]
    for corpus, by_model in report.items():
        for model, m in by_model.items():
            ci = f"({m['pcc_ci_low']:.3f},{m['pcc_ci_high']:.3f})"
            lines.append(f"{corpus:<22} {Path(model).name[:28]:<28} {m['n']:>5} {m['pcc']:>7.3f} {ci:>15} "
                         f"{m['srcc']:>7.3f} {m['ktau']:>7.3f} {m['rmse']:>7.3f}  {describe_reference(m.get('reference'))}")
    return "\n".join(lines)


def write_report(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=True))
    return path


def plot_scatter(scores: dict[str, CorpusScores], path: str | os.PathLike) -> Path:
    """Predicted vs. reference MOS (human, or a teacher's), one panel per corpus, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(scores)
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for axis, corpus in zip(axes[0], panels):
        data = scores[corpus]
        for model, predictions in data.predictions.items():
            axis.scatter(data.targets, predictions, s=12, alpha=0.7, label=Path(model).name)
        axis.plot([1, 5], [1, 5], color="grey", linewidth=0.8)
        axis.set(xlim=(1, 5), ylim=(1, 5), xlabel=describe_reference(data.reference), ylabel="predicted MOS", title=corpus)
        axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
