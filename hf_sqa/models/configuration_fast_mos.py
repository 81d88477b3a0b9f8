"""Configuration of the fast student: the ConvTransformer layers with a clip-level front end."""

from __future__ import annotations

from .configuration_conv_transformer_mos import ConvTransformerMOSConfig


class FastMOSConfig(ConvTransformerMOSConfig):
    r"""
    The layers of `ConvTransformerMOSConfig` (so Distill-MOS weights and pruned students load into it),
    run differently: the clip is level-normalised once, the STFT and conv stack run once over the whole
    clip (in chunks of `frontend_chunk_frames` output frames that overlap by the conv stack's receptive
    field, so memory stays bounded), and the head scores every window from the shared frames. Overlapping
    windows then cost head work only. Windows start on the frame grid (`samples_per_frame` = 320 samples,
    20 ms) nearest to the sample starts of the windowing rule.

    Defaults are the `fast` preset's sizes (`conv_channels`, head) — see `STUDENT_PRESETS`.

    frontend_chunk_frames (`int`, defaults to 500):
        Output frames (10 s at 20 ms) per front-end chunk; bounds the conv activations' memory (with
        60 s chunks they were a few hundred MB of a long recording's peak RSS).
    pad_short_clips (`bool`, defaults to `False`):
        `True`: score a clip shorter than a window as the windowed model does, as one window zero-padded
        at the end: its own frames followed by the frames of silence (computed once per set of weights, so
        the padding costs head work only). Distill-MOS weights then score short clips exactly as Distill-MOS.
        `False`: one window of the clip's own frames; a student trained so learns the effect of the
        teacher's padding (the shipped `fast` is; see the README for which trained better).
    level_normalization (`str`, defaults to `"peak"`):
        `"peak"`: divide the clip by its peak absolute sample (scores do not depend on gain).
    """

    model_type = "fast_mos"

    frontend_chunk_frames: int = 500
    pad_short_clips: bool = False
    level_normalization: str = "peak"

    def __post_init__(self, **kwargs):
        if self.frontend_chunk_frames <= 0:
            raise ValueError(f"frontend_chunk_frames must be positive, got {self.frontend_chunk_frames}")
        if self.level_normalization != "peak":
            raise ValueError(f"level_normalization must be 'peak', got {self.level_normalization!r}")
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"the chunked front end needs an odd conv_kernel_size, got {self.conv_kernel_size}")
        super().__post_init__(**kwargs)
