"""What the fine-tuning target does for a pruned model: from one pruned checkpoint, `hf-sqa prune`'s own
fine-tuning (`hf_sqa.pruning.schedule.finetune`: the unpruned model as online teacher, BatchNorm fixed) run
with each frame weight for the same steps, data, seed and learning rate; each result compared with the
unpruned model on held-out clips (one run, 2 threads, fp32).

    python benchmarks/prune_finetune_target.py --pruned runs/prune_half/C_defaults --model distillmos \
        --data data/student/labelled/train --heldout data/student/heldout_half --clips 300 --steps 300 \
        --frame-weights 0 1 [--eval-every 100] --output runs/prune_finetune_target
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from hf_sqa.complexity import parameter_count
from hf_sqa.data.specs import resolve
from hf_sqa.pruning.schedule import PruningSettings, UnprunedAgreement, finetune
from hf_sqa.scoring import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruned", required=True, help="pruned checkpoint (e.g. an hf-sqa prune output)")
    parser.add_argument("--model", default="distillmos", help="the unpruned model it came from")
    parser.add_argument("--data", required=True, help="fine-tuning SPEC")
    parser.add_argument("--heldout", required=True, help="SPEC of held-out clips (other speakers)")
    parser.add_argument("--clips", type=int, default=300, help="held-out clips spread over the SPEC")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--frame-weights", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--eval-every", type=int, default=0, help="also compare every N steps (the curve)")
    parser.add_argument("--output", required=True, help="folder for the trainers' files and results.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    unpruned = load_model(args.model).eval()
    start = load_model(args.pruned).eval()
    count = len(resolve(args.heldout).with_format(None)["id"])
    rows = np.unique(np.linspace(0, count - 1, min(args.clips, count)).astype(int)).tolist()
    measure = UnprunedAgreement(unpruned, args.heldout, rows=rows)  # model -> PCC / SRCC / RMSE against it
    results = {"pruned": args.pruned, "model": args.model, "data": args.data, "heldout": args.heldout,
               "clips": len(rows), "steps": args.steps, "learning_rate": args.learning_rate, "start": measure(start)}
    print(f"start: PCC {results['start']['pcc']:.3f} SRCC {results['start']['srcc']:.3f}", flush=True)
    for weight in args.frame_weights:
        model = copy.deepcopy(start)
        settings = PruningSettings(target_params=parameter_count(model), batch_size=8, frame_weight=weight,
                                   learning_rate=args.learning_rate, eval_every=args.eval_every)
        began = time.time()
        result = finetune(model, unpruned, args.data, args.steps, settings, Path(args.output) / f"frames-{weight:g}",
                          measure=measure)
        seconds = time.time() - began  # with the curve's evaluations, when asked for
        agreement = result.curve[-1] if result.curve else measure(model)
        results[f"frame_weight={weight:g}"] = {"agreement": agreement, "curve": result.curve,
                                                "last_loss": result.loss, "wall_seconds": seconds}
        print(f"frame weight {weight:g}: PCC {agreement['pcc']:.3f} SRCC {agreement['srcc']:.3f} "
              f"RMSE {agreement['rmse']:.3f} ({seconds / args.steps:.2f} s/step)", flush=True)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
