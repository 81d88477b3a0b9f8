"""`hf-sqa push`: a checkpoint with its flat remote-code files, model card and evaluation results to a Hub
model repo, or (`--dry-run`) exactly those files to a folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

from .cards import build_model_card, eval_results_files, evaluation_rows

# files next to the weights that describe the checkpoint and travel with it
SIDECAR_FILES = ("pruning_report.json", "training_recipe.yaml", "LICENSE")  # LICENSE: imported weights' own


def stage_checkpoint(
    model_dir: str | os.PathLike,
    repo_id: str,
    staging_dir: str | os.PathLike,
    eval_report: str | os.PathLike | None = None,
    model_key: str | None = None,
    kind: str | None = None,
    language: list[str] | None = None,
    dataset_ids: dict[str, str] | None = None,
    measure_speed: bool = False,
) -> list[str]:
    """Write everything `push` uploads into `staging_dir`; returns the relative paths, sorted.

    The model is loaded and saved again, so the folder holds safetensors weights, a config with the
    Auto-class map and the current flat modelling files (loadable with trust_remote_code, without hf_sqa).
    """
    from ..scoring import load_model

    source, staging = Path(model_dir), Path(staging_dir)
    staging.mkdir(parents=True, exist_ok=True)
    model = load_model(str(source), device="cpu")
    model.save_pretrained(staging, safe_serialization=True)
    for name in SIDECAR_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    report = json.loads(Path(eval_report).read_text()) if eval_report else None
    if report is not None:
        (staging / "eval_report.json").write_text(json.dumps(report, indent=2))
    card = build_model_card(source, repo_id, eval_report=report, model_key=model_key, kind=kind, language=language,
                            measure_speed=measure_speed, model=model)
    card.save(staging / "README.md")
    for relative, text in eval_results_files(evaluation_rows(report, model_key), dataset_ids or {}).items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_text(text)
    return sorted(str(path.relative_to(staging)) for path in staging.rglob("*") if path.is_file())


def push_checkpoint(
    model_dir,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    token: str | None = None,
    **card_options,
) -> dict:
    """Upload a checkpoint folder (or a model object) to the Hub repo `repo_id` (created if needed;
    `revision` a branch, created if needed), or with `dry_run_dir` write the same files there and upload
    nothing. Returns {"files": [...], "folder": ...} for a dry run, {"files": [...], "commit_url": ...}.

    Unlike transformers' `model.push_to_hub` (weights, config and the flat code), this adds the model
    card and the evaluation results."""
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ValueError(f"repo id {repo_id!r} is not of the form owner/name")
    if not isinstance(model_dir, (str, os.PathLike)):  # a model object: push what it saves
        with tempfile.TemporaryDirectory(prefix="hf-sqa-model-") as saved:
            model_dir.save_pretrained(saved)
            return push_checkpoint(saved, repo_id, private=private, revision=revision, dry_run_dir=dry_run_dir,
                                   token=token, **card_options)
    if dry_run_dir is not None:
        target = Path(dry_run_dir)
        if target.exists() and any(target.iterdir()):
            raise FileExistsError(f"{target}: the dry-run folder must be new or empty")
        files = stage_checkpoint(model_dir, repo_id, target, **card_options)
        return {"files": files, "folder": str(target)}
    with tempfile.TemporaryDirectory(prefix="hf-sqa-push-") as staging:
        files = stage_checkpoint(model_dir, repo_id, staging, **card_options)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        commit = api.upload_folder(repo_id=repo_id, folder_path=staging, revision=revision, repo_type="model",
                                   commit_message=f"hf-sqa push of {Path(model_dir).name}")
        return {"files": files, "commit_url": str(getattr(commit, "commit_url", commit))}
