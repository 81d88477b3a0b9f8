"""Pruned models against the model they were pruned from, on the same held-out clips: each one's PCC / SRCC
with the unpruned model with 95 % bootstrap CIs, and every later model's difference from the first with a
paired bootstrap CI (clips resampled together for both, which separates models whose own intervals
overlap). One run, 2 threads, fp32.

    python benchmarks/pruned_agreement.py --model distillmos --heldout data/student/heldout_half \
        --pruned runs/prune_half/E_final runs/prune_half/F_final_lr [--output results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hf_sqa.metrics import compare_with_first
from hf_sqa.pruning.schedule import UnprunedAgreement
from hf_sqa.scoring import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="distillmos", help="the unpruned model")
    parser.add_argument("--heldout", required=True, help="SPEC of held-out clips (all of them are scored)")
    parser.add_argument("--pruned", nargs="+", required=True, help="pruned checkpoints; the first is the reference")
    parser.add_argument("--output", help="also write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    agreement = UnprunedAgreement(load_model(args.model).eval(), args.heldout)  # the unpruned scores, once
    scores = {name: agreement.scores(load_model(name).eval()) for name in args.pruned}
    results = {"model": args.model, "heldout": args.heldout, "clips": len(agreement.unpruned_scores), "pruned": {}}
    for name, (metrics, differences) in compare_with_first(scores, agreement.unpruned_scores).items():
        entry = {"agreement": metrics}
        line = (f"{name}: PCC {metrics['pcc']:.4f} ({metrics['pcc_ci_low']:.4f}, {metrics['pcc_ci_high']:.4f}) "
                f"SRCC {metrics['srcc']:.4f} ({metrics['srcc_ci_low']:.4f}, {metrics['srcc_ci_high']:.4f}) "
                f"RMSE {metrics['rmse']:.4f}")
        for statistic, (difference, low, high) in differences.items():
            entry[f"{statistic}_minus_first"] = {"difference": difference, "ci_low": low, "ci_high": high}
            line += f"; {statistic.upper()} − first {difference:+.4f} ({low:+.4f}, {high:+.4f})"
        results["pruned"][name] = entry
        print(line, flush=True)
    print(f"({results['clips']} clips of {args.heldout}, against {args.model})")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
