"""Short clips and the teacher's zero padding: fast students scored with and without `pad_short_clips`,
PCC with the teacher overall and per clip length, on held-out packed clips (one run, 2 threads, fp32).

    python benchmarks/fast_padding.py --models distillmos runs/student/pruned/final \
        --heldout data/student/packed/heldout --clips 400

A model that is not a fast student (the Distill-MOS import) is run as one with the same weights.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hf_sqa.metrics import point_metrics
from hf_sqa.scoring import score
from hf_sqa.training.fast_student import fast_student_from, spread_clip_rows
from hf_sqa.training.packed import PackedClips
from student_table import LENGTH_BANDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--heldout", nargs="+", required=True, help="packed held-out folder(s) with teacher labels")
    parser.add_argument("--clips", type=int, default=400, help="clips spread over the set(s)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    held = PackedClips(args.heldout)
    rows = spread_clip_rows(held, args.clips)
    audios = [held.clip(k) for k in rows]
    seconds = np.array([len(a) / 16000 for a in audios])
    teacher = held.teacher_mos[rows]
    bands = [(low, high, (seconds >= low) & (seconds < high)) for low, high in LENGTH_BANDS]
    print(f"{'model':<36} {'padding':<8} {'PCC':>6} " + " ".join(
        f"{f'{low:g}-{high:g} s (n={int(pick.sum())})':>20}" for low, high, pick in bands))
    for name in args.models:
        model = fast_student_from(name).eval()
        for pad in (False, True):
            model.config.pad_short_clips = pad
            ours = np.asarray(score(audios, model=model, sampling_rate=16000, batch_size=8))
            print(f"{name:<36} {'on' if pad else 'off':<8} {point_metrics(ours, teacher)['pcc']:>6.4f} " + " ".join(
                f"{point_metrics(ours[pick], teacher[pick])['pcc']:>20.4f}" for _, _, pick in bands), flush=True)


if __name__ == "__main__":
    main()
