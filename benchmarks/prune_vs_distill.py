"""Pruning vs. distillation at matching sizes (CPU-sized version of the paper's comparison).

The unpruned model is the Distill-MOS import (4.1 M parameters; no XLS-R teacher is reachable offline).
One pruning chain, Taylor importance, shrinks it through the parameter counts of the student presets
(largest first): each size is one pruning step (two for the first) followed by `--finetune-steps` of
distillation fine-tuning from the unpruned model. Each preset student is trained from scratch by
distillation (offline: the SPEC's teacher_mos labels) for as many steps as its pruned counterpart has
been fine-tuned in all. Both are evaluated against the teacher on held-out degraded speech and against
human MOS; `--compare-l0` also prunes to the first size with HardConcrete (L0) gates, for the choice of
the default method.

    python benchmarks/prune_vs_distill.py --train data/labelled_train --heldout data/labelled_heldout \
        --human ../shared/data/bvrnn_mushra --output runs/prune_vs_distill --compare-l0

Writes OUTPUT/results.json, OUTPUT/pcc_vs_params.png and prints a Markdown table (the README's).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from hf_sqa.complexity import macs_per_second, parameter_count  # noqa: E402
from hf_sqa.evaluation import SpecClips, spec_clips  # noqa: E402
from hf_sqa.metrics import point_metrics  # noqa: E402
from hf_sqa.models import ConvTransformerForMOSRegression, student_config  # noqa: E402
from hf_sqa.pruning import PruningSettings, prune  # noqa: E402
from hf_sqa.scoring import load_model, score  # noqa: E402
from hf_sqa.training.recipe import run_recipe  # noqa: E402


def evaluate(model, heldout: SpecClips, human: SpecClips) -> dict:
    model.eval()
    to_teacher = point_metrics(score(heldout.audios, model=model, sampling_rate=16000), heldout.mos)
    to_human = point_metrics(score(human.audios, model=model, sampling_rate=16000), human.mos)
    return {"parameters": parameter_count(model), "gmac_per_s": macs_per_second(model) / 1e9,
            "teacher_pcc": to_teacher["pcc"], "teacher_srcc": to_teacher["srcc"],
            "human_pcc": to_human["pcc"], "human_srcc": to_human["srcc"]}


def train_student(preset: str, train: str, steps: int, batch_size: int, output: Path, seed: int):
    recipe = {
        "output_dir": str(output), "model": {"kind": "student", "preset": preset}, "unlabelled": train,
        "training": {"max_steps": steps, "per_device_train_batch_size": batch_size, "learning_rate": 5e-4,
                     "warmup_steps": max(steps // 10, 1), "lr_scheduler_type": "cosine", "seed": seed,
                     "save_strategy": "no", "logging_steps": max(steps // 5, 1), "use_cpu": True,
                     "disable_tqdm": True},
    }
    run_recipe(recipe)
    return ConvTransformerForMOSRegression.from_pretrained(output / "final")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="data/labelled_train", help="pseudo-labelled SPEC (teacher_mos)")
    parser.add_argument("--heldout", default="data/labelled_heldout", help="pseudo-labelled held-out SPEC")
    parser.add_argument("--human", default="../shared/data/bvrnn_mushra", help="SPEC with human MOS")
    parser.add_argument("--output", default="runs/prune_vs_distill")
    parser.add_argument("--sizes", default="medium,small,xsmall", help="student presets, largest first")
    parser.add_argument("--finetune-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--calib-clips", type=int, default=32)
    parser.add_argument("--compare-l0", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true", help="redo plot and table from OUTPUT/results.json")
    args = parser.parse_args()
    if args.report_only:
        report(json.loads((Path(args.output) / "results.json").read_text()), Path(args.output))
        return
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    # the held-out clips' label is the teacher's score (the pseudo-label column)
    heldout, human = spec_clips(f"{args.heldout}#mos=teacher_mos"), spec_clips(args.human)
    teacher = load_model("distillmos")
    results = {"teacher": evaluate(teacher, heldout, human), "pruned": {}, "distilled": {}, "settings": vars(args)}
    calib = f"{args.train}"

    model, finetuned_steps = teacher, 0
    for index, preset in enumerate(args.sizes.split(",")):
        target = parameter_count(ConvTransformerForMOSRegression(student_config(preset)))
        steps = 2 if index == 0 else 1
        settings = PruningSettings(target_params=target, steps=steps, calib_clips=args.calib_clips,
                                   batch_size=args.batch_size, finetune_steps=args.finetune_steps,
                                   finetune_data=args.train, seed=args.seed)
        start = time.perf_counter()
        model, _ = prune(model, calib, settings, output / f"pruned-{preset}", reference=teacher)
        finetuned_steps += steps * args.finetune_steps
        results["pruned"][preset] = {**evaluate(model, heldout, human), "finetune_steps": finetuned_steps,
                                     "minutes": (time.perf_counter() - start) / 60}
        print(preset, "pruned", results["pruned"][preset], flush=True)
        start = time.perf_counter()
        student = train_student(preset, args.train, finetuned_steps, args.batch_size, output / f"student-{preset}",
                                args.seed)
        results["distilled"][preset] = {**evaluate(student, heldout, human), "train_steps": finetuned_steps,
                                        "minutes": (time.perf_counter() - start) / 60}
        print(preset, "distilled", results["distilled"][preset], flush=True)
        (output / "results.json").write_text(json.dumps(results, indent=1))

    if args.compare_l0:
        preset = args.sizes.split(",")[0]
        target = results["pruned"][preset]["parameters"]
        settings = PruningSettings(target_params=target, steps=2, method="l0", l0_steps=args.finetune_steps,
                                   calib_clips=args.calib_clips, batch_size=args.batch_size,
                                   finetune_steps=args.finetune_steps, finetune_data=args.train, seed=args.seed)
        start = time.perf_counter()
        l0_model, _ = prune(teacher, calib, settings, output / f"pruned-l0-{preset}")
        results["pruned_l0"] = {preset: {**evaluate(l0_model, heldout, human),
                                         "finetune_steps": 2 * args.finetune_steps, "l0_steps": 2 * args.finetune_steps,
                                         "minutes": (time.perf_counter() - start) / 60}}
        print(preset, "pruned l0", results["pruned_l0"][preset], flush=True)
    (output / "results.json").write_text(json.dumps(results, indent=1))

    report(results, output)


def report(results: dict, output: Path) -> None:
    """The plot (OUTPUT/pcc_vs_params.png) and the Markdown table of a results.json."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, title in ((axes[0], "teacher_pcc", "PCC to the teacher (held-out degraded speech)"),
                             (axes[1], "human_pcc", "PCC to human MOS (bvrnn_mushra)")):
        for kind, marker in (("pruned", "o-"), ("distilled", "s--")):
            rows = list(results[kind].values())
            axis.plot([r["parameters"] for r in rows], [r[key] for r in rows], marker, label=kind)
        if "pruned_l0" in results:
            rows = list(results["pruned_l0"].values())
            axis.plot([r["parameters"] for r in rows], [r[key] for r in rows], "^", label="pruned (L0)")
        axis.plot([results["teacher"]["parameters"]], [results["teacher"][key]], "k*", markersize=12,
                  label="unpruned (Distill-MOS)")
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("parameters")
        axis.set_title(title, fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "pcc_vs_params.png", dpi=120)

    print("| model | params | GMAC/s | PCC / SRCC to teacher | PCC / SRCC to humans | steps |")
    print("|---|---:|---:|---|---|---:|")
    t = results["teacher"]
    print(f"| Distill-MOS (unpruned) | {t['parameters'] / 1e6:.3f} M | {t['gmac_per_s']:.2f} | "
          f"{t['teacher_pcc']:.3f} / {t['teacher_srcc']:.3f} | {t['human_pcc']:.3f} / {t['human_srcc']:.3f} | |")
    for kind, label in (("pruned", "pruned (Taylor)"), ("pruned_l0", "pruned (L0)"), ("distilled", "distilled")):
        for preset, r in results.get(kind, {}).items():
            steps = r.get("finetune_steps", r.get("train_steps", ""))
            if kind == "pruned_l0":  # two steps, each with gate training and fine-tuning
                both = 2 * results["settings"]["finetune_steps"]
                steps = f"{r.get('finetune_steps', both)} + {r.get('l0_steps', both)} gate"
            print(f"| {label}, {preset} size | {r['parameters'] / 1e6:.3f} M | {r['gmac_per_s']:.2f} | "
                  f"{r['teacher_pcc']:.3f} / {r['teacher_srcc']:.3f} | {r['human_pcc']:.3f} / "
                  f"{r['human_srcc']:.3f} | {steps} |")


if __name__ == "__main__":
    main()
