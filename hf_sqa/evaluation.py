"""Evaluate MOS models on labelled SPECs: per-corpus and pooled metrics, a JSON report, scatter plots.

Report layout: ``{"<corpus>": {"<model>": {"n", "pcc", "srcc", "ktau", "rmse", CIs, system_*}}}`` with a
``"pooled"`` corpus holding all corpora together.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.specs import SpecError, parse_spec, resolve
from .metrics import mos_metrics
from .scoring import iter_scores, load_model

POOLED = "pooled"


@dataclass
class CorpusScores:
    """Human MOS and each model's predictions for one corpus (items in the corpus' order)."""

    targets: np.ndarray
    conditions: list
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SpecClips:
    """The decoded clips of a SPEC, in its order, with their MOS (NaN where a row has none)."""

    corpus: str
    ids: list[str]
    audios: list[np.ndarray]
    mos: np.ndarray
    conditions: list


def spec_clips(spec: str) -> SpecClips:
    parsed = parse_spec(spec)
    rows = list(resolve(parsed))
    return SpecClips(
        corpus=parsed.corpus, ids=[row["id"] for row in rows], audios=[row["audio"] for row in rows],
        mos=np.array([np.nan if row["mos"] is None else row["mos"] for row in rows], dtype=np.float64),
        conditions=[row["condition"] for row in rows],
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
    """(report, scores) for every model on every labelled SPEC and pooled over them."""
    corpora: dict[str, tuple[list[np.ndarray], CorpusScores]] = {}
    for spec in specs:
        clips = _labelled_clips(spec)
        key, suffix = clips.corpus, 2
        while key in corpora:  # two SPECs with one corpus name stay apart
            key, suffix = f"{clips.corpus}_{suffix}", suffix + 1
        corpora[key] = (clips.audios, CorpusScores(targets=clips.mos, conditions=clips.conditions))
    for model_name in models:
        model = load_model(model_name, device=device)
        for audios, scores in corpora.values():
            results = list(iter_scores(audios, model, batch_size=batch_size, sampling_rate=16000,
                                       precision=precision))
            scores.predictions[model_name] = np.array([r.mos for r in results])
    scores = {key: value for key, (_, value) in corpora.items()}
    if len(scores) > 1:
        scores[POOLED] = CorpusScores(
            targets=np.concatenate([s.targets for s in scores.values()]),
            conditions=[f"{key}/{c}" if c is not None else None for key, s in scores.items() for c in s.conditions],
            predictions={m: np.concatenate([s.predictions[m] for s in scores.values()]) for m in models},
        )
    report = {
        corpus: {m: mos_metrics(s.predictions[m], s.targets, s.conditions, n_boot=n_boot, seed=seed) for m in models}
        for corpus, s in scores.items()
    }
    return report, scores


def format_report(report: dict) -> str:
    lines = [f"{'corpus':<22} {'model':<28} {'n':>5} {'PCC':>7} {'(95% CI)':>15} {'SRCC':>7} {'KTAU':>7} {'RMSE':>7}"]
    for corpus, by_model in report.items():
        for model, m in by_model.items():
            ci = f"({m['pcc_ci_low']:.3f},{m['pcc_ci_high']:.3f})"
            lines.append(f"{corpus:<22} {Path(model).name[:28]:<28} {m['n']:>5} {m['pcc']:>7.3f} {ci:>15} "
                         f"{m['srcc']:>7.3f} {m['ktau']:>7.3f} {m['rmse']:>7.3f}")
    return "\n".join(lines)


def write_report(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=True))
    return path


def plot_scatter(scores: dict[str, CorpusScores], path: str | os.PathLike) -> Path:
    """Predicted vs. human MOS, one panel per corpus, one colour per model."""
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
        axis.set(xlim=(1, 5), ylim=(1, 5), xlabel="human MOS", ylabel="predicted MOS", title=corpus)
        axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
