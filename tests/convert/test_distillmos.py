import numpy as np
import pytest
import torch

from hf_sqa import load_audio, score
from hf_sqa.convert import ConversionError, convert_distillmos
from hf_sqa.models import ConvTransformerMOSConfig
from hf_sqa.testing import synthetic_speech, write_clip

from ..conftest import SHARED_MOS_CORPUS

WINDOW = 122880


@pytest.mark.parametrize(
    "num_samples",
    [48000, WINDOW - 1, WINDOW, WINDOW + 1, 160000, 16000 * 23 + 7],
    ids=["3s", "window-1", "window", "window+1", "10s", "23s"],
)
def test_scores_equal_distillmos(distillmos_model, reference_distillmos, num_samples):
    clip = synthetic_speech(num_samples / 16000, seed=num_samples, noise_db=15)[:num_samples]
    audio = torch.from_numpy(clip)[None]
    with torch.no_grad():
        expected = reference_distillmos(audio).flatten()
        ours = distillmos_model(audio).mos
    assert torch.allclose(ours, expected, atol=1e-4), (ours, expected)


def test_batched_file_scoring_equals_distillmos_clip_by_clip(distillmos_model, reference_distillmos, tmp_path):
    clips = [synthetic_speech(s, seed=i, noise_db=db) for i, (s, db) in enumerate([(2.5, None), (8.0, 5), (12.0, 20)])]
    paths = [write_clip(tmp_path / f"{i}.wav", c, subtype="FLOAT") for i, c in enumerate(clips)]
    ours = score(paths, model=distillmos_model, batch_size=3)
    with torch.no_grad():
        expected = [reference_distillmos(torch.from_numpy(c)[None]).item() for c in clips]
    assert np.allclose(ours, expected, atol=1e-4)


def test_bf16_precision_stays_close_to_exact_scores(distillmos_model, tmp_path):
    clips = [synthetic_speech(s, seed=10 + i, noise_db=db) for i, (s, db) in enumerate([(3.0, None), (10.0, 0), (9.0, 25)])]
    exact = score(clips, model=distillmos_model, sampling_rate=16000)
    fast = score(clips, model=distillmos_model, sampling_rate=16000, precision="bf16")
    assert np.max(np.abs(fast - exact)) < 2e-3
    with pytest.raises(ValueError, match="precision must be one of"):
        score(clips, model=distillmos_model, sampling_rate=16000, precision="fp16")


@pytest.mark.skipif(not (SHARED_MOS_CORPUS / "labels.csv").is_file(), reason="shared bvrnn_mushra corpus absent")
def test_scores_equal_distillmos_on_real_codec_clips(distillmos_model, reference_distillmos):
    import csv

    rows = list(csv.DictReader(open(SHARED_MOS_CORPUS / "labels.csv")))[:24]
    audios = [load_audio(SHARED_MOS_CORPUS / row["path"]).samples for row in rows]
    with torch.no_grad():
        expected = np.array([reference_distillmos(torch.from_numpy(a)[None]).item() for a in audios])
    ours = score(audios, model=distillmos_model, sampling_rate=16000)
    assert np.allclose(ours, expected, atol=1e-4)


def test_converted_config_is_the_v7_default(distillmos_dir):
    converted = ConvTransformerMOSConfig.from_pretrained(distillmos_dir).to_diff_dict()
    default = ConvTransformerMOSConfig().to_diff_dict()
    for key in ("conv_channels", "head_hidden_size", "head_num_layers", "head_num_heads", "head_ffn_size"):
        assert converted.get(key) == default.get(key)


def test_bad_weights_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such Distill-MOS weights file"):
        convert_distillmos(None, weights=tmp_path / "missing.pt")
    torch.save({"model": {"something.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(ConversionError, match="not a Distill-MOS checkpoint"):
        convert_distillmos(None, weights=tmp_path / "other.pt")
