"""How much the teacher's own score moves when a clip starts a few milliseconds later: the noise in the labels
a student is measured against, and the agreement it leaves within reach.

The teacher (Distill-MOS) cuts each window into 10 ms STFT frames from the window's first sample, so
dropping the first 5 ms of a clip (80 samples, half a hop) changes every frame it sees without changing
what a listener hears. Its scores of the clip and of the shifted clip differ by a jitter no student with
another front end can reproduce: if that jitter is noise independent of the clip's quality, a predictor
that does not reproduce it agrees with the teacher at most at sqrt(PCC(teacher, teacher shifted)).
For each student: its agreement with the teacher, with the teacher's score averaged over the shifts (the
part of the label a student can learn), and with itself shifted.

    python benchmarks/teacher_jitter.py --heldout data/student/packed/heldout data/student/packed/heldout-mild \
        --models checkpoints/hf-sqa-fast --clips 400

Clips spread over each packed set (`spread_clip_rows`, as the training runs' evaluations pick them), 95 %
bootstrap CIs; one run, 2 threads, fp32; students score with the teacher's windows (hop <= 1 s), as they are trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hf_sqa.metrics import bootstrap_ci, point_metrics
from hf_sqa.scoring import load_model, score
from hf_sqa.training.fast_student import fast_student_from, spread_clip_rows
from hf_sqa.training.packed import PackedClips

from student_table import LENGTH_BANDS

SAMPLING_RATE = 16000


def bands(seconds: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, clips) of all clips and of each length band (a clip under 7.68 s is one zero-padded window)
    with at least 3 clips."""
    picks = [("all", np.ones(len(seconds), bool))] + [
        (f"{low:g}-{high:g} s", (seconds >= low) & (seconds < high)) for low, high in LENGTH_BANDS]
    return [(label, pick) for label, pick in picks if pick.sum() >= 3]


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    """'PCC (95 % CI) / SRCC' of two score arrays."""
    low, high = bootstrap_ci(a, b, "pcc")
    m = point_metrics(a, b)
    return f"{m['pcc']:.4f} ({low:.4f}, {high:.4f}) / {m['srcc']:.4f}"


def scores_of(model, audios: list[np.ndarray], shift: int) -> np.ndarray:
    """The model's clip scores of every clip without its first `shift` samples."""
    return np.asarray(score([a[shift:] for a in audios], model=model, sampling_rate=SAMPLING_RATE, batch_size=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", nargs="+", required=True, help="packed held-out folder(s)")
    parser.add_argument("--models", nargs="*", default=[], help="students to compare with the teacher")
    parser.add_argument("--teacher", default="distillmos")
    parser.add_argument("--clips", type=int, default=400, help="clips per packed set (spread over it)")
    parser.add_argument("--shifts-ms", nargs="+", type=float, default=[5.0, 15.0],
                        help="milliseconds dropped from each clip's start")
    args = parser.parse_args()
    torch.set_num_threads(2)

    audios = []
    for folder in map(Path, args.heldout):
        held = PackedClips(folder)
        audios += [held.clip(k) for k in spread_clip_rows(held, args.clips)]
    seconds = np.array([len(a) / SAMPLING_RATE for a in audios])
    shifts = [int(round(ms * SAMPLING_RATE / 1000)) for ms in args.shifts_ms]
    print(f"{len(audios)} clips of {', '.join(args.heldout)}; shifts {args.shifts_ms} ms = {shifts} samples")

    teacher = load_model(args.teacher).eval()
    reference = scores_of(teacher, audios, 0)  # (clips,), the labels students are measured against
    shifted = [scores_of(teacher, audios, shift) for shift in shifts]
    averaged = np.mean([reference, *shifted], axis=0)  # the label without most of its alignment noise

    print(f"\nteacher against itself shifted: PCC (95 % CI) / SRCC, mean and 95th percentile |change| (MOS), "
          f"sqrt(PCC): the most a predictor that does not reproduce the jitter can reach")
    for ms, other in zip(args.shifts_ms, shifted):
        for label, pick in bands(seconds):
            change = np.abs(other[pick] - reference[pick])
            pcc = point_metrics(other[pick], reference[pick])["pcc"]
            print(f"  {ms:>5.1f} ms  {label:<10} n={pick.sum():>5}  {agreement(other[pick], reference[pick])}"
                  f"  |change| {change.mean():.3f} / {np.percentile(change, 95):.3f}  sqrt(PCC) {np.sqrt(pcc):.4f}")

    for name in args.models:
        model = fast_student_from(name).eval()
        model.config.window_max_hop = SAMPLING_RATE  # the teacher's windows, as in training and eval_history
        ours = scores_of(model, audios, 0)
        ours_shifted = scores_of(model, audios, shifts[0])
        print(f"\n{name}: PCC (95 % CI) / SRCC with the teacher | with the teacher averaged over the shifts | "
              f"with itself shifted {args.shifts_ms[0]} ms")
        for label, pick in bands(seconds):
            print(f"  {label:<10} n={pick.sum():>5}  {agreement(ours[pick], reference[pick])} | "
                  f"{agreement(ours[pick], averaged[pick])} | {agreement(ours_shifted[pick], ours[pick])}")


if __name__ == "__main__":
    main()
