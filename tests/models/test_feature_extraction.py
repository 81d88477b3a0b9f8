"""MOSFeatureExtractor: any rate and channel count -> the model's input, padded with a mask; the same audio
path as hf_sqa.audio; the same scores as hf_sqa.score; saved with every checkpoint."""

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor

import hf_sqa
from hf_sqa.audio import AudioError, load_audio
from hf_sqa.models import ConvTransformerForMOSRegression, MOSFeatureExtractor
from hf_sqa.testing import synthetic_speech, tiny_student_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ConvTransformerForMOSRegression(tiny_student_config()).eval()


def test_any_rate_and_channels_become_the_model_input_as_hf_sqa_audio_makes_it():
    extractor = MOSFeatureExtractor()
    stereo_44k = np.stack([synthetic_speech(1.5, 44100, seed=1), synthetic_speech(1.5, 44100, seed=2)], axis=1)
    pcm_8k = (synthetic_speech(2.0, 8000, seed=3) * 20000).astype(np.int16)
    for clip, rate in ((stereo_44k, 44100), (stereo_44k.T, 44100), (pcm_8k, 8000)):
        features = extractor([clip], sampling_rate=rate, return_tensors="np")
        expected = load_audio(clip, sampling_rate=rate).samples
        assert features["input_values"].dtype == np.float32
        assert np.array_equal(features["input_values"][0], expected)
        assert features["attention_mask"].sum() == len(expected)
    first = extractor([stereo_44k], sampling_rate=44100, channel=1, return_tensors="np")["input_values"][0]
    assert np.array_equal(first, load_audio(stereo_44k, sampling_rate=44100, channel=1).samples)


def test_batches_are_padded_with_a_mask():
    extractor = MOSFeatureExtractor()
    clips = [synthetic_speech(s, seed=i) for i, s in enumerate([0.5, 2.0, 1.0])]
    features = extractor(clips, sampling_rate=16000, return_tensors="pt")
    assert features["input_values"].shape == (3, 32000) and features["input_values"].dtype == torch.float32
    assert features["attention_mask"].sum(dim=1).tolist() == [8000, 32000, 16000]
    assert torch.all(features["input_values"][0, 8000:] == 0)
    # a (batch, time) array is a batch of mono clips, a 1-D one a single clip, as in transformers
    same = np.stack([clips[1], clips[1]])
    assert extractor(same, sampling_rate=16000, return_tensors="pt")["input_values"].shape == (2, 32000)
    assert extractor(clips[1], sampling_rate=16000, return_tensors="pt")["input_values"].shape == (1, 32000)
    assert extractor(torch.from_numpy(clips[1]), sampling_rate=16000, return_tensors="pt")["input_values"].shape == (1, 32000)


def test_bad_input_names_the_clip():
    extractor = MOSFeatureExtractor()
    with pytest.raises(AudioError, match="clip 1: too short"):
        extractor([synthetic_speech(1.0), synthetic_speech(0.1)], sampling_rate=16000)
    with pytest.raises(AudioError, match="clip 0: contains 1 NaN"):
        extractor([np.array([0.1] * 8000 + [np.nan], dtype=np.float32)], sampling_rate=16000)
    with pytest.raises(AudioError, match="invalid sampling rate"):
        extractor([synthetic_speech(1.0)], sampling_rate=0)
    with pytest.raises(ValueError, match="pass multi-channel clips as a list"):
        extractor(np.zeros((2, 2, 16000), np.float32), sampling_rate=16000)


def test_model_scores_through_it_as_through_hf_sqa_score(model):
    clips = [synthetic_speech(1.2, 22050, seed=4), synthetic_speech(9.0, 22050, seed=5),
             synthetic_speech(3.0, 22050, seed=6)]
    extractor = MOSFeatureExtractor.from_model_config(model.config)
    with torch.no_grad():
        mos = model(**extractor(clips, sampling_rate=22050, return_tensors="pt")).mos.numpy()
    expected = hf_sqa.score(clips, model=model, sampling_rate=22050, batch_size=1)
    assert np.allclose(mos, expected, atol=1e-6)


def test_every_saved_checkpoint_has_it(model, tmp_path, tiny_checkpoint, distillmos_dir):
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, MOSFeatureExtractor) and loaded.sampling_rate == model.config.sampling_rate
    assert loaded.return_attention_mask and loaded.padding_value == 0.0
    for checkpoint in (tiny_checkpoint, distillmos_dir):  # a trainer-style save and the converter's
        assert isinstance(AutoFeatureExtractor.from_pretrained(checkpoint), MOSFeatureExtractor)
