"""Training throughput before and after the fast-student data path, in one run (2 threads).

before  the recipe path of issue #4 (training.recipe): pseudo-labelled parquet shards streamed through
        `datasets` (audio as a list of floats per example), MOSCollator crops / zero-pads every clip to
        7.68 s, ConvTransformer student that cuts and scores padded windows, fp32
after   training.packed: int16 audio memory-mapped, whole clips (no padding computed), the FastMOS
        student (front end once per clip), bf16 autocast for the conv stack (fp32 also shown)

For each: the data path alone (examples/s) and whole training steps (examples/s, seconds of real audio
per second, and where a step's time goes: data, forward, backward + optimizer).

    python benchmarks/training_speed.py --shards data/student/labelled/train --packed data/student/packed/train
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from hf_sqa.models import ConvTransformerForMOSRegression, FastMOSForMOSRegression, student_config
from hf_sqa.training.collator import MOSCollator
from hf_sqa.training.fast_student import fast_config
from hf_sqa.training.packed import PackedClips, collate_clips
from hf_sqa.training.recipe import build_train_stream


def batches_before(shards: str, batch_size: int):
    stream = build_train_stream({"unlabelled": shards})
    collate = MOSCollator(window_length=122880, seed=0)
    rows = iter(stream)
    while True:
        examples = list(itertools.islice(rows, batch_size))
        yield collate(examples), sum(len(e["audio"]) for e in examples) / 16000


def batches_after(packed: str, batch_size: int):
    data = PackedClips(packed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    for i in range(0, len(order), batch_size):
        examples = [data[k] for k in order[i : i + batch_size]]
        yield collate_clips(examples), sum(len(e["audio"]) for e in examples) / 16000


def data_rate(batches, count: int, batch_size: int) -> float:
    next(batches)
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    return count * batch_size / (time.perf_counter() - start)


def step_rate(model, batches, steps: int, batch_size: int, bf16: bool) -> dict:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    times = {"data": 0.0, "forward": 0.0, "backward": 0.0}
    audio = 0.0
    for step in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        batch, seconds = next(batches)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"])
        loss = (out.mos.float() - batch["teacher_mos"]).pow(2).mean()
        t2 = time.perf_counter()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        t3 = time.perf_counter()
        if step:
            times["data"] += t1 - t0
            times["forward"] += t2 - t1
            times["backward"] += t3 - t2
            audio += seconds
    total = sum(times.values())
    return {"examples_per_s": steps * batch_size / total, "audio_s_per_s": audio / total,
            **{f"{k}_share": v / total for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, help="pseudo-labelled shards (the recipe path's input)")
    parser.add_argument("--packed", required=True, help="the same data packed (training.packed)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    bs = args.batch_size
    print(f"data path alone: before {data_rate(batches_before(args.shards, bs), 10, bs):.0f} examples/s, "
          f"after {data_rate(batches_after(args.packed, bs), 10, bs):.0f} examples/s")
    runs = {
        "before (recipe path, 7.68 s padded, fp32)": (
            ConvTransformerForMOSRegression(student_config("fast")), batches_before(args.shards, bs), False),
        "after, fp32": (FastMOSForMOSRegression(fast_config("fast")), batches_after(args.packed, bs), False),
        "after, bf16 conv stack": (FastMOSForMOSRegression(fast_config("fast")), batches_after(args.packed, bs), True),
    }
    for name, (model, batches, bf16) in runs.items():
        r = step_rate(model, batches, args.steps, bs, bf16)
        print(f"{name:<44} {r['examples_per_s']:6.2f} examples/s {r['audio_s_per_s']:6.1f} audio-s/s   "
              f"data {r['data_share']:.0%} forward {r['forward_share']:.0%} backward+step {r['backward_share']:.0%}")


if __name__ == "__main__":
    main()
