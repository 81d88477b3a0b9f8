import copy

import pytest
import torch
from torch.utils.data import Dataset
from transformers import TrainingArguments

from hf_sqa.models import ConvTransformerForMOSRegression
from hf_sqa.testing import synthetic_speech, tiny_student_config
from hf_sqa.training import DistillationTrainer, MOSCollator, distillation_example_losses
from hf_sqa.training.distillation import last_complete_checkpoint, mos_logit

NAN = float("nan")


@pytest.mark.parametrize(
    "alpha, expected",
    [
        # examples: (s, t, h) = (3, 4, 2) labelled; (2, 1, -) unlabelled; (4, -, 5) human only
        (0.0, [1.0, 1.0, 1.0]),        # labelled uses h only: (3-2)^2
        (1.0, [1.0, 1.0, 1.0]),        # labelled uses t only: (3-4)^2
        (0.25, [0.25 * 1 + 0.75 * 1, 1.0, 1.0]),
    ],
)
def test_example_losses_by_hand(alpha, expected):
    student = torch.tensor([3.0, 2.0, 4.0])
    teacher = torch.tensor([4.0, 1.0, NAN])
    human = torch.tensor([2.0, NAN, 5.0])
    losses, teacher_terms, human_terms = distillation_example_losses(student, teacher, human, alpha)
    assert losses.tolist() == pytest.approx(expected)
    assert teacher_terms.tolist() == [1.0, 1.0] and human_terms.tolist() == [1.0, 1.0]


def test_logit_loss_compares_the_logits_the_scores_come_from():
    logits = torch.tensor([-2.0, 0.0, 2.5])
    mos = 1.0 + 4.0 * torch.sigmoid(logits)  # what the MOS head outputs
    assert mos_logit(mos).tolist() == pytest.approx(logits.tolist(), abs=1e-5)
    assert torch.isfinite(mos_logit(torch.tensor([1.0, 5.0]))).all()  # the ends of the scale are clamped
    teacher = 1.0 + 4.0 * torch.sigmoid(torch.tensor([-1.0, 0.5, 0.5]))
    losses, _, _ = distillation_example_losses(mos, teacher, torch.full((3,), NAN), alpha=1.0, loss="logit_mse")
    assert losses.tolist() == pytest.approx([1.0, 0.25, 4.0], abs=1e-4)
    # the same MOS error weighs more near the top of the scale than in its middle
    near_top, middle = (distillation_example_losses(torch.tensor([s + 0.1]), torch.tensor([s]), torch.tensor([NAN]),
                                                    alpha=1.0, loss="logit_mse")[0].item() for s in (4.5, 3.0))
    assert near_top > 4 * middle


def test_mixed_weights_and_l1_by_hand():
    student = torch.tensor([3.0, 2.5])
    teacher = torch.tensor([4.5, 1.5])
    human = torch.tensor([2.0, 1.0])
    mse, _, _ = distillation_example_losses(student, teacher, human, alpha=0.3)
    assert mse.tolist() == pytest.approx([0.3 * 2.25 + 0.7 * 1.0, 0.3 * 1.0 + 0.7 * 2.25])
    l1, _, _ = distillation_example_losses(student, teacher, human, alpha=0.3, loss="l1")
    assert l1.tolist() == pytest.approx([0.3 * 1.5 + 0.7 * 1.0, 0.3 * 1.0 + 0.7 * 1.5])
    unlabelled, teacher_terms, human_terms = distillation_example_losses(
        student, teacher, torch.tensor([NAN, NAN]), alpha=0.3)
    assert unlabelled.tolist() == pytest.approx([2.25, 1.0]) and human_terms.numel() == 0
    with pytest.raises(ValueError, match="needs a teacher score or a human MOS"):
        distillation_example_losses(student, torch.tensor([NAN, 1.0]), torch.tensor([NAN, 1.0]), 0.5)


class ListDataset(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


def _models():
    torch.manual_seed(0)
    student = ConvTransformerForMOSRegression(tiny_student_config())
    torch.manual_seed(1)
    teacher = ConvTransformerForMOSRegression(tiny_student_config()).eval()
    return student, teacher


def _rows(teacher=None, n=4):
    rows = []
    for i in range(n):
        audio = synthetic_speech(1.0, seed=i, noise_db=5 * i)
        row = {"audio": audio, "mos": 1.0 + i if i % 2 == 0 else None}  # half labelled
        if teacher is not None:
            with torch.no_grad():
                row["teacher_mos"] = float(teacher(torch.from_numpy(audio)[None]).mos)
        rows.append(row)
    return rows


def _args(tmp_path, **overrides):
    fields = dict(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False,
                  per_device_train_batch_size=4, learning_rate=1e-2, max_steps=1, save_strategy="no",
                  logging_steps=1, optim="sgd", seed=0, dataloader_num_workers=0)
    return TrainingArguments(**{**fields, **overrides})


def test_online_and_offline_teacher_give_the_same_loss(tmp_path):
    student, teacher = _models()
    collate = MOSCollator(window_length=122880, random_crop=False)
    offline_batch = collate(_rows(teacher))
    online_batch = {k: v for k, v in offline_batch.items() if k != "teacher_mos"}
    student.eval()
    offline = DistillationTrainer(model=student, args=_args(tmp_path), alpha=0.4)
    online = DistillationTrainer(model=student, args=_args(tmp_path), alpha=0.4, teacher=teacher)
    with torch.no_grad():
        assert float(online.compute_loss(student, online_batch)) == pytest.approx(
            float(offline.compute_loss(student, offline_batch)), rel=1e-6)


def test_gradient_accumulation_equals_one_big_batch_and_terms_are_logged(tmp_path):
    _, teacher = _models()
    rows = _rows(teacher, n=4)
    # labelled rows 0 and 2 first, unlabelled 1 and 3 last: the two micro-batches differ in kind
    rows = [rows[0], rows[2], rows[1], rows[3]]
    collate = MOSCollator(window_length=122880, random_crop=False)
    results = []
    for batch, accumulation in ((4, 1), (2, 2)):
        student, _ = _models()
        trainer = DistillationTrainer(
            model=student, args=_args(tmp_path / f"{batch}", per_device_train_batch_size=batch,
                                      gradient_accumulation_steps=accumulation),
            train_dataset=ListDataset(rows), data_collator=collate, alpha=0.5,
            # BatchNorm on running statistics: batch statistics would make a batch of 4 and two batches of 2
            # differ for reasons that have nothing to do with the loss scaling tested here
            freeze_batchnorm=True,
        )
        trainer.get_train_dataloader = _unshuffled(trainer, rows, batch, collate)
        trainer.train()
        results.append((copy.deepcopy(student.state_dict()), trainer.state.log_history))
    (one, log_one), (two, log_two) = results
    for name in one:
        assert torch.allclose(one[name].float(), two[name].float(), atol=1e-6), name
    step = next(entry for entry in log_one if "loss" in entry)
    assert "loss_teacher" in step and "loss_human" in step
    assert step["loss"] == pytest.approx(next(e for e in log_two if "loss" in e)["loss"], rel=1e-4)


def _unshuffled(trainer, rows, batch, collate):
    """The Trainer's loader shuffles; these tests need a fixed order to compare two set-ups."""
    from torch.utils.data import DataLoader

    return lambda: trainer.accelerator.prepare(DataLoader(ListDataset(rows), batch_size=batch, collate_fn=collate))


def test_frozen_batchnorm_keeps_running_statistics_while_weights_train(tmp_path):
    _, teacher = _models()
    rows = _rows(teacher, n=4)
    for freeze in (True, False):
        student, _ = _models()
        before = {k: v.clone() for k, v in student.state_dict().items()}
        trainer = DistillationTrainer(model=student, args=_args(tmp_path / str(freeze)), train_dataset=ListDataset(rows),
                                      data_collator=MOSCollator(window_length=122880, random_crop=False),
                                      freeze_batchnorm=freeze)
        trainer.train()
        after = student.state_dict()
        stats_moved = not torch.equal(before["feature_norm.running_mean"], after["feature_norm.running_mean"])
        assert stats_moved is not freeze
        assert not torch.equal(before["head.projection.weight"], after["head.projection.weight"])


def test_dense_window_target_adds_the_mean_window_loss(tmp_path):
    student, _ = _models()
    student.eval()
    clip = torch.from_numpy(synthetic_speech(10.0, seed=3))[None]
    with torch.no_grad():
        out = student(clip)
    windows = out.window_mos.shape[1]
    assert windows == 4  # 10 s: four 7.68 s windows at most 1 s apart
    batch = {"input_values": clip, "attention_mask": torch.ones_like(clip, dtype=torch.long),
             "teacher_mos": out.mos + 0.5, "teacher_window_mos": out.window_mos + 1.0}
    trainer = DistillationTrainer(model=student, args=_args(tmp_path), dense_weight=0.3)
    with torch.no_grad():
        loss = float(trainer.compute_loss(student, dict(batch)))
    assert loss == pytest.approx(0.25 + 0.3 * 1.0, rel=1e-5)  # clip term 0.5^2, every window off by 1
    plain = DistillationTrainer(model=student, args=_args(tmp_path))
    with torch.no_grad():
        assert float(plain.compute_loss(student, dict(batch))) == pytest.approx(0.25, rel=1e-5)


def test_frame_target_from_the_online_teacher_compares_hidden_states_as_they_are(tmp_path):
    """A pruned model distilled from the model it was pruned from: the frame teacher is the online teacher,
    run once per step with its hidden states, compared without projections (same width); each example's
    frame term is the mean squared distance over its windows' frames, layers and width."""
    student, teacher = _models()
    student.train()  # frame targets are a training term; BatchNorm frozen so the hand computation below matches
    clips = [torch.from_numpy(synthetic_speech(seconds, seed=i)).float() for i, seconds in enumerate((8.5, 2.0))]
    batch = MOSCollator(window_length=10 * 16000, random_crop=False)([{"audio": c.numpy()} for c in clips])
    calls = []
    teacher.register_forward_hook(lambda module, args, kwargs, output: calls.append(kwargs), with_kwargs=True)
    trainer = DistillationTrainer(model=student, args=_args(tmp_path), teacher=teacher, frame_teacher=teacher,
                                  frame_weight=0.5, freeze_batchnorm=True)
    with torch.no_grad():
        loss = float(trainer.compute_loss(student, dict(batch)))
        plain = float(DistillationTrainer(model=student, args=_args(tmp_path), teacher=teacher,
                                          freeze_batchnorm=True).compute_loss(student, dict(batch)))
    assert [bool(c.get("output_hidden_states")) for c in calls] == [True, False]  # one teacher call per step
    with torch.no_grad():
        ours = student(batch["input_values"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        theirs = teacher(batch["input_values"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    per_window = torch.stack([((a - b) ** 2).mean(dim=(1, 2)) for a, b in
                              zip(ours.hidden_states, theirs.hidden_states)]).mean(dim=0)  # (3 windows,)
    per_clip = torch.stack([per_window[:2].mean(), per_window[2]])
    assert float(per_clip.min()) > 1e-4  # two random models' hidden states differ
    assert loss - plain == pytest.approx(0.5 * float(per_clip.mean()), rel=1e-3)


def test_frame_target_of_another_width_needs_projections(tmp_path):
    student, _ = _models()
    wider = ConvTransformerForMOSRegression(tiny_student_config(head_hidden_size=16, head_ffn_size=16)).eval()
    batch = MOSCollator(window_length=122880)([{"audio": synthetic_speech(2.0, seed=0)}])
    trainer = DistillationTrainer(model=student.train(), args=_args(tmp_path), teacher=wider, frame_teacher=wider,
                                  frame_weight=1.0)
    with pytest.raises(ValueError, match="widths \\[8, 16\\].*needs frame_projections"):
        trainer.compute_loss(student, dict(batch))
    with pytest.raises(ValueError, match="needs a frame_teacher"):
        DistillationTrainer(model=student, args=_args(tmp_path), frame_weight=1.0)


def test_last_complete_checkpoint_skips_checkpoints_a_kill_cut_short(tmp_path):
    assert last_complete_checkpoint(tmp_path) is None
    for step, state in [(2, '{"global_step": 2}'), (10, '{"global_step": 10}'), (12, '{"global_st'), (14, None)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        if state is not None:  # 12: killed while writing its state; 14: before
            (folder / "trainer_state.json").write_text(state)
    # the newest readable one, by step number (checkpoint-10 after checkpoint-2)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("")
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")

