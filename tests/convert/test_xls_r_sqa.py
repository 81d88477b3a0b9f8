import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from hf_sqa.convert import ConversionError, convert_xls_r_sqa
from hf_sqa.convert.xls_r_sqa import head_config_from_state, map_head_state, parse_variant
from hf_sqa.models import XLSRForMOSRegression
from hf_sqa.testing import synthetic_speech, tiny_wav2vec2_config, tiny_xlsr_config

# the released heads ship in the xls-r-sqa wheel, which `make test` installs (--no-deps)
_spec = importlib.util.find_spec("xls_r_sqa")
assert _spec is not None, "xls-r-sqa is not installed: pip install --no-deps distillmos xls-r-sqa"
RELEASED = sorted(Path(next(iter(_spec.submodule_search_locations))).glob("models/sqa*/xls-r-*/*.pt"))
HIDDEN = {"300m": 1024, "1b": 1280, "2b": 1920}


def _backbone_config(hidden):
    # real XLS-R widths, two transformer layers, tiny everything else
    return tiny_wav2vec2_config(hidden_size=hidden, num_hidden_layers=2, intermediate_size=64,
                                num_conv_pos_embedding_groups=16)


def _reference_head(path):
    from xls_r_sqa.config import FEAT_SEQ_LEN, Config, Input
    from xls_r_sqa.sqa_model import FusionModel, SingleLayerModel

    size, layers = parse_variant(path)
    config = Config("XLSR", Input.XLSR, feat_seq_len=FEAT_SEQ_LEN, dim_transformer=32,
                    xlsr_name=f"wav2vec2-xls-r-{size}", nhead_transformer=4, nlayers_transformer=4)
    head = (FusionModel if len(layers) == 2 else SingleLayerModel)(config)
    head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return head.eval()


def test_every_released_head_is_found():
    names = {p.name for p in RELEASED}
    for size in HIDDEN:
        assert any(f"model_{size}_fusion" in n for n in names) and any(f"model_{size}_lay" in n for n in names)
    assert len(RELEASED) >= 30


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_released_head_maps_and_scores_like_the_original(path):
    """Key mapping for every released file onto a tiny backbone of the real width, and the mapped head
    equal to XLS-R-SQA's own head class on the same features."""
    size, layers = parse_variant(path)
    fusion = len(layers) == 2
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = XLSRForMOSRegression(tiny_xlsr_config(
        wav2vec2_config=_backbone_config(HIDDEN[size]), feature_layers=[1, 2] if fusion else [1],
        layer_fusion="fusion" if fusion else "single", **head_config_from_state(source, num_heads=4),
    )).eval()
    frontend = {"norm_inputs.": "layer_fusion.layer_norms.", "lin_infusion.": "layer_fusion.mix."} if fusion \
        else {"norm_input.": "layer_fusion.layer_norms.0."}
    head_state = map_head_state(source, frontend, path.name)
    backbone_state = {k: v for k, v in model.state_dict().items() if k.startswith("wav2vec2.")}
    model.load_state_dict({**backbone_state, **head_state}, strict=True)

    torch.manual_seed(0)
    features = [torch.randn(2, 384, HIDDEN[size]) * 3 for _ in layers]
    with torch.no_grad():
        ours = model.head(model.layer_fusion(features))
        theirs = 1 + 4 * _reference_head(path)(tuple(features) if fusion else features[0]).flatten()
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.fixture(scope="module")
def saved_backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    torch.manual_seed(0)
    for size, hidden in HIDDEN.items():
        Wav2Vec2Model(Wav2Vec2Config(**_backbone_config(hidden))).save_pretrained(root / size)
    return root


@pytest.mark.parametrize("size", list(HIDDEN))
@pytest.mark.parametrize("kind", ["lay", "fusion"])
def test_convert_writes_a_loadable_checkpoint(size, kind, saved_backbones, tmp_path):
    path = next(p for p in RELEASED if p.name.startswith(f"model_{size}_{kind}"))
    layers = [1, 2] if kind == "fusion" else [2]
    model = convert_xls_r_sqa(path, tmp_path / "out", backbone=saved_backbones / size, layers=layers)
    assert model.config.feature_layers == layers and model.config.head_hidden_size == 32
    reloaded = XLSRForMOSRegression.from_pretrained(tmp_path / "out").eval()
    audio = torch.from_numpy(synthetic_speech(2.0))[None]
    with torch.no_grad():
        assert torch.allclose(model(audio).mos, reloaded(audio).mos, atol=1e-6)


def test_convert_cli(saved_backbones, tmp_path, capsys):
    from hf_sqa.cli import main

    path = next(p for p in RELEASED if p.name.startswith("model_300m_fusion"))
    assert main(["convert", "xls-r-sqa", str(path), str(tmp_path / "out"), "--backbone",
                 str(saved_backbones / "300m"), "--layers", "1", "2"]) == 0
    assert "XLSRForMOSRegression" in capsys.readouterr().out
    assert XLSRForMOSRegression.from_pretrained(tmp_path / "out").config.layer_fusion == "fusion"
    assert main(["convert", "xls-r-sqa", str(tmp_path / "missing.pt"), str(tmp_path / "x")]) == 2
    assert "no such head weights file" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", [3.0, 7.68])
def test_end_to_end_equals_xls_r_sqa_pipeline(seconds, saved_backbones, tmp_path):
    """Our teacher vs XLS-R-SQA's own recipe (feature extractor, full backbone, hidden_states[k], centre
    crop/pad to 384 frames, its head) for clips up to one window."""
    from xls_r_sqa.center_crop import CenterCrop

    path = next(p for p in RELEASED if p.name.startswith("model_300m_lay"))
    model = convert_xls_r_sqa(path, None, backbone=saved_backbones / "300m", layers=[1]).eval()
    clip = synthetic_speech(seconds, seed=3, noise_db=10)
    backbone = Wav2Vec2Model.from_pretrained(saved_backbones / "300m").eval()
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True)
    inputs = extractor(clip, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        hidden = backbone(inputs, output_hidden_states=True).hidden_states[1]
        expected = 1 + 4 * _reference_head(path)(CenterCrop(384)(hidden)).flatten()
        ours = model(torch.from_numpy(clip)[None]).mos
    assert torch.allclose(ours, expected, atol=1e-4), (ours, expected)


def test_variant_names_and_mismatches(saved_backbones):
    assert parse_variant("model_1b_fusion_full.pt") == ("1b", [10, 41])
    assert parse_variant("x/model_300m_lay21_subset.pt") == ("300m", [21])
    with pytest.raises(ConversionError, match="not a released XLS-R-SQA head name"):
        parse_variant("weights.pt")
    single = next(p for p in RELEASED if p.name.startswith("model_300m_lay"))
    fusion = next(p for p in RELEASED if p.name.startswith("model_300m_fusion"))
    with pytest.raises(ConversionError, match="single-layer head"):
        convert_xls_r_sqa(single, None, backbone=saved_backbones / "300m", layers=[1, 2])
    with pytest.raises(ConversionError, match="mixes 2 layers"):
        convert_xls_r_sqa(fusion, None, backbone=saved_backbones / "300m", layers=[1])
    with pytest.raises(ConversionError, match="1024-dim features"):
        convert_xls_r_sqa(single, None, backbone=saved_backbones / "1b", layers=[1])
