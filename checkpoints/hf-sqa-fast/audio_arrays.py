"""Samples in memory -> what a model reads: float32, mono, at the model's rate, checked.

The one implementation of the array side of audio input: `hf_sqa.audio` decodes files and streams on top
of it, and the feature extractor (`MOSFeatureExtractor`) uses it directly. It lives with the model code
because checkpoints ship these files flat for `trust_remote_code`, where hf_sqa is not installed (so it
imports only numpy and soxr).
"""

from __future__ import annotations

import numpy as np
import soxr

MIN_DURATION_S = 0.25


class AudioError(ValueError):
    """An input that cannot be scored. `source` names the input, `reason` says why."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


def to_time_channels(array, source: str) -> np.ndarray:
    """numpy array or torch tensor -> (time, channels) float32. Integer PCM is scaled to [-1, 1);
    2-D input: the shorter axis is channels."""
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


def check_layout(source: str, sampling_rate, num_frames: int, num_channels: int, channel: int | None,
                 min_duration: float = MIN_DURATION_S) -> None:
    """Refuse, naming `source`, what cannot be scored whatever its samples: a bad rate, no samples, fewer
    than `min_duration` seconds, a channel that does not exist."""
    if (isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, float, np.integer, np.floating))
            or not sampling_rate > 0):  # NaN fails `> 0` too
        raise AudioError(source, f"invalid sampling rate {sampling_rate!r}")
    if num_frames == 0:
        raise AudioError(source, "contains no samples")
    if num_frames / sampling_rate < min_duration:
        raise AudioError(source, f"too short: {num_frames / sampling_rate:.3f} s, at least {min_duration:g} s is "
                                 "needed")
    if channel is not None and not 0 <= channel < num_channels:
        raise AudioError(source, f"has {num_channels} channel(s); channel {channel} does not exist (0 = first)")


class MonoConverter:
    """(frames, channels) float32 blocks at `sampling_rate`, in order -> mono float32 at `target_sampling_rate`.

    channel None mixes the channels (their mean), N picks channel N. Resampling is soxr's streaming
    resampler (HQ), so converting block by block gives exactly the samples of converting everything at
    once. NaN or infinite samples raise `AudioError` naming where they start.
    """

    def __init__(self, sampling_rate: int, target_sampling_rate: int, channel: int | None, source: str):
        self.sampling_rate, self.channel, self.source = sampling_rate, channel, source
        self._resampler = None
        if sampling_rate != target_sampling_rate:
            self._resampler = soxr.ResampleStream(sampling_rate, target_sampling_rate, 1, dtype="float32",
                                                  quality="HQ")
        self._position = 0  # source frames converted

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(block)):
            bad = int(np.size(block) - np.count_nonzero(np.isfinite(block)))
            raise AudioError(self.source, f"contains {bad} NaN or infinite samples (from "
                                          f"{self._position / self.sampling_rate:.1f} s)")
        self._position += len(block)
        mono = block.mean(axis=1) if self.channel is None else block[:, self.channel]
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=False)
        return np.ascontiguousarray(mono, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """The resampler's last samples (empty without resampling)."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True),
                                    dtype=np.float32)


def array_to_mono(array, sampling_rate: int, target_sampling_rate: int, channel: int | None = None,
                  source: str = "<array>", min_duration: float = MIN_DURATION_S) -> np.ndarray:
    """One clip held in memory -> (time,) mono float32 at `target_sampling_rate`, checked."""
    frames = to_time_channels(array, source)
    check_layout(source, sampling_rate, frames.shape[0], frames.shape[1], channel, min_duration)
    converter = MonoConverter(sampling_rate, target_sampling_rate, channel, source)
    return np.concatenate([converter(frames), converter.finish()])
