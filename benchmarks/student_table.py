"""The README's student table: size, compute, speed and accuracy of trained students vs. the teacher.

For each model: parameters, MACs per second of audio, scoring speed (x real time, 2 threads, 10 s clips,
batch 8), PCC/SRCC to the teacher on held-out degraded speech (a pseudo-labelled SPEC, teacher_mos as the
label) and to human MOS on a labelled SPEC.

    python benchmarks/student_table.py --models distillmos runs/student_small/final ... \
        --heldout data/labelled_heldout --human ../shared/data/bvrnn_mushra
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import hf_sqa
from hf_sqa.complexity import macs_per_second, parameter_count, realtime_factor
from hf_sqa.evaluation import evaluate_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--heldout", required=True, help="pseudo-labelled SPEC (teacher_mos)")
    parser.add_argument("--human", required=True, help="SPEC with human MOS")
    args = parser.parse_args()
    torch.set_num_threads(2)
    heldout = f"{args.heldout}#mos=teacher_mos,corpus=heldout"
    report, _ = evaluate_models(args.models, [heldout, args.human], n_boot=200)
    human = [key for key in report if key not in ("heldout", "pooled")][0]
    print(f"{'model':<28} {'params':>9} {'GMAC/s':>7} {'x RT':>6} {'PCC/SRCC teacher':>17} {'PCC/SRCC human':>15}"
          f" {'sys PCC/SRCC':>13}")
    for name in args.models:
        model = hf_sqa.load_model(name)
        t, h = report["heldout"][name], report[human][name]
        print(f"{name:<28} {parameter_count(model) / 1e6:>8.3f}M {macs_per_second(model) / 1e9:>7.2f} "
              f"{realtime_factor(model):>6.0f} {t['pcc']:>8.3f}/{t['srcc']:.3f} {h['pcc']:>7.3f}/{h['srcc']:.3f} "
              f"{h.get('system_pcc', np.nan):>6.3f}/{h.get('system_srcc', np.nan):.3f}")


if __name__ == "__main__":
    main()
