"""Agreement with the teacher on the held-out speakers, split by source (LibriSpeech test-other speakers vs
the Russian Asterisk speaker, an unseen language) and by clip length (under / over 3 s), or with `--by
degradation` by the degradation families in a clip's chain ("none": the clean clip), with each part's mean
error (student - teacher) and its share of the squared error left after a linear fit (what PCC counts): which
part of the held-out set a student fails on.
All clips of each packed set, 95 % bootstrap CIs; one run, 2 threads, fp32; students score with the
teacher's windows (hop <= 1 s), as they are trained.

    python benchmarks/heldout_by_source.py --models checkpoints/hf-sqa-fast \
        --heldout data/student/packed/heldout data/student/packed/heldout-mild [--by degradation]

A clip's source comes from its degraded shard (`WORK/degraded/<set>`, column clean_id), found next to the
packed set (`WORK/packed/<set>`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from hf_sqa.metrics import bootstrap_ci, point_metrics
from hf_sqa.scoring import score
from hf_sqa.training.fast_student import fast_student_from
from hf_sqa.training.packed import PackedClips


def degraded_column(packed: Path, column: str) -> dict[str, str]:
    """Packed clip id -> `column` of its degraded shard row (clean_id: the clean clip it was degraded from,
    "<split>/<source folder>/<clip>"; degradations: its chain as JSON)."""
    degraded = packed.parent.parent / "degraded" / packed.name
    values = {}
    for shard in sorted(degraded.glob("*.parquet")):
        table = pq.read_table(shard, columns=["id", column]).to_pydict()
        values.update(zip(table["id"], table[column]))
    if not values:
        raise FileNotFoundError(f"{degraded}: no degraded shards with {column} for {packed}")
    return values


def clean_ids(packed: Path) -> dict[str, str]:
    """Packed clip id -> the clean clip it was degraded from ("<split>/<source folder>/<clip>")."""
    return degraded_column(packed, "clean_id")


def clip_families(packed: Path) -> dict[str, set[str]]:
    """Packed clip id -> the degradation families of its chain ({"none"} for a clean clip)."""
    return {clip: {step["family"] for step in json.loads(chain)} or {"none"}
            for clip, chain in degraded_column(packed, "degradations").items()}


def clip_sources(packed: Path) -> dict[str, str]:
    """Packed clip id -> clean source folder (e.g. librispeech-test-other, asterisk-ru)."""
    return {clip: Path(clean).parent.name for clip, clean in clean_ids(packed).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--heldout", nargs="+", required=True, help="packed held-out folder(s)")
    parser.add_argument("--by", choices=["source", "degradation"], default="source")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"{'model':<34} {'set':<14} {'part (source, length / family)':<32} {'n':>5} {'PCC (95 % CI)':>22} {'SRCC (95 % CI)':>22} "
          f"{'RMSE':>6} {'error':>6} {'SSE share':>9}")
    models = {}
    for name in args.models:
        models[name] = fast_student_from(name).eval()
        models[name].config.window_max_hop = 16000  # the teacher's windows, as in training and eval_history
    for folder in map(Path, args.heldout):
        held = PackedClips(folder)
        audios = [held.clip(k) for k in range(len(held))]
        seconds = np.array([len(a) / 16000 for a in audios])
        everything = ("all", np.ones(len(held), bool))
        if args.by == "degradation":  # a clip counts in every family of its chain
            chains = clip_families(folder)
            families = [chains[str(i)] for i in held.ids]
            parts = [(family, np.array([family in chain for chain in families]))
                     for family in sorted(set().union(*families))] + [everything]
        else:
            sources = clip_sources(folder)
            source = np.array([sources[str(i)] for i in held.ids])
            parts = [(src, source == src) for src in sorted(set(source))] + [everything]
            # short clips are the fast student's weak band (the teacher scores them zero-padded to a window)
            parts = [(f"{part} {label}", pick & band) for part, pick in parts
                     for label, band in (("", True), ("< 3 s", seconds < 3), (">= 3 s", seconds >= 3))]
        for name, model in models.items():
            ours = np.asarray(score(audios, model=model, sampling_rate=16000, batch_size=8))
            # squared error left after the best line from student to teacher over the whole set: its parts'
            # shares say where the set's PCC is lost
            residual = held.teacher_mos - np.polyval(np.polyfit(ours, held.teacher_mos, 1), ours)
            for part, pick in parts:
                p, t = ours[pick], held.teacher_mos[pick]
                m = point_metrics(p, t)
                cis = {s: bootstrap_ci(p, t, s) for s in ("pcc", "srcc")}
                print(f"{name:<34} {folder.name:<14} {part:<32} {m['n']:>5} "
                      + " ".join(f"{m[s]:>7.3f} ({cis[s][0]:.3f}, {cis[s][1]:.3f})" for s in ("pcc", "srcc"))
                      + f" {m['rmse']:>6.3f} {np.mean(p - t):>+6.3f} {np.sum(residual[pick] ** 2) / np.sum(residual ** 2):>9.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
