"""Audio input, in one place: decoding (soundfile), channel handling, resampling (soxr), validation.

Everything that reads audio in hf_sqa goes through `load_audio`, which returns 16 kHz mono float32 or
raises `AudioError` naming the input and the reason.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_SAMPLING_RATE = 16000
MIN_DURATION_S = 0.25
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64")


class AudioError(ValueError):
    """An input that cannot be scored. `source` names the input, `reason` says why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


@dataclass
class Audio:
    """Decoded audio ready for a model.

    samples: (time,) float32 mono at `sampling_rate`
    """

    samples: np.ndarray
    sampling_rate: int
    source: str
    original_sampling_rate: int
    num_channels: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sampling_rate

    @property
    def is_silent(self) -> bool:
        """Digital silence: every sample exactly zero. Such clips are scored, and flagged."""
        return not np.any(self.samples)


def _declared_wav_data_bytes(path: Path) -> tuple[int, int] | None:
    """(declared, available) bytes of a RIFF/WAVE file's data chunk, or None if not a plain RIFF WAV.

    libsndfile silently reads what is there from a cut-off WAV, so truncation is checked here.
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        size = path.stat().st_size
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                return chunk_size, size - position - 8
            position += 8 + chunk_size + (chunk_size & 1)
    return None


def _decode_file(path: Path | bytes, source: str) -> tuple[np.ndarray, int]:
    """(time, channels) float32 and the sampling rate of a file, or of an encoded file's bytes."""
    if isinstance(path, (bytes, bytearray)):
        if len(path) == 0:
            raise AudioError(source, "audio bytes are empty")
        opened = io.BytesIO(path)
    else:
        if not path.exists():
            raise AudioError(source, "file does not exist")
        if path.is_dir():
            raise AudioError(source, "is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(source, "file is empty (0 bytes)")
        opened = path
    try:
        with sf.SoundFile(opened) as handle:
            declared_frames = handle.frames
            sampling_rate = handle.samplerate
            data = handle.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        message = str(error)
        if "Format not recognised" in message or "unknown format" in message.lower():
            raise AudioError(source, "not a recognised audio format (unreadable or not audio)") from error
        raise AudioError(source, f"cannot decode ({message.strip()}); the file is corrupt or truncated") from error
    except (OSError, RuntimeError) as error:
        raise AudioError(source, f"cannot read: {error}") from error
    if len(data) < declared_frames:
        raise AudioError(source, f"truncated: header declares {declared_frames} frames, only {len(data)} decode")
    wav_bytes = None if isinstance(path, (bytes, bytearray)) else _declared_wav_data_bytes(path)
    # 0xFFFFFFFF and 0 are "unknown size" markers written by streaming encoders
    if wav_bytes is not None and wav_bytes[0] not in (0, 0xFFFFFFFF) and wav_bytes[1] < wav_bytes[0]:
        raise AudioError(
            source, f"truncated WAV: data chunk declares {wav_bytes[0]} bytes, only {wav_bytes[1]} present"
        )
    return data, sampling_rate


def _array_to_time_channels(array, source: str) -> np.ndarray:
    """numpy array or torch tensor -> (time, channels) float32. 2-D input: the shorter axis is channels."""
    if hasattr(array, "detach"):  # torch.Tensor without importing torch here
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        scale = float(max(abs(info.min), info.max + 1))
        offset = 0.0 if info.min < 0 else scale / 2  # unsigned PCM is centred at half range
        array = (array.astype(np.float64) - offset) / (scale if info.min < 0 else scale / 2)
    elif array.dtype.kind != "f":
        raise AudioError(source, f"array of dtype {array.dtype} is not audio samples")
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim == 2:
        if array.shape[0] < array.shape[1]:
            array = array.T
    else:
        raise AudioError(source, f"array must be (time,) or 2-D (time/channels), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def load_audio(
    source: str | os.PathLike | bytes | np.ndarray,
    sampling_rate: int | None = None,
    channel: int | None = None,
    target_sampling_rate: int = TARGET_SAMPLING_RATE,
    min_duration: float = MIN_DURATION_S,
    name: str | None = None,
) -> Audio:
    """Decode, validate, mix or pick a channel, and resample one input.

    source:        a path to any file soundfile reads (WAV 8-32 bit and float, FLAC, OGG, MP3, ...), the
                   bytes of such a file (parquet shards, Hub datasets), or a numpy array / torch tensor of
                   samples (then `sampling_rate` is required)
    channel:       None mixes all channels to mono (their mean); N picks channel N (0 = first)
    min_duration:  inputs shorter than this many seconds are refused
    name:          how errors name a bytes or array input (default "<bytes>" / "<array>")
    """
    if isinstance(source, (str, os.PathLike, bytes, bytearray)):
        is_bytes = isinstance(source, (bytes, bytearray))
        label = (name or "<bytes>") if is_bytes else str(source)
        data, file_rate = _decode_file(source if is_bytes else Path(source), label)
        if sampling_rate is not None and sampling_rate != file_rate:
            raise AudioError(label, f"sampling_rate={sampling_rate} given, but the file is {file_rate} Hz")
        sampling_rate = file_rate
    else:
        label = name or "<array>"
        if sampling_rate is None:
            raise AudioError(label, "sampling_rate is required for array input")
        data = _array_to_time_channels(source, label)
    if sampling_rate <= 0:
        raise AudioError(label, f"invalid sampling rate {sampling_rate}")

    num_frames, num_channels = data.shape
    if num_frames == 0:
        raise AudioError(label, "contains no samples")
    if not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise AudioError(label, f"contains {bad} NaN or infinite samples")
    if num_frames / sampling_rate < min_duration:
        raise AudioError(
            label, f"too short: {num_frames / sampling_rate:.3f} s, at least {min_duration:g} s is needed"
        )
    if channel is None:
        mono = data.mean(axis=1)
    elif 0 <= channel < num_channels:
        mono = data[:, channel]
    else:
        raise AudioError(label, f"has {num_channels} channel(s); channel {channel} does not exist (0 = first)")
    if sampling_rate != target_sampling_rate:
        mono = soxr.resample(mono, sampling_rate, target_sampling_rate, quality="HQ")
    return Audio(
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        sampling_rate=target_sampling_rate,
        source=label,
        original_sampling_rate=sampling_rate,
        num_channels=num_channels,
    )


def find_audio_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Audio files (by extension) inside a folder, sorted, optionally recursing into subfolders."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
