import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from hf_sqa.models import XLSRForMOSRegression, XLSRMOSConfig
from hf_sqa.testing import synthetic_speech, tiny_wav2vec2_config, tiny_xlsr_config


@pytest.fixture(scope="module")
def full_backbone():
    torch.manual_seed(0)
    return Wav2Vec2Model(Wav2Vec2Config(**tiny_wav2vec2_config())).eval()


def _teacher_on(backbone, **config):
    model = XLSRForMOSRegression(tiny_xlsr_config(**config)).eval()
    own = model.wav2vec2.state_dict()
    model.wav2vec2.load_state_dict({k: v for k, v in backbone.state_dict().items() if k in own}, strict=True)
    return model


def test_layers_above_the_highest_read_are_not_built():
    model = XLSRForMOSRegression(tiny_xlsr_config(feature_layers=[1, 2], layer_fusion="fusion"))
    assert len(model.wav2vec2.encoder.layers) == 2
    assert isinstance(model.wav2vec2.encoder.layer_norm, nn.Identity)
    assert not any(".layers.2." in name for name, _ in model.named_parameters())
    top = XLSRForMOSRegression(tiny_xlsr_config(feature_layers=[4]))
    assert len(top.wav2vec2.encoder.layers) == 4
    assert isinstance(top.wav2vec2.encoder.layer_norm, nn.LayerNorm)


@pytest.mark.parametrize("layer", [0, 1, 3])
def test_read_layers_equal_full_backbone_hidden_states(full_backbone, layer):
    audio = torch.from_numpy(np.stack([synthetic_speech(2.0, seed=s) for s in (1, 2)]))
    with torch.no_grad():
        reference = full_backbone(audio, output_hidden_states=True).hidden_states[layer]
        model = _teacher_on(full_backbone, feature_layers=[layer])
        (ours,) = model.read_hidden_layers(audio, torch.tensor([audio.shape[1]] * 2))
    assert torch.allclose(ours, reference, atol=1e-5)


def test_top_layer_is_the_backbone_output_with_its_final_layer_norm(full_backbone):
    audio = torch.from_numpy(synthetic_speech(2.0))[None]
    with torch.no_grad():
        reference = full_backbone(audio).last_hidden_state
        (ours,) = _teacher_on(full_backbone, feature_layers=[4]).read_hidden_layers(audio, torch.tensor([32000]))
    assert torch.allclose(ours, reference, atol=1e-5)


def test_padded_batch_scores_each_clip_as_if_alone(full_backbone):
    model = _teacher_on(full_backbone, feature_layers=[1, 3], layer_fusion="fusion")
    long, short = synthetic_speech(9.0, seed=1), synthetic_speech(2.5, seed=2)
    batch = torch.zeros(2, len(long))
    batch[0], batch[1, : len(short)] = torch.from_numpy(long), torch.from_numpy(short)
    mask = torch.zeros_like(batch, dtype=torch.long)
    mask[0], mask[1, : len(short)] = 1, 1
    with torch.no_grad():
        together = model(batch, attention_mask=mask).mos
        alone = torch.stack([model(torch.from_numpy(c)[None]).mos[0] for c in (long, short)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_input_normalisation_matches_wav2vec2_feature_extractor():
    model = XLSRForMOSRegression(tiny_xlsr_config())
    clip = synthetic_speech(1.5, noise_db=10) * 0.2 + 0.01
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    expected = extractor(clip, sampling_rate=16000, return_tensors="pt").input_values[0]
    padded = torch.zeros(1, len(clip) + 500)
    padded[0, : len(clip)] = torch.from_numpy(clip)
    ours = model.normalize_clips(padded, torch.tensor([len(clip)]))
    assert torch.allclose(ours[0, : len(clip)], expected, atol=1e-4)
    assert torch.all(ours[0, len(clip):] == 0)


def test_gain_independence(full_backbone):
    model = _teacher_on(full_backbone, feature_layers=[2])
    audio = torch.from_numpy(synthetic_speech(3.0))[None]
    with torch.no_grad():
        assert torch.allclose(model(audio).mos, model(0.1 * audio).mos, atol=1e-4)


def test_weighted_sum_reads_every_layer_and_learns_weights():
    model = XLSRForMOSRegression(tiny_xlsr_config(feature_layers=None, layer_fusion="weighted_sum"))
    assert model.config.feature_layers == [0, 1, 2, 3, 4]
    assert model.layer_fusion.layer_weights.shape == (5,)
    out = model(torch.from_numpy(synthetic_speech(1.0))[None], labels=torch.tensor([3.0]))
    out.loss.backward()
    assert model.layer_fusion.layer_weights.grad.abs().sum() > 0


def test_freezing():
    model = XLSRForMOSRegression(tiny_xlsr_config())
    model.freeze_feature_encoder()
    assert not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())
    assert all(p.requires_grad for p in model.wav2vec2.encoder.parameters())
    model.freeze_backbone()
    assert not any(p.requires_grad for p in model.wav2vec2.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_from_backbone_loads_only_the_layers_read(full_backbone, tmp_path):
    full_backbone.save_pretrained(tmp_path / "backbone")
    model = XLSRForMOSRegression.from_backbone(tmp_path / "backbone", feature_layers=[2], head_hidden_size=8,
                                               head_num_heads=2, head_num_layers=1, head_ffn_size=16)
    assert model.config.pretrained_wav2vec2 == str(tmp_path / "backbone")
    assert model.config.wav2vec2_config.num_hidden_layers == 4 and len(model.wav2vec2.encoder.layers) == 2
    reference = full_backbone.state_dict()
    for name, tensor in model.wav2vec2.state_dict().items():
        assert torch.equal(tensor, reference[name]), name


def test_save_reload_roundtrip(full_backbone, tmp_path):
    model = _teacher_on(full_backbone, feature_layers=[1, 2], layer_fusion="fusion")
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, XLSRForMOSRegression) and len(reloaded.wav2vec2.encoder.layers) == 2
    audio = torch.from_numpy(synthetic_speech(3.0))[None]
    with torch.no_grad():
        assert torch.allclose(model(audio).mos, reloaded(audio).mos, atol=1e-6)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(feature_layers=[7]), r"outside 0\.\.4"),
        (dict(feature_layers=[1, 2], layer_fusion="single"), "reads one layer"),
        (dict(feature_layers=[1], layer_fusion="fusion"), "two or more"),
        (dict(feature_layers=None, layer_fusion="single"), "needs explicit feature_layers"),
        (dict(feature_layers=[1, 1], layer_fusion="fusion"), "repeated"),
        (dict(layer_fusion="mean"), "not one of"),
    ],
)
def test_bad_config_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_xlsr_config(**fields)


def test_default_config_describes_xls_r_300m():
    config = XLSRMOSConfig()
    assert config.wav2vec2_config.hidden_size == 1024 and config.wav2vec2_config.num_hidden_layers == 24
    assert config.head_hidden_size == 32 and config.head_num_layers == 4 and config.head_ffn_size == 64
