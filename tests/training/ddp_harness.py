"""Run under `accelerate launch` by test_recipe.py: each rank records the first example ids of its part of
the training stream, trains the recipe, and writes a checksum of its final weights."""

import hashlib
import json
import sys

import torch
from accelerate import PartialState

from hf_sqa.distributed import finish_processes
from hf_sqa.training.recipe import build_train_stream, load_recipe, run_recipe

recipe = load_recipe(sys.argv[1])
state = PartialState(cpu=not torch.cuda.is_available())
ids = [row["id"] for row in build_train_stream(recipe, state.process_index, state.num_processes).take(8)]
_, trainer = run_recipe(recipe)
def checksum(named_tensors):
    digest = hashlib.sha256()
    for name, tensor in sorted(named_tensors):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# parameters are kept equal by DDP's gradient all-reduce; BatchNorm running statistics are buffers that each
# rank updates from its own batches after DDP broadcasts rank 0's at every forward
with open(f"{sys.argv[2]}/rank{state.process_index}.json", "w") as handle:
    json.dump({"ids": ids, "weights": checksum(trainer.model.named_parameters()),
               "buffers": checksum(trainer.model.named_buffers()), "world": state.num_processes,
               "steps": trainer.state.global_step}, handle)
finish_processes()
