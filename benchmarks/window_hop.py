"""What the window hop costs on long recordings: clip MOS at hops of 1, 2, 4 and 7.68 s against the model's
default rule, on ten long recordings of real speech whose degradation changes along the file.

Each recording (`long_recordings.py`: LibriSpeech utterances, a new draw of the degradation catalogue every
20-60 s) is scored from its FLAC file as `hf-sqa score` does (streamed, `iter_scores`), 2 threads, fp32.
Per model and hop: mean and max |dMOS| of the clip MOS against the default rule, PCC of the ten clip MOS
with the default's (95 % bootstrap CI over recordings), the same for the 10th-percentile window MOS
(`p10_mos`), and x real time. A hop equal to the model's own rule is the default itself and is not
scored twice.

    python benchmarks/window_hop.py --models fast distillmos [--recordings 10 --minutes 5.5]

Results go to --output (JSON) as each (model, hop) finishes; a rerun skips what is there, so a killed run
resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import hf_sqa
from hf_sqa.metrics import mos_metrics
from long_recordings import build_recording  # sibling benchmark module (script dir on sys.path)


def score_files(model, paths: list[Path], window_hop: float | None) -> dict:
    """Clip MOS, p10 window MOS and lowest window MOS of each file, and x real time over all of them."""
    start = time.perf_counter()
    results = list(hf_sqa.iter_scores([str(p) for p in paths], model, window_hop=window_hop))
    seconds = time.perf_counter() - start
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"scoring failed: {errors[0]}")
    audio_seconds = sum(r.segments[-1].end for r in results)
    return {"mos": [r.mos for r in results], "p10_mos": [r.p10_mos for r in results],
            "lowest_mos": [r.lowest_mos for r in results], "audio_seconds": audio_seconds, "seconds": seconds,
            "xrt": audio_seconds / seconds}


def compare(run: dict, default: dict, key: str) -> dict:
    values, reference = np.array(run[key]), np.array(default[key])
    delta = np.abs(values - reference)
    metrics = mos_metrics(values, reference, n_boot=1000)
    return {"mean_abs": float(delta.mean()), "max_abs": float(delta.max()), "pcc": metrics["pcc"],
            "pcc_ci": [metrics["pcc_ci_low"], metrics["pcc_ci_high"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fast", "distillmos"])
    parser.add_argument("--hops", nargs="+", type=float, default=[1.0, 2.0, 4.0, 7.68], help="seconds")
    parser.add_argument("--recordings", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=5.5, help="length of each recording")
    parser.add_argument("--folder", default="runs/long_audio", help="where the recordings are written / reused")
    parser.add_argument("--output", default="runs/window_hop.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    paths = [build_recording(Path(args.folder) / f"rec{seed}_{args.minutes:g}min.flac", args.minutes, seed)
             for seed in range(args.recordings)]
    output = Path(args.output)
    done = json.loads(output.read_text()) if output.is_file() else {}
    for name in args.models:
        model = hf_sqa.load_model(name)
        default_hop = model.config.window_max_hop / model.config.sampling_rate
        runs = done.setdefault(name, {"default_hop": default_hop})
        hf_sqa.score([str(paths[0])], model=model)  # warm-up (first-call allocations, thread start-up)
        for hop in [None, *args.hops]:
            key = "default" if hop is None else f"{hop:g}"
            if key in runs:
                continue
            if hop is not None and round(hop * model.config.sampling_rate) == model.config.window_max_hop:
                runs[key] = {**runs["default"], "same_as_default": True}
            else:
                runs[key] = score_files(model, paths, hop)
                print(f"{name} hop {key}: x{runs[key]['xrt']:.1f} real time", flush=True)
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(done, indent=1))
        del model

    minutes = done[args.models[0]]["default"]["audio_seconds"] / 60
    print(f"\n{len(paths)} recordings, {minutes:.1f} min of audio; |dMOS| and PCC against each model's default rule")
    print(f"{'model':<12} {'hop (s)':>8} {'mean |dMOS|':>11} {'max |dMOS|':>10} {'PCC (95% CI)':>25} "
          f"{'p10 mean|d|':>11} {'p10 max|d|':>10} {'x real time':>11} {'speed-up':>8}")
    for name in args.models:
        runs = done[name]
        default = runs["default"]
        print(f"{name:<12} {'default':>8} {'-':>11} {'-':>10} {'-':>25} {'-':>11} {'-':>10} "
              f"{default['xrt']:>11.1f} {1.0:>8.2f}   (rule: hop <= {runs['default_hop']:g} s)")
        for hop in args.hops:
            run = runs[f"{hop:g}"]
            clip, p10 = compare(run, default, "mos"), compare(run, default, "p10_mos")
            print(f"{'':<12} {hop:>8g} {clip['mean_abs']:>11.4f} {clip['max_abs']:>10.4f} "
                  f"{clip['pcc']:>8.4f} ({clip['pcc_ci'][0]:.4f}, {clip['pcc_ci'][1]:.4f}) "
                  f"{p10['mean_abs']:>11.4f} {p10['max_abs']:>10.4f} {run['xrt']:>11.1f} "
                  f"{run['xrt'] / default['xrt']:>8.2f}" + ("   (= default)" if run.get("same_as_default") else ""))


if __name__ == "__main__":
    main()
