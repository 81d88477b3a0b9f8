"""Scoring speed: hf_sqa's Distill-MOS import vs the `distillmos` package, same clips, same process.

Seconds of audio scored per wall-clock second on 10 s clips (or each of several lengths: `--seconds 1 3
10`), with 2 torch threads, batch 1 and batch 8, exact (fp32) and with bfloat16 autocast (bf16; the MOS head
stays float32). The package path is what its own inference loop does (one clip at a time: decode, then its
forward, which re-runs the overlapping 7.68 s windows and runs a clip shorter than a window zero-padded to
one); decoding uses soundfile for both (torchaudio is not used here). Also prints the largest score
difference between the two.

    python benchmarks/score_speed.py [--clips 16] [--seconds 10 ...] [--threads 2] [--repeats 3] [--breakdown]

--breakdown adds where the time goes: per-window conv-stack time and GMAC/s for the package and for
hf_sqa, the package's first conv layer, the head's time per window by chunk size, and the score change
when the MOS head itself runs in bfloat16.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import hf_sqa
from hf_sqa.complexity import conv_stack_macs
from hf_sqa.testing import import_distillmos, synthetic_speech, write_clip


def make_clips(folder: Path, count: int, seconds: float) -> list[str]:
    return [
        str(write_clip(folder / f"clip{i:02d}.wav", synthetic_speech(seconds, seed=i, noise_db=5 + 3 * (i % 8))))
        for i in range(count)
    ]


def score_with_distillmos_package(model, paths: list[str]) -> np.ndarray:
    scores = []
    with torch.no_grad():
        for path in paths:
            samples, _ = sf.read(path, dtype="float32")
            scores.append(model(torch.from_numpy(samples)[None]).item())
    return np.array(scores)


def best_time(run, repeats: int) -> tuple[float, np.ndarray]:
    """Fastest of `repeats` timed runs after one warm-up run (first-call allocations, thread start-up)."""
    result = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def breakdown(reference, ours, repeats: int) -> None:
    window = torch.from_numpy(synthetic_speech(ours.config.window_length / 16000, seed=99))[None]
    with torch.inference_mode():
        macs = conv_stack_macs(ours)
        package_conv, _ = best_time(lambda: reference.cnn(window), repeats)
        our_conv, _ = best_time(lambda: ours.frontend(window), repeats)
        spectrum = ours.frontend.compressed_spectrum(window)
        first = reference.cnn.cnn[0]
        first_time, first_out = best_time(lambda: first(spectrum), repeats)
        first_macs = first_out.numel() * first.in_channels * 9
        print(f"conv stack per window ({macs / 1e9:.1f} GMAC): package {package_conv * 1e3:.0f} ms "
              f"({macs / package_conv / 1e9:.0f} GMAC/s), hf_sqa {our_conv * 1e3:.0f} ms ({macs / our_conv / 1e9:.0f} GMAC/s)")
        print(f"package first conv (2 -> 64 channels, NCHW): {first_macs / first_time / 1e9:.1f} GMAC/s")
        eight = ours.frontend.compressed_spectrum(window.repeat(8, 1)).contiguous(memory_format=torch.channels_last)
        together, _ = best_time(lambda: ours.frontend._conv_stack_fused(eight), repeats)
        print(f"hf_sqa conv stack, 8 windows in one call: {together / 8 * 1e3:.0f} ms/window (one at a time: "
              f"{our_conv * 1e3:.0f})")
        features = ours.feature_norm(ours.frontend(window).transpose(1, 2)).transpose(1, 2).repeat(8, 1, 1)
        for chunk in (1, 4, 8):
            elapsed, _ = best_time(lambda: [ours.head(features[i : i + chunk]) for i in range(0, 8, chunk)], repeats)
            print(f"head, chunks of {chunk} windows: {elapsed / 8 * 1e3:.1f} ms/window")


def head_precision_effect(reference, ours, paths: list[str]) -> None:
    """Score change vs the package with a bfloat16 conv stack, for a float32 and a bfloat16 MOS head."""
    with torch.no_grad():
        expected = score_with_distillmos_package(reference, paths)
    for head_dtype in (torch.float32, torch.bfloat16):
        ours.head.to(head_dtype)
        scores = np.array([r.mos for r in hf_sqa.iter_scores(paths, ours, precision="bf16")])
        print(f"bf16 conv stack, {str(head_dtype).split('.')[-1]} head: max |dMOS| {np.max(np.abs(scores - expected)):.1e}")
    ours.head.to(torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0], help="clip lengths, one table each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also show where the time goes (first length)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    reference = import_distillmos().ConvTransformerSQAModel().eval()
    ours = hf_sqa.load_model("distillmos")
    for seconds in args.seconds:
        with tempfile.TemporaryDirectory() as tmp:
            paths = make_clips(Path(tmp), args.clips, seconds)
            compare(reference, ours, paths, seconds, args)
            if args.breakdown and seconds == args.seconds[0]:
                head_precision_effect(reference, ours, paths)
                breakdown(reference, ours, args.repeats)


def compare(reference, ours, paths: list[str], seconds: float, args) -> None:
    """One table: the package and hf_sqa's paths on the same clips, speed and score difference."""
    package_time, package_scores = best_time(lambda: score_with_distillmos_package(reference, paths), args.repeats)
    rows = [("distillmos package (clip by clip)", package_time, package_scores)]
    for precision in ("fp32", "bf16"):
        for batch_size in (1, 8):
            elapsed, scores = best_time(
                lambda: np.array([
                    r.mos for r in hf_sqa.iter_scores(paths, ours, batch_size=batch_size, precision=precision)
                ]),
                args.repeats,
            )
            rows.append((f"hf_sqa {precision} batch {batch_size}", elapsed, scores))

    print(f"{len(paths)} clips x {seconds:g} s, {args.threads} threads, torch {torch.__version__}, "
          f"best of {args.repeats}")
    print(f"{'path':<36} {'audio s / wall s':>17} {'ratio vs package':>17} {'max |dMOS|':>11}")
    for name, elapsed, scores in rows:
        print(f"{name:<36} {len(paths) * seconds / elapsed:>17.1f} {package_time / elapsed:>16.2f}x "
              f"{np.max(np.abs(scores - package_scores)):>11.2e}")


if __name__ == "__main__":
    main()
