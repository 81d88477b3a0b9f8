"""Training recipes from YAML: the teacher on MOS corpora, students by distillation. The scripts in
training_scripts/ are thin `accelerate launch` entry points over `run_recipe`.

A recipe (see training_scripts/configs/*.yaml) names:

    output_dir:      where checkpoints, the final model and report.json go
    model:           {kind: student, preset: tiny, ...config overrides}
                     or {kind: teacher, backbone: ID_OR_DIR, feature_layers: [..], layer_fusion: ..,
                         freeze_feature_encoder: true, lora: {rank: 8, alpha: 16} | null, ...head fields}
    teacher:         model name / folder / Hub id for online distillation (null: offline or human only)
    labelled:        labelled SPECs (MOS), mixed by their #weight= options
    unlabelled:      SPEC of pseudo-labelled data (teacher_mos column), or of clean speech when
                     degrade_unlabelled is true (degraded on the fly; needs an online teacher)
    labelled_ratio:  share of labelled examples in the training stream (the paper found ~0.2 best)
    eval:            labelled SPECs evaluated during and after training (per corpus)
    alpha, loss:     DistillationTrainer weighting and loss ("mse" | "l1")
    training:        transformers.TrainingArguments fields (max_steps, batch size, learning rate, bf16, ...)

Training data is one stream: examples {id, audio, mos, teacher_mos} with None where a value is missing,
split per process with `split_dataset_by_node`, each process reading its own part.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from datasets import Features, IterableDataset, List, Value, interleave_datasets
from peft import PeftModel
from transformers import TrainingArguments, set_seed

from ..data.degrade import DegradationPipeline, degraded_stream
from ..data.specs import resolve, resolve_many, shard_for_node
from ..evaluation import evaluate_models, write_report
from ..metrics import compute_metrics
from ..models import ConvTransformerForMOSRegression, XLSRForMOSRegression, student_config
from ..scoring import load_model
from .collator import MOSCollator
from .distillation import DistillationTrainer, last_complete_checkpoint
from .teacher import add_lora, merge_lora

TRAIN_FEATURES = Features({"id": Value("string"), "audio": List(Value("float32")), "mos": Value("float32"),
                           "teacher_mos": Value("float32")})


def load_recipe(path: str | os.PathLike, overrides: dict | None = None) -> dict:
    recipe = yaml.safe_load(Path(path).read_text())
    for dotted, value in (overrides or {}).items():  # "training.max_steps": 10
        node = recipe
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return recipe


def build_model(spec: dict):
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "student":
        return ConvTransformerForMOSRegression(student_config(spec.pop("preset", "distillmos-v7"), **spec))
    if kind == "teacher":
        lora = spec.pop("lora", None)
        freeze = spec.pop("freeze_feature_encoder", True)
        model = XLSRForMOSRegression.from_backbone(spec.pop("backbone"), **spec)
        if freeze:
            model.freeze_feature_encoder()
        return add_lora(model, **lora) if lora else model
    raise ValueError(f"model kind must be 'student' or 'teacher', got {kind!r}")


def _uniform(stream: IterableDataset) -> IterableDataset:
    """Any stream -> {id, audio, mos, teacher_mos} (None where the source has no such value)."""
    names = set(stream.features or {})

    def pick(example):
        return {
            "id": example["id"],
            "audio": example["audio"],
            "mos": example["mos"] if "mos" in names else None,
            "teacher_mos": example["teacher_mos"] if "teacher_mos" in names else None,
        }

    return stream.map(pick, remove_columns=list(names), features=TRAIN_FEATURES)


def build_train_stream(recipe: dict, rank: int = 0, world_size: int = 1, seed: int = 0) -> IterableDataset:
    """The recipe's training examples as one stream, the part of process `rank` of `world_size`."""
    parts, weights = [], []
    ratio = float(recipe.get("labelled_ratio", 1.0 if not recipe.get("unlabelled") else 0.2))
    if recipe.get("labelled"):
        parts.append(_uniform(resolve_many(recipe["labelled"], streaming=True, seed=seed)))
        weights.append(ratio)
    if recipe.get("unlabelled"):
        if recipe.get("degrade_unlabelled"):
            if not recipe.get("teacher"):
                raise ValueError("degrade_unlabelled needs an online teacher to label the degraded speech")
            stream = degraded_stream(recipe["unlabelled"], DegradationPipeline(recipe.get("catalogue"), seed=seed))
        else:
            stream = resolve(recipe["unlabelled"], streaming=True)
        parts.append(_uniform(stream))
        weights.append(1.0 - ratio if recipe.get("labelled") else 1.0)
    if not parts:
        raise ValueError("a recipe needs labelled and/or unlabelled data")
    mixed = parts[0] if len(parts) == 1 else interleave_datasets(
        parts, probabilities=[w / sum(weights) for w in weights], seed=seed, stopping_strategy="all_exhausted")
    return shard_for_node(mixed, rank, world_size) if world_size > 1 else mixed


def run_recipe(recipe: dict, resume: bool = False) -> tuple[dict, DistillationTrainer]:
    """Train, save the final model to output_dir/final (LoRA merged), evaluate it; returns the report
    (on the main process; empty elsewhere) and the trainer."""
    output = Path(recipe["output_dir"])
    train_args = {"output_dir": str(output), "report_to": [], "remove_unused_columns": False,
                  "save_strategy": "steps", "logging_steps": 10,
                  "accelerator_config": {"dispatch_batches": False, "split_batches": False},
                  **recipe.get("training", {})}
    if recipe.get("eval") and "eval_strategy" not in train_args:
        train_args["eval_strategy"] = "steps"
    args = TrainingArguments(**train_args)
    set_seed(args.seed)  # the model's random initialisation is part of the run: same recipe, same model
    model = build_model(recipe["model"])
    teacher = load_model(recipe["teacher"]) if recipe.get("teacher") else None
    is_lora = isinstance(model, PeftModel)
    window = (model.get_base_model() if is_lora else model).config.window_length
    train = build_train_stream(recipe, rank=args.process_index, world_size=args.world_size, seed=args.seed)
    evals = {Path(spec.split("#")[0]).name: resolve(spec) for spec in recipe.get("eval", [])}
    trainer = DistillationTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=evals or None,
        data_collator=MOSCollator(window_length=window, seed=args.seed), teacher=teacher,
        alpha=float(recipe.get("alpha", 0.5)), distillation_loss=recipe.get("loss", "mse"),
        compute_metrics=compute_metrics,
    )
    last = last_complete_checkpoint(output) if resume else None
    trainer.train(resume_from_checkpoint=last)
    final = merge_lora(model) if is_lora else model
    report = {}
    if trainer.is_world_process_zero():
        final.save_pretrained(output / "final")
        # the recipe travels with the model: model cards state the teacher, data and steps from it
        (output / "final" / "training_recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        if recipe.get("eval"):
            report, _ = evaluate_models([str(output / "final")], recipe["eval"], n_boot=200)
            write_report(report, output / "report.json")
    return report, trainer


def parse_overrides(items: list[str], parser) -> dict:
    """--set KEY=VALUE items -> {KEY: YAML-parsed VALUE}; a malformed item is a usage error."""
    overrides = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def recipe_main(kind: str, argv: list[str] | None = None) -> dict:
    """Command line of training_scripts/train_teacher.py and distill_student.py:
    --config RECIPE.yaml [--resume] [--set key.path=YAML_VALUE ...]."""
    import argparse

    from ..distributed import finish_processes

    parser = argparse.ArgumentParser(description=f"train a {kind} from a recipe (see hf_sqa.training.recipe)")
    parser.add_argument("--config", required=True, help="recipe YAML")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override recipe fields, e.g. training.max_steps=20 output_dir=runs/x")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.config, parse_overrides(args.set, parser))
    if recipe["model"]["kind"] != kind:
        parser.error(f"{args.config} trains a {recipe['model']['kind']}, this script trains a {kind}")
    report, _ = run_recipe(recipe, resume=args.resume)
    finish_processes()  # every rank waits for rank 0's save and evaluation, then the group ends here
    if report:
        print(json.dumps(report, indent=1))
    return report
