"""The "speech-quality-assessment" pipeline: the inputs transformers audio pipelines take, batching through
the feature extractor, plain JSON output."""

import json

import datasets
import numpy as np
import pytest
import torch
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset

import hf_sqa
from hf_sqa import AudioError, load_audio
from hf_sqa.models import ConvTransformerForMOSRegression
from hf_sqa.testing import synthetic_speech, tiny_student_config


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return ConvTransformerForMOSRegression(tiny_student_config()).eval()


@pytest.fixture(scope="module")
def sqa(tiny_model):
    return pipeline("speech-quality-assessment", model=tiny_model)


def _alone(model, samples):
    with torch.no_grad():
        return model(torch.from_numpy(samples)[None]).mos.item()


def test_pipeline_task(sqa, tiny_model, clip_folder):
    path = str(clip_folder / "noisy.wav")
    result = sqa(path)
    assert result["mos"] == pytest.approx(_alone(tiny_model, load_audio(path).samples), abs=1e-5)
    assert len(result["segments"]) == 3 and result["silent"] is False
    clip = synthetic_speech(2.0, 8000)
    from_array = sqa(clip, sampling_rate=8000)
    assert from_array["mos"] == pytest.approx(_alone(tiny_model, load_audio(clip, sampling_rate=8000).samples), abs=1e-5)
    assert isinstance(sqa, hf_sqa.SpeechQualityPipeline)
    assert isinstance(sqa.feature_extractor, hf_sqa.models.MOSFeatureExtractor)


def test_every_input_kind_scores_the_same_audio(sqa, tiny_model, clip_folder):
    path = clip_folder / "sub" / "stereo.flac"  # 44.1 kHz stereo
    expected = _alone(tiny_model, load_audio(path).samples)
    array, rate = load_audio(path, target_sampling_rate=44100).samples, 44100  # decoded, still 44.1 kHz mono
    encoded = path.read_bytes()
    kinds = {
        "path": str(path), "Path": path, "bytes": encoded,
        "dict array": {"array": array, "sampling_rate": rate},
        "dict raw": {"raw": array, "sampling_rate": rate},
        "undecoded datasets row (bytes)": {"bytes": encoded, "path": None},
        "undecoded datasets row (path)": {"bytes": None, "path": str(path)},
    }
    for kind, inputs in kinds.items():
        assert sqa(inputs)["mos"] == pytest.approx(expected, abs=1e-5), kind
    assert sqa(array, sampling_rate=rate)["mos"] == pytest.approx(expected, abs=1e-5)
    assert sqa(torch.from_numpy(array), sampling_rate=rate)["mos"] == pytest.approx(expected, abs=1e-5)
    # lists and generators give one result per input, in order
    as_list = sqa([str(path), {"array": array, "sampling_rate": rate}])
    assert [r["mos"] for r in as_list] == pytest.approx([expected, expected], abs=1e-5)
    from_generator = list(sqa(item for item in [str(path), encoded]))
    assert [r["mos"] for r in from_generator] == pytest.approx([expected, expected], abs=1e-5)


def test_a_datasets_audio_column(sqa, tiny_model, clip_folder):
    paths = sorted(str(p) for p in clip_folder.rglob("*.*"))
    expected = [_alone(tiny_model, load_audio(p).samples) for p in paths]
    undecoded = datasets.Dataset.from_dict({"audio": paths}).cast_column("audio", datasets.Audio(decode=False))
    decoded_rows = datasets.Dataset.from_dict(
        {"audio": [{"array": load_audio(p).samples, "sampling_rate": 16000} for p in paths]})
    for dataset in (undecoded, decoded_rows):
        results = list(sqa(KeyDataset(dataset, "audio"), batch_size=2))
        assert [r["mos"] for r in results] == pytest.approx(expected, abs=1e-5)


def test_batch_size_does_not_change_scores(sqa):
    clips = [synthetic_speech(seconds, seed=i) for i, seconds in enumerate([0.5, 3.0, 9.5, 2.0, 12.0, 7.68])]
    one = sqa(clips, sampling_rate=16000, batch_size=1)
    four = sqa(clips, sampling_rate=16000, batch_size=4)
    assert [r["mos"] for r in four] == pytest.approx([r["mos"] for r in one], abs=1e-6)
    for a, b in zip(one, four):
        assert [(s["start"], s["end"]) for s in a["segments"]] == [(s["start"], s["end"]) for s in b["segments"]]
        assert a["p10_mos"] == pytest.approx(b["p10_mos"], abs=1e-6)
    # windows end at their clip's end, not at the padded batch's
    assert four[0]["segments"][-1]["end"] == pytest.approx(0.5)


def test_output_is_plain_json(sqa):
    result = sqa(synthetic_speech(10.0), sampling_rate=16000, below=3.0)
    assert json.loads(json.dumps(result)) == result
    for key in ("mos", "lowest_mos", "p10_mos", "share_below"):
        assert type(result[key]) is float, key
    assert type(result["silent"]) is bool
    assert all(type(value) is float for segment in result["segments"] for value in segment.values())
    silent = sqa(np.zeros(16000, np.float32), sampling_rate=16000)
    assert silent["silent"] is True


def test_pipeline_window_hop_and_summary(sqa):
    clip = synthetic_speech(20.0, seed=9)
    result = sqa(clip, sampling_rate=16000, window_hop=7.68, below=4.0)
    assert len(result["segments"]) == 3 and 0.0 <= result["share_below"] <= 1.0
    assert result["lowest_mos"] == pytest.approx(min(s["mos"] for s in result["segments"]))
    assert "share_below" not in sqa(clip, sampling_rate=16000)


def test_bad_inputs_say_what_is_missing(sqa):
    with pytest.raises(AudioError, match="sampling_rate is required"):
        sqa(synthetic_speech(1.0))
    with pytest.raises(AudioError, match="<array>: sampling_rate is required"):
        sqa({"array": synthetic_speech(1.0)})
    with pytest.raises(AudioError, match="got keys \\['audio'\\]"):
        sqa({"audio": synthetic_speech(1.0)})
