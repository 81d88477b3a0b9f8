"""Data generation speed on one core: the degradation pipeline and every transform, and pseudo-labelling.

Prints throughput as multiples of real time (seconds of audio processed per wall-clock second) with one
thread (torch, BLAS and OpenMP pools limited to 1): each shipped catalogue's random chains and each of its
options on its own, and pseudo-labelling (decode + Distill-MOS import forward) of the same clips.

    python benchmarks/data_speed.py [--clips 40] [--seconds 4] [--catalogues default mild]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from hf_sqa.data.degrade import CATALOGUE_NAMES, DegradationPipeline
from hf_sqa.data.pseudo_label import pseudo_label
from hf_sqa.data.synth import speech_like
from hf_sqa.testing import write_clip

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--catalogues", nargs="+", default=list(CATALOGUE_NAMES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips = [speech_like(args.seconds, seed=i) for i in range(args.clips)]
    audio_seconds = args.clips * args.seconds

    with threadpool_limits(limits=1):
        print(f"{args.clips} clips x {args.seconds:g} s, 1 thread")
        for catalogue in args.catalogues:
            pipeline = DegradationPipeline(catalogue, seed=0, noises=[speech_like(3.0, seed=999)])
            pipeline.degrade(clips[0], "warm-up")
            start = time.perf_counter()
            for i, clip in enumerate(clips):
                pipeline.degrade(clip, f"clip-{i}")
            chain_speed = audio_seconds / (time.perf_counter() - start)
            print(f"{f'{catalogue} catalogue (random chains of {pipeline.min_families}-{pipeline.max_families} families)':<52} "
                  f"{chain_speed:9.0f} x real time")
            rows = []
            for family, (_, options) in pipeline.families.items():
                for _, transform in options:
                    random.seed(0)
                    np.random.seed(0)
                    transform(clips[0], RATE)
                    start = time.perf_counter()
                    for clip in clips:  # each clip with its own draw of the option's parameters
                        transform(clip, RATE)
                    rows.append((family, type(transform).__name__, audio_seconds / (time.perf_counter() - start)))
            for family, name, speed in sorted(rows, key=lambda row: row[2]):
                print(f"  {family:<12} {name:<37} {speed:9.0f} x real time")

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "clips"
            for i, clip in enumerate(clips):
                write_clip(folder / f"{i:03d}.wav", clip)
            pseudo_label("distillmos", str(folder), Path(tmp) / "warm", shard_size=4, progress=False)
            start = time.perf_counter()
            pseudo_label("distillmos", str(folder), Path(tmp) / "labels", batch_size=8, progress=False)
            label_speed = audio_seconds / (time.perf_counter() - start)
        print(f"{'pseudo-labelling with the Distill-MOS import (incl. model load)':<52} {label_speed:9.1f} x real time")


if __name__ == "__main__":
    main()
