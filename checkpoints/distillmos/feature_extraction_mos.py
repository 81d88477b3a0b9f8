"""The feature extractor of every hf_sqa MOS model: audio arrays in any rate and channel count -> the padded
batch `forward` takes.

The models normalise their input themselves (peak or per-clip statistics, over the unpadded samples), so
the feature extractor only converts (to mono float32 at the model's rate, `audio_arrays`) and pads with
an `attention_mask`.
"""

from __future__ import annotations

import numpy as np
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers.utils import logging

from .audio_arrays import MIN_DURATION_S, array_to_mono

logger = logging.get_logger(__name__)


class MOSFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns raw audio into the input of an hf_sqa MOS model (`input_values`, `attention_mask`).

    Args:
        feature_size (`int`, defaults to 1): one value per sample (raw waveform).
        sampling_rate (`int`, defaults to 16000): the model's rate; other rates are resampled to it (soxr, HQ).
        padding_value (`float`, defaults to 0.0): what pads shorter clips of a batch.
        return_attention_mask (`bool`, defaults to `True`): the models need it to score padded clips as alone.
        min_duration (`float`, defaults to 0.25): clips shorter than this many seconds are refused.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, feature_size: int = 1, sampling_rate: int = 16000, padding_value: float = 0.0,
                 return_attention_mask: bool = True, min_duration: float = MIN_DURATION_S, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        self.min_duration = min_duration

    @classmethod
    def from_model_config(cls, config) -> MOSFeatureExtractor:
        """The feature extractor for a model with this config (its rate)."""
        return cls(sampling_rate=config.sampling_rate)

    def __call__(self, raw_speech, sampling_rate: int | None = None, channel: int | None = None,
                 padding: bool | str = True, max_length: int | None = None, truncation: bool = False,
                 pad_to_multiple_of: int | None = None, return_attention_mask: bool | None = None,
                 return_tensors: str | None = None, **kwargs) -> BatchFeature:
        """
        raw_speech:     one clip or a batch. One clip: a 1-D array / tensor / list of floats (time,). A batch:
                        a list of clips, or a 2-D array / tensor (batch, time) of mono clips. In a list, a
                        2-D item is one multi-channel clip ((time, channels) or (channels, time): the shorter
                        axis is channels). Integer PCM is scaled to [-1, 1).
        sampling_rate:  the clips' rate (resampled to the model's); without it they are taken to be at the
                        model's rate, with a warning, as in transformers' audio feature extractors.
        channel:        None mixes channels to mono (their mean); N takes channel N.
        Returns `input_values` (batch, time) float32 and, unless turned off, `attention_mask` (batch, time).
        """
        if sampling_rate is None:
            logger.warning(f"No sampling_rate given to {type(self).__name__}: the audio is taken to be at "
                           f"{self.sampling_rate} Hz. Pass `sampling_rate=` to avoid silent errors.")
            sampling_rate = self.sampling_rate
        if hasattr(raw_speech, "detach"):  # torch.Tensor without importing torch here
            raw_speech = raw_speech.detach().cpu().numpy()
        if isinstance(raw_speech, np.ndarray):
            if raw_speech.ndim > 2:
                raise ValueError(f"raw_speech must be (time,) or (batch, time), got shape {raw_speech.shape}; "
                                 "pass multi-channel clips as a list")
            clips = list(raw_speech) if raw_speech.ndim == 2 else [raw_speech]
        elif isinstance(raw_speech, (list, tuple)) and raw_speech and not np.isscalar(raw_speech[0]):
            clips = list(raw_speech)
        else:
            clips = [np.asarray(raw_speech, dtype=np.float32)]  # one clip as a list of floats
        mono = [array_to_mono(clip, sampling_rate, self.sampling_rate, channel, source=f"clip {index}",
                              min_duration=self.min_duration)
                for index, clip in enumerate(clips)]
        return self.pad(BatchFeature({"input_values": mono}), padding=padding, max_length=max_length,
                        truncation=truncation, pad_to_multiple_of=pad_to_multiple_of,
                        return_attention_mask=return_attention_mask, return_tensors=return_tensors)
