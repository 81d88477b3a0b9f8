"""Where a student loses its teacher: on the clips it trained on, on new degradations of the speakers it
trained on, or on speakers it never heard.

Three tiers of teacher-labelled degraded speech, each with the default and the mild catalogue:

    seen       the training sets themselves (clips trained on, several epochs)
    new draws  the training speakers' clean clips degraded once more with other seeds (never trained on):
               written, labelled by the teacher and packed here under WORK/new-draws on the first run
    held out   the held-out speakers' sets (the floors' clips)

A student that agrees with the teacher on its own clips but not on new draws has memorised clips; one that
holds on new draws but not on held-out speakers has learnt its speakers, not quality. Per tier: PCC (95 %
bootstrap CI) / SRCC per set, pooled, per source and per clip length (the teacher zero-pads clips shorter
than its 7.68 s window: is a short clip hard in itself, or only in a voice the student never heard?), and the
mean error per band of the teacher's score (a student that shrinks towards the middle of the scale
under-scores clean speech). With --human, a fourth tier out of the training domain: a human-rated SPEC
(bvrnn_mushra: neural codecs, 2-3 s clips) scored by the teacher here, each model's PCC with those scores and
with the human MOS (95 % CIs).

    python benchmarks/generalisation_gap.py --models checkpoints/hf-sqa-fast runs/distillmos-fast \
        --human ../shared/data/bvrnn_mushra

Clips spread over each packed set (`spread_clip_rows`); one run, 2 threads, fp32; the models score with their
own windowing rule (as `hf-sqa score` does).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch

from hf_sqa.evaluation import spec_clips
from hf_sqa.metrics import point_metrics
from hf_sqa.scoring import load_model, score
from hf_sqa.training.fast_student import spread_clip_rows
from hf_sqa.training.packed import PackedClips
from hf_sqa.training.student_pipeline import DegradationSet, StudentPipeline

from heldout_by_source import clip_sources
from student_table import short_labels
from teacher_jitter import agreement

# the new draws: one degraded version of every training clip per catalogue, with seeds no pipeline set uses
NEW_DRAW_SETS = [DegradationSet("train-new", "train", None, 1, 101, "new"),
                 DegradationSet("train-mild-new", "train", "mild", 1, 103, "mildnew")]
TEACHER_BANDS = [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)]
LENGTH_BANDS = [(0.0, 3.0), (3.0, 7.68), (7.68, np.inf)]  # seconds: the window's length splits padded clips


@dataclass
class SetsOnly(StudentPipeline):
    """`make student`'s degrade, label and pack stages for `sets` only, in their own WORK folder."""

    sets: list[DegradationSet] = field(default_factory=list)

    def degradation_sets(self) -> list[DegradationSet]:
        return self.sets


def made_run(runs: str | Path, run: str, compared: str) -> Path:
    """RUNS/<run> (e.g. "voice/final") of `make student`, which a benchmark compares with (`compared` says
    with what, for the error when it is missing)."""
    path = Path(runs) / run
    if not (path / "training_recipe.yaml").is_file():
        raise FileNotFoundError(f"{path}: run `make student` first (this compares with {compared})")
    return path


def pack_sets(sets: list[DegradationSet], work: Path, clean: Path) -> list[Path]:
    """`sets` of the clean speech in CLEAN (train/, heldout/), degraded, labelled by the teacher and packed
    under WORK/{degraded,labelled,packed}/<set> by the pipeline's own stages (a killed run resumes);
    returns the packed folders."""
    stages = SetsOnly(work=str(work), clean=str(clean), sets=list(sets))
    stages.run_degrade()
    stages.run_label()
    stages.run_pack()
    return [stages.path("packed", dset.name) for dset in sets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--work", default="data/student", help="make student's WORK folder")
    parser.add_argument("--seen", nargs="+", default=["train", "train-mild"], help="training sets (WORK/packed/<set>)")
    parser.add_argument("--heldout", nargs="+", default=["heldout", "heldout-mild"], help="held-out sets")
    parser.add_argument("--clips", type=int, default=600, help="clips per set, spread over it")
    parser.add_argument("--human", help="a SPEC with human MOS, scored by the teacher here (out-of-domain tier)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    datasets.disable_progress_bars()  # writing the new draws: one line per shard otherwise

    work = Path(args.work)
    fresh = pack_sets(NEW_DRAW_SETS, work / "new-draws", work / "clean")
    tiers = {"seen": [work / "packed" / name for name in args.seen], "new draws": fresh,
             "held out": [work / "packed" / name for name in args.heldout]}
    labels = short_labels(args.models)
    models = {name: load_model(name).eval() for name in args.models}
    print(f"PCC (95 % CI) / SRCC with the teacher; {args.clips} clips per set, spread over it")
    for tier, folders in tiers.items():
        print(f"\n{tier}:")
        pooled_scores = {name: [] for name in models}
        pooled_teacher, pooled_sources, pooled_seconds = [], [], []
        for folder in folders:
            clips = PackedClips(folder)
            rows = spread_clip_rows(clips, args.clips)
            audios = [clips.clip(k) for k in rows]
            teacher = clips.teacher_mos[rows]
            source_of = clip_sources(folder)  # by id: packing leaves out clips the teacher could not score
            sources = np.array([source_of[str(i)] for i in clips.ids[rows]])
            pooled_teacher.append(teacher)
            pooled_sources.append(sources)
            pooled_seconds.append((clips.ends[rows] - clips.starts[rows]) / 16000)
            for name, model in models.items():
                ours = np.asarray(score(audios, model=model, sampling_rate=16000, batch_size=8))
                pooled_scores[name].append(ours)
                print(f"  {folder.name:<16} n={len(rows):>4}  {labels[name]:<22} {agreement(ours, teacher)}")
        teacher = np.concatenate(pooled_teacher)
        sources = np.concatenate(pooled_sources)
        seconds = np.concatenate(pooled_seconds)
        for name in models:
            ours = np.concatenate(pooled_scores[name])
            print(f"  {'pooled':<16} n={len(teacher):>4}  {labels[name]:<22} {agreement(ours, teacher)}")
            per_source = "  ".join(f"{s} {point_metrics(ours[sources == s], teacher[sources == s])['pcc']:.3f}"
                                   for s in sorted(set(sources)) if (sources == s).sum() >= 3)
            print(f"    by source: {per_source}")
            by_length = "  ".join(
                f"{low:g}-{high:g} s: {point_metrics(ours[pick], teacher[pick])['pcc']:.3f} (n={int(pick.sum())})"
                for low, high in LENGTH_BANDS if (pick := (seconds >= low) & (seconds < high)).sum() >= 3)
            print(f"    PCC by clip length: {by_length}")
            errors = "  ".join(
                f"{low:g}-{high:g}: {np.mean(ours[pick] - teacher[pick]):+.3f} (n={int(pick.sum())})"
                for low, high in TEACHER_BANDS if (pick := (teacher >= low) & (teacher < high)).sum())
            print(f"    mean error by the teacher's score: {errors}")
    if args.human:
        human_rated_tier(args.human, models, labels)


def human_rated_tier(spec: str, models: dict, labels: dict) -> None:
    """Each model's PCC with the teacher's scores (computed here) and with the human MOS on a rated SPEC."""
    rated = spec_clips(spec)
    teacher = np.asarray(score(rated.audios, model="distillmos", sampling_rate=16000, batch_size=8))
    print(f"\nhuman-rated, out of domain ({rated.corpus}, {len(rated.audios)} clips; the teacher's PCC with the "
          f"human MOS: {agreement(teacher, rated.mos)}):")
    for name, model in models.items():
        ours = np.asarray(score(rated.audios, model=model, sampling_rate=16000, batch_size=8))
        print(f"  {labels[name]:<22} with the teacher {agreement(ours, teacher)}   "
              f"with human MOS {agreement(ours, rated.mos)}")


if __name__ == "__main__":
    main()
