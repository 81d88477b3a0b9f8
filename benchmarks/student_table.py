"""The README's student table, and the fast student's floors, from one run (2 threads, fp32).

For each model: parameters, GMAC per second of audio, scoring speed (x real time) on 10 s clips, on 3 s
clips (shorter than a window: padded to one) and on a 20-minute recording (with peak RSS, measured in a child process), PCC / SRCC with the teacher on held-out
speakers' degraded speech (teacher labels of `hf-sqa pseudo-label`), PCC with human MOS (95 % bootstrap CI).
Ratios are against the first model (the Distill-MOS import) measured in the same run.

    python benchmarks/student_table.py --models distillmos checkpoints/hf-sqa-fast runs/student/pruned/final \
        --heldout data/student/labelled/heldout data/student/labelled/heldout-mild \
        --human ../shared/data/bvrnn_mushra --floors checkpoints/hf-sqa-fast

With several held-out SPECs (one per degradation set) the agreement is reported per set and over all of
their clips pooled; the floors use the pooled figure.

`--floors MODEL` checks issue #10's floors for that model and exits 1 when one is missed. The 20-minute
recording is real LibriSpeech speech (utterances of ../shared/data/librispeech_speakers back to back) when
available, else synthetic speech; `--long-models` limits which models are timed on it (the import needs
minutes).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

import hf_sqa
from hf_sqa.complexity import macs_per_second, parameter_count
from hf_sqa.data.specs import resolve
from hf_sqa.evaluation import evaluate_models
from hf_sqa.metrics import point_metrics
from hf_sqa.testing import synthetic_speech

LIBRISPEECH = Path("../shared/data/librispeech_speakers")

_LONG_CHILD = r"""
import json, sys, time
import numpy as np, torch
import hf_sqa
torch.set_num_threads(2)
model = hf_sqa.load_model(sys.argv[1])
audio = np.load(sys.argv[2], mmap_mode="r")
hf_sqa.score([np.asarray(audio[:160000])], model=model, sampling_rate=16000)  # warm-up
best = float("inf")
for _ in range(2):
    start = time.perf_counter()
    mos = hf_sqa.score([np.asarray(audio)], model=model, sampling_rate=16000)
    best = min(best, time.perf_counter() - start)
# this process's own peak: VmHWM belongs to the address space exec made (getrusage's ru_maxrss starts at the
# parent's RSS after fork + exec, so a child of a big benchmark process reported the parent's memory)
peak_kb = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
print(json.dumps({"seconds": best, "mos": float(mos[0]), "peak_rss_mb": peak_kb / 1024}))
"""


def long_recording(path: Path, minutes: float = 20.0) -> Path:
    """A `minutes`-long 16 kHz recording as .npy: LibriSpeech utterances back to back, or synthetic speech."""
    if path.is_file():
        return path
    target = int(minutes * 60 * 16000)
    pieces, total = [], 0
    files = sorted(LIBRISPEECH.rglob("*.flac")) if LIBRISPEECH.is_dir() else []
    k = 0
    while total < target:
        clip = hf_sqa.load_audio(files[k % len(files)]).samples if files else synthetic_speech(30.0, seed=k)
        pieces.append(clip)
        total += len(clip)
        k += 1
    np.save(path, np.concatenate(pieces)[:target].astype(np.float32))
    return path


def time_long(model: str, recording: Path) -> dict:
    """Scoring the recording in a fresh process: wall time (best of 2 after a warm-up) and that process's
    peak RSS."""
    done = subprocess.run([sys.executable, "-c", _LONG_CHILD, model, str(recording)], capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def short_labels(models: list[str]) -> dict[str, str]:
    """Each model's name in the per-set tables: the shortest trailing part of its path that tells the models
    apart (runs/a/shipped and runs/b/shipped -> a/shipped, b/shipped)."""
    for depth in range(1, max(len(Path(m).parts) for m in models) + 1):
        labels = {m: "/".join(Path(m).parts[-depth:]) for m in models}
        if len(set(labels.values())) == len(models):
            return labels
    return {m: m for m in models}


def time_short(model, clips: list[np.ndarray], repeats: int = 3) -> float:
    """x real time on the clips (batch 8), best of `repeats` after a warm-up."""
    hf_sqa.score(clips[:2], model=model, sampling_rate=16000)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        hf_sqa.score(clips, model=model, sampling_rate=16000, batch_size=8)
        best = min(best, time.perf_counter() - start)
    return sum(len(c) for c in clips) / 16000 / best


def clip_seconds(spec: str) -> np.ndarray:
    """Duration of every clip of a SPEC, in its order, from the encoded audio's header (no decoding)."""
    sources = resolve(spec).with_format(None)["audio"]
    return np.array([soundfile.info(io.BytesIO(a["bytes"]) if a.get("bytes") else a["path"]).duration
                     for a in sources])


LENGTH_BANDS = [(0.0, 3.0), (3.0, 7.68), (7.68, float("inf"))]  # seconds; 7.68 s: one window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="the first is the reference (the import)")
    parser.add_argument("--heldout", required=True, nargs="+",
                        help="pseudo-labelled SPECs of held-out speakers (one per degradation set)")
    parser.add_argument("--human", required=True, help="SPEC with human MOS")
    parser.add_argument("--long-models", nargs="*", help="models timed on the 20-minute recording (default: all "
                        "but the first)")
    parser.add_argument("--floors", help="check issue #10's floors for this model")
    parser.add_argument("--output", default="runs/student_table.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    long_models = args.models[1:] if args.long_models is None else args.long_models

    # corpus name = the SPEC's folder name (heldout, heldout-mild); several are pooled as "pooled"
    held_report, held_scores = evaluate_models(
        args.models, [f"{spec}#mos=teacher_mos,corpus={Path(spec).name}" for spec in args.heldout], n_boot=1000)
    held_sets = [Path(spec).name for spec in args.heldout]
    pooled = "pooled" if len(held_sets) > 1 else held_sets[0]
    human_report, human_scores = evaluate_models(args.models, [args.human], n_boot=1000)
    human = next(iter(human_report))
    clips = [synthetic_speech(10.0, seed=i) for i in range(16)]
    short_clips = [synthetic_speech(3.0, seed=i) for i in range(16)]
    recording = long_recording(Path("runs/long_recording_20min.npy"))
    rows = {}
    for name in args.models:
        model = hf_sqa.load_model(name)
        rows[name] = {
            "params": parameter_count(model), "gmac_per_s": macs_per_second(model) / 1e9,
            "rt_10s": time_short(model, clips), "rt_3s": time_short(model, short_clips), "teacher": held_report[pooled][name],
            "teacher_per_set": {held: held_report[held][name] for held in held_sets},
            "human": human_report[human][name],
            "long": time_long(name, recording) if name in long_models else None,
        }
    reference_speed = rows[args.models[0]]["rt_10s"]
    label = short_labels(args.models)
    print(f"{'model':<34} {'params':>8} {'GMAC/s':>6} {'xRT 10s':>8} {'vs ref':>6} {'xRT 3s':>7} {'xRT 20min':>9} {'RSS MB':>7} "
          f"{'PCC/SRCC teacher (held-out)':>28} {'PCC human (95% CI)':>24}")
    for name, row in rows.items():
        t, h, long = row["teacher"], row["human"], row["long"] or {}
        long_rt = 1200 / long["seconds"] if "seconds" in long else float("nan")
        print(f"{name:<34} {row['params'] / 1e6:>7.3f}M {row['gmac_per_s']:>6.2f} {row['rt_10s']:>8.1f} "
              f"{row['rt_10s'] / reference_speed:>5.1f}x {row['rt_3s']:>7.1f} {long_rt:>9.0f} {long.get('peak_rss_mb', float('nan')):>7.0f} "
              f"{t['pcc']:>13.3f} / {t['srcc']:.3f} (n={t['n']}) "
              f"{h['pcc']:>8.3f} ({h['pcc_ci_low']:.3f}, {h['pcc_ci_high']:.3f})")
    # where the agreement with the teacher is lost: per held-out set, and per source (clean_id = split/source/clip)
    print("\nPCC / SRCC with the teacher per held-out set and source:")
    for held, spec in zip(held_sets, args.heldout):
        values = "  ".join(f"{label[m]}: {rows[m]['teacher_per_set'][held]['pcc']:.3f} / "
                           f"{rows[m]['teacher_per_set'][held]['srcc']:.3f}" for m in args.models)
        print(f"  {held:<30} n={held_report[held][args.models[0]]['n']:>4}  {values}")
        sources = np.array([c.split("/")[1] for c in resolve(spec).with_format(None)["clean_id"]])
        scores = held_scores[held]
        for source in sorted(set(sources)):
            pick = sources == source
            values = "  ".join(f"{label[m]}: {point_metrics(scores.predictions[m][pick], scores.targets[pick])['pcc']:.3f}"
                               for m in args.models)
            print(f"    {source:<28} n={int(pick.sum()):>4}  {values}")
    # and per clip length, all held-out sets together (a clip under 7.68 s is one zero-padded window)
    seconds = np.concatenate([clip_seconds(spec) for spec in args.heldout])
    targets = np.concatenate([held_scores[held].targets for held in held_sets])
    print("PCC with the teacher per clip length (held-out sets pooled):")
    for low, high in LENGTH_BANDS:
        pick = (seconds >= low) & (seconds < high)
        values = "  ".join(
            f"{label[m]}: {point_metrics(np.concatenate([held_scores[h].predictions[m] for h in held_sets])[pick], targets[pick])['pcc']:.3f}"
            for m in args.models)
        print(f"  {low:>5.2f}-{high:<5.2f} s  n={int(pick.sum()):>4}  {values}")
    # on the human-rated set: does each student follow its teacher there, and where per condition
    rated = human_scores[human]
    reference = rated.predictions[args.models[0]]
    print(f"\n{human}: PCC with {args.models[0]}'s scores: " + "  ".join(
        f"{label[m]}: {point_metrics(rated.predictions[m], reference)['pcc']:.3f}" for m in args.models[1:]))
    if any(c is not None for c in rated.conditions):
        conditions = np.array([str(c) for c in rated.conditions])
        print(f"  {'condition':<24} {'n':>3} {'human':>6} " + " ".join(f"{label[m][-12:]:>12}" for m in args.models))
        for condition in sorted(set(conditions), key=lambda c: -rated.targets[conditions == c].mean()):
            pick = conditions == condition
            print(f"  {condition:<24} {int(pick.sum()):>3} {rated.targets[pick].mean():>6.2f} "
                  + " ".join(f"{rated.predictions[m][pick].mean():>12.2f}" for m in args.models))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"reference": args.models[0], "rows": rows}, indent=1, default=float))

    if args.floors:
        row, long = rows[args.floors], rows[args.floors]["long"] or {}
        checks = {
            "parameters <= 1 M": row["params"] <= 1_000_000,
            "held-out PCC with teacher >= 0.95": row["teacher"]["pcc"] >= 0.95,
            "held-out SRCC with teacher >= 0.94": row["teacher"]["srcc"] >= 0.94,
            "human PCC (bvrnn_mushra) >= 0.28": row["human"]["pcc"] >= 0.28,
            ">= 5x the import's speed on 10 s clips": row["rt_10s"] / reference_speed >= 5,
            ">= 150x real time on 20 minutes": "seconds" in long and 1200 / long["seconds"] >= 150,
            "peak RSS <= 1 GB on 20 minutes": long.get("peak_rss_mb", float("inf")) <= 1024,
        }
        for check, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {check}")
        sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
