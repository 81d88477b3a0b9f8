"""Model cards for hf_sqa checkpoints: facts read from the checkpoint, an `hf-sqa evaluate` report as
`model-index` results and `.eval_results/` files, rendered with the templates in model_cards/.

What a card states comes from files, never from guesses:

    config.json            family, structure, `imported_from`, `pretrained_wav2vec2`
    model.safetensors      parameter count (and MACs per second of audio, from the structure)
    pruning_report.json    pruned checkpoints (`hf-sqa prune`): method, sizes, comparison to the unpruned model
    training_recipe.yaml   trained checkpoints (training.recipe): teacher, data, steps
    an evaluation report   `hf-sqa evaluate --output report.json`: per corpus PCC / SRCC / KTAU / RMSE
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, EvalResultEntry, ModelCard, ModelCardData, eval_result_entries_to_yaml

from ..evaluation import describe_reference

KINDS = ("teacher", "student", "pruned", "imported")
TASK_TYPE = "audio-classification"  # the Hub has no MOS-regression task; scores are audio-level outputs
TASK_NAME = "Speech quality assessment (MOS prediction)"
# report key -> (Hub metric type, display name)
METRICS = {"pcc": ("pearsonr", "PCC"), "srcc": ("spearmanr", "SRCC"), "ktau": ("kendalltau", "KTAU"),
           "rmse": ("rmse", "RMSE")}
IMPORTED = {
    "distillmos": dict(license="mit", title="Distill-MOS v7 (imported)",
                       origin="the released Distill-MOS v7 student (pip `distillmos`, MIT; Stahl & Gamper, "
                              "ICASSP 2025)"),
    "xls-r-sqa": dict(license="apache-2.0", title="XLS-R-SQA (imported)",
                      origin="an XLS-R-SQA head (lcn-kul/xls-r-analysis-sqa, MIT) on its XLS-R backbone "
                             "(Apache-2.0)"),
}


def card_template(kind: str) -> str:
    """The template of a card kind: model_cards/KIND.md of the repository, installed as the package data
    `hf_sqa.model_cards` (hf_sqa/model_cards is a link to it)."""
    from importlib.resources import files

    return files("hf_sqa.model_cards").joinpath(f"{kind}.md").read_text(encoding="utf-8")


class CardError(ValueError):
    """A card or its metadata that the Hub would reject or that misstates the checkpoint."""


@dataclass
class CheckpointFacts:
    kind: str
    model_type: str
    architecture: str
    parameters: int
    gmac_per_second: float
    license: str
    sampling_rate: int
    window_seconds: float
    window_hop_seconds: float
    base_model: str | None = None
    imported_from: str | None = None
    pruning: dict | None = None
    training: dict | None = None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def checkpoint_facts(checkpoint_dir: str | os.PathLike, kind: str | None = None, model=None) -> CheckpointFacts:
    """Everything a card states about the checkpoint in `checkpoint_dir` (see the module docstring);
    `model` is that checkpoint already loaded, if the caller has it."""
    from ..complexity import macs_per_second, parameter_count
    from ..scoring import load_model

    folder = Path(checkpoint_dir)
    if not (folder / "config.json").is_file():
        raise CardError(f"{folder}: not a checkpoint folder (no config.json)")
    model = model if model is not None else load_model(str(folder), device="cpu")
    config = model.config
    pruning = _read_json(folder / "pruning_report.json")
    recipe_file = folder / "training_recipe.yaml"
    training = yaml.safe_load(recipe_file.read_text()) if recipe_file.is_file() else None
    imported_from = getattr(config, "imported_from", None)
    detected = ("pruned" if pruning else "imported" if imported_from
                else "teacher" if config.model_type == "xlsr_mos" else "student")
    kind = kind or detected
    if kind not in KINDS:
        raise CardError(f"card kind must be one of {KINDS}, got {kind!r}")
    if kind == "pruned" and not pruning:
        raise CardError(f"{folder}: a pruned card needs the checkpoint's pruning_report.json (hf-sqa prune)")
    if kind == "imported" and imported_from not in IMPORTED:
        raise CardError(f"{folder}: an imported card needs config.imported_from in {sorted(IMPORTED)}")
    base_model = getattr(config, "pretrained_wav2vec2", None)
    if base_model is not None and Path(base_model).exists():
        base_model = None  # a local folder is not a Hub reference
    return CheckpointFacts(
        kind=kind, model_type=config.model_type, architecture=type(model).__name__,
        parameters=parameter_count(model), gmac_per_second=macs_per_second(model) / 1e9,
        license=_license(config, imported_from),
        sampling_rate=config.sampling_rate, window_seconds=config.window_length / config.sampling_rate,
        window_hop_seconds=config.window_max_hop / config.sampling_rate,
        base_model=base_model, imported_from=imported_from, pruning=pruning, training=training,
    )


def _license(config, imported_from: str | None) -> str:
    """Per checkpoint: an imported model keeps its source's licence (a pruned import too: its config keeps
    `imported_from`); anything on an XLS-R backbone is Apache-2.0; students are MIT like Distill-MOS and
    hf_sqa."""
    if imported_from in IMPORTED:
        return IMPORTED[imported_from]["license"]
    if config.model_type == "xlsr_mos":
        return "apache-2.0"
    return "mit"


def evaluation_rows(eval_report: dict | None, model_key: str | None = None) -> list[dict]:
    """One row per corpus from an `hf-sqa evaluate` report ({corpus: {model: metrics}}); `model_key`
    picks the model when the report has several."""
    if not eval_report:
        return []
    rows = []
    for corpus, by_model in eval_report.items():
        if not by_model:
            continue
        if model_key is None:
            if len(by_model) > 1:
                raise CardError(f"the report evaluates {sorted(by_model)} on {corpus}; say which model is this one")
            metrics = next(iter(by_model.values()))
        elif model_key in by_model:
            metrics = by_model[model_key]
        else:
            raise CardError(f"model {model_key!r} is not in the report for {corpus} (has {sorted(by_model)})")
        rows.append({"corpus": corpus, **metrics})
    return rows


def _model_index_results(rows: list[dict]) -> list[EvalResult]:
    results = []
    for row in rows:
        for key, (metric_type, metric_name) in METRICS.items():
            if row.get(key) is None:
                continue
            results.append(EvalResult(
                task_type=TASK_TYPE, task_name=TASK_NAME, dataset_type=row["corpus"], dataset_name=row["corpus"],
                dataset_split="test", metric_type=metric_type,
                metric_name=f"{metric_name} against {describe_reference(row.get('reference'))}",
                metric_value=round(float(row[key]), 4)))
    return results


def eval_results_files(rows: list[dict], dataset_ids: dict[str, str]) -> dict[str, str]:
    """`.eval_results/<corpus>.yaml` texts (the Hub's newer eval-results format) for the corpora that have a
    Hub dataset id in `dataset_ids`; one entry per metric, its task_id the metric's name."""
    files = {}
    for row in rows:
        dataset_id = dataset_ids.get(row["corpus"])
        if dataset_id is None:
            continue
        entries = [EvalResultEntry(dataset_id=dataset_id, task_id=key, value=round(float(row[key]), 4),
                                   notes=f"{METRICS[key][1]} against {describe_reference(row.get('reference'))}, "
                                         f"{row.get('n')} clips")
                   for key in METRICS if row.get(key) is not None]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", row["corpus"])
        files[f".eval_results/{name}.yaml"] = yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False)
    return files


def build_model_card(
    checkpoint_dir: str | os.PathLike,
    repo_id: str,
    eval_report: dict | str | os.PathLike | None = None,
    model_key: str | None = None,
    kind: str | None = None,
    language: list[str] | None = None,
    measure_speed: bool = False,
    model=None,
) -> ModelCard:
    """The model card of a checkpoint for the Hub repo `repo_id`, from the template of its kind.
    `measure_speed` times scoring on this machine's CPU (2 threads) and states it; `model` is the
    checkpoint already loaded, if the caller has it."""
    from ..scoring import load_model

    facts = checkpoint_facts(checkpoint_dir, kind, model=model)
    speed_x_realtime = None
    if measure_speed:
        timed = model if model is not None else load_model(str(checkpoint_dir), device="cpu")
        speed_x_realtime = _measured_speed(timed)
    if isinstance(eval_report, (str, os.PathLike)):
        eval_report = json.loads(Path(eval_report).read_text())
    rows = evaluation_rows(eval_report, model_key)
    tags = ["speech-quality-assessment", "mos-prediction", "audio", "hf_sqa", facts.kind]
    if facts.kind in ("student", "pruned") or facts.imported_from == "distillmos":
        tags.append("distillation" if facts.kind != "pruned" else "pruning")
    card_data = ModelCardData(
        language=language, license=facts.license, library_name="transformers", pipeline_tag=TASK_TYPE,
        tags=tags, base_model=facts.base_model, model_name=repo_id.split("/")[-1],
        eval_results=_model_index_results(rows) or None,
    )
    card = ModelCard.from_template(
        card_data, template_str=card_template(facts.kind), repo_id=repo_id, facts=facts,
        sections=card_sections(facts, rows, repo_id, speed_x_realtime, language),
        imported=IMPORTED.get(facts.imported_from or ""),
    )
    validate_card_metadata(card.data.to_dict())
    return card


def _measured_speed(model) -> float:
    import torch

    from ..complexity import realtime_factor

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return realtime_factor(model)
    finally:
        torch.set_num_threads(threads)


def card_sections(facts: CheckpointFacts, rows: list[dict], repo_id: str, speed_x_realtime: float | None,
                  language: list[str] | None = None) -> dict[str, str]:
    """The Markdown sections every template shares, from the checkpoint's facts."""
    details = [
        "## Model details", "",
        f"- Architecture: `{facts.architecture}` (`model_type: {facts.model_type}`)",
        f"- Parameters: {facts.parameters:,}",
        f"- Compute: {facts.gmac_per_second:.2f} GMAC per second of audio",
        f"- Input: mono audio at {facts.sampling_rate} Hz; clips are scored in {facts.window_seconds:.2f} s "
        f"windows ({facts.window_hop_seconds:g} s hop at most) whose scores are averaged",
    ]
    if speed_x_realtime:
        details.append(f"- Measured speed: {speed_x_realtime:.0f}x real time (CPU, 2 threads, batch 8, 10 s clips)")
    if facts.base_model:
        details.append(f"- Base model: [{facts.base_model}](https://huggingface.co/{facts.base_model})")

    training = ["Not recorded with this checkpoint (no training_recipe.yaml)."]
    if facts.training and "distinct_clips" in facts.training:  # a fast student (training.fast_student)
        stages = [facts.training]  # this run, then the run it started from (init_recipe), ...
        while isinstance(stages[-1].get("init_recipe"), dict):
            stages.append(stages[-1]["init_recipe"])
        training = [f"- Teacher: `{stages[0]['teacher']}` (its clip and per-window scores of degraded speech, "
                    "labelled offline)"]
        for number, recipe in enumerate(reversed(stages), 1):
            prefix = f"- Stage {number}: " if len(stages) > 1 else "- "
            training += [
                f"{prefix}method {recipe.get('method', 'n/a')}; initialised from {recipe['init']}; data "
                f"`{recipe['train_data']}` — {recipe['distinct_clips']:,} distinct clips, "
                f"{recipe['distinct_audio_hours']:.1f} h; {recipe['audio_hours_seen']:.1f} h of audio seen; "
                f"{recipe['steps']} steps, batch {recipe['batch_size']}, learning rate {recipe['learning_rate']}, "
                f"dense window-target weight {recipe['dense_weight']}, CPU-hours {recipe.get('cpu_hours')}",
            ]
        if len(stages) > 1:
            training.append(f"- In all: {sum(r['steps'] for r in stages)} steps, "
                            f"{sum(r['audio_hours_seen'] for r in stages):.1f} h of audio seen, "
                            f"{sum(r.get('cpu_hours') or 0 for r in stages):.2f} CPU-hours")
        pcc = stages[0].get("heldout_pcc")
        training.append(f"- Agreement with the teacher on held-out speakers (PCC, last evaluation of training): "
                        f"{'n/a' if pcc is None else f'{pcc:.3f}'}")
    elif facts.training:
        recipe = facts.training
        data = [*recipe.get("labelled", []), *([recipe["unlabelled"]] if recipe.get("unlabelled") else [])]
        settings = recipe.get("training", {})
        training = [
            f"- Teacher: `{recipe.get('teacher') or 'none (offline labels or human MOS only)'}`",
            f"- Data (SPECs): {', '.join(f'`{d}`' for d in data) or 'not recorded'}"
            + (" (degraded on the fly)" if recipe.get("degrade_unlabelled") else ""),
            f"- Teacher / human weighting alpha = {recipe.get('alpha', 0.5)}, loss {recipe.get('loss', 'mse')}",
            f"- Steps: {settings.get('max_steps', 'n/a')}, batch {settings.get('per_device_train_batch_size', 'n/a')}, "
            f"learning rate {settings.get('learning_rate', 'n/a')}",
        ]

    evaluation = ["## Evaluation", "", "No evaluation report was given for this card."]
    if rows:
        evaluation = ["## Evaluation", "",
                      "Against each corpus's reference MOS (`hf-sqa evaluate`; 95 % bootstrap CI of the PCC): "
                      "human ratings, or the scores of the teacher that labelled the corpus (a student's held-out "
                      "speakers); a pooled row pools corpora of one reference:", "",
                      "| corpus | reference | clips | PCC (95 % CI) | SRCC | KTAU | RMSE | system PCC |",
                      "|---|---|---:|---|---:|---:|---:|---:|"]
        for row in rows:
            ci = f" ({row['pcc_ci_low']:.3f}–{row['pcc_ci_high']:.3f})" if row.get("pcc_ci_low") is not None else ""
            system = f"{row['system_pcc']:.3f}" if row.get("system_pcc") is not None else "–"
            evaluation.append(f"| {row['corpus']} | {describe_reference(row.get('reference'))} | {row.get('n', '')} | "
                              f"{row['pcc']:.3f}{ci} | {row['srcc']:.3f} | {row['ktau']:.3f} | {row['rmse']:.3f} | "
                              f"{system} |")

    pruning = []
    if facts.pruning:
        report = facts.pruning
        before, after = report["before"], report["after"]
        settings = report.get("settings", {})
        comparison = report.get("evaluation", {}).get("pruned_vs_unpruned", {})
        pruning = [
            f"- Unpruned model: `{report['model']}`, {before['parameters']:,} parameters, "
            f"{before['macs_per_second'] / 1e9:.2f} GMAC/s",
            f"- Pruned: {after['parameters']:,} parameters ({report['parameter_ratio']:.1%}), "
            f"{after['macs_per_second'] / 1e9:.2f} GMAC/s ({report['mac_ratio']:.1%})",
            f"- Method: {settings.get('method', 'n/a')} importance on `{report.get('calibration')}`, "
            f"{settings.get('steps', 'n/a')} steps, {settings.get('finetune_steps', 0)} distillation fine-tuning steps each"
            + (f", then {settings['final_finetune_steps']} on the final structure"
               + (f" at learning rate {settings['final_learning_rate']:g}" if settings.get("final_learning_rate") else "")
               if settings.get("final_finetune_steps") else "")
            + (f" (score and head hidden states, frame weight {settings['frame_weight']:g})"
               if settings.get("frame_weight") and (settings.get("finetune_steps")
                                                    or settings.get("final_finetune_steps")) else ""),
            f"- Units removed: {sum(len(r['removed_units']) for r in report.get('removed', {}).values()):,} in "
            f"{len(report.get('removed', {}))} groups (per layer in pruning_report.json)",
        ]
        if comparison:
            pruning.append(f"- Agreement with the unpruned model on `{report['evaluation']['data']}` "
                           f"({report['evaluation']['clips']} clips): PCC {comparison['pcc']:.3f}"
                           + (f" (95 % CI {comparison['pcc_ci_low']:.3f}–{comparison['pcc_ci_high']:.3f})"
                              if "pcc_ci_low" in comparison else "")  # reports before the CIs have none
                           + f", SRCC {comparison['srcc']:.3f}, RMSE {comparison['rmse']:.3f}")

    usage = "\n".join([
        "## How to use", "",
        "With hf_sqa (`pip install hf-sqa`), any format, rate and channel count:", "",
        "```python", "import hf_sqa", "",
        f'model = hf_sqa.load_model("{repo_id}")',
        'for result in hf_sqa.iter_scores(["speech.wav"], model):',
        "    print(result.mos, [(s.start, s.end, s.mos) for s in result.segments])", "```", "",
        "Without hf_sqa (the modelling code ships with the checkpoint), 16 kHz mono float input:", "",
        "```python", "import soundfile, torch", "from transformers import AutoModel", "",
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True).eval()',
        'audio, rate = soundfile.read("speech_16k_mono.wav", dtype="float32")',
        "with torch.no_grad():",
        "    print(model(torch.from_numpy(audio)[None]).mos.item())", "```",
    ])
    languages = (f"its training speech was in: {', '.join(language)}" if language
                 else "the languages of its training speech were not recorded with it")
    limitations = (f"Expects speech at {facts.sampling_rate // 1000} kHz (hf_sqa resamples other rates; "
                   f"content above {facts.sampling_rate // 2000} kHz is not seen); {languages}; scores are "
                   "estimates of perceived quality, not a replacement for a listening test.")
    return {"details": "\n".join(details), "training": "\n".join(training), "evaluation": "\n".join(evaluation),
            "pruning": "\n".join(pruning), "usage": usage, "limitations": limitations}


# --- local checks of the metadata the Hub validates (it is unreachable from here) ---------------------
HUB_LICENSES = {
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "epl-1.0", "epl-2.0", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "mpl-2.0",
    "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "unlicense", "wtfpl", "zlib", "other",
}
HUB_PIPELINE_TAGS = {
    "audio-classification", "automatic-speech-recognition", "audio-to-audio", "text-to-speech",
    "voice-activity-detection", "feature-extraction", "text-to-audio", "audio-text-to-text",
}
CARD_KEYS = {
    "language": (str, list), "license": (str,), "license_name": (str,), "license_link": (str,),
    "library_name": (str,), "tags": (list,), "datasets": (list,), "metrics": (list,), "base_model": (str, list),
    "base_model_relation": (str,), "pipeline_tag": (str,), "model-index": (list,), "model_name": (str,),
    "inference": (bool, dict), "widget": (list,), "thumbnail": (str,), "new_version": (str,),
}


def validate_card_metadata(metadata: dict) -> None:
    """Raise CardError listing every problem the Hub's model-card metadata rules would flag."""
    problems = []
    for key, value in metadata.items():
        if key not in CARD_KEYS:
            problems.append(f"unknown metadata key {key!r}")
        elif not isinstance(value, CARD_KEYS[key]):
            problems.append(f"{key} must be {' or '.join(t.__name__ for t in CARD_KEYS[key])}, got {type(value).__name__}")
    if metadata.get("license") not in HUB_LICENSES | {None}:
        problems.append(f"license {metadata['license']!r} is not a Hub licence identifier")
    if metadata.get("license") == "other" and not metadata.get("license_name"):
        problems.append("license 'other' needs license_name")
    if metadata.get("pipeline_tag") not in HUB_PIPELINE_TAGS | {None}:
        problems.append(f"pipeline_tag {metadata['pipeline_tag']!r} is not an audio task the Hub knows")
    for key in ("tags", "datasets", "metrics", "language"):
        value = metadata.get(key)
        if isinstance(value, list) and not all(isinstance(item, str) and item for item in value):
            problems.append(f"{key} must hold non-empty strings")
    for language in ([metadata["language"]] if isinstance(metadata.get("language"), str) else metadata.get("language") or []):
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)?", str(language)):
            problems.append(f"language {language!r} is not an ISO 639 code")
    for entry in metadata.get("model-index") or []:
        if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("results"), list):
            problems.append("model-index entries need a name and a results list")
            continue
        for result in entry["results"]:
            if not isinstance(result.get("task"), dict) or "type" not in result["task"]:
                problems.append("every model-index result needs task.type")
            if not isinstance(result.get("dataset"), dict) or not {"type", "name"} <= set(result["dataset"]):
                problems.append("every model-index result needs dataset.type and dataset.name")
            for metric in result.get("metrics") or []:
                if not {"type", "value"} <= set(metric):
                    problems.append("every model-index metric needs type and value")
                elif not isinstance(metric["value"], (int, float)):
                    problems.append(f"metric {metric['type']} value must be a number")
            if not result.get("metrics"):
                problems.append("every model-index result needs metrics")
    if problems:
        raise CardError("model card metadata: " + "; ".join(problems))
