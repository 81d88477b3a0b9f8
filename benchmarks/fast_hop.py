"""What the window hop costs and buys for a fast student: held-out agreement with the teacher, speed on
10 s clips and on a 20-minute recording (with the clip MOS there), per maximum hop between window starts.

The fast student's front end runs once per clip whatever the hop; each window still costs one pass of the
head, so on long audio the hop sets most of the cost. Its labels and training follow the teacher's rule
(hop <= 1 s); this measures how far the clip scores move when it is scored with fewer windows.

    python benchmarks/fast_hop.py --model checkpoints/hf-sqa-fast \
        --heldout data/student/labelled/heldout data/student/labelled/heldout-mild --hops 1 2 3.84 7.68

One process, 2 threads, fp32; speeds are the best of 3 runs (10 s clips) and one run after a warm-up
(20 minutes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import hf_sqa
from hf_sqa.evaluation import spec_clips
from hf_sqa.metrics import mos_metrics
from hf_sqa.testing import synthetic_speech
from student_table import long_recording, time_short  # the sibling benchmark's measurements (script dir on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="checkpoints/hf-sqa-fast")
    parser.add_argument("--heldout", nargs="+", required=True, help="pseudo-labelled SPECs of held-out speakers")
    parser.add_argument("--hops", nargs="+", type=float, default=[1.0, 2.0, 3.84, 7.68], help="seconds")
    parser.add_argument("--output", default="runs/fast_hop.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = hf_sqa.load_model(args.model)
    held_sets = [spec_clips(f"{spec}#mos=teacher_mos") for spec in args.heldout]
    audios = [audio for clips in held_sets for audio in clips.audios]
    teacher = np.concatenate([clips.mos for clips in held_sets])
    clips = [synthetic_speech(10.0, seed=i) for i in range(16)]
    recording = np.load(long_recording(Path("runs/long_recording_20min.npy")))
    results = {}
    for hop in args.hops:
        model.config.window_max_hop = int(round(hop * 16000))
        held = hf_sqa.score(audios, model=model, sampling_rate=16000)
        hf_sqa.score([recording[:160000]], model=model, sampling_rate=16000)  # warm-up
        start = time.perf_counter()
        long_mos = float(hf_sqa.score([recording], model=model, sampling_rate=16000)[0])
        long_seconds = time.perf_counter() - start
        metrics = mos_metrics(held, teacher, n_boot=1000)
        results[hop] = {"pcc": metrics["pcc"], "pcc_ci": [metrics["pcc_ci_low"], metrics["pcc_ci_high"]],
                        "srcc": metrics["srcc"], "n": metrics["n"], "held_scores": held,
                        "rt_10s": time_short(model, clips), "rt_20min": len(recording) / 16000 / long_seconds,
                        "mos_20min": long_mos}
    first = results[args.hops[0]]
    print(f"{'max hop (s)':>11} {'PCC (95% CI) with teacher':>28} {'SRCC':>6} {'mean |dMOS|':>11} {'max |dMOS|':>10} "
          f"{'xRT 10 s':>8} {'xRT 20 min':>10} {'MOS 20 min':>10}")
    for hop, r in results.items():
        delta = np.abs(r["held_scores"] - first["held_scores"])
        print(f"{hop:>11g} {r['pcc']:>10.4f} ({r['pcc_ci'][0]:.4f}, {r['pcc_ci'][1]:.4f}) {r['srcc']:>6.4f} "
              f"{delta.mean():>11.4f} {delta.max():>10.4f} {r['rt_10s']:>8.0f} {r['rt_20min']:>10.0f} "
              f"{r['mos_20min']:>10.3f}")
    print(f"(n = {first['n']} held-out clips; |dMOS| against the first hop)")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(
        {str(h): {k: v for k, v in r.items() if k != "held_scores"} for h, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
