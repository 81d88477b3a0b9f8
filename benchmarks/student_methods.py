"""The methods of `make student` compared: PCC with the teacher on held-out speakers against training steps
and CPU-hours, from each run's eval_history.jsonl (written while it trained). Prints the table of the
README and draws runs/student/methods.png. The `refine` stage (RUNS/refined, continuing the chosen method
on every degradation set) is drawn as that method's continuation; its evaluations pool the held-out
clips of every set, so its curve starts below where the method's own ended.

    python benchmarks/student_methods.py [--runs runs/student] [--at 300]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hf_sqa.training.fast_student import read_history  # noqa: E402
from hf_sqa.training.student_pipeline import METHODS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/student")
    parser.add_argument("--at", type=int, default=200, help="the common step budget of the comparison")
    args = parser.parse_args()
    runs = Path(args.runs)
    prune_cpu_h = 0.0
    report = runs / "pruned-init" / "pruning_report.json"
    if report.is_file():
        prune_cpu_h = json.loads(report.read_text()).get("cpu_seconds", 0.0) / 3600
    figure, (by_step, by_cpu) = plt.subplots(1, 2, figsize=(11, 4))
    print(f"{'method':<8} {'steps':>6} {'audio h':>8} {'CPU h':>6} {'PCC':>6} {'SRCC':>6}   (at step {args.at}) | "
          f"{'last step':>9} {'CPU h':>6} {'PCC':>6} {'SRCC':>6}")
    for method in METHODS:
        history = read_history(runs / method / "eval_history.jsonl")
        if not history:
            continue
        extra = prune_cpu_h if METHODS[method]["pruned_init"] else 0.0  # the pruning's own cost counts
        at = [h for h in history if h["step"] <= args.at][-1]
        last = history[-1]
        print(f"{method:<8} {at['step']:>6} {at['audio_hours']:>8.1f} {at['cpu_s'] / 3600 + extra:>6.2f} "
              f"{at['pcc']:>6.3f} {at['srcc']:>6.3f}   | {last['step']:>9} {last['cpu_s'] / 3600 + extra:>6.2f} "
              f"{last['pcc']:>6.3f} {last['srcc']:>6.3f}")
        steps = [h["step"] for h in history]
        pcc = [h["pcc"] for h in history]
        by_step.plot(steps, pcc, marker=".", label=method)
        by_cpu.plot([h["cpu_s"] / 3600 + extra for h in history], pcc, marker=".", label=method)
    for axis, label in ((by_step, "training steps (batch 16)"), (by_cpu, "CPU-hours (2 cores; pruning included)")):
        axis.set_xlabel(label)
        axis.set_ylabel("PCC with the teacher, held-out speakers")
        axis.grid(alpha=0.3)
        axis.legend()
    refined = read_history(runs / "refined" / "eval_history.jsonl")
    recipe = runs / "refined" / "final" / "training_recipe.yaml"
    if refined:
        import yaml

        # the chosen method's run the refinement continued (its last step and CPU time are the offsets)
        method = (yaml.safe_load(recipe.read_text())["method"].split(",")[0] if recipe.is_file() else "pruned")
        base = read_history(runs / method / "eval_history.jsonl")[-1]
        extra = (prune_cpu_h if METHODS[method]["pruned_init"] else 0.0) + base["cpu_s"] / 3600
        last = refined[-1]
        print(f"{method + ' -> refined, every held-out set pooled':<44} | {base['step'] + last['step']:>9} "
              f"{last['cpu_s'] / 3600 + extra:>6.2f} {last['pcc']:>6.3f} {last['srcc']:>6.3f}  "
              f"(refine step 0: PCC {refined[0]['pcc']:.3f})")
        label = f"{method} → refined (default + mild held-out)"
        by_step.plot([base["step"] + h["step"] for h in refined], [h["pcc"] for h in refined], marker=".", label=label)
        by_cpu.plot([h["cpu_s"] / 3600 + extra for h in refined], [h["pcc"] for h in refined], marker=".", label=label)
        for axis in (by_step, by_cpu):
            axis.legend()
    by_step.axvline(args.at, color="grey", lw=0.8, ls="--")
    figure.tight_layout()
    figure.savefig(runs / "methods.png", dpi=120)
    print(f"wrote {runs / 'methods.png'}")


if __name__ == "__main__":
    main()
