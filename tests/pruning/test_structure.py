"""Prunable structure: pruned == masked, exact parameter counts, strict and remote-code reloads, refusals."""

import numpy as np
import pytest
import torch

from hf_sqa.complexity import macs_per_window, parameter_count
from hf_sqa.models import ConvTransformerForMOSRegression, XLSRForMOSRegression
from hf_sqa.pruning import PruningError, gated, prune_model, structure_of
from hf_sqa.testing import (
    score_without_hf_sqa,
    synthetic_speech,
    tiny_student_config,
    tiny_wav2vec2_config,
    tiny_xlsr_config,
)

FAMILIES = {
    "student": lambda: ConvTransformerForMOSRegression(tiny_student_config(head_num_layers=2)),
    # XLS-R style: pre-norm layers, LayerNorm conv encoder (channel pruning changes the norm statistics)
    "teacher": lambda: XLSRForMOSRegression(
        tiny_xlsr_config(feature_layers=(1, 3), layer_fusion="fusion", head_num_layers=2)),
    # wav2vec2-base style: post-norm layers, GroupNorm on the first conv layer only
    "teacher-post-norm": lambda: XLSRForMOSRegression(tiny_xlsr_config(
        wav2vec2_config=tiny_wav2vec2_config(do_stable_layer_norm=False, feat_extract_norm="group"),
        head_num_layers=2)),
}


def build(family: str):
    torch.manual_seed(0)
    return FAMILIES[family]().eval()


def random_plan(model, seed: int) -> dict[str, torch.Tensor]:
    """Each block removed with p = 0.3, each unit with p = 0.4, every group keeping one unit."""
    generator = torch.Generator().manual_seed(seed)
    plan = {}
    for group in structure_of(model).groups():
        if group.kind in ("attention", "feed_forward"):
            plan[group.name] = torch.rand(1, generator=generator) > 0.3
        else:
            keep = torch.rand(group.size, generator=generator) > 0.4
            keep[torch.randint(group.size, (1,), generator=generator)] = True
            plan[group.name] = keep
    return plan


def logits_and_mos(model, audio, mask):
    """The head transformer's output per window frame (sensitive to every unit, unlike the MOS of an
    untrained model) and the clip MOS."""
    captured = []
    handle = model.head.encoder.register_forward_hook(lambda m, a, out: captured.append(out))
    try:
        with torch.no_grad():
            mos = model(audio, attention_mask=mask).mos
    finally:
        handle.remove()
    return torch.cat(captured), mos


@pytest.fixture(scope="module")
def batch():
    audio = torch.from_numpy(np.stack([synthetic_speech(9.0, seed=1), synthetic_speech(9.0, seed=2)])).float()
    mask = torch.ones_like(audio, dtype=torch.long)
    mask[1, 40000:] = 0  # a padded clip: key masks must follow the pruning too
    return audio, mask


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pruned_model_equals_masked_model(family, seed, batch):
    model = build(family)
    plan = random_plan(model, seed)
    with gated(model, {name: keep.float() for name, keep in plan.items()}):
        masked_logits, masked_mos = logits_and_mos(model, *batch)
    full_logits, _ = logits_and_mos(model, *batch)
    pruned = prune_model(model, plan)
    pruned_logits, pruned_mos = logits_and_mos(pruned, *batch)
    assert (full_logits - masked_logits).abs().max() > 1e-2  # the mask really changes the model
    torch.testing.assert_close(pruned_logits, masked_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(pruned_mos, masked_mos, atol=1e-5, rtol=0)
    assert parameter_count(pruned) < parameter_count(model)
    assert macs_per_window(pruned) < macs_per_window(model)


def test_student_parameter_counts_are_exact():
    model = build("student")  # conv channels [4, 4, 8, 8, 8, 8], kernel 3; head width 8, 2 heads of 4, FFN 16
    before = parameter_count(model)
    conv2 = torch.ones(8, dtype=torch.bool)
    conv2[3] = False
    conv5 = torch.ones(8, dtype=torch.bool)
    conv5[0] = False
    plan = {
        "frontend.convs.2": conv2,  # 9 * 4 weights + 1 bias, and 9 * 8 input weights of conv 3
        "frontend.convs.5": conv5,  # 9 * 8 + 1, and 4 frequency bins x (feature_norm 2 + input_norm 2 + projection 8)
        "head.encoder.layers.0.heads": torch.tensor([True, False]),  # 4 * 4 * 8 + 3 * 4
        "head.encoder.layers.1.feed_forward": torch.tensor([False]),  # 16 * (2 * 8 + 1) + 8 (linear2 bias)
    }
    expected_removed = (36 + 1 + 72) + (72 + 1 + 4 * 12) + (128 + 12) + (16 * 17 + 8)
    pruned = prune_model(model, plan)
    assert parameter_count(pruned) == before - expected_removed
    assert pruned.config.conv_channels == [4, 4, 7, 8, 8, 7]
    assert pruned.config.head_layer_num_heads == [1, 2]
    assert pruned.config.head_layer_ffn_sizes == [16, 0]
    family = structure_of(pruned)
    assert family.parameter_count(family.sizes()) == parameter_count(pruned)


def test_teacher_parameter_counts_are_exact():
    model = build("teacher")  # hidden 32, 2 heads of 16, FFN 64, conv 7 x 16 channels, kernels 10,3,3,3,3,2,2
    before = parameter_count(model)
    ffn = torch.ones(64, dtype=torch.bool)
    ffn[5] = False
    conv3 = torch.ones(16, dtype=torch.bool)
    conv3[0] = False
    conv6 = torch.ones(16, dtype=torch.bool)
    conv6[15] = False
    plan = {
        "wav2vec2.encoder.layers.0.ffn": ffn,  # 32 + 1 in, 32 out
        "wav2vec2.encoder.layers.1.attention": torch.tensor([False]),  # 2 heads + out bias + its pre-LayerNorm
        "wav2vec2.feature_extractor.conv_layers.3": conv3,  # 3 * 16 + 1 bias + 2 LayerNorm, 3 * 16 in conv 4
        "wav2vec2.feature_extractor.conv_layers.6": conv6,  # 2 * 16 + 1 + 2, projection LayerNorm 2 + 32
    }
    per_head = 4 * 16 * 32 + 3 * 16
    expected_removed = 65 + (2 * per_head + 32 + 64) + (48 + 1 + 2 + 48) + (32 + 1 + 2 + 2 + 32)
    pruned = prune_model(model, plan)
    assert parameter_count(pruned) == before - expected_removed
    assert pruned.config.wav2vec2_config.conv_dim == [16, 16, 16, 15, 16, 16, 15]
    assert pruned.config.backbone_layer_num_heads == [2, 0, 2]
    assert pruned.config.backbone_layer_ffn_sizes == [63, 64, 64]
    assert pruned.wav2vec2.encoder.layers[1].attention is None
    assert pruned.wav2vec2.encoder.layers[1].layer_norm is None  # pre-norm: the LayerNorm went with the block


def test_head_ffn_unit_removes_its_macs():
    model = build("student")
    ffn = torch.ones(16, dtype=torch.bool)
    ffn[0] = False
    pruned = prune_model(model, {"head.encoder.layers.0.ffn": ffn})
    frames, hidden = model.config.frames_per_window, model.config.head_hidden_size
    assert macs_per_window(model) - macs_per_window(pruned) == 2 * frames * hidden


@pytest.mark.parametrize("family", ["student", "teacher"])
def test_pruned_checkpoint_reloads_strictly_and_without_hf_sqa(family, batch, tmp_path):
    model = build(family)
    pruned = prune_model(model, random_plan(model, seed=3))
    pruned.save_pretrained(tmp_path / "pruned")
    reloaded, info = type(model).from_pretrained(tmp_path / "pruned", output_loading_info=True)
    assert all(not keys for keys in info.values()), info  # nothing missing, unexpected or mismatched
    structure = ("conv_channels", "head_layer_num_heads", "head_layer_ffn_sizes", "backbone_layer_num_heads",
                 "backbone_layer_ffn_sizes")
    for field in structure:
        assert getattr(reloaded.config, field, None) == getattr(pruned.config, field, None), field
    assert structure_of(reloaded).sizes() == structure_of(pruned).sizes()
    assert parameter_count(reloaded) == parameter_count(pruned)
    audio, _ = batch
    with torch.no_grad():
        expected = pruned(audio).mos
        torch.testing.assert_close(reloaded.eval()(audio).mos, expected, atol=1e-6, rtol=0)
    result = score_without_hf_sqa(tmp_path / "pruned", audio.numpy(), tmp_path)
    assert result["class"] == type(model).__name__
    np.testing.assert_allclose(result["mos"], expected.numpy(), atol=1e-6)


def test_bad_plans_are_refused():
    model = build("teacher")
    with pytest.raises(PruningError, match=r"layers\.0\.heads: pruning every head .* remove the block"):
        prune_model(model, {"wav2vec2.encoder.layers.0.heads": torch.tensor([False, False])})
    with pytest.raises(PruningError, match=r"layers\.0\.ffn: pruning every feed-forward unit"):
        prune_model(model, {"wav2vec2.encoder.layers.0.ffn": torch.zeros(64, dtype=torch.bool)})
    with pytest.raises(PruningError, match="empty conv layer"):
        prune_model(model, {"wav2vec2.feature_extractor.conv_layers.2": torch.zeros(16, dtype=torch.bool)})
    with pytest.raises(PruningError, match="has 3 entries, the group has 2 units"):
        prune_model(model, {"wav2vec2.encoder.layers.0.heads": torch.tensor([True, True, False])})
    with pytest.raises(PruningError, match="no prunable groups"):
        prune_model(model, {"wav2vec2.encoder.layers.9.heads": torch.tensor([True])})
    # removing the whole block is the way to lose all its heads
    pruned = prune_model(model, {"wav2vec2.encoder.layers.0.attention": torch.tensor([False]),
                                 "wav2vec2.encoder.layers.0.heads": torch.tensor([False, False])})
    assert pruned.config.backbone_layer_num_heads[0] == 0


def test_pruned_structure_is_validated_by_the_config():
    with pytest.raises(ValueError, match="one entry per layer"):
        tiny_student_config(head_num_layers=2, head_layer_num_heads=[1])
    with pytest.raises(ValueError, match=r"entries must be in 0\.\.16"):
        tiny_student_config(head_layer_ffn_sizes=[17])
    with pytest.raises(ValueError, match="one entry per layer"):
        tiny_xlsr_config(feature_layers=(2,), backbone_layer_num_heads=[2, 2, 2])


@pytest.mark.parametrize("family", ["student", "teacher"])
def test_already_pruned_models_prune_again(family, batch):
    """A model with removed blocks (layer 0 without attention, layer 1 without feed-forward) has gates
    and prunes again exactly."""
    model = build(family)
    prefix = "head.encoder.layers" if family == "student" else "wav2vec2.encoder.layers"
    once = prune_model(model, {f"{prefix}.0.attention": torch.tensor([False]),
                               f"{prefix}.1.feed_forward": torch.tensor([False])})
    groups = structure_of(once).sizes()
    assert f"{prefix}.0.heads" not in groups and f"{prefix}.0.ffn" in groups
    plan = random_plan(once, seed=4)
    with gated(once, {name: keep.float() for name, keep in plan.items()}):
        masked, _ = logits_and_mos(once, *batch)
    twice, _ = logits_and_mos(prune_model(once, plan), *batch)
    torch.testing.assert_close(twice, masked, atol=1e-5, rtol=0)
