"""The pruning schedule, `hf-sqa prune`, its report, targets, and resuming a killed run."""

import json

import numpy as np
import pytest
import torch

from hf_sqa.cli import main
from hf_sqa.complexity import parameter_count
from hf_sqa.models import ConvTransformerForMOSRegression, XLSRForMOSRegression
from hf_sqa.pruning import PruningError, PruningSettings, prune, resolve_target, step_targets, structure_of
from hf_sqa.pruning import schedule as schedule_module
from hf_sqa.testing import synthetic_speech, tiny_student_config, tiny_xlsr_config, write_noisy_mos_folder


@pytest.fixture
def calib_folder(tmp_path):
    """A labelled MOS folder: 12 clips of 2-3 s at -5..30 dB SNR."""
    return write_noisy_mos_folder(tmp_path / "calib", 12)


@pytest.fixture
def student():
    torch.manual_seed(0)
    return ConvTransformerForMOSRegression(tiny_student_config(head_num_layers=2)).eval()


def test_targets_are_checked(student):
    total = parameter_count(student)
    assert resolve_target(student, target_ratio=0.5) == round(0.5 * total)
    assert resolve_target(student, target_params=total - 1) == total - 1
    for ratio in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(PruningError, match="strictly between 0 and 1"):
            resolve_target(student, target_ratio=ratio)
    with pytest.raises(PruningError, match="must be positive"):
        resolve_target(student, target_params=0)
    with pytest.raises(PruningError, match=f"not below the model's {total:,}"):
        resolve_target(student, target_params=total + 10)
    with pytest.raises(PruningError, match="below the smallest structure"):
        resolve_target(student, target_params=50)
    with pytest.raises(PruningError, match="exactly one"):
        resolve_target(student)
    with pytest.raises(PruningError, match="exactly one"):
        resolve_target(student, target_params=100, target_ratio=0.5)


def test_step_targets_are_geometric_and_end_on_the_target():
    assert step_targets(1000, 125, 3) == [500, 250, 125]
    assert step_targets(1000, 300, 1) == [300]
    with pytest.raises(PruningError, match="at least one step"):
        step_targets(1000, 300, 0)


def test_prune_command_writes_a_loadable_checkpoint_and_a_report(tiny_checkpoint, calib_folder, tmp_path, capsys):
    out = tmp_path / "pruned"
    code = main(["prune", "--model", str(tiny_checkpoint), "--calib", str(calib_folder), "--output", str(out),
                 "--target-ratio", "0.6", "--steps", "2", "--finetune-steps", "2", "--batch-size", "4",
                 "--final-finetune-steps", "1", "--final-learning-rate", "2e-4", "--eval-every", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    # no --eval-data: a quarter of the 12 clips is held out from calibration and fine-tuning and evaluated on
    assert "pruned vs. unpruned on 3 clips" in printed
    # the agreement along every fine-tuning, on the same held-out clips
    assert "step 1: PCC with the unpruned model along the fine-tuning: " in printed
    assert "final fine-tuning: PCC with the unpruned model along the fine-tuning: " in printed
    report = json.loads((out / "pruning_report.json").read_text())
    assert not (out / "work").exists()  # the resumable step folders are gone once the run is complete
    pruned = ConvTransformerForMOSRegression.from_pretrained(out)
    original = ConvTransformerForMOSRegression.from_pretrained(tiny_checkpoint)
    assert report["before"]["parameters"] == parameter_count(original)
    assert report["after"]["parameters"] == parameter_count(pruned) <= report["target_params"]
    assert report["target_params"] == round(0.6 * parameter_count(original))
    assert report["after"]["structure"] == structure_of(pruned).sizes()
    assert 0 < report["after"]["macs_per_second"] < report["before"]["macs_per_second"]
    assert report["removed"]  # per layer: sizes and which original units went
    for name, entry in report["removed"].items():
        assert entry["before"] - entry["after"] == len(entry["removed_units"])
        assert entry["after"] == report["after"]["structure"].get(name, 0)
    assert [s["step"] for s in report["steps"]] == [0, 1]
    assert all(np.isfinite(s["finetune_loss"]) for s in report["steps"])
    assert [[point["step"] for point in s["finetune_curve"]] for s in report["steps"]] == [[0, 1, 2]] * 2
    assert report["final_finetune"]["steps"] == 1 and report["final_finetune"]["learning_rate"] == 2e-4
    assert [point["step"] for point in report["final_finetune"]["finetune_curve"]] == [0, 1]
    evaluation = report["evaluation"]
    assert evaluation["clips"] == 3 and not report["evaluated_on_training_data"]
    assert set(evaluation) >= {"pruned_vs_unpruned", "pruned_vs_human", "unpruned_vs_human"}
    comparison = evaluation["pruned_vs_unpruned"]
    assert -1 <= comparison["pcc"] <= 1  # 95 % bootstrap CIs with it (on 3 clips, not informative)
    assert -1 <= comparison["pcc_ci_low"] <= comparison["pcc_ci_high"] <= 1
    assert -1 <= comparison["srcc_ci_low"] <= comparison["srcc_ci_high"] <= 1
    assert f"({comparison['pcc_ci_low']:.3f}, {comparison['pcc_ci_high']:.3f})" in printed


def test_prune_command_with_l0_gates(tiny_checkpoint, calib_folder, tmp_path):
    out = tmp_path / "pruned-l0"
    assert main(["prune", "--model", str(tiny_checkpoint), "--calib", str(calib_folder), "--output", str(out),
                 "--target-params", "3000", "--method", "l0", "--steps", "1", "--l0-steps", "5",
                 "--finetune-steps", "2", "--final-finetune-steps", "0"]) == 0
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["settings"]["method"] == "l0"
    assert report["after"]["parameters"] <= 3000
    assert report["steps"][0]["l0_final_distill"] is not None


@pytest.mark.parametrize("argument,message", [
    (["--target-ratio", "1.0"], "strictly between 0 and 1"),
    (["--target-ratio", "0"], "strictly between 0 and 1"),
    (["--target-params", "99999999"], "is not below the model's"),
])
def test_prune_command_refuses_bad_targets(tiny_checkpoint, calib_folder, tmp_path, capsys, argument, message):
    code = main(["prune", "--model", str(tiny_checkpoint), "--calib", str(calib_folder),
                 "--output", str(tmp_path / "x"), *argument])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_killed_run_resumes_after_its_last_finished_step(student, calib_folder, tmp_path, monkeypatch):
    settings = PruningSettings(target_params=int(0.5 * parameter_count(student)), steps=2, calib_clips=8,
                               batch_size=4)
    uninterrupted, _ = prune(student, str(calib_folder), settings, tmp_path / "straight")

    real_importance = schedule_module.taylor_importance
    calls = []

    def killed_at_second_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_importance(*args, **kwargs)

    monkeypatch.setattr(schedule_module, "taylor_importance", killed_at_second_step)
    with pytest.raises(KeyboardInterrupt):
        prune(student, str(calib_folder), settings, tmp_path / "killed")
    assert (tmp_path / "killed" / "steps" / "step-0" / "record.json").is_file()
    assert not (tmp_path / "killed" / "steps" / "step-1").exists()

    calls.clear()
    monkeypatch.setattr(schedule_module, "taylor_importance",
                        lambda *a, **k: calls.append(1) or real_importance(*a, **k))
    resumed, record = prune(student, str(calib_folder), settings, tmp_path / "killed")
    assert len(calls) == 1  # only the unfinished step ran again
    assert [s["step"] for s in record["steps"]] == [0, 1]
    assert structure_of(resumed).sizes() == structure_of(uninterrupted).sizes()
    for (name, a), b in zip(resumed.state_dict().items(), uninterrupted.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_short_fine_tuning_is_all_warm_up():
    assert [schedule_module.warmup_steps(steps) for steps in (1, 3, 5, 50, 300, 1200)] == [1, 3, 5, 5, 30, 120]


def test_final_fine_tuning_records_its_curve_and_resumes(student, calib_folder, tmp_path, monkeypatch, capsys):
    settings = PruningSettings(target_params=int(0.6 * parameter_count(student)), steps=1, calib_clips=8,
                               batch_size=4, finetune_steps=2, final_finetune_steps=3, eval_every=2)
    measured = []

    def measure(model):
        assert not model.training  # measured as it will be used
        measured.append(float(sum(p.sum() for p in model.parameters())))
        return {"pcc": len(measured) / 10}

    real_finetune = schedule_module.finetune

    def killed_in_final_stage(*args, **kwargs):
        if args[3] == settings.final_finetune_steps:
            raise KeyboardInterrupt("killed")
        return real_finetune(*args, **kwargs)

    monkeypatch.setattr(schedule_module, "finetune", killed_in_final_stage)
    with pytest.raises(KeyboardInterrupt):
        prune(student, str(calib_folder), settings, tmp_path / "work", measure=measure)
    steps = tmp_path / "work" / "steps"
    assert (steps / "step-0" / "record.json").is_file() and not (steps / "final").exists()

    calls = []
    monkeypatch.setattr(schedule_module, "finetune", lambda *a, **k: calls.append(a[3]) or real_finetune(*a, **k))
    pruned, record = prune(student, str(calib_folder), settings, tmp_path / "work", measure=measure)
    assert calls == [3]  # the pruning step was reused; only the final fine-tuning ran
    final = record["final_finetune"]
    assert final["steps"] == 3 and np.isfinite(final["finetune_loss"])
    assert [point["step"] for point in final["finetune_curve"]] == [0, 2, 3]
    assert [point["step"] for point in record["steps"][0]["finetune_curve"]] == [0, 2]
    assert "fine-tuning step 3: pcc" in capsys.readouterr().err
    assert measured[-1] != measured[-3]  # the final fine-tuning moved the weights (from its step 0 to 3)
    step_model = ConvTransformerForMOSRegression.from_pretrained(steps / "step-0")
    assert structure_of(pruned).sizes() == structure_of(step_model).sizes()

    calls.clear()
    again, record_again = prune(student, str(calib_folder), settings, tmp_path / "work", measure=measure)
    assert calls == [] and record_again["final_finetune"] == final  # a finished run is only loaded
    for (name, a), b in zip(again.state_dict().items(), pruned.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_final_fine_tuning_runs_at_its_own_learning_rate(student, calib_folder, tmp_path):
    # the steps fine-tune at 3e-4, the final stage at 0: it must leave the last step's weights as they are
    settings = PruningSettings(target_params=int(0.6 * parameter_count(student)), steps=1, calib_clips=8,
                               batch_size=4, finetune_steps=2, final_finetune_steps=2, final_learning_rate=0.0)
    pruned, record = prune(student, str(calib_folder), settings, tmp_path / "work")
    assert record["final_finetune"]["learning_rate"] == 0.0
    step_model = ConvTransformerForMOSRegression.from_pretrained(tmp_path / "work" / "steps" / "step-0")
    assert any((a != b).any() for a, b in zip(step_model.state_dict().values(), student.state_dict().values())
               if a.shape == b.shape)  # the step's own fine-tuning did move weights
    for (name, a), b in zip(pruned.state_dict().items(), step_model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


@pytest.mark.parametrize("frame_weight", [0.0, 1.0])
def test_teacher_pruning_with_distillation_finetuning(calib_folder, tmp_path, monkeypatch, frame_weight):
    """Fine-tuning distils the unpruned model's score and, with frame_weight > 0, its head's hidden states
    (logged as loss_frames)."""
    from hf_sqa.training.distillation import DistillationTrainer

    logs = []
    real_log = DistillationTrainer.log

    def log(self, entry, *args, **kwargs):
        real_log(self, entry, *args, **kwargs)  # adds the loss terms to the entry
        logs.append(dict(entry))

    monkeypatch.setattr(DistillationTrainer, "log", log)
    torch.manual_seed(0)
    teacher = XLSRForMOSRegression(tiny_xlsr_config(feature_layers=(1, 3), layer_fusion="fusion")).eval()
    settings = PruningSettings(target_params=int(0.7 * parameter_count(teacher)), steps=1, calib_clips=4,
                               batch_size=2, finetune_steps=2, frame_weight=frame_weight)
    pruned, record = prune(teacher, str(calib_folder), settings, tmp_path / "work")
    assert parameter_count(pruned) <= settings.target_params
    assert np.isfinite(record["steps"][0]["finetune_loss"])
    frame_terms = [entry["loss_frames"] for entry in logs if "loss_frames" in entry]
    assert len(frame_terms) == (2 if frame_weight else 0) and all(term > 0 for term in frame_terms)
    with torch.no_grad():
        mos = pruned(torch.from_numpy(synthetic_speech(3.0)).float()).mos
    assert 1.0 <= float(mos) <= 5.0


def test_eval_data_equal_to_calibration_warns_and_is_flagged(tiny_checkpoint, calib_folder, tmp_path):
    out = tmp_path / "pruned-same"
    with pytest.warns(UserWarning, match="overstates it on new audio"):
        report = schedule_module.prune_checkpoint(str(tiny_checkpoint), str(calib_folder), out, target_ratio=0.6,
                                                  eval_data=str(calib_folder), steps=1, batch_size=4)
    assert report["evaluated_on_training_data"] and report["evaluation"]["clips"] == 12


def test_held_out_clips_never_reach_calibration_or_fine_tuning(calib_folder, monkeypatch):
    calib, held_out = schedule_module.calibration_split(str(calib_folder), clips=64, eval_clips=64, seed=3)
    assert len(held_out) == 3 and len(calib) == 9 and not set(calib) & set(held_out)
    seen = []
    real_finetune = schedule_module.finetune
    monkeypatch.setattr(schedule_module, "finetune", lambda *a, exclude_ids=frozenset(), **k: seen.append(
        set(exclude_ids)) or real_finetune(*a, exclude_ids=exclude_ids, **k))
    out = calib_folder.parent / "pruned-heldout"
    model = ConvTransformerForMOSRegression(tiny_student_config(head_num_layers=2))
    model.save_pretrained(calib_folder.parent / "ckpt")
    report = schedule_module.prune_checkpoint(str(calib_folder.parent / "ckpt"), str(calib_folder), out,
                                              target_ratio=0.6, steps=1, finetune_steps=1, batch_size=4, seed=3)
    ids = schedule_module.spec_clips(str(calib_folder)).ids
    assert seen == [{ids[i] for i in held_out}]  # fine-tuning left the evaluation clips out
    assert report["evaluation"]["clips"] == 3


def test_group_sizes_fix_conv_widths_and_keep_the_most_important_channels(student):
    groups = {g.name: g for g in structure_of(student).groups()}
    importance = {name: torch.arange(g.size, dtype=torch.float32) for name, g in groups.items()}
    conv = "frontend.convs.2"
    target = parameter_count(student) * 3 // 4
    keep = schedule_module.select_units(student, importance, target, group_sizes={conv: 3})
    assert int(keep[conv].sum()) == 3
    assert keep[conv][-3:].all()  # the three highest importances
    pruned = schedule_module.prune_model(student, keep)
    assert parameter_count(pruned) <= target
    with pytest.raises(PruningError, match="unknown unit group"):
        schedule_module.select_units(student, importance, target, group_sizes={"nope": 1})


def test_batchnorm_recalibration_sets_the_statistics_of_the_calibration_clips(calib_folder):
    """Pruning shifts what later BatchNorms see; recalibration re-estimates their running statistics on the
    calibration clips (a plain average over the batches), so eval-mode scores use the pruned model's own
    feature statistics instead of the unpruned model's."""
    torch.manual_seed(0)
    model = ConvTransformerForMOSRegression(tiny_student_config(head_num_layers=2)).eval()
    rows, _ = schedule_module.calibration_split(str(calib_folder), clips=12)
    batches = schedule_module.calibration_batches(str(calib_folder), model.config.window_length, rows, 4)
    schedule_module.recalibrate_batchnorm(model, batches)
    assert not model.training and model.feature_norm.momentum == 0.1  # mode and momentum restored
    seen = []
    hook = model.feature_norm.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        for batch in batches:
            model(input_values=batch["input_values"], attention_mask=batch["attention_mask"])
    hook.remove()
    per_batch_mean = torch.stack([x.mean(dim=(0, 2)) for x in seen])  # (batches, channels)
    assert torch.allclose(model.feature_norm.running_mean, per_batch_mean.mean(0), rtol=1e-4, atol=1e-5)
