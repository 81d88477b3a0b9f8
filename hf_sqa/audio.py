"""Audio input, in one place: decoding (soundfile), channel handling, resampling (soxr), validation.

Everything that reads audio in hf_sqa goes through `AudioStream` (block by block, for inputs of any
length) or `load_audio` (the whole input in memory, read through an `AudioStream`): 16 kHz mono float32,
or `AudioError` naming the input and the reason. The array side (sample formats, channel layout, mixing,
resampling, the checks) is `hf_sqa.models.audio_arrays`, shared with the feature extractor.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from .models.audio_arrays import MIN_DURATION_S, AudioError, MonoConverter, check_layout, to_time_channels

TARGET_SAMPLING_RATE = 16000
BLOCK_SECONDS = 30.0  # what AudioStream decodes at a time
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64")


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


def _open_sound_file(source: Path | bytes, label: str) -> sf.SoundFile:
    """An open soundfile handle on a file or an encoded file's bytes, after the checks its header allows."""
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError(label, "audio bytes are empty")
        opened = io.BytesIO(source)
    else:
        if not source.exists():
            raise AudioError(label, "file does not exist")
        if source.is_dir():
            raise AudioError(label, "is a directory, not an audio file")
        if source.stat().st_size == 0:
            raise AudioError(label, "file is empty (0 bytes)")
        opened = source
    try:
        handle = sf.SoundFile(opened)
    except sf.LibsndfileError as error:
        message = str(error)
        if "Format not recognised" in message or "unknown format" in message.lower():
            raise AudioError(label, "not a recognised audio format (unreadable or not audio)") from error
        raise AudioError(label, f"cannot decode ({message.strip()}); the file is corrupt or truncated") from error
    except (OSError, RuntimeError) as error:
        raise AudioError(label, f"cannot read: {error}") from error
    wav_bytes = None if isinstance(source, (bytes, bytearray)) else _declared_wav_data_bytes(source)
    # 0xFFFFFFFF and 0 are "unknown size" markers written by streaming encoders
    if wav_bytes is not None and wav_bytes[0] not in (0, 0xFFFFFFFF) and wav_bytes[1] < wav_bytes[0]:
        handle.close()
        raise AudioError(
            label, f"truncated WAV: data chunk declares {wav_bytes[0]} bytes, only {wav_bytes[1]} present"
        )
    return handle


def _unpack_audio_dict(row: dict, sampling_rate: int | None, name: str | None):
    """A dict as transformers' audio pipelines and `datasets` Audio columns give -> (source, sampling_rate,
    name): {"array" or "raw", "sampling_rate"} (decoded), {"bytes", "path"} (undecoded, `decode=False`)."""
    if "array" in row or "raw" in row:
        samples = row["array"] if "array" in row else row["raw"]
        return samples, row.get("sampling_rate") or sampling_rate, name or row.get("path") or "<array>"
    if row.get("bytes"):
        return row["bytes"], None, name or row.get("path") or "<bytes>"
    if row.get("path"):
        return row["path"], None, name
    raise AudioError(name or "<dict>", "expected 'array' (or 'raw') with 'sampling_rate', or 'bytes' / 'path'; "
                                       f"got keys {sorted(row)}")


@dataclass
class StreamSummary:
    """What one pass over a whole input found, on the samples a model sees (mono, target rate)."""

    num_samples: int
    peak: float  # largest |sample|
    mean: float
    variance: float

    @property
    def is_silent(self) -> bool:
        return self.peak == 0.0


class AudioStream:
    """One input decoded block by block: the same checks, mixing and resampling as `load_audio`, with
    memory bounded by a block whatever the input's length.

    The header is read and checked when the stream is made (missing, empty, unreadable, too short, bad
    channel or rate); `blocks()` decodes from the start each time it is called, yields mono float32 blocks
    at `target_sampling_rate` (soxr's streaming resampler: the same samples as resampling the whole
    signal at once) and raises `AudioError` naming the position where decoding fails (a corrupt or
    truncated file, NaN samples). `scan()` is one such pass, for what scoring needs before its own pass
    (the exact length, and the peak and statistics some models normalise by).

    A decoded input's scan also keeps what it decoded (`spool`, default on): its mono float32 samples at
    the target rate go to an anonymous temporary file (`tempfile.TemporaryFile`, in TMPDIR; 64 kB per
    second of audio at 16 kHz, removed when the stream closes or the process ends), and `blocks()` after the
    scan reads them back instead of decoding and resampling the input a second time (a pass over a 44.1 kHz
    stereo Ogg file costs about a quarter of the time `fast` takes to score it). Memory stays one block;
    if the temporary file cannot be made or written (no usable TMPDIR, a full disk), the scan goes on
    without it and the next pass decodes again.
    """

    def __init__(
        self,
        source: str | os.PathLike | bytes | np.ndarray | dict,
        sampling_rate: int | None = None,
        channel: int | None = None,
        target_sampling_rate: int = TARGET_SAMPLING_RATE,
        min_duration: float = MIN_DURATION_S,
        name: str | None = None,
        block_seconds: float = BLOCK_SECONDS,
        spool: bool = True,
    ):
        if isinstance(source, dict):
            source, sampling_rate, name = _unpack_audio_dict(source, sampling_rate, name)
        self.target_sampling_rate = target_sampling_rate
        self.channel = channel
        self.block_seconds = block_seconds
        self.spool = spool
        self._summary: StreamSummary | None = None
        self._spool: BinaryIO | None = None  # the scan's samples, when it kept them
        self._handle: sf.SoundFile | None = None
        self._array: np.ndarray | None = None
        if isinstance(source, (str, os.PathLike, bytes, bytearray)):
            is_bytes = isinstance(source, (bytes, bytearray))
            self.label = (name or "<bytes>") if is_bytes else str(source)
            self._handle = _open_sound_file(source if is_bytes else Path(source), self.label)
            file_rate = self._handle.samplerate
            if sampling_rate is not None and sampling_rate != file_rate:
                self.close()
                raise AudioError(self.label, f"sampling_rate={sampling_rate} given, but the file is {file_rate} Hz")
            self.sampling_rate, self.num_channels = file_rate, self._handle.channels
            self.declared_frames = self._handle.frames
        else:
            self.label = name or "<array>"
            if sampling_rate is None:
                raise AudioError(self.label, "sampling_rate is required for array input")
            self._array = to_time_channels(source, self.label)
            self.sampling_rate = sampling_rate
            self.declared_frames, self.num_channels = self._array.shape
        try:
            check_layout(self.label, self.sampling_rate, self.declared_frames, self.num_channels, channel,
                         min_duration)
        except AudioError:
            self.close()
            raise

    @property
    def declared_duration(self) -> float:
        """Seconds, from the header (or the array's length), before decoding."""
        return self.declared_frames / self.sampling_rate

    def _source_blocks(self) -> Iterator[np.ndarray]:
        """(frames, channels) float32 blocks at the source rate, from the start."""
        block = max(1, int(self.block_seconds * self.sampling_rate)) if math.isfinite(self.block_seconds) else None
        if self._array is not None:
            block = block or len(self._array)
            for start in range(0, len(self._array), block):
                yield self._array[start : start + block]
            return
        block = block or -1  # soundfile: everything left
        handle, decoded = self._handle, 0
        try:
            handle.seek(0)
            while True:
                data = handle.read(block, dtype="float32", always_2d=True)
                if not len(data):
                    break
                decoded += len(data)
                yield data
        except sf.LibsndfileError as error:
            raise AudioError(self.label, f"stops decoding at {decoded / self.sampling_rate:.1f} s "
                                         f"({str(error).strip()}); the file is corrupt or truncated") from error
        except (OSError, RuntimeError) as error:
            raise AudioError(self.label, f"cannot read past {decoded / self.sampling_rate:.1f} s: {error}") from error
        if decoded < self.declared_frames:
            raise AudioError(self.label, f"truncated: header declares {self.declared_frames} frames, only {decoded} "
                                         f"decode (stops at {decoded / self.sampling_rate:.1f} s)")

    def _decoded_blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at the target rate, decoded from the start."""
        convert = MonoConverter(self.sampling_rate, self.target_sampling_rate, self.channel, self.label)
        for data in self._source_blocks():
            mono = convert(data)
            if len(mono):
                yield mono
        tail = convert.finish()
        if len(tail):
            yield tail

    def _spooled_blocks(self) -> Iterator[np.ndarray]:
        """The scan's samples read back from its temporary file, a block at a time."""
        spool = self._spool
        spool.seek(0)
        size = (int(self.block_seconds * self.target_sampling_rate) if math.isfinite(self.block_seconds)
                else self._summary.num_samples)
        while True:
            block = np.empty(max(1, size), dtype=np.float32)
            got = spool.readinto(memoryview(block).cast("B")) // block.itemsize
            if not got:
                return
            yield block[:got]

    def blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at the target rate, from the start (after a spooled scan: its samples)."""
        return self._spooled_blocks() if self._spool is not None else self._decoded_blocks()

    @staticmethod
    def _new_spool() -> BinaryIO | None:
        try:
            return tempfile.TemporaryFile()
        except OSError:  # no usable temporary directory: the next pass decodes again
            return None

    def scan(self) -> StreamSummary:
        """One pass over the whole input (cached): its exact length at the target rate, peak, mean and
        variance (float64 sums); a decoded input's samples are kept for the next pass (see the class)."""
        if self._summary is None:
            spool = self._new_spool() if self.spool and self._handle is not None else None
            count, peak, total, squares = 0, 0.0, 0.0, 0.0
            try:
                for block in self._decoded_blocks():
                    count += len(block)
                    peak = max(peak, float(np.abs(block).max()))
                    wide = block.astype(np.float64)
                    total += float(wide.sum())
                    squares += float(np.dot(wide, wide))
                    if spool is not None:
                        try:
                            spool.write(memoryview(block).cast("B"))
                        except OSError:  # no room for it: the next pass decodes again
                            spool.close()
                            spool = None
            except BaseException:
                if spool is not None:
                    spool.close()
                raise
            mean = total / count
            self._summary = StreamSummary(count, peak, mean, max(squares / count - mean * mean, 0.0))
            self._spool = spool
        return self._summary

    def read(self) -> Audio:
        """The whole input in memory (what `load_audio` returns)."""
        samples = np.concatenate(list(self.blocks()))
        return Audio(samples=samples, sampling_rate=self.target_sampling_rate, source=self.label,
                     original_sampling_rate=self.sampling_rate, num_channels=self.num_channels)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_audio(
    source: str | os.PathLike | bytes | np.ndarray | dict,
    sampling_rate: int | None = None,
    channel: int | None = None,
    target_sampling_rate: int = TARGET_SAMPLING_RATE,
    min_duration: float = MIN_DURATION_S,
    name: str | None = None,
) -> Audio:
    """Decode, validate, mix or pick a channel, and resample one input (all of it in memory; long
    inputs: `AudioStream`).

    source:        a path to any file soundfile reads (WAV 8-32 bit and float, FLAC, OGG, MP3, ...), the
                   bytes of such a file (parquet shards, Hub datasets), a numpy array / torch tensor of
                   samples (then `sampling_rate` is required), or a dict as transformers' audio pipelines
                   and `datasets` Audio columns give ({"array" or "raw", "sampling_rate"}, {"bytes", "path"})
    channel:       None mixes all channels to mono (their mean); N picks channel N (0 = first)
    min_duration:  inputs shorter than this many seconds are refused
    name:          how errors name a bytes or array input (default "<bytes>" / "<array>")
    """
    with AudioStream(source, sampling_rate, channel, target_sampling_rate, min_duration, name,
                     block_seconds=float("inf")) as stream:
        return stream.read()


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """A float waveform as 16-bit samples (clipped to [-1, 1], as any 16-bit file holds it): half the memory
    of float32 for audio kept in memory or on disk."""
    return np.round(np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


def from_pcm16(samples: np.ndarray) -> np.ndarray:
    """`to_pcm16`'s samples back as float32."""
    return samples.astype(np.float32) / 32767.0


def find_audio_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Audio files (by extension) inside a folder, sorted, optionally recursing into subfolders."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
