"""`hf-sqa score --shard`: one process of two threads against two shards of one thread each, side by side.

Clips: `--clips` pieces of 10 s cut from the 20-minute LibriSpeech recording of benchmarks/student_table.py,
written as 44.1 kHz stereo Ogg Vorbis (what an archive holds: decoding and resampling are part of the cost).
Each configuration runs `hf-sqa score` as a user would (fresh processes, start-up included, wall time); the
shards' rows together must be the single run's rows, score for score.

    python benchmarks/shard_speed.py --models fast distillmos

One run per configuration, on however many cores the machine has (the README's numbers: 2).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr

from student_table import long_recording


def make_clips(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    audio = np.load(long_recording(Path("runs/long_recording_20min.npy")))
    for index in range(count):
        path = folder / f"clip{index:03d}.ogg"
        if not path.is_file():
            piece = soxr.resample(audio[index * 160000 : (index + 1) * 160000], 16000, 44100)
            partial = path.with_name(path.stem + ".partial.ogg")
            soundfile.write(partial, np.stack([piece, 0.8 * piece], axis=1), 44100, format="OGG", subtype="VORBIS")
            partial.replace(path)
    return folder


def score_command(model: str, clips: Path, output: Path, shard: str | None) -> list[str]:
    command = ["hf-sqa", "score", str(clips), "--model", model, "--output", str(output), "--quiet"]
    return command + (["--shard", shard] if shard else [])


def timed(commands: list[list[str]], threads: int) -> float:
    """Wall time of the commands run side by side, each with `threads` torch threads."""
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    running = [subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL) for command in commands]
    if any(process.wait() for process in running):
        raise SystemExit(f"a run failed: {commands}")
    return time.perf_counter() - start


def scores(*paths: Path) -> dict[str, float]:
    return {row["path"]: float(row["mos"]) for path in paths for row in csv.DictReader(open(path))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fast", "distillmos"])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--folder", default="runs/shard_speed")
    args = parser.parse_args()
    folder = Path(args.folder)
    clips = make_clips(folder / "clips", args.clips)
    for model in args.models:
        single = folder / f"{model}-single.csv"
        shards = [folder / f"{model}-shard{index}.csv" for index in range(2)]
        one = timed([score_command(model, clips, single, None)], threads=2)
        two = timed([score_command(model, clips, path, f"{index}/2") for index, path in enumerate(shards)], threads=1)
        whole, parts = scores(single), scores(*shards)
        same = set(whole) == set(parts) and len(whole) == args.clips
        difference = max(abs(whole[key] - parts[key]) for key in whole) if same else float("nan")
        print(f"{model}: {args.clips} clips of 10 s: one process of 2 threads {one:.1f} s, two shards of 1 thread "
              f"{two:.1f} s ({one / two:.2f}x); every clip once: {same}, max |dMOS| {difference:.1e}")


if __name__ == "__main__":
    main()
