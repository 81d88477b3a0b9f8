from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

import hf_sqa
from hf_sqa import AudioError, iter_scores, load_audio, load_model, score
from hf_sqa.models import ConvTransformerForMOSRegression
from hf_sqa.scoring import BUILTIN_CHECKPOINT_VERSION, builtin_model_path
from hf_sqa.testing import synthetic_speech, tiny_student_config, write_clip


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return ConvTransformerForMOSRegression(tiny_student_config()).eval()


def _alone(model, samples):
    with torch.no_grad():
        return model(torch.from_numpy(samples)[None]).mos.item()


def test_score_paths_and_arrays_equal_single_forward(tiny_model, clip_folder):
    paths = sorted(str(p) for p in clip_folder.rglob("*.*"))
    expected = [_alone(tiny_model, load_audio(p).samples) for p in paths]
    for batch_size in (1, 2, 8):
        assert np.allclose(score(paths, model=tiny_model, batch_size=batch_size), expected, atol=1e-5)
    arrays = [load_audio(p).samples for p in paths]
    assert np.allclose(score(arrays, model=tiny_model, sampling_rate=16000), expected, atol=1e-5)
    assert score(paths[0], model=tiny_model).shape == (1,)


def test_iter_scores_goes_on_past_bad_inputs_in_order(tiny_model, clip_folder, tmp_path):
    good = sorted(str(p) for p in clip_folder.rglob("*.wav"))
    bad = str(write_clip(tmp_path / "nan.wav", np.full(16000, np.nan, np.float32), subtype="FLOAT"))
    silent = str(write_clip(tmp_path / "silent.wav", np.zeros(16000, np.float32)))
    inputs = [good[0], str(tmp_path / "missing.wav"), bad, good[1], silent]
    results = list(iter_scores(inputs, tiny_model, batch_size=2))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.source for r in results] == inputs
    assert [r.ok for r in results] == [True, False, False, True, True]
    assert results[1].error == "file does not exist" and "NaN" in results[2].error
    assert np.isnan(results[1].mos)
    assert results[4].is_silent and 1 <= results[4].mos <= 5
    assert results[3].mos == pytest.approx(_alone(tiny_model, load_audio(good[1]).samples), abs=1e-5)
    # 9 s clip -> 3 windows, ends clipped to the clip
    noisy = results[3]
    assert [round(s.start, 3) for s in noisy.segments] == [0.0, 0.66, 1.32]
    assert noisy.segments[-1].end == pytest.approx(9.0)


def test_score_raises_on_bad_input(tiny_model, tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file does not exist"):
        score([str(tmp_path / "missing.wav")], model=tiny_model)


def test_default_model_is_converted_once_into_the_cache(model_cache, distillmos_dir):
    assert distillmos_dir == model_cache / f"distillmos-v{BUILTIN_CHECKPOINT_VERSION}"
    assert load_model("distillmos").config.imported_from == "distillmos"
    stamp = (distillmos_dir / "model.safetensors").stat().st_mtime_ns
    model = load_model("distillmos")
    assert builtin_model_path("distillmos") == distillmos_dir
    assert (distillmos_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert sum(p.numel() for p in model.parameters()) == 4_133_226 and not model.training
    assert not list(model_cache.glob(".distillmos-*")), "staging folders are cleaned up"


def test_load_model_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a built-in name"):
        load_model(str(tmp_path / "nope"))


def test_pipeline_task(tiny_model, clip_folder):
    sqa = pipeline("speech-quality-assessment", model=tiny_model)
    path = str(clip_folder / "noisy.wav")
    result = sqa(path)
    assert result["mos"] == pytest.approx(_alone(tiny_model, load_audio(path).samples), abs=1e-5)
    assert len(result["segments"]) == 3 and result["silent"] is False
    clip = synthetic_speech(2.0, 8000)
    from_array = sqa(clip, sampling_rate=8000)
    assert from_array["mos"] == pytest.approx(_alone(tiny_model, load_audio(clip, sampling_rate=8000).samples), abs=1e-5)
    assert isinstance(sqa, hf_sqa.SpeechQualityPipeline)


def test_unexpected_decoder_failure_becomes_an_error_row(tiny_model, clip_folder, monkeypatch):
    import hf_sqa.scoring as scoring

    real_load = scoring.load_audio

    def flaky_load(item, **kwargs):
        if str(item).endswith("noisy.wav"):
            raise RuntimeError("decoder crashed")
        return real_load(item, **kwargs)

    monkeypatch.setattr(scoring, "load_audio", flaky_load)
    paths = [str(clip_folder / "noisy.wav"), str(clip_folder / "clean.wav")]
    results = list(iter_scores(paths, tiny_model))
    assert results[0].error == "RuntimeError: decoder crashed" and results[1].ok


def test_builtin_fast_model_ships_in_the_package_and_scores():
    from hf_sqa.models import FastMOSForMOSRegression
    from hf_sqa.scoring import packaged_model_path

    model = load_model("fast")
    assert isinstance(model, FastMOSForMOSRegression)
    assert sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert (packaged_model_path("fast") / "README.md").is_file()  # its model card travels with it
    speech = load_audio(Path(__file__).resolve().parents[1] / "examples" / "clean.wav").samples
    noise = np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    noisy = speech + noise * np.sqrt(np.mean(speech**2) / 10 ** (-5 / 10))  # white noise at -5 dB SNR
    scores = score([speech, noisy], model="fast", sampling_rate=16000)
    assert np.all((scores >= 1) & (scores <= 5)) and scores[0] > scores[1] + 0.3
