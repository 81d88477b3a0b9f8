"""The fast student's training step with its head run per exact window length (TRAINING_BUCKET_FRAMES 1,
what the CPU uses) and per bucket of 64 frames (padded and masked, what a GPU uses), on the CPU, in one run: seconds per step (forward +
backward, bf16 autocast as in training, frozen BatchNorm) and head calls per step, on the same batches of
packed training clips. 2 threads.

    python benchmarks/head_buckets.py --packed data/student/packed/train --model checkpoints/hf-sqa-fast
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import hf_sqa.models.modeling_fast_mos as fast_mos
from hf_sqa.training.fast_student import fast_student_from
from hf_sqa.training.packed import PackedClips, collate_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packed", nargs="+", required=True)
    parser.add_argument("--model", default="checkpoints/hf-sqa-fast")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per setting (after one warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = PackedClips(args.packed)
    model = fast_student_from(args.model).eval()  # frozen BatchNorm, as the refinement trains
    model.config.window_max_hop = 16000  # the teacher's windows, as in training
    calls = []
    model.head.register_forward_hook(lambda *_: calls.append(1))
    rng = np.random.default_rng(0)
    print(f"{'batch':>5} {'bucket':>6} {'s / step':>9} {'head calls / step':>18} {'speed-up':>9}")
    for batch_size in args.batch_sizes:
        batches = [collate_clips([data[int(k)] for k in rng.permutation(len(data))[:batch_size]])
                   for _ in range(args.steps + 1)]
        seconds = {}
        for bucket in (1, 64):
            fast_mos.TRAINING_BUCKET_FRAMES["cpu"] = bucket
            timings = []
            for batch in batches:
                calls.clear()
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"])
                out.mos.sum().backward()
                timings.append(time.perf_counter() - start)
                model.zero_grad()
            seconds[bucket] = float(np.mean(timings[1:]))
            print(f"{batch_size:>5} {bucket:>6} {seconds[bucket]:>9.3f} {len(calls):>18} "
                  f"{seconds[1] / seconds[bucket]:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
