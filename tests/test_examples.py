"""examples/: the committed clips are what `make examples` makes (deterministic), and the default model
ranks the clean recording above every degradation of it."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import hf_sqa

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _maker():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not _maker().SPEECH.is_file(), reason="../shared/data (LibriSpeech) is not here")
def test_committed_examples_are_what_make_examples_makes():
    maker = _maker()
    clean = hf_sqa.load_audio(maker.SPEECH).samples
    noise = hf_sqa.load_audio(maker.NOISE).samples[maker.RATE * 10:]
    for name, (samples, _) in maker.degraded_clips(clean, noise).items():
        committed = hf_sqa.load_audio(EXAMPLES / name).samples
        # as the 16-bit WAV it was written as (libsndfile scales by 32768; its rounding may differ by 1)
        expected = np.clip(np.round(np.clip(samples, -1, 1).astype(np.float64) * 32768), -32768, 32767) / 32768
        assert len(committed) == len(expected) and np.abs(committed - expected).max() <= 1.01 / 32768, name
    assert sorted(p.name for p in EXAMPLES.glob("*.wav")) == sorted(maker.degraded_clips(clean, noise))


def test_the_default_model_ranks_clean_speech_above_each_degradation():
    names = ["clean.wav", "noise_snr5.wav", "narrowband_g711.wav", "packet_loss_10.wav", "clipped.wav",
             "mp3_16kbps.wav"]
    mos = dict(zip(names, hf_sqa.score([str(EXAMPLES / name) for name in names])))
    assert mos["clean.wav"] >= 4.0  # "good" or better
    assert all(mos[name] < mos["clean.wav"] - 0.3 for name in names[1:]), mos
