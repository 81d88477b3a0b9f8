"""How the fast student's parameters are spent: other conv widths at the same parameter count.

`make student` prunes the teacher to the `fast` preset's conv widths (32, 32, 64, 128, 128, 128) and then
prunes the head's attention heads and feed-forward units until the whole model has the preset's parameter
count (0.96 M). Narrower convs leave more of that count to the head (and cost fewer MACs); wider ones less.
For each `--widths` variant this runs `make student`'s own stages (`StudentPipeline(conv_channels=...)`:
prune, then the `pruned` method's run, and the refinement and voice stage when asked) under
OUTPUT/<widths>, resumable, on the data of `make student` (WORK), and compares every stage's model with the
same stage of `make student`'s runs (RUNS): parameters, how they split between conv stack and head, GMAC per
second of audio (shipped window hop), x real time on 10 s clips (measured in this run, fp32), training
examples/s (`make student`'s step: batch 16, bf16 conv stack; 10 steps after one of warm-up), and PCC /
SRCC (95 % bootstrap CIs) with the teacher on every held-out clip of both catalogues (scored with the
teacher's windows, as in training) with the paired difference from RUNS' model of that stage:

    python benchmarks/conv_widths.py --widths 32,32,64,96,96,96 --stages prune train

One run, 2 threads. Each variant costs what its stages cost in `make student` (on 2 idle cores: pruning
7-10 min, the `pruned` run 25 min, refinement 30 min, voice stage 17 min; the two variants above, whose
training steps take about as long as the preset's, took 41 and 50 min for pruning and run on a day the
machine ran ~1.6x slower); the evaluation ~1.5 min per model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hf_sqa.complexity import macs_per_second, parameter_count, realtime_factor
from hf_sqa.metrics import compare_with_first
from hf_sqa.scoring import load_model, score
from hf_sqa.training.packed import PackedClips
from hf_sqa.training.student_pipeline import StudentPipeline

from generalisation_gap import made_run
from training_speed import batches_after, step_rate
from voice_levers import agreement_line

SAMPLING_RATE = 16000
# stage -> the model it leaves (under a pipeline's RUNS)
STAGE_MODELS = {"train": "pruned/final", "refine": "refined/final", "voice": "voice/final"}


def describe(path: Path, shipped_hop: int | None, train: Path) -> str:
    """Parameters (conv stack / head), GMAC per second of audio at the shipped hop, x real time on 10 s,
    training examples/s on `train`."""
    training = step_rate(load_model(str(path)), batches_after(train, 16), steps=10, batch_size=16, bf16=True)
    model = load_model(str(path)).eval()
    if shipped_hop:
        model.config.window_max_hop = shipped_hop
    conv = parameter_count(model.frontend)
    heads = sum(model.config.head_layer_num_heads or [])
    ffn = sum(model.config.head_layer_ffn_sizes or [])
    return (f"{parameter_count(model) / 1e6:.3f} M params (conv {conv / 1e6:.3f} M, head {heads} attention "
            f"heads, {ffn} FFN units), {macs_per_second(model) / 1e9:.2f} GMAC/s, "
            f"{realtime_factor(model):.0f}x real time on 10 s clips, {training['examples_per_s']:.1f} training "
            f"examples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", required=True, help="conv widths per variant, e.g. 32,32,64,96,96,96")
    parser.add_argument("--stages", nargs="+", default=["prune", "train"], choices=["prune", "train", "refine", "voice"],
                        help="make student's stages to run for each variant (each needs the ones before it)")
    parser.add_argument("--work", default="data/student", help="make student's WORK folder (its data stages done)")
    parser.add_argument("--runs", default="runs/student", help="make student's RUNS folder: the models compared with")
    parser.add_argument("--output", default="runs/conv-widths", help="the variants' RUNS folders")
    args = parser.parse_args()
    torch.set_num_threads(2)

    base = StudentPipeline(work=args.work, runs=args.runs)
    variants = {}
    for text in args.widths:
        widths = tuple(int(w) for w in text.split(","))
        pipeline = StudentPipeline(work=args.work, runs=str(Path(args.output) / text.replace(",", "-")),
                                   methods=("pruned",), conv_channels=widths)
        pipeline.run(args.stages)
        variants[text] = pipeline

    held = PackedClips(base.packed("heldout"))
    audios = [held.clip(k) for k in range(len(held))]
    print(f"all {len(held)} held-out clips (both catalogues), with the teacher; PCC / SRCC (95 % CI) and the paired "
          f"difference from {args.runs}'s model of the same stage")
    for stage in (s for s in ("train", "refine", "voice") if s in args.stages):
        reference = made_run(args.runs, STAGE_MODELS[stage], "its stages")
        models = {f"{args.runs} ({','.join(map(str, load_model(str(reference)).config.conv_channels))})": reference}
        models.update({f"conv {text}": Path(p.runs) / STAGE_MODELS[stage] for text, p in variants.items()})
        print(f"stage {stage} ({STAGE_MODELS[stage]})")
        scores = {}
        for name, path in models.items():
            print(f"  {name}: {describe(path, base.ship_window_max_hop, base.packed('train', 'refine')[0])}")
            scores[name] = np.asarray(score(audios, model=load_model(str(path)).eval(), sampling_rate=SAMPLING_RATE,
                                            batch_size=8))
        for name, (metrics, differences) in compare_with_first(scores, held.teacher_mos).items():
            print(f"  {name}\n   {agreement_line(metrics, differences)}", flush=True)


if __name__ == "__main__":
    main()
