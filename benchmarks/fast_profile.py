"""Where a long recording's scoring time goes in a fast student: STFT, each conv layer, the head.

The front end of `FastMOSForMOSRegression` is timed piece by piece on the chunks it scores a recording in
(`frontend_chunk_frames` output frames each, with the receptive field's overlap), each conv layer with the
fused oneDNN kernel inference uses, with its multiply-accumulates per second of audio and the rate the CPU
ran it at; the head is timed on the windows the scoring rule gives the recording (`window_max_hop`). Last,
the whole `score_clips` call on the same audio, so the parts can be checked against the total. Also with
other chunk sizes (`--chunks`): whether the activations' size (a chunk's first layers hold tens of MB)
costs speed.

    python benchmarks/fast_profile.py --model checkpoints/hf-sqa-fast --seconds 120 --chunks 100 500 1000

One run, 2 threads, fp32, best of `--repeats`; audio: the first `--seconds` of the 20-minute LibriSpeech
recording of benchmarks/student_table.py (made there when missing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hf_sqa.scoring import load_model

from student_table import long_recording


def best_time(function, repeats: int) -> float:
    function()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def conv_macs_per_output(conv: torch.nn.Conv2d) -> int:
    """Multiply-accumulates per output position (all output channels)."""
    return conv.out_channels * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="checkpoints/hf-sqa-fast")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--chunks", type=int, nargs="+", default=[500], help="front-end chunk sizes (output frames)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)

    model = load_model(args.model).eval()
    config, frontend = model.config, model.frontend
    audio = np.load(long_recording(Path("runs/long_recording_20min.npy")))[: int(args.seconds * config.sampling_rate)]
    audio = torch.from_numpy(audio / np.abs(audio).max()).float()  # the clip's level normalisation, done once
    seconds = audio.shape[0] / config.sampling_rate
    print(f"{args.model}: {seconds:.0f} s of audio, window hop {config.window_max_hop / config.sampling_rate:.2f} s; "
          f"milliseconds per minute of audio (share of the parts' total), GMAC/s of audio, GMAC per second of CPU time")
    with torch.no_grad():
        for chunk in args.chunks:
            config.frontend_chunk_frames = chunk
            chunks = list(model.frontend_chunk_inputs(audio))  # (first, last, offset, samples); peak 1: level 1
            pieces = [padded[None] for _, _, _, padded in chunks]
            spectra = [frontend.spectrum_of_padded(piece).contiguous(memory_format=torch.channels_last)
                       for piece in pieces]
            parts = {"STFT": best_time(lambda: [frontend.spectrum_of_padded(p) for p in pieces], args.repeats)}
            inputs, macs = spectra, {}
            for index, conv in enumerate(frontend.convs):
                layer = lambda x, conv=conv: frontend.fused_conv(x, conv)  # what CPU inference runs
                name = f"conv {index + 1} ({conv.in_channels}->{conv.out_channels})"
                parts[name] = best_time(lambda: [layer(x) for x in inputs], args.repeats)
                inputs = [layer(x) for x in inputs]
                macs[name] = sum(x[0, 0].numel() for x in inputs) * conv_macs_per_output(conv)
            frames = torch.cat([frontend.frames(x)[0, first - offset : last - offset]  # each chunk's own frames
                                for x, (first, last, offset, _) in zip(inputs, chunks)])
            frames = model.feature_norm(frames.T[None])[0].T
            windows = [frames[first : first + count] for _, first, count in model.window_frames(audio.shape[0])]
            parts["head"] = best_time(lambda: model._head_by_length(windows), args.repeats)
            whole = best_time(lambda: model.score_clips(audio[None], torch.tensor([audio.shape[0]])), args.repeats)
            summed = sum(parts.values())
            print(f"chunks of {chunk} frames ({len(pieces)} chunks, {len(windows)} windows):")
            for name, spent in parts.items():
                rate = f"  {macs[name] / seconds / 1e9:5.2f} GMAC/s of audio, {macs[name] / spent / 1e9:6.1f} GMAC/s" \
                    if name in macs else ""
                print(f"  {name:<22} {spent / seconds * 60e3:7.1f} ms ({spent / summed:5.1%}){rate}")
            print(f"  {'parts together':<22} {summed / seconds * 60e3:7.1f} ms: {seconds / summed:.0f}x real time")
            print(f"  {'score_clips':<22} {whole / seconds * 60e3:7.1f} ms: {seconds / whole:.0f}x real time")


if __name__ == "__main__":
    main()
