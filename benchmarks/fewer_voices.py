"""Fewer training voices at the same amount of data: what the student's voices are worth on held-out speakers.

Four recorded Asterisk voices (en, es, fr, it: 1,571 of the 2,172 clean training clips) carry most of
`make student`'s training speech; the held-out speakers are a fifth Asterisk voice (Russian) and ten
LibriSpeech ones. This drops some of those voices (`--drop`, source folders) and gives the others more
degradation draws instead, so that the data stays the same size: the default catalogue's training set
(4 draws per clip, `WORK/packed/train`) and the 4 further draws of "Twice the draws from the start"
(`WORK/packed/train-x`, seed 21: made here when missing) pooled, the dropped sources' clips left out, and
as many clips as the training set has drawn from the rest (seeded). On it, `make student`'s `pruned` run
(same pruned start, steps, batch, schedule and seed) into RUNS-OUTPUT/<dropped>, resumable; then PCC / SRCC
(95 % CIs) with the teacher on all held-out clips of both catalogues against `make student`'s own `pruned`
run (RUNS/pruned/final), and the paired difference, per held-out source too:

    python benchmarks/fewer_voices.py --drop asterisk-es asterisk-it

One run, 2 threads; about 40 min on 2 idle cores (the run's 1,500 steps), 2 min once it exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hf_sqa.metrics import compare_with_first, point_metrics
from hf_sqa.scoring import load_model, score
from hf_sqa.training.packed import PackedClips, pack_subset
from hf_sqa.training.student_pipeline import DegradationSet, StudentPipeline

from generalisation_gap import made_run, pack_sets
from heldout_by_source import clip_sources
from voice_levers import agreement_line

SAMPLING_RATE = 16000
MORE_DRAWS = DegradationSet("train-x", "train", None, 4, 21, "x")  # as "Twice the draws from the start"


def sources_of(folders: list[Path], clips: PackedClips) -> np.ndarray:
    """The clean source folder (e.g. asterisk-en) of every clip of `clips` = PackedClips(folders), in its order."""
    sources = {}
    for folder in folders:
        sources.update(clip_sources(folder))
    return np.array([sources[i] for i in clips.ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drop", nargs="+", required=True, help="training source folders to leave out")
    parser.add_argument("--work", default="data/student", help="make student's WORK folder")
    parser.add_argument("--runs", default="runs/student", help="make student's RUNS folder")
    parser.add_argument("--output", default="runs/fewer-voices", help="the variants' runs")
    parser.add_argument("--seed", type=int, default=0, help="which clips of the other sources are kept")
    args = parser.parse_args()
    torch.set_num_threads(2)

    pipeline = StudentPipeline(work=args.work, runs=args.runs)
    control = made_run(args.runs, "pruned/final", "its `pruned` run")
    work = Path(args.work)
    folders = [pipeline.path("packed", "train")] + pack_sets([MORE_DRAWS], work, work / "clean")
    pooled = PackedClips(folders)
    source_of = sources_of(folders, pooled)
    unknown = sorted(set(args.drop) - set(source_of))
    if unknown:
        raise ValueError(f"--drop {unknown}: no such training source; there are {sorted(set(source_of))}")
    size = int((pooled.part_of == 0).sum())  # the default set's clips
    kept = np.flatnonzero(~np.isin(source_of, args.drop))
    if len(kept) < size:
        raise ValueError(f"dropping {args.drop} leaves {len(kept)} clips, fewer than the {size} to train on")
    rows = np.sort(np.random.default_rng(args.seed).choice(kept, size, replace=False))
    name = "without-" + "-".join(sorted(args.drop))
    subset = pack_subset(folders, rows, work / "packed" / f"train-{name}")
    counts = ", ".join(f"{s} {int((source_of[rows] == s).sum())}" for s in sorted(set(source_of)))
    print(f"{name}: {size} clips ({PackedClips(subset).seconds() / 3600:.1f} h) from the 8 draws of the other "
          f"sources; clips per source: {counts}")
    variant = pipeline.train_method("pruned", pipeline.final_steps, Path(args.output) / name, train=subset)

    held = PackedClips(pipeline.packed("heldout"))
    held_source = sources_of(pipeline.packed("heldout"), held)
    audios = [held.clip(k) for k in range(len(held))]
    models = {"`pruned` run as made": control, f"`pruned` run {name}": variant}
    scores = {label: np.asarray(score(audios, model=load_model(path).eval(), sampling_rate=SAMPLING_RATE,
                                      batch_size=8)) for label, path in models.items()}
    print(f"all {len(held)} held-out clips (both catalogues), with the teacher; PCC / SRCC (95 % CI)")
    for label, (metrics, differences) in compare_with_first(scores, held.teacher_mos).items():
        print(f"  {label:<40}{agreement_line(metrics, differences)}")
        print("    by source: " + "  ".join(
            f"{s} {point_metrics(scores[label][pick], held.teacher_mos[pick])['pcc']:.3f} (n={int(pick.sum())})"
            for s in sorted(set(held_source)) if (pick := held_source == s).any()))


if __name__ == "__main__":
    main()
