import numpy as np
import pytest
import torch

from hf_sqa.audio import AudioError, AudioStream, find_audio_files, load_audio
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


@pytest.mark.parametrize("rate, channels, fmt", [(16000, 1, "WAV"), (44100, 2, "FLAC"), (8000, 1, "WAV")])
def test_stream_blocks_equal_the_whole_input(tmp_path, rate, channels, fmt):
    """Block by block (soxr's streaming resampler across block edges) gives exactly what load_audio gives."""
    speech = synthetic_speech(7.3, rate, seed=3)
    data = np.stack([speech, 0.5 * speech[::-1]], axis=1) if channels == 2 else speech
    path = write_clip(tmp_path / f"clip.{fmt.lower()}", data, rate, format=fmt)
    for channel in (None, channels - 1):
        with AudioStream(path, channel=channel, block_seconds=0.37) as stream:
            blocks = list(stream.blocks())
            summary = stream.scan()
        joined = np.concatenate(blocks)
        assert len(blocks) > 10 and np.array_equal(joined, load_audio(path, channel=channel).samples)
        assert summary.num_samples == len(joined) and summary.peak == np.abs(joined).max()
        assert summary.mean == pytest.approx(joined.astype(np.float64).mean(), abs=1e-12)
        assert summary.variance == pytest.approx(joined.astype(np.float64).var(), rel=1e-9)
    assert np.array_equal(np.concatenate(list(AudioStream(data, sampling_rate=rate, block_seconds=1.1).blocks())),
                          load_audio(data, sampling_rate=rate).samples)


def _count_decodes(monkeypatch) -> list[int]:
    """Every decoding pass over a file (AudioStream._source_blocks calls) appends to the returned list."""
    calls, original = [], AudioStream._source_blocks

    def counted(self):
        calls.append(1)
        yield from original(self)

    monkeypatch.setattr(AudioStream, "_source_blocks", counted)
    return calls


def test_a_scanned_stream_is_decoded_once(tmp_path, monkeypatch):
    """The scan keeps its samples in a temporary file: the next passes read them (the same samples, in blocks
    of the stream's size) instead of decoding and resampling the file again; closing removes the file."""
    speech = synthetic_speech(9.3, 44100, seed=5)
    path = write_clip(tmp_path / "clip.ogg", np.stack([speech, 0.5 * speech], axis=1), 44100, format="OGG",
                      subtype="VORBIS")
    expected = load_audio(path).samples
    decodes = _count_decodes(monkeypatch)
    with AudioStream(path, block_seconds=2.0) as stream:
        summary = stream.scan()
        passes = [list(stream.blocks()), list(stream.blocks())]
        spool = stream._spool
    assert len(decodes) == 1 and spool.closed
    for blocks in passes:
        assert np.array_equal(np.concatenate(blocks), expected) and summary.num_samples == len(expected)
        assert [len(block) for block in blocks[:-1]] == [32000] * (len(blocks) - 1)
    decodes.clear()
    with AudioStream(path, block_seconds=2.0, spool=False) as stream:
        stream.scan()
        assert np.array_equal(np.concatenate(list(stream.blocks())), expected) and len(decodes) == 2
    decodes.clear()
    with AudioStream(expected, sampling_rate=16000, block_seconds=2.0) as stream:  # arrays: nothing to spool
        stream.scan()
        assert stream._spool is None and np.array_equal(np.concatenate(list(stream.blocks())), expected)


def test_a_scan_without_room_for_its_samples_decodes_again(tmp_path, monkeypatch):
    import tempfile

    class FullDisk:
        closed = False

        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            self.closed = True

    full = FullDisk()
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda: full)
    path = write_clip(tmp_path / "clip.flac", synthetic_speech(5.0, seed=6))
    decodes = _count_decodes(monkeypatch)
    with AudioStream(path, block_seconds=1.0) as stream:
        assert stream.scan().num_samples == 80000 and full.closed and stream._spool is None
        assert np.array_equal(np.concatenate(list(stream.blocks())), load_audio(path).samples)
    assert len(decodes) == 3  # scan, blocks, load_audio
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda: open(tmp_path / "missing" / "spool", "w+b"))
    with AudioStream(path, block_seconds=1.0) as stream:  # no temporary directory at all
        assert stream.scan().num_samples == 80000 and stream._spool is None
        assert np.array_equal(np.concatenate(list(stream.blocks())), load_audio(path).samples)


def test_stream_names_where_a_file_stops_decoding(tmp_path):
    path = write_clip(tmp_path / "long.flac", synthetic_speech(30.0, seed=4))
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])  # cut off after ~18 s
    stream = AudioStream(path, block_seconds=2.0)  # the header is fine
    seen = []
    with pytest.raises(AudioError) as caught:
        for block in stream.blocks():
            seen.append(len(block))
    assert caught.value.source == str(path) and "corrupt or truncated" in caught.value.reason
    stopped = float(caught.value.reason.split("stops decoding at ")[1].split(" s")[0])
    assert 10.0 < stopped < 20.0 and sum(seen) / 16000 == pytest.approx(stopped, abs=0.1)


def test_stream_reports_nan_from_its_position():
    samples = synthetic_speech(5.0)
    samples[3 * 16000 + 5] = np.nan
    with pytest.raises(AudioError, match=r"1 NaN or infinite samples \(from 3.0 s\)"):
        list(AudioStream(samples, sampling_rate=16000, block_seconds=1.0).blocks())
