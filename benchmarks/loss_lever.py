"""The fast student's distillation loss: the squared error of the MOS (what `make student` trains with)
against other losses, each training the vocoder stage again from the same start, on the same sets, with
the same seed and schedule.

* logit_mse: the squared error of the logits the scores come from (the MOS head's 1 + 4 * sigmoid). Under
  the MOS's squared error the sigmoid shrinks the gradient of scores near the ends of the scale, where the
  student pulls the voices it does not know towards the middle (its mean error is -0.25 where the teacher
  says 4-5); on the logits a MOS error at 1.5 or 4.5 weighs 5.2 times what it weighs at 3.
* l1: the absolute error of the MOS.

Prints PCC / SRCC (95 % bootstrap CIs) with the teacher on all held-out clips of both catalogues, scored
with the teacher's windows as in training, each loss's paired difference from the MOS's squared error, and
the start; then each model's mean error per band of the teacher's score:

    python benchmarks/loss_lever.py --start checkpoints/hf-sqa-fast --losses logit_mse

On a budget, on make student's reduced data (one draw of each catalogue: `--set train_draws=1
mild_train_draws=1 voice_train_draws=0 mild_voice_train_draws=0 vocoder_train_draws=0 "word_sources=[]"`
with `--work` and `--runs` where those stages wrote). Runs are kept under `--output`/<loss> and reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hf_sqa.scoring import load_model
from hf_sqa.training.distillation import LOSSES
from hf_sqa.training.recipe import parse_overrides
from hf_sqa.training.student_pipeline import StudentPipeline

from generalisation_gap import made_run
from voice_levers import heldout_comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/student", help="make student's WORK folder")
    parser.add_argument("--runs", default="runs/student", help="make student's RUNS folder")
    parser.add_argument("--output", default="runs/loss-lever", help="the runs, one folder per loss")
    parser.add_argument("--start", help="the model the vocoder stage continues (default RUNS/voice/final)")
    parser.add_argument("--losses", nargs="+", default=["logit_mse"], choices=sorted(set(LOSSES) - {"mse"}))
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="make student's settings the data were made with (StudentPipeline fields)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    pipeline = StudentPipeline(**{"final_method": "pruned", **parse_overrides(args.set, parser), "work": args.work,
                                  "runs": args.runs})
    start = Path(args.start) if args.start else made_run(args.runs, "voice/final", "its vocoder stage")
    stage_sets = pipeline.packed("train", "vocoder")
    runs = {loss: pipeline.train_vocoder_stage(stage_sets, Path(args.output) / loss, f"vocoder stage, {loss} loss",
                                               init=start, distillation_loss=loss)
            for loss in ["mse", *args.losses]}
    held, scores = heldout_comparison(pipeline, {loss: load_model(path).eval() for loss, path in runs.items()}, start)
    # where the pull towards the middle of the scale is: does a loss move it?
    bands = [(low, (held.teacher_mos >= low) & (held.teacher_mos < low + 1)) for low in (1, 2, 3, 4)]
    print("mean error (student - teacher) per band of the teacher's score (clips); sd of the scores / the teacher's")
    for name, ours in scores.items():
        print(f"  {name:<20}" + "  ".join(f"{low}-{low + 1}: {np.mean(ours[pick] - held.teacher_mos[pick]):+.3f} "
                                          f"({pick.sum()})" for low, pick in bands)
              + f"  sd ratio {ours.std() / held.teacher_mos.std():.3f}")


if __name__ == "__main__":
    main()
