"""The label stage's speed: `make student`'s pseudo-labelling of part of a degraded set, run as the stage runs it.

Two worker processes of one thread each, spawned as `StudentPipeline.run_label` starts them, each running
the stage's own `label_shard` (bf16, units of 250 clips) with the Distill-MOS import as teacher: the first
`--workers` shards of `--num-shards` (default: shards 0 and 1 of 18 of the default training set, 1,000
clips), each worker its own. Prints the wall time from the workers' start (torch imported, before the
teacher loads) to the last label written, and where the labels went; `--compare` an earlier run's folder
(say, at another commit) prints how far the labels moved.

    python benchmarks/label_speed.py [--data data/student/degraded/train] [--num-shards 18] [--workers 2]
                                     [--compare runs/label_speed/EARLIER]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hf_sqa.training.student_pipeline import label_shard, one_torch_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/student/degraded/train",
                        help="a degraded set (`hf-sqa degrade` shards)")
    parser.add_argument("--num-shards", type=int, default=18, help="the set is split into this many parts ...")
    parser.add_argument("--workers", type=int, default=2,
                        help="... and the first this many are labelled, one per worker")
    parser.add_argument("--output", default="runs/label_speed", help="a new folder under it gets the labels")
    parser.add_argument("--compare", help="an earlier run's label folder: largest and mean |difference| per clip")
    args = parser.parse_args()
    Path(args.output).mkdir(parents=True, exist_ok=True)
    output = tempfile.mkdtemp(dir=args.output)
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools, as in the stage
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=one_torch_thread) as workers:
        for started in [workers.submit(one_torch_thread) for _ in range(args.workers)]:  # the workers up first
            started.result()
        start = time.perf_counter()
        jobs = [workers.submit(label_shard, "distillmos", args.data, output, args.num_shards, index)
                for index in range(args.workers)]
        for job in jobs:
            job.result()
        elapsed = time.perf_counter() - start
    labels = clip_labels(output)
    print(f"{len(labels)} clips of {args.data} labelled in {elapsed:.1f} s by {args.workers} workers; "
          f"labels in {output}")
    if args.compare:
        earlier = clip_labels(args.compare)
        if earlier.keys() != labels.keys():
            raise SystemExit(f"{args.compare} holds other clips than {output}")
        moved = np.array([abs(labels[clip] - earlier[clip]) for clip in labels])
        print(f"teacher_mos against {args.compare}: max |difference| {moved.max():.2e}, mean {moved.mean():.2e}")


def clip_labels(folder: str) -> dict[str, float]:
    """teacher_mos by clip id of a label folder's shards."""
    labels = {}
    for path in sorted(Path(folder).glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "teacher_mos"]).to_pydict()
        labels.update(zip(table["id"], table["teacher_mos"]))
    return labels


if __name__ == "__main__":
    main()
