"""Scoring long recordings: x real time and peak RSS per model and option, on a 20-minute and a 3-hour file.

Recordings (`long_recordings.py`): real LibriSpeech speech whose degradation changes every 20-60 s, 16 kHz
FLAC; the 20-minute one also as 44.1 kHz stereo OGG (decoded and resampled block by block). Each run is a
fresh child process (2 threads) that loads the model, warms up on 10 s, then scores the file through
`hf_sqa.iter_scores` (what `hf-sqa score` does: streamed, memory bounded); it reports its wall time and its
own peak RSS (VmHWM, model and warm-up included). Runs:

  distillmos            the Distill-MOS import at its default rule (hop <= 1 s), fp32 and bf16
  distillmos hop 7.68   the import with --hop 7.68 (windows back to back), fp32 and bf16
  teacher-tiny          the XLS-R teacher family (XLSRForMOSRegression) on a tiny random config
  fast                  the fast student (default rule), fp32 and bf16
  fast, decoded twice   the same without the scan's temporary file (its directory made unusable), so the
                        model's pass decodes and resamples the input again, as hf_sqa did before the spool
  package               the `distillmos` package's own forward on the whole 20-minute file (its inference
                        path; run under a 16 GB address-space limit so a failure cannot take the machine)

The import at its default hop is not run on the 3-hour file unless --full (about 80 min on 2 cores; its
memory does not depend on the hop: windows are cut and scored a chunk at a time either way).

    python benchmarks/long_audio.py [--full] [--output runs/long_audio.json]

Floors (issue #11): peak RSS <= 1.5 GB for the import and <= 1 GB for `fast` on the 3-hour file; the import
at --hop 7.68 >= 6x faster than at its default hop on the 20-minute file. Exit status 1 when one is missed.
A rerun reuses the finished runs stored in --output (a killed run resumes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile
import soxr

from long_recordings import build_recording  # sibling benchmark module (script dir on sys.path)

RSS_LIMIT_MB = {"distillmos": 1536, "fast": 1024}
PACKAGE_ADDRESS_SPACE = 16 * 2**30

_SCORE_CHILD = r"""
import json, sys, time
import numpy as np, torch
import hf_sqa
from hf_sqa.testing import synthetic_speech
torch.set_num_threads(2)
model_name, path, hop, precision, spool = sys.argv[1:6]
if spool == "no":  # AudioStream's scan finds no temporary directory and keeps nothing: scoring decodes again
    import tempfile
    tempfile.tempdir = "/nonexistent/hf_sqa-no-spool"
model = hf_sqa.load_model(model_name)
hop = None if hop == "default" else float(hop)
hf_sqa.score(synthetic_speech(10.0), model=model, sampling_rate=16000, precision=precision, window_hop=hop)
start = time.perf_counter()
[result] = hf_sqa.iter_scores([path], model, precision=precision, window_hop=hop)
seconds = time.perf_counter() - start
if result.error:
    raise SystemExit(result.error)
# this process's own peak (VmHWM: the address space exec made; ru_maxrss of a child counts from the parent's)
peak_kb = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
print(json.dumps({"seconds": seconds, "audio_seconds": result.segments[-1].end, "mos": result.mos,
                  "p10_mos": result.p10_mos, "windows": len(result.segments), "peak_rss_mb": peak_kb / 1024}))
"""

_PACKAGE_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
import soundfile, torch
from hf_sqa.testing import import_distillmos
torch.set_num_threads(2)
model = import_distillmos().ConvTransformerSQAModel().eval()
samples, rate = soundfile.read(sys.argv[1], dtype="float32")
assert rate == 16000, rate
out = {}
start = time.perf_counter()
try:
    with torch.no_grad():
        out["mos"] = model(torch.from_numpy(samples)[None]).item()
except (RuntimeError, MemoryError) as error:
    out["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
out["seconds"] = time.perf_counter() - start
out["audio_seconds"] = len(samples) / rate
out["peak_rss_mb"] = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) / 1024
print(json.dumps(out))
"""


def run_child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def tiny_teacher(folder: Path) -> Path:
    """A randomly initialised XLS-R-family teacher with a tiny backbone, saved as a checkpoint."""
    if not (folder / "config.json").is_file():
        import torch

        from hf_sqa.models import XLSRForMOSRegression
        from hf_sqa.testing import tiny_xlsr_config

        torch.manual_seed(0)
        XLSRForMOSRegression(tiny_xlsr_config()).save_pretrained(folder)
    return folder


def as_ogg_44k_stereo(source: Path, target: Path) -> Path:
    """The recording as 44.1 kHz stereo Ogg Vorbis, converted block by block."""
    if target.is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    resampler = soxr.ResampleStream(16000, 44100, 1, dtype="float32")
    with soundfile.SoundFile(source) as reader, soundfile.SoundFile(partial, "w", samplerate=44100, channels=2,
                                                                    format="OGG", subtype="VORBIS") as writer:
        for block in reader.blocks(blocksize=16000 * 30, dtype="float32"):
            last = reader.tell() == reader.frames
            resampled = resampler.resample_chunk(block, last=last)
            writer.write(np.stack([resampled, 0.8 * resampled], axis=1))
    partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="the shorter recording")
    parser.add_argument("--hours", type=float, default=3.0, help="the longer recording")
    parser.add_argument("--folder", default="runs/long_audio")
    parser.add_argument("--full", action="store_true", help="also the import at its default hop on the long file")
    parser.add_argument("--output", default="runs/long_audio.json")
    args = parser.parse_args()
    folder = Path(args.folder)
    short = build_recording(folder / f"long_{args.minutes:g}min.flac", args.minutes, seed=100)
    short_ogg = as_ogg_44k_stereo(short, short.with_name(short.stem + "_44k_stereo.ogg"))
    long = build_recording(folder / f"long_{args.hours:g}h.flac", args.hours * 60, seed=101)
    teacher = str(tiny_teacher(folder / "teacher-tiny"))

    # (label, model, hop, precision, recordings); all but "decoded twice" keep the scan's samples
    runs = [("distillmos", "distillmos", "default", "fp32", [short] + ([long] if args.full else [])),
            ("distillmos hop 7.68", "distillmos", "7.68", "fp32", [short, short_ogg, long]),
            ("distillmos bf16", "distillmos", "default", "bf16", [short]),
            ("distillmos hop 7.68 bf16", "distillmos", "7.68", "bf16", [short, long]),
            ("teacher-tiny", teacher, "default", "fp32", [short, long]),
            ("fast", "fast", "default", "fp32", [short, short_ogg, long]),
            ("fast bf16", "fast", "default", "bf16", [short, long]),
            ("fast, decoded twice", "fast", "default", "fp32", [short, short_ogg])]
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.is_file() else {}
    for label, model, hop, precision, recordings in runs:
        for recording in recordings:
            key = f"{label} | {recording.name}"
            if key not in results:
                spool = "no" if label.endswith("decoded twice") else "yes"
                results[key] = run_child(_SCORE_CHILD, model, str(recording), hop, precision, spool)
                print(key, json.dumps(results[key]), flush=True)
                output.write_text(json.dumps(results, indent=1))
    key = f"distillmos package | {short.name}"
    if key not in results:
        results[key] = run_child(_PACKAGE_CHILD, str(short), str(PACKAGE_ADDRESS_SPACE))
        print(key, json.dumps(results[key]), flush=True)
        output.write_text(json.dumps(results, indent=1))

    print(f"\n{'run':<26} {'recording':<30} {'x real time':>11} {'peak RSS (MB)':>13} {'MOS':>7}  error")
    for key, r in results.items():
        label, name = key.split(" | ")
        xrt = r["audio_seconds"] / r["seconds"] if "audio_seconds" in r and "mos" in r else float("nan")
        print(f"{label:<26} {name:<30} {xrt:>11.1f} {r.get('peak_rss_mb', float('nan')):>13.0f} "
              f"{r.get('mos', float('nan')):>7.3f}  {r.get('error', '')}")

    failed = []
    default, hop768 = results[f"distillmos | {short.name}"], results[f"distillmos hop 7.68 | {short.name}"]
    if "error" in default or "error" in hop768:
        failed.append("import timing on the 20-minute file failed")
    else:
        speed_up = default["seconds"] / hop768["seconds"]
        print(f"\nimport --hop 7.68 vs default on {short.name}: {speed_up:.2f}x faster (floor 6x)")
        if speed_up < 6:
            failed.append(f"hop 7.68 speed-up {speed_up:.2f} < 6")
    for label, model, _, _, recordings in runs:
        if model in RSS_LIMIT_MB and long in recordings:
            peak = results[f"{label} | {long.name}"].get("peak_rss_mb", float("inf"))
            ok = peak <= RSS_LIMIT_MB[model]
            print(f"{label} on {long.name}: peak RSS {peak:.0f} MB (floor {RSS_LIMIT_MB[model]} MB) "
                  f"{'ok' if ok else 'MISSED'}")
            if not ok:
                failed.append(f"{label} RSS {peak:.0f} MB")
    if failed:
        print("floors missed:", "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
