"""What BatchNorm recalibration alone does to a model: its statistics re-estimated on calibration clips as
`hf-sqa prune` does after each step (`recalibrate_batchnorm`), nothing pruned, scores on held-out clips
compared with the model's own (one run, 2 threads, fp32).

    python benchmarks/batchnorm_recalibration.py --model distillmos --calib data/student/packed/train \
        --heldout data/student/packed/heldout --calib-clips 64 --clips 300
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from hf_sqa.metrics import point_metrics
from hf_sqa.pruning.schedule import recalibrate_batchnorm
from hf_sqa.scoring import load_model, score
from hf_sqa.training.fast_student import spread_clip_rows
from hf_sqa.training.packed import PackedClips, collate_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="distillmos")
    parser.add_argument("--calib", nargs="+", required=True, help="packed folder(s) the calibration clips come from")
    parser.add_argument("--heldout", nargs="+", required=True, help="packed held-out folder(s)")
    parser.add_argument("--calib-clips", type=int, default=64, help="hf-sqa prune's default")
    parser.add_argument("--clips", type=int, default=300, help="held-out clips spread over the set(s)")
    parser.add_argument("--batch-size", type=int, default=8, help="hf-sqa prune's default")
    args = parser.parse_args()
    torch.set_num_threads(2)
    calib, held = PackedClips(args.calib), PackedClips(args.heldout)
    rows = spread_clip_rows(held, args.clips)
    audios = [held.clip(k) for k in rows]
    model = load_model(args.model).eval()
    before = np.asarray(score(audios, model=model, sampling_rate=16000, batch_size=8))
    pick = np.random.default_rng(0).permutation(len(calib))[: args.calib_clips]
    recalibrate_batchnorm(model, [collate_clips([calib[int(k)] for k in pick[i : i + args.batch_size]])
                                  for i in range(0, len(pick), args.batch_size)])
    after = np.asarray(score(audios, model=model.eval(), sampling_rate=16000, batch_size=8))
    print(json.dumps({"model": args.model, "calib_clips": len(pick), "heldout_clips": len(rows),
                      "recalibrated_vs_original": point_metrics(after, before),
                      "mean_shift": float((after - before).mean()),
                      "std_before": float(before.std()), "std_after": float(after.std())}, indent=1))


if __name__ == "__main__":
    main()
