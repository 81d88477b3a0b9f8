import numpy as np
import pytest
import torch

from hf_sqa.audio import AudioError, find_audio_files, load_audio
from hf_sqa.testing import synthetic_speech, write_clip


def _sine(freq, seconds, rate):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _peak_hz(samples, rate=16000):
    return np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples)


@pytest.mark.parametrize(
    "fmt, subtype, tolerance",
    [
        ("WAV", "PCM_U8", 1e-2), ("WAV", "PCM_16", 1e-4), ("WAV", "PCM_24", 1e-6), ("WAV", "PCM_32", 1e-6),
        ("WAV", "FLOAT", 0), ("WAV", "DOUBLE", 0), ("FLAC", "PCM_16", 1e-4), ("FLAC", "PCM_24", 1e-6),
    ],
)
def test_lossless_formats_decode_to_the_samples_written(tmp_path, fmt, subtype, tolerance):
    clip = synthetic_speech(1.0)
    path = write_clip(tmp_path / f"clip.{fmt.lower()}", clip, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.sampling_rate == 16000 and audio.samples.dtype == np.float32
    assert np.max(np.abs(audio.samples - clip)) <= tolerance + 1e-7


@pytest.mark.parametrize("fmt, subtype, suffix", [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_lossy_formats_decode(tmp_path, fmt, subtype, suffix):
    path = write_clip(tmp_path / f"tone.{suffix}", _sine(440, 2.0, 16000), format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert abs(audio.duration - 2.0) < 0.1
    assert abs(_peak_hz(audio.samples) - 440) < 5


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_any_rate_is_resampled_to_16k(tmp_path, rate):
    audio = load_audio(write_clip(tmp_path / "tone.wav", _sine(1000, 1.5, rate), rate, subtype="FLOAT"))
    assert audio.original_sampling_rate == rate and audio.sampling_rate == 16000
    assert len(audio.samples) == pytest.approx(1.5 * 16000, abs=2)
    assert abs(_peak_hz(audio.samples) - 1000) < 2


def test_channels_are_mixed_or_picked(tmp_path):
    left, right = _sine(300, 1.0, 16000), _sine(700, 1.0, 16000)
    path = write_clip(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    assert np.allclose(load_audio(path).samples, (left + right) / 2, atol=1e-6)
    assert np.allclose(load_audio(path, channel=1).samples, right)
    assert load_audio(path).num_channels == 2
    with pytest.raises(AudioError, match=r"stereo\.wav: has 2 channel\(s\); channel 2 does not exist"):
        load_audio(path, channel=2)


def test_arrays_and_tensors():
    clip = synthetic_speech(1.0, 8000)
    assert np.allclose(load_audio(clip, sampling_rate=8000).samples.shape, (16000,), atol=2)
    assert np.allclose(load_audio(torch.from_numpy(clip), sampling_rate=8000).samples,
                       load_audio(clip, sampling_rate=8000).samples)
    pcm = (clip * 32767).astype(np.int16)
    assert np.allclose(load_audio(pcm, sampling_rate=8000).samples, load_audio(clip, sampling_rate=8000).samples, atol=1e-3)
    stereo_first = np.stack([clip, clip])  # (channels, time): the shorter axis is channels
    assert load_audio(stereo_first, sampling_rate=8000).num_channels == 2
    with pytest.raises(AudioError, match=r"<array>: sampling_rate is required"):
        load_audio(clip)
    with pytest.raises(AudioError, match=r"my clip: array must be"):
        load_audio(np.zeros((2, 2, 8000)), sampling_rate=8000, name="my clip")


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: d / "missing.wav", "file does not exist"),
        (lambda d: d, "is a directory"),
        (lambda d: _write_bytes(d / "empty.wav", b""), "file is empty"),
        (lambda d: _write_bytes(d / "text.wav", b"not audio at all"), "not a recognised audio format"),
        (lambda d: _truncate(write_clip(d / "cut.wav", synthetic_speech(2.0))), "truncated WAV"),
        (lambda d: _truncate(write_clip(d / "cut.flac", synthetic_speech(2.0))), "corrupt or truncated"),
        (lambda d: _truncate(write_clip(d / "cut.mp3", synthetic_speech(2.0), format="MP3")), "truncated"),
        (lambda d: write_clip(d / "short.wav", synthetic_speech(0.1)), "too short: 0.100 s"),
        (lambda d: write_clip(d / "nan.wav", np.full(8000, np.nan, np.float32), subtype="FLOAT"), "NaN or infinite"),
        (lambda d: write_clip(d / "inf.wav", np.r_[np.zeros(7999), np.inf].astype(np.float32), subtype="FLOAT"), "1 NaN or infinite"),
    ],
    ids=["missing", "directory", "empty", "not-audio", "truncated-wav", "truncated-flac", "truncated-mp3",
         "too-short", "nan", "inf"],
)
def test_bad_files_name_the_input_and_the_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    assert caught.value.source == str(path)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(str(path))


def test_empty_and_nan_arrays():
    with pytest.raises(AudioError, match="contains no samples"):
        load_audio(np.zeros(0, np.float32), sampling_rate=16000)
    with pytest.raises(AudioError, match="NaN"):
        load_audio(np.full(16000, np.nan, np.float32), sampling_rate=16000)


def test_digital_silence_is_loaded_and_flagged(tmp_path):
    audio = load_audio(write_clip(tmp_path / "silence.wav", np.zeros(16000, np.float32)))
    assert audio.is_silent and len(audio.samples) == 16000
    assert not load_audio(synthetic_speech(1.0), sampling_rate=16000).is_silent


def test_find_audio_files(clip_folder):
    (clip_folder / "notes.txt").write_text("not audio")
    top = [p.name for p in find_audio_files(clip_folder, recursive=False)]
    assert top == ["clean.wav", "noisy.wav"]
    assert [p.name for p in find_audio_files(clip_folder)] == ["clean.wav", "noisy.wav", "stereo.flac"]
