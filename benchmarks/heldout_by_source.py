"""Agreement with the teacher on the held-out speakers, split by source (LibriSpeech test-other speakers vs
the Russian Asterisk speaker, an unseen language) and by clip length (under / over 3 s): which part of the
held-out set a student fails on.
All clips of each packed set, 95 % bootstrap CIs; one run, 2 threads, fp32; students score with the
teacher's windows (hop <= 1 s), as they are trained.

    python benchmarks/heldout_by_source.py --models checkpoints/hf-sqa-fast \
        --heldout data/student/packed/heldout data/student/packed/heldout-mild

A clip's source comes from its degraded shard (`WORK/degraded/<set>`, column clean_id), found next to the
packed set (`WORK/packed/<set>`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from hf_sqa.metrics import bootstrap_ci, point_metrics
from hf_sqa.scoring import score
from hf_sqa.training.fast_student import fast_student_from
from hf_sqa.training.packed import PackedClips


def clean_ids(packed: Path) -> dict[str, str]:
    """Packed clip id -> the clean clip it was degraded from ("<split>/<source folder>/<clip>")."""
    degraded = packed.parent.parent / "degraded" / packed.name
    ids = {}
    for shard in sorted(degraded.glob("*.parquet")):
        table = pq.read_table(shard, columns=["id", "clean_id"]).to_pydict()
        ids.update(zip(table["id"], table["clean_id"]))
    if not ids:
        raise FileNotFoundError(f"{degraded}: no degraded shards with clean_id for {packed}")
    return ids


def clip_sources(packed: Path) -> dict[str, str]:
    """Packed clip id -> clean source folder (e.g. librispeech-test-other, asterisk-ru)."""
    return {clip: Path(clean).parent.name for clip, clean in clean_ids(packed).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--heldout", nargs="+", required=True, help="packed held-out folder(s)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"{'model':<34} {'set':<14} {'source, length':<30} {'n':>5} {'PCC (95 % CI)':>22} {'SRCC (95 % CI)':>22} {'RMSE':>6}")
    for folder in map(Path, args.heldout):
        held = PackedClips(folder)
        sources = clip_sources(folder)
        source = np.array([sources[str(i)] for i in held.ids])
        audios = [held.clip(k) for k in range(len(held))]
        seconds = np.array([len(a) / 16000 for a in audios])
        parts = [(src, source == src) for src in sorted(set(source))] + [("all", np.ones(len(source), bool))]
        # short clips are the fast student's weak band (the teacher scores them zero-padded to a window)
        parts = [(f"{part} {label}", pick & band) for part, pick in parts
                 for label, band in (("", True), ("< 3 s", seconds < 3), (">= 3 s", seconds >= 3))]
        for name in args.models:
            model = fast_student_from(name).eval()
            model.config.window_max_hop = 16000  # the teacher's windows, as in training and eval_history
            ours = np.asarray(score(audios, model=model, sampling_rate=16000, batch_size=8))
            for part, pick in parts:
                p, t = ours[pick], held.teacher_mos[pick]
                m = point_metrics(p, t)
                cis = {s: bootstrap_ci(p, t, s) for s in ("pcc", "srcc")}
                print(f"{name:<34} {folder.name:<14} {part:<30} {m['n']:>5} "
                      + " ".join(f"{m[s]:>7.3f} ({cis[s][0]:.3f}, {cis[s][1]:.3f})" for s in ("pcc", "srcc"))
                      + f" {m['rmse']:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
