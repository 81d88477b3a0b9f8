import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hf_sqa.testing import synthetic_speech, write_clip

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_data")
    labelled = root / "labelled"
    rows = ["path,mos,condition"]
    for i in range(12):
        write_clip(labelled / f"{i}.wav", synthetic_speech(1.5, seed=i, noise_db=3 * (i % 6)))
        rows.append(f"{i}.wav,{1 + (i % 6) * 0.7:.1f},c{i % 4}")
    (labelled / "labels.csv").write_text("\n".join(rows) + "\n")
    clean = root / "clean"
    for i in range(6):
        write_clip(clean / f"{i}.wav", synthetic_speech(2.0, seed=100 + i))
    return labelled, clean


def _recipe(tmp_path, teacher, labelled, clean, **training):
    recipe = {
        "output_dir": str(tmp_path / "run"),
        "model": {"kind": "student", "preset": "tiny"},
        "teacher": str(teacher),
        "labelled": [str(labelled)],
        "unlabelled": str(clean),
        "degrade_unlabelled": True,
        "labelled_ratio": 0.3,
        "alpha": 0.5,
        "training": {"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "save_steps": 2,
                     "logging_steps": 1, "use_cpu": True, "seed": 0, "optim": "adamw_torch", **training},
    }
    path = tmp_path / "recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    return path


def _script(name):
    return [sys.executable, str(HERE.parents[1] / "training_scripts" / name)]


def test_recipe_trains_evaluates_and_logs_both_terms(tiny_checkpoint, corpora, tmp_path):
    from hf_sqa.training.recipe import load_recipe, run_recipe

    labelled, clean = corpora
    recipe = load_recipe(_recipe(tmp_path, tiny_checkpoint, labelled, clean), {"eval": [str(labelled)],
                                                                               "training.eval_steps": 3})
    report, trainer = run_recipe(recipe)
    run = Path(recipe["output_dir"])
    assert (run / "final" / "model.safetensors").is_file() and (run / "report.json").is_file()
    assert report["labelled"][str(run / "final")]["n"] == 12
    assert yaml.safe_load((run / "final" / "training_recipe.yaml").read_text()) == recipe  # for model cards
    logs = trainer.state.log_history
    assert any("loss_teacher" in entry and "loss_human" in entry for entry in logs)
    assert any("eval_labelled_pcc" in entry for entry in logs)


def test_killed_training_resumes_close_to_an_uninterrupted_run(tiny_checkpoint, corpora, tmp_path):
    labelled, clean = corpora
    # SGD: Adam's step is ~lr whatever the gradient, so float noise in near-zero gradients flips whole
    # steps; with SGD a resumed run can be compared to an uninterrupted one parameter by parameter
    straight = _recipe(tmp_path / "a", tiny_checkpoint, labelled, clean, optim="sgd", learning_rate=0.05)
    done = subprocess.run(_script("distill_student.py") + ["--config", str(straight)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    interrupted = _recipe(tmp_path / "b", tiny_checkpoint, labelled, clean, optim="sgd", learning_rate=0.05)
    run = tmp_path / "b" / "run"
    first = subprocess.Popen(_script("distill_student.py") + ["--config", str(interrupted)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (run / "checkpoint-2" / "trainer_state.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (run / "final").exists(), "the kill came after the run had finished"
    resumed = subprocess.run(_script("distill_student.py") + ["--config", str(interrupted), "--resume"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    a = load_file(str(tmp_path / "a" / "run" / "final" / "model.safetensors"))
    b = load_file(str(run / "final" / "model.safetensors"))
    start = load_file(str(tmp_path / "a" / "run" / "checkpoint-2" / "model.safetensors"))
    moved = max(float((a[n].float() - start[n].float()).abs().max()) for n in a)
    assert moved > 1e-3  # training changed the weights after the checkpoint...
    for name in a:  # ...and the resumed run changed them the same way
        assert torch.allclose(a[name].float(), b[name].float(), atol=1e-5), name


def test_two_process_cpu_ddp(tiny_checkpoint, corpora, tmp_path):
    labelled, clean = corpora
    recipe = _recipe(tmp_path, tiny_checkpoint, labelled, clean, max_steps=3, save_steps=3)
    launcher = Path(sys.executable).with_name("accelerate")
    run = subprocess.run(
        [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(HERE / "ddp_harness.py"), str(recipe),
         str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "ACCELERATE_USE_CPU": "1"},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2 and ranks[0]["steps"] == ranks[1]["steps"] == 3
    assert not set(ranks[0]["ids"]) & set(ranks[1]["ids"])  # different data per rank
    assert ranks[0]["weights"] == ranks[1]["weights"]  # identical weights after training


def test_shipped_cpu_recipe_runs(corpora, tmp_path):
    """training_scripts/configs/distill_cpu_small.yaml as shipped (online Distill-MOS teacher, degradation
    on the fly), shortened to 3 steps and pointed at synthetic clean speech."""
    labelled, clean = corpora
    config = HERE.parents[1] / "training_scripts" / "configs" / "distill_cpu_small.yaml"
    run = subprocess.run(
        _script("distill_student.py") + ["--config", str(config), "--set", f"output_dir={tmp_path / 'run'}",
                                         f"unlabelled={clean}", f"eval=[{labelled}]", "training.max_steps=3",
                                         "training.save_steps=3"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["labelled"][str(tmp_path / "run" / "final")]["n"] == 12
    with pytest.raises(subprocess.CalledProcessError):  # a teacher recipe is refused by the student script
        subprocess.run(_script("distill_student.py") + ["--config", str(config.with_name("teacher_xlsr300m.yaml"))],
                       check=True, capture_output=True, timeout=120)


def test_teacher_recipe_with_lora_trains_and_saves_a_plain_checkpoint(corpora, tmp_path):
    from transformers import AutoModel, Wav2Vec2Config, Wav2Vec2Model

    from hf_sqa.models import XLSRForMOSRegression
    from hf_sqa.testing import tiny_wav2vec2_config
    from hf_sqa.training.recipe import load_recipe, run_recipe

    labelled, _ = corpora
    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(**tiny_wav2vec2_config())).save_pretrained(tmp_path / "backbone")
    recipe = {
        "output_dir": str(tmp_path / "run"),
        "model": {"kind": "teacher", "backbone": str(tmp_path / "backbone"), "feature_layers": [1, 3],
                  "layer_fusion": "fusion", "head_hidden_size": 8, "head_num_heads": 2, "head_num_layers": 1,
                  "head_ffn_size": 16, "lora": {"rank": 2, "alpha": 4}},
        "labelled": [str(labelled)], "eval": [str(labelled)], "loss": "l1",
        "training": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "save_steps": 2,
                     "eval_steps": 2, "use_cpu": True, "seed": 0},
    }
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump(recipe))
    report, trainer = run_recipe(load_recipe(tmp_path / "teacher.yaml"))
    final = AutoModel.from_pretrained(tmp_path / "run" / "final")
    assert isinstance(final, XLSRForMOSRegression) and final.config.feature_layers == [1, 3]
    assert not any("lora" in name for name in final.state_dict())
    assert any("eval_labelled_pcc" in entry for entry in trainer.state.log_history)
    assert report["labelled"][str(tmp_path / "run" / "final")]["n"] == 12
