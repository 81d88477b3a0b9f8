"""Training the fast student: dense window targets, packed clips, and the `make student` pipeline (smoke)."""

import json

import numpy as np
import pytest
import torch
import yaml

from hf_sqa.complexity import parameter_count
from hf_sqa.models import ConvTransformerForMOSRegression, FastMOSForMOSRegression, student_config
from hf_sqa.testing import synthetic_speech, write_clip
from hf_sqa.training.distillation import dense_window_losses, frame_losses
from hf_sqa.training.fast_student import fast_config, read_history, spread_clip_rows
from hf_sqa.training.packed import PackedClips, collate_clips, pack_labelled, pack_subset
from hf_sqa.training.student_pipeline import StudentPipeline


def test_dense_window_losses_average_each_clips_windows():
    nan = float("nan")
    student = torch.tensor([[3.0, 4.0, nan], [2.0, nan, nan]])
    teacher = torch.tensor([[2.0, 2.0, nan], [2.5, nan, nan]])
    per_clip, terms = dense_window_losses(student, teacher)
    assert torch.allclose(per_clip, torch.tensor([(1 + 4) / 2, 0.25]))
    assert torch.allclose(terms, torch.tensor([1.0, 4.0, 0.25]))
    with pytest.raises(ValueError, match="other windows than the teacher"):
        dense_window_losses(student[:, :2], teacher)


def test_frame_losses_average_frames_layers_and_each_clips_windows():
    from types import SimpleNamespace

    frames, width = 4, 2
    # three windows: clip 0 has windows 0 and 1, clip 1 window 2; window 2 has 2 frames for the student and
    # the teacher's whole (padded) window
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    ours = torch.zeros(3, frames, width)
    theirs = torch.zeros(3, frames, width)
    theirs[0] = 1.0  # window 0: squared distance 1 on every frame
    theirs[2, :2] = 2.0  # window 2: 4 on its two frames
    theirs[2, 2:] = 100.0  # the teacher's padding frames: not compared
    student = SimpleNamespace(hidden_states=(ours, ours), hidden_mask=mask)
    teacher = SimpleNamespace(hidden_states=(theirs, theirs), hidden_mask=torch.ones_like(mask))
    identity = [torch.nn.Identity(), torch.nn.Identity()]
    window_mask = torch.tensor([[True, True], [True, False]])
    assert torch.allclose(frame_losses(student, teacher, window_mask, identity), torch.tensor([0.5, 4.0]))
    with pytest.raises(ValueError, match="head depth and windowing rule"):
        frame_losses(student, SimpleNamespace(hidden_states=(theirs,), hidden_mask=mask), window_mask, identity)


def test_frame_projections_fit_a_linear_relation():
    """fit_frame_projections solves the least-squares map; a teacher whose hidden states are a linear map
    of the student's is explained completely, and then the frame loss is zero."""
    from hf_sqa.testing import tiny_fast_config
    from hf_sqa.training.fast_student import fit_frame_projections

    torch.manual_seed(0)
    student = FastMOSForMOSRegression(tiny_fast_config()).eval()
    teacher = FastMOSForMOSRegression(tiny_fast_config()).eval()
    teacher.load_state_dict(student.state_dict())
    width = student.config.head_hidden_size
    student.frame_projections = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(1 + student.config.head_num_layers))
    batches = [collate_clips([{"audio": synthetic_speech(s, seed=i), "teacher_mos": 3.0, "teacher_window_mos": []}
                              for i, s in enumerate((1.0, 2.5, 4.0))])]
    fit = fit_frame_projections(student, teacher, batches, ridge=1e-9)
    assert fit["frames"] > 100 and max(fit["unexplained_variance"]) < 1e-4
    with torch.no_grad():
        ours = student(batches[0]["input_values"], attention_mask=batches[0]["attention_mask"], output_hidden_states=True)
        theirs = teacher(batches[0]["input_values"], attention_mask=batches[0]["attention_mask"],
                         output_hidden_states=True)
    with torch.no_grad():
        assert float(frame_losses(ours, theirs, ours.window_mask, student.frame_projections).max()) < 1e-4


def _clean_folders(root, train=6, heldout=4):
    for split, count, offset in (("train", train, 0), ("heldout", heldout, 100)):
        for i in range(count):
            write_clip(root / split / f"clip{i}.wav", synthetic_speech(2.0 + (i % 3), seed=offset + i))
    return root


def _word_folder(root):
    """Two clips of a word source (klettres) in two languages, as the speech stage writes them."""
    for i, language in enumerate(("ca", "da")):
        write_clip(root / "klettres" / f"klettres-{language}" / "000-0.wav", synthetic_speech(3.0, seed=200 + i))
    return root


@pytest.fixture
def small_teacher(tmp_path):
    torch.manual_seed(0)
    teacher = ConvTransformerForMOSRegression(student_config("small")).eval()
    teacher.save_pretrained(tmp_path / "teacher")
    return tmp_path / "teacher"


def test_make_student_smoke_run_resumes_and_ships(small_teacher, tmp_path):
    """The whole `make student` recipe, reduced: every stage, then a rerun that finds everything done."""
    pipeline = StudentPipeline(
        work=str(tmp_path / "work"), runs=str(tmp_path / "runs"), teacher=str(small_teacher),
        clean=str(_word_folder(_clean_folders(tmp_path / "clean"))), word_sources=("klettres",), noise=None,
        train_draws=2, heldout_draws=2, preset="tiny",
        mild_train_draws=1, mild_heldout_draws=1, voice_train_draws=1, mild_voice_train_draws=1,
        vocoder_train_draws=1, batch_size=4, compare_steps=2, final_steps=3, refine_steps=2, voice_steps=2,
        vocoder_steps=2,
        eval_steps=1, eval_clips=12, prune_steps=1, prune_finetune_steps=1, prune_final_steps=1, prune_frame_weight=1.0,
        human_data=None,
        ship_to=str(tmp_path / "shipped"), ship_window_max_hop=32000,
    )
    stages = ["degrade", "label", "pack", "prune", "train", "refine", "voice", "vocoder", "ship"]
    pipeline.run(stages)
    packed = tmp_path / "work" / "packed"
    train = PackedClips(packed / "train")
    assert len(train) == 12 and train.teacher_mos.min() >= 1 and train.teacher_mos.max() <= 5
    mild = PackedClips(packed / "train-mild")
    assert len(mild) == 6 and all(i.startswith("mild-") for i in mild.ids)
    both = PackedClips([packed / "train", packed / "train-mild"])  # what the refine stage trains on
    assert len(both) == 18 and both.seconds() == pytest.approx(train.seconds() + mild.seconds())
    for k in (0, 11, 12, 17):
        part, local = (train, k) if k < 12 else (mild, k - 12)
        assert np.array_equal(both.clip(k), part.clip(local)) and both.ids[k] == part.ids[local]
        assert np.array_equal(both[k]["teacher_window_mos"], part[local]["teacher_window_mos"])
    for method, steps in (("scratch", 2), ("dense", 2), ("pruned", 3)):  # pruned runs the long schedule
        history = read_history(tmp_path / "runs" / method / "eval_history.jsonl")
        assert [h["step"] for h in history] == list(range(steps + 1))
        assert all(-1 <= h["pcc"] <= 1 and h["cpu_s"] > 0 for h in history)
    assert set(pipeline.comparison()) == {"scratch", "dense", "pruned"}
    assert all(entry["step"] == 2 for entry in pipeline.comparison().values())
    pruned = json.loads((tmp_path / "runs" / "pruned-init" / "pruning_report.json").read_text())
    assert pruned["after"]["structure"]["frontend.convs.0"] == student_config("tiny").conv_channels[0]
    assert pruned["final_finetune"]["steps"] == 1 and pruned["settings"]["frame_weight"] == 1.0
    timed = [json.loads(line) for line in (tmp_path / "runs" / "stage_times.jsonl").read_text().splitlines()]
    assert [t["stage"] for t in timed] == stages and all(t["wall_s"] >= 0 for t in timed)
    method = pipeline.chosen_method()
    stage_one = tmp_path / "runs" / (method if method == "pruned" else "final") / "final"
    refined = tmp_path / "runs" / "refined"
    assert [h["step"] for h in read_history(refined / "eval_history.jsonl")] == [0, 1, 2]
    refined_recipe = yaml.safe_load((refined / "final" / "training_recipe.yaml").read_text())
    assert refined_recipe["train_data"] == [str(packed / name) for name in ("train", "train-mild")]
    voice_recipe = yaml.safe_load((tmp_path / "runs" / "voice" / "final" / "training_recipe.yaml").read_text())
    assert voice_recipe["train_data"] == [str(packed / name) for name in
                                          ("train", "train-mild", "train-voice", "train-mild-voice")]
    vocoded = PackedClips(packed / "train-vocoder")
    assert len(vocoded) == 6 and all(i.startswith("vocoder-") for i in vocoded.ids)
    manifest = json.loads((tmp_path / "work" / "degraded" / "train-vocoder" / "manifest.json").read_text())
    assert manifest["catalogue"]["families"]["codec"]["options"][0]["transform"] == "VocoderResynthesis"
    voiced = PackedClips(packed / "train-voice")
    assert len(voiced) == 6 and all(i.startswith("voice-") for i in voiced.ids)
    assert len(PackedClips(packed / "train-mild-voice")) == 6
    manifest = json.loads((tmp_path / "work" / "degraded" / "train-voice" / "manifest.json").read_text())
    assert manifest["catalogue"]["voice"]["options"][0]["transform"] == "SpeedPerturbation"
    shipped = tmp_path / "shipped"
    model = FastMOSForMOSRegression.from_pretrained(shipped)
    assert model.config.window_max_hop == 32000  # the shipped scoring rule
    recipe = yaml.safe_load((shipped / "training_recipe.yaml").read_text())
    assert recipe["steps"] == 2 and "vocoder" in recipe["method"] and recipe["shipped_window_max_hop"] == 32000
    assert recipe["init"] == str(tmp_path / "runs" / "voice" / "final") and "recorded words (klettres)" in recipe["method"]
    words = ["train-kl", "train-kl-mild", "train-kl-voice", "train-kl-mild-voice"]  # the vocoder stage's only
    assert recipe["train_data"] == voice_recipe["train_data"] + [str(packed / name) for name in ["train-vocoder"] + words]
    assert [len(PackedClips(packed / name)) for name in words] == [12, 6, 6, 4]  # 2 clips x 6 / 3 / 3 / 2 draws
    assert all(i.startswith("kl-") for i in PackedClips(packed / "train-kl").ids)
    assert recipe["init_recipe"]["init"] == str(refined / "final") and "voice" in recipe["init_recipe"]["method"]
    assert recipe["init_recipe"]["init_recipe"]["init"] == str(stage_one)
    assert recipe["init_recipe"]["init_recipe"]["method"].startswith(method)
    assert recipe["distinct_clips"] == 64 and recipe["audio_hours_seen"] > 0
    for name, tensor in FastMOSForMOSRegression.from_pretrained(tmp_path / "runs" / "vocoder" / "final").state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    card = (shipped / "README.md").read_text()
    assert f"Stage 1: method {method}" in card and "12 distinct clips" in card  # the runs it continued
    assert "Stage 2: " in card and "18 distinct clips" in card
    assert "Stage 3: " in card and "30 distinct clips" in card
    assert "Stage 4: " in card and "64 distinct clips" in card and "In all: 9 steps" in card
    assert "heldout-speakers-degraded" in card and "heldout-speakers-mild" in card
    report = json.loads((shipped / "eval_report.json").read_text())
    assert report["heldout-speakers-degraded"][str(shipped)]["n"] == 8
    assert report["heldout-speakers-mild"][str(shipped)]["n"] == 4
    # scored against the teacher's labels, and the card says so; pooled with each other only
    assert {corpus: entry[str(shipped)]["reference"] for corpus, entry in report.items()} == {
        "heldout-speakers-degraded": f"teacher:{small_teacher}", "heldout-speakers-mild": f"teacher:{small_teacher}",
        "pooled": f"teacher:{small_teacher}"}
    assert f"| heldout-speakers-mild | teacher's MOS ({small_teacher}) | 4 |" in card
    assert parameter_count(model) < parameter_count(ConvTransformerForMOSRegression(student_config("small")))
    # a rerun finds every stage done: nothing is labelled or trained again
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "labelled").rglob("*.parquet")}
    pipeline.run(stages)
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "labelled").rglob("*.parquet")}


def test_prune_stage_spends_the_presets_count_on_other_conv_widths(small_teacher, tmp_path):
    """conv_channels: the teacher pruned to other conv widths, the head pruned to the preset's parameter count."""
    pipeline = StudentPipeline(
        work=str(tmp_path / "work"), runs=str(tmp_path / "runs"), teacher=str(small_teacher),
        clean=str(_clean_folders(tmp_path / "clean", train=4, heldout=2)), noise=None, train_draws=1,
        heldout_draws=1, mild_train_draws=0, voice_train_draws=0, mild_voice_train_draws=0, vocoder_train_draws=0,
        word_sources=(), preset="tiny",
        prune_steps=1, prune_finetune_steps=1, conv_channels=(8, 16, 16, 32, 32, 32), processes=1,
    )
    pipeline.run(["degrade", "label", "prune"])
    pruned = FastMOSForMOSRegression.from_pretrained(tmp_path / "runs" / "pruned-init")
    assert pruned.config.conv_channels == [8, 16, 16, 32, 32, 32]
    preset_count = parameter_count(FastMOSForMOSRegression(fast_config("tiny")))
    assert preset_count * 0.9 < parameter_count(pruned) <= preset_count  # the head kept what the convs gave up
    with pytest.raises(ValueError, match="conv_channels needs 6 widths, got \\[8, 16\\]"):
        StudentPipeline(runs=str(tmp_path / "other"), preset="tiny", conv_channels=(8, 16)).run(["prune"])


def test_each_training_stage_trains_on_the_sets_that_entered_by_then(tmp_path):
    """The recipe: default + mild from the refinement, voice-perturbed from the voice stage, the vocoder set in
    its own last stage; `vocoder_enters` moves it earlier (the README's variants)."""
    names = lambda paths: [p.name for p in paths]
    recipe = StudentPipeline(work=str(tmp_path))
    assert names(recipe.packed("train", "refine")) == ["train", "train-mild"]
    assert names(recipe.packed("train", "voice")) == ["train", "train-mild", "train-voice", "train-mild-voice"]
    words = [f"train-{prefix}{kind}" for prefix in ("kl", "kt") for kind in ("", "-mild", "-voice", "-mild-voice")]
    assert names(recipe.packed("train")) == names(recipe.packed("train", "vocoder")) == [
        "train", "train-mild", "train-voice", "train-mild-voice", "train-vocoder"] + words
    assert {d.clean_split for d in recipe.degradation_sets() if d.name in words} == {"klettres", "ktuberling"}
    assert names(recipe.packed("heldout")) == names(recipe.packed("heldout", "refine")) == ["heldout", "heldout-mild"]
    early = StudentPipeline(work=str(tmp_path), vocoder_enters="refine", words_enter="voice")
    assert names(early.packed("train", "refine")) == ["train", "train-mild", "train-vocoder"]
    assert names(early.packed("train", "voice"))[-8:] == words
    assert names(StudentPipeline(vocoder_train_draws=0, word_sources=()).packed("train")) == names(
        recipe.packed("train", "voice"))
    assert names(StudentPipeline(word_sources=("ktuberling",)).packed("train"))[-4:] == words[4:]
    # prompt-length clips of the same words (a benchmark lever): their own split, ids and seeds, fewer draws
    short = StudentPipeline(word_sources=("klettres-short",)).degradation_sets()[-4:]
    assert [(d.name, d.clean_split, d.draws, d.voice, d.id_prefix) for d in short] == [
        ("train-kls", "klettres-short", 2, False, "kls"), ("train-kls-mild", "klettres-short", 1, False, "klsmild"),
        ("train-kls-voice", "klettres-short", 1, True, "klsvoice"),
        ("train-kls-mild-voice", "klettres-short", 1, True, "klsmildvoice")]
    with pytest.raises(ValueError, match="vocoder_enters must be one of .*got 'ship'"):
        StudentPipeline(vocoder_enters="ship").packed("train")
    with pytest.raises(ValueError, match="words_enter must be one of .*got 'train'"):
        StudentPipeline(words_enter="train")
    with pytest.raises(ValueError, match=r"unknown word sources \['gcompris'\]"):
        StudentPipeline(word_sources=("klettres", "gcompris"))


def test_a_word_source_without_clips_is_named(tmp_path):
    pipeline = StudentPipeline(work=str(tmp_path / "work"), runs=str(tmp_path / "runs"), noise=None,
                               clean=str(_clean_folders(tmp_path / "clean", train=1, heldout=1)), heldout_draws=1,
                               train_draws=1, mild_train_draws=0, mild_heldout_draws=0, voice_train_draws=0,
                               mild_voice_train_draws=0, vocoder_train_draws=0, word_sources=("ktuberling",), processes=1)
    with pytest.raises(FileNotFoundError, match="clean/ktuberling: no clean clips for the degraded set train-kt .*"
                                                "a word source needs its Debian package"):
        pipeline.run(["degrade"])


def test_a_failed_labelling_names_its_split(tmp_path):
    pipeline = StudentPipeline(work=str(tmp_path / "work"), runs=str(tmp_path / "runs"),
                               teacher=str(tmp_path / "no-such-teacher"), processes=1)
    with pytest.raises(RuntimeError, match="pseudo-labelling heldout failed: .*degraded/heldout: no such folder"):
        pipeline.run(["label"])  # nothing degraded yet: the worker's own error, with the first split's name


def test_packed_clips_round_trip_and_collate(small_teacher, tmp_path):
    from hf_sqa.data.pseudo_label import pseudo_label

    clean = _clean_folders(tmp_path / "clean", train=3, heldout=0) / "train"
    pseudo_label(str(small_teacher), str(clean), tmp_path / "labelled", progress=False)
    packed = PackedClips(pack_labelled(str(tmp_path / "labelled"), tmp_path / "packed", num_proc=1))
    assert len(packed) == 3
    lengths = sorted(len(packed.clip(k)) for k in range(3))
    assert lengths == sorted(len(synthetic_speech(2.0 + i, seed=i)) for i in range(3))
    batch = collate_clips([packed[k] for k in range(3)])
    assert batch["input_values"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == [len(packed.clip(k)) for k in range(3)]
    assert torch.isfinite(batch["teacher_mos"]).all()
    assert batch["teacher_window_mos"].shape[0] == 3
    audio = packed.clip(0)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0

    # a subset in another order (here of the set twice: several folders pool) keeps each clip's audio and labels
    subset = PackedClips(pack_subset([tmp_path / "packed", tmp_path / "packed"], [2, 0, 3], tmp_path / "subset"))
    assert len(subset) == 3
    for k, source in enumerate([2, 0, 0]):
        assert np.array_equal(subset.clip(k), packed.clip(source))
        assert subset.teacher_mos[k] == packed.teacher_mos[source]
        assert np.array_equal(subset[k]["teacher_window_mos"], packed[source]["teacher_window_mos"])
        assert subset.ids[k] == packed.ids[source]


def test_spread_clip_rows_cover_the_set_evenly(small_teacher, tmp_path):
    from hf_sqa.data.pseudo_label import pseudo_label

    clean = _clean_folders(tmp_path / "clean", train=5, heldout=0) / "train"
    pseudo_label(str(small_teacher), str(clean), tmp_path / "labelled", progress=False)
    packed = PackedClips(pack_labelled(str(tmp_path / "labelled"), tmp_path / "packed", num_proc=1))
    assert spread_clip_rows(packed).tolist() == [0, 1, 2, 3, 4]
    assert spread_clip_rows(packed, 3).tolist() == [0, 2, 4]  # first, middle and last: every source
    assert spread_clip_rows(packed, 50).tolist() == [0, 1, 2, 3, 4]  # no more than the set holds


def test_head_only_training_keeps_the_front_end(small_teacher, tmp_path):
    """train_head_only: the STFT + conv stack and the feature norm's statistics (BatchNorm) stay the init's;
    the head learns."""
    from safetensors.torch import load_file

    from hf_sqa.data.pseudo_label import pseudo_label
    from hf_sqa.training.fast_student import fast_student_from, train_fast_student

    clean = _clean_folders(tmp_path / "clean", train=4, heldout=0) / "train"
    pseudo_label(str(small_teacher), str(clean), tmp_path / "labelled", progress=False)
    packed = pack_labelled(str(tmp_path / "labelled"), tmp_path / "packed", num_proc=1)
    final = train_fast_student(packed, packed, tmp_path / "run", init=str(small_teacher), max_steps=3, batch_size=2,
                               learning_rate=1e-2, eval_steps=3, eval_clips=4, bf16=False, pad_short_clips=True,
                               train_head_only=True)
    before = fast_student_from(str(small_teacher)).state_dict()
    after = load_file(str(final / "model.safetensors"))
    kept = [name for name in before if name.startswith("frontend.") or "running_" in name]
    assert "feature_norm.running_mean" in kept and any(name.startswith("frontend.convs") for name in kept)
    assert all(torch.equal(before[name], after[name]) for name in kept)
    assert any(not torch.equal(before[name], after[name]) for name in before if name.startswith("head."))
    recipe = yaml.safe_load((final / "training_recipe.yaml").read_text())
    assert recipe["train_head_only"] is True and recipe["pad_short_clips"] is True


def test_the_vocoder_stage_trains_with_another_loss(small_teacher, tmp_path):
    """StudentPipeline.train_vocoder_stage(..., distillation_loss=...): the same start, data, seed and schedule
    give other weights under another loss (benchmarks/loss_lever.py), and the recipe records it."""
    from safetensors.torch import load_file

    from hf_sqa.data.pseudo_label import pseudo_label
    from hf_sqa.training.student_pipeline import StudentPipeline

    clean = _clean_folders(tmp_path / "clean", train=4, heldout=0) / "train"
    pseudo_label(str(small_teacher), str(clean), tmp_path / "labelled", progress=False)
    packed = pack_labelled(str(tmp_path / "labelled"), tmp_path / "packed", num_proc=1)
    pipeline = StudentPipeline(work=str(tmp_path / "work"), runs=str(tmp_path / "runs"), final_method="pruned",
                               vocoder_steps=2, vocoder_learning_rate=1e-2, batch_size=2, eval_steps=2, eval_clips=4)
    pipeline.packed = lambda *names: [packed]  # the held-out set too: this test compares weights only
    finals = {loss: pipeline.train_vocoder_stage([packed], tmp_path / loss, "test", init=small_teacher,
                                                 distillation_loss=loss) for loss in ("mse", "logit_mse")}
    weights = {loss: load_file(str(final / "model.safetensors")) for loss, final in finals.items()}
    assert any(not torch.equal(weights["mse"][name], weights["logit_mse"][name]) for name in weights["mse"])
    recipes = {loss: yaml.safe_load((final / "training_recipe.yaml").read_text()) for loss, final in finals.items()}
    assert recipes["logit_mse"]["distillation_loss"] == "logit_mse" and "distillation_loss" not in recipes["mse"]


def test_frame_targets_train_and_leave_no_trace_in_the_saved_student(small_teacher, tmp_path):
    """frame_weight: the student also matches a fast teacher's hidden states through fitted linear maps;
    the maps train with it but are not part of the saved model."""
    from hf_sqa.data.pseudo_label import pseudo_label
    from hf_sqa.training.fast_student import fast_student_from, train_fast_student

    clean = _clean_folders(tmp_path / "clean", train=4, heldout=0) / "train"
    pseudo_label(str(small_teacher), str(clean), tmp_path / "labelled", progress=False)
    packed = pack_labelled(str(tmp_path / "labelled"), tmp_path / "packed", num_proc=1)
    final = train_fast_student(packed, packed, tmp_path / "run", init=str(small_teacher), max_steps=2, batch_size=2,
                               learning_rate=1e-2, eval_steps=2, eval_clips=4, bf16=False, dense_weight=1.0,
                               frame_weight=0.1, frame_teacher=str(small_teacher))
    fit = json.loads((tmp_path / "run" / "frame_projection_fit.json").read_text())
    assert len(fit["unexplained_variance"]) == 1 + student_config("small").head_num_layers
    # the student starts as the teacher, so the fitted maps explain (almost) everything
    assert max(fit["unexplained_variance"]) < 0.05
    reloaded = FastMOSForMOSRegression.from_pretrained(final)
    assert not hasattr(reloaded, "frame_projections")
    assert any(not torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(),
                                                     fast_student_from(str(small_teacher)).state_dict().values()))
    recipe = yaml.safe_load((final / "training_recipe.yaml").read_text())
    assert recipe["frame_weight"] == 0.1 and recipe["frame_teacher"] == str(small_teacher)


def test_training_from_a_shipped_model_uses_the_labels_windows(small_teacher, tmp_path):
    """A start that scores with windows further apart than the teacher's (as the shipped `fast` does) trains
    on the labels' per-window scores: the teacher's windows, not its own (10 s clips: 4 windows vs 2)."""
    from hf_sqa.data.pseudo_label import pseudo_label
    from hf_sqa.training.fast_student import fast_student_from, train_fast_student

    for i in range(2):
        write_clip(tmp_path / "clean" / f"long{i}.wav", synthetic_speech(10.0, seed=i))
    pseudo_label(str(small_teacher), str(tmp_path / "clean"), tmp_path / "labelled", progress=False)
    packed = pack_labelled(str(tmp_path / "labelled"), tmp_path / "packed", num_proc=1)
    assert all(len(PackedClips(packed)[k]["teacher_window_mos"]) == 4 for k in range(2))
    shipped = fast_student_from(str(small_teacher))
    shipped.config.window_max_hop = 61440
    shipped.save_pretrained(tmp_path / "shipped")
    final = train_fast_student(packed, packed, tmp_path / "run", init=str(tmp_path / "shipped"), max_steps=2,
                               batch_size=2, learning_rate=1e-3, eval_steps=2, eval_clips=2, bf16=False,
                               dense_weight=1.0, freeze_batchnorm=True)
    assert FastMOSForMOSRegression.from_pretrained(final).config.window_max_hop == 16000
    assert read_history(tmp_path / "run" / "eval_history.jsonl")[-1]["step"] == 2


def test_online_distillation_labels_every_draw_in_the_step(small_teacher, tmp_path):
    """train_online_student: clean clips degraded afresh for each batch and scored by the teacher in the
    step; the student trains on the teacher's windows; a time limit stops the run with what it learnt."""
    from hf_sqa.training.fast_student import fast_student_from, train_online_student

    clean = _clean_folders(tmp_path / "clean", train=4, heldout=0) / "train"
    final = train_online_student(clean, tmp_path / "run", init=str(small_teacher), teacher=str(small_teacher),
                                 catalogues={"default": 1, "mild": 1}, max_steps=3, batch_size=2,
                                 learning_rate=1e-2, num_workers=0, bf16=False, eval_steps=3)
    recipe = yaml.safe_load((final / "training_recipe.yaml").read_text())
    assert recipe["steps"] == 3 and recipe["degradation_draws"] == 6 and recipe["labels"].startswith("online")
    assert recipe["catalogues"] == {"default": 1, "mild": 1} and recipe["distinct_clean_clips"] == 4
    trained = FastMOSForMOSRegression.from_pretrained(final)
    teacher = ConvTransformerForMOSRegression.from_pretrained(small_teacher)
    assert trained.config.window_max_hop == teacher.config.window_max_hop
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(),
                                                     fast_student_from(str(small_teacher)).state_dict().values()))
    losses = json.loads((tmp_path / "run" / "log_history.json").read_text())
    assert losses[-1]["train_loss"] > 0
    assert not list((tmp_path / "run").glob("checkpoint-*"))

    stopped = train_online_student(clean, tmp_path / "stopped", teacher=str(small_teacher), preset="small",
                                   max_steps=50, batch_size=2, num_workers=0, bf16=False, time_limit_s=1e-3)
    recipe = yaml.safe_load((stopped / "training_recipe.yaml").read_text())
    assert recipe["steps"] == 1 and recipe["planned_steps"] == 50


def test_online_teacher_gives_the_dense_target(small_teacher, tmp_path):
    """With an online teacher and dense_weight > 0 the teacher's window scores are the window targets: a
    student equal to its teacher has zero loss, another one a positive window term."""
    from transformers import TrainingArguments

    from hf_sqa.training.distillation import DistillationTrainer

    teacher = ConvTransformerForMOSRegression.from_pretrained(small_teacher).eval()
    batch = collate_clips([{"audio": synthetic_speech(s, seed=i)} for i, s in enumerate((2.0, 9.0))])
    assert set(batch) == {"input_values", "attention_mask"}  # unlabelled clips: no label columns

    def loss_with(student):
        args = TrainingArguments(output_dir=str(tmp_path / "t"), use_cpu=True, report_to=[])
        trainer = DistillationTrainer(model=student, args=args, teacher=teacher, alpha=1.0, dense_weight=1.0)
        with torch.no_grad():
            return float(trainer.compute_loss(student.eval(), batch))

    assert loss_with(ConvTransformerForMOSRegression.from_pretrained(small_teacher)) == pytest.approx(0.0, abs=1e-10)
    torch.manual_seed(1)
    other = ConvTransformerForMOSRegression(student_config("small")).eval()
    with torch.no_grad():
        ours, theirs = other(**batch), teacher(**batch)
    clip_terms = (ours.mos - theirs.mos) ** 2
    window_terms = torch.nanmean((ours.window_mos - theirs.window_mos) ** 2, dim=1)
    assert theirs.window_mask.sum(dim=1).tolist()[1] > 1  # the long clip has several windows
    assert loss_with(other) == pytest.approx(float((clip_terms + window_terms).mean()), rel=1e-5)
    assert float(window_terms.sum()) > 0
