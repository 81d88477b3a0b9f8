"""MOS prediction metrics, in one place: PCC, SRCC, KTAU, RMSE at utterance and system level, with
bootstrap confidence intervals, and the Trainer's `compute_metrics`.

System level (also called condition level) first averages predictions and labels per condition, then
correlates the averages: how well a model ranks systems, which is what listening tests compare.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

# the `evaluate` metric module: evaluate.load(EVALUATE_METRIC_PATH) (a local path, no Hub fetch)
EVALUATE_METRIC_PATH = str(Path(__file__).with_name("evaluate_metrics") / "mos_quality")


def _as_arrays(predictions, targets) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    if predictions.shape != targets.shape:
        raise ValueError(f"{predictions.size} predictions for {targets.size} targets")
    if not np.all(np.isfinite(predictions)) or not np.all(np.isfinite(targets)):
        raise ValueError("predictions and targets must be finite (drop unscored items first)")
    return predictions, targets


_CORRELATION = {
    "pcc": lambda p, t: stats.pearsonr(p, t)[0],
    "srcc": lambda p, t: stats.spearmanr(p, t)[0],
    "ktau": lambda p, t: stats.kendalltau(p, t)[0],  # tau-b
}


def _correlation(name: str, p: np.ndarray, t: np.ndarray) -> float:
    """NaN with fewer than 2 items or without variance (a correlation is undefined there)."""
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(_CORRELATION[name](p, t))


def point_metrics(predictions, targets) -> dict[str, float]:
    """n, PCC, SRCC, KTAU (tau-b) and RMSE."""
    p, t = _as_arrays(predictions, targets)
    out = {"n": int(p.size), "rmse": float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")}
    out.update({name: _correlation(name, p, t) for name in _CORRELATION})
    return out


def _percentile_interval(size: int, statistic_of, n_boot: int, level: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of statistic_of(index) over `n_boot` resamples of `size` items with
    replacement; resamples where it is undefined (NaN: no variance) are skipped."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        value = statistic_of(rng.integers(0, size, size))
        if value == value:
            values.append(value)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def bootstrap_ci(predictions, targets, statistic: str, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a correlation, resampling items with replacement."""
    p, t = _as_arrays(predictions, targets)
    if p.size < 3:
        return float("nan"), float("nan")
    return _percentile_interval(p.size, lambda index: _correlation(statistic, p[index], t[index]),
                                n_boot, level, seed)


def paired_bootstrap_ci(predictions_a, predictions_b, targets, statistic: str, n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The difference of a correlation between two models scored on the same items, statistic(a) −
    statistic(b), and its percentile bootstrap interval, both models resampled with the same items: much
    narrower than comparing their separate intervals when their errors go together."""
    a, t = _as_arrays(predictions_a, targets)
    b, _ = _as_arrays(predictions_b, targets)

    def difference_of(index) -> float:
        return _correlation(statistic, a[index], t[index]) - _correlation(statistic, b[index], t[index])

    difference = difference_of(slice(None))
    if t.size < 3:
        return difference, float("nan"), float("nan")
    return (difference, *_percentile_interval(t.size, difference_of, n_boot, level, seed))


def system_level(predictions, targets, conditions) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-condition means of predictions and targets, conditions in first-seen order."""
    p, t = _as_arrays(predictions, targets)
    groups: dict = defaultdict(list)
    for index, condition in enumerate(conditions):
        groups[condition].append(index)
    names = list(groups)
    return (np.array([p[groups[c]].mean() for c in names]), np.array([t[groups[c]].mean() for c in names]), names)


def mos_metrics(predictions, targets, conditions=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """Utterance-level metrics with 95 % bootstrap CIs for PCC and SRCC, plus system-level metrics
    (prefixed ``system_``) when conditions are given."""
    out = point_metrics(predictions, targets)
    for name in ("pcc", "srcc"):
        low, high = bootstrap_ci(predictions, targets, name, n_boot=n_boot, seed=seed)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    if conditions is not None and any(c is not None for c in conditions):
        sys_p, sys_t, names = system_level(predictions, targets, conditions)
        out.update({f"system_{key}": value for key, value in point_metrics(sys_p, sys_t).items()})
    return out


def compare_with_first(predictions: dict, targets, n_boot: int = 1000, seed: int = 0) -> dict[str, tuple[dict, dict]]:
    """Several models scored on the same items -> {name: (its `mos_metrics` against `targets`, its paired
    differences from the first model (dicts keep their order): {"pcc" / "srcc": (difference, CI low, CI high)}
    from `paired_bootstrap_ci`, empty for the first)}."""
    first = next(iter(predictions))
    return {name: (mos_metrics(ours, targets, n_boot=n_boot, seed=seed),
                   {} if name == first else {statistic: paired_bootstrap_ci(ours, predictions[first], targets, statistic,
                                                                            n_boot=n_boot, seed=seed)
                                             for statistic in ("pcc", "srcc")})
            for name, ours in predictions.items()}


def compute_metrics(eval_prediction) -> dict[str, float]:
    """`transformers.Trainer` compute_metrics: the first prediction array is the model's `mos`."""
    predictions = eval_prediction.predictions
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    metrics = point_metrics(predictions, eval_prediction.label_ids)
    return {key: value for key, value in metrics.items() if key != "n"}
