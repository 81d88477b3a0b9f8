"""Model cards for each kind of checkpoint, from real `hf-sqa evaluate` reports; metadata rules."""

import json
import re

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from hf_sqa.evaluation import evaluate_models
from hf_sqa.hub import CardError, build_model_card, eval_results_files, validate_card_metadata
from hf_sqa.hub.cards import evaluation_rows
from hf_sqa.models import XLSRForMOSRegression
from hf_sqa.pruning import prune_checkpoint
from hf_sqa.testing import tiny_xlsr_config, write_noisy_mos_folder


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """A labelled MOS folder (labels.csv) of 10 noisy clips in two conditions."""
    return write_noisy_mos_folder(tmp_path_factory.mktemp("corpus") / "noisy_corpus", 10, seconds=2.5, seed=4)


def report_for(checkpoint, labelled_folder, tmp_path):
    report, _ = evaluate_models([str(checkpoint)], [str(labelled_folder)], n_boot=50)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return report, path


def student_with_recipe(tiny_checkpoint, tmp_path):
    folder = tmp_path / "student"
    from hf_sqa import load_model

    load_model(str(tiny_checkpoint)).save_pretrained(folder)
    recipe = {"output_dir": "runs/x", "model": {"kind": "student", "preset": "tiny"}, "teacher": "distillmos",
              "unlabelled": "data/clean_speech", "degrade_unlabelled": True, "alpha": 0.5,
              "training": {"max_steps": 600, "per_device_train_batch_size": 16, "learning_rate": 0.002}}
    (folder / "training_recipe.yaml").write_text(yaml.safe_dump(recipe))
    return folder


def check_card(card: ModelCard, report: dict, model_key: str, license: str, kind: str):
    metadata = card.data.to_dict()
    validate_card_metadata(metadata)
    assert metadata["license"] == license
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "audio-classification"
    assert kind in metadata["tags"] and "speech-quality-assessment" in metadata["tags"]
    (entry,) = metadata["model-index"]
    results = {(r["dataset"]["name"], m["type"]): m["value"] for r in entry["results"] for m in r["metrics"]}
    metrics = report["noisy_corpus"][model_key]
    assert results[("noisy_corpus", "pearsonr")] == round(metrics["pcc"], 4)
    assert results[("noisy_corpus", "spearmanr")] == round(metrics["srcc"], 4)
    assert results[("noisy_corpus", "kendalltau")] == round(metrics["ktau"], 4)
    assert results[("noisy_corpus", "rmse")] == round(metrics["rmse"], 4)
    text = card.text
    assert f"| noisy_corpus | human MOS | 10 | {metrics['pcc']:.3f}" in text
    assert 'AutoModel.from_pretrained("me/model", trust_remote_code=True)' in text
    assert "16 kHz" in text and "Intended use" in text
    assert "{{" not in text and "{%" not in text  # fully rendered
    return metadata, text


def test_student_card(tiny_checkpoint, labelled_folder, tmp_path):
    folder = student_with_recipe(tiny_checkpoint, tmp_path)
    report, path = report_for(folder, labelled_folder, tmp_path)
    card = build_model_card(folder, "me/model", eval_report=path, language=["en"], measure_speed=True)
    metadata, text = check_card(card, report, str(folder), "mit", "student")
    assert re.search(r"Measured speed: \d+x real time", text)
    assert "its training speech was in: en" in text
    assert metadata["language"] == ["en"] and "distillation" in metadata["tags"]
    assert "distilled speech quality student" in text
    assert "- Teacher: `distillmos`" in text and "(degraded on the fly)" in text and "Steps: 600" in text
    assert f"Parameters: {sum(p.numel() for p in __import__('hf_sqa').load_model(str(folder)).parameters()):,}" in text
    assert "TTS" in text  # the known weakness of distilled students


def test_teacher_card(labelled_folder, tmp_path):
    torch.manual_seed(0)
    config = tiny_xlsr_config(pretrained_wav2vec2="facebook/wav2vec2-xls-r-300m")
    folder = tmp_path / "teacher"
    XLSRForMOSRegression(config).save_pretrained(folder)
    report, path = report_for(folder, labelled_folder, tmp_path)
    card = build_model_card(folder, "me/model", eval_report=path)
    metadata, text = check_card(card, report, str(folder), "apache-2.0", "teacher")
    assert metadata["base_model"] == "facebook/wav2vec2-xls-r-300m"
    assert "XLS-R speech quality teacher" in text and "Apache-2.0" in text
    assert "Not recorded with this checkpoint" in text  # no recipe: said, not invented


def test_pruned_card(tiny_checkpoint, labelled_folder, tmp_path):
    folder = tmp_path / "pruned"
    prune_checkpoint(str(tiny_checkpoint), str(labelled_folder), folder, target_ratio=0.6, steps=1, batch_size=4,
                     finetune_steps=2, final_finetune_steps=1, final_learning_rate=5e-5)
    report, path = report_for(folder, labelled_folder, tmp_path)
    card = build_model_card(folder, "me/model", eval_report=path)
    metadata, text = check_card(card, report, str(folder), "mit", "pruned")
    pruning = json.loads((folder / "pruning_report.json").read_text())
    assert "pruning" in metadata["tags"]
    assert f"Pruned: {pruning['after']['parameters']:,} parameters ({pruning['parameter_ratio']:.1%})" in text
    assert f"Unpruned model: `{tiny_checkpoint}`" in text
    comparison = pruning["evaluation"]["pruned_vs_unpruned"]
    assert (f"clips): PCC {comparison['pcc']:.3f} (95 % CI {comparison['pcc_ci_low']:.3f}–"
            f"{comparison['pcc_ci_high']:.3f}), SRCC") in text
    assert ("2 distillation fine-tuning steps each, then 1 on the final structure at learning rate 5e-05 (score and "
            "head hidden states, frame weight 1)") in text


def test_imported_card(distillmos_dir, labelled_folder, tmp_path):
    report, path = report_for(distillmos_dir, labelled_folder, tmp_path)
    card = build_model_card(distillmos_dir, "me/model", eval_report=path)
    metadata, text = check_card(card, report, str(distillmos_dir), "mit", "imported")
    assert "Distill-MOS v7 (imported)" in text and "Parameters: 4,133,226" in text


def test_eval_results_files_for_hub_benchmarks(tiny_checkpoint, labelled_folder, tmp_path):
    report, _ = report_for(tiny_checkpoint, labelled_folder, tmp_path)
    rows = evaluation_rows(report)
    files = eval_results_files(rows, {"noisy_corpus": "someone/noisy-benchmark"})
    entries = yaml.safe_load(files[".eval_results/noisy_corpus.yaml"])
    assert {e["dataset"]["task_id"] for e in entries} == {"pcc", "srcc", "ktau", "rmse"}
    assert all(e["dataset"]["id"] == "someone/noisy-benchmark" for e in entries)
    pcc = next(e for e in entries if e["dataset"]["task_id"] == "pcc")
    assert pcc["value"] == round(report["noisy_corpus"][str(tiny_checkpoint)]["pcc"], 4)
    assert pcc["notes"] == "PCC against human MOS, 10 clips"
    assert eval_results_files(rows, {}) == {}  # no Hub benchmark id: no file (nothing invented)
    # a corpus scored against a teacher's labels says so, and one from an older report says it is unknown
    teacher_row = {**rows[0], "corpus": "held_out", "reference": "teacher:distillmos"}
    old_row = {key: value for key, value in rows[0].items() if key != "reference"} | {"corpus": "old"}
    files = eval_results_files([teacher_row, old_row], {"held_out": "a/b", "old": "c/d"})
    notes = {name: yaml.safe_load(text)[0]["notes"] for name, text in files.items()}
    assert notes == {".eval_results/held_out.yaml": "PCC against teacher's MOS (distillmos), 10 clips",
                     ".eval_results/old.yaml": "PCC against the corpus's MOS (source not recorded), 10 clips"}


def test_report_with_several_models_needs_a_model_key(tiny_checkpoint, labelled_folder, distillmos_dir):
    report, _ = evaluate_models([str(tiny_checkpoint), str(distillmos_dir)], [str(labelled_folder)], n_boot=20)
    with pytest.raises(CardError, match="say which model"):
        evaluation_rows(report)
    assert evaluation_rows(report, str(distillmos_dir))[0]["pcc"] == report["noisy_corpus"][str(distillmos_dir)]["pcc"]
    with pytest.raises(CardError, match="is not in the report"):
        evaluation_rows(report, "other")


@pytest.mark.parametrize("metadata,problem", [
    ({"licence": "mit"}, "unknown metadata key 'licence'"),
    ({"license": "MIT-ish"}, "not a Hub licence identifier"),
    ({"license": "other"}, "needs license_name"),
    ({"pipeline_tag": "speech-quality"}, "not an audio task"),
    ({"tags": "mos"}, "tags must be list"),
    ({"language": ["english"]}, "not an ISO 639 code"),
    ({"model-index": [{"name": "m", "results": [{"task": {"type": "audio-classification"},
                                                  "dataset": {"name": "x", "type": "x"},
                                                  "metrics": [{"type": "pearsonr", "value": "high"}]}]}]},
     "value must be a number"),
    ({"model-index": [{"name": "m", "results": [{"task": {}, "dataset": {"name": "x"}, "metrics": []}]}]},
     "needs task.type"),
])
def test_metadata_rules(metadata, problem):
    with pytest.raises(CardError, match=problem):
        validate_card_metadata(metadata)


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(CardError, match="not a checkpoint folder"):
        build_model_card(tmp_path, "me/model")
