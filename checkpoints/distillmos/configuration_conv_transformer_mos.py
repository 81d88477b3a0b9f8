"""Configuration of the ConvTransformer students (the Distill-MOS architecture family)."""

from __future__ import annotations

import math

from .configuration_mos import MOSConfig


class ConvTransformerMOSConfig(MOSConfig):
    r"""
    STFT -> power-law compressed complex spectrum (2 channels) -> 2-D conv stack -> MOS head.
    Defaults are exactly Distill-MOS v7 (4.1 M parameters). Head fields are inherited from `MOSConfig`;
    here they default to Distill-MOS's 7 layers of width 200, 8 heads, feed-forward 400.

    stft_n_fft (`int`, defaults to 320):
        FFT size and Hann window length (20 ms at 16 kHz).
    stft_hop_length (`int`, defaults to 160):
        STFT hop (10 ms). Windows are reflect-padded by `(n_fft - hop) / 2` at both ends.
    spectrum_compression (`float`, defaults to 0.3):
        Exponent c of the magnitude compression: X -> |X|^c * X / |X|.
    conv_channels (`list[int]`, defaults to `[64, 64, 128, 256, 256, 256]`):
        Output channels of each 2-D conv layer (input: real and imaginary part).
    conv_freq_strides (`list[int]`, defaults to `[1, 2, 2, 2, 2, 2]`):
        Frequency stride of each conv layer (no frequency padding).
    conv_time_strides (`list[int]`, defaults to `[1, 1, 1, 1, 1, 2]`):
        Time stride of each conv layer (time padding `kernel // 2`).
    conv_kernel_size (`int`, defaults to 3):
        Square kernel size of every conv layer.
    conv_negative_slope (`float`, defaults to 0.1):
        LeakyReLU slope after every conv layer.
    peak_normalize_windows (`bool`, defaults to `True`):
        Divide every window by its peak absolute sample, making scores independent of gain.
    """

    model_type = "conv_transformer_mos"

    stft_n_fft: int = 320
    stft_hop_length: int = 160
    spectrum_compression: float | int = 0.3
    conv_channels: list[int] | tuple[int, ...] = (64, 64, 128, 256, 256, 256)
    conv_freq_strides: list[int] | tuple[int, ...] = (1, 2, 2, 2, 2, 2)
    conv_time_strides: list[int] | tuple[int, ...] = (1, 1, 1, 1, 1, 2)
    conv_kernel_size: int = 3
    conv_negative_slope: float | int = 0.1
    peak_normalize_windows: bool = True
    head_hidden_size: int = 200
    head_num_layers: int = 7
    head_num_heads: int = 8
    head_ffn_size: int = 400

    def __post_init__(self, **kwargs):
        self.conv_channels = list(self.conv_channels)
        self.conv_freq_strides = list(self.conv_freq_strides)
        self.conv_time_strides = list(self.conv_time_strides)
        if not (len(self.conv_channels) == len(self.conv_freq_strides) == len(self.conv_time_strides) > 0):
            raise ValueError(
                "conv_channels, conv_freq_strides and conv_time_strides need one entry per conv layer; got "
                f"{len(self.conv_channels)}, {len(self.conv_freq_strides)}, {len(self.conv_time_strides)}"
            )
        if min(self.conv_channels + self.conv_freq_strides + self.conv_time_strides) <= 0:
            raise ValueError("conv channels and strides must be positive")
        if self.stft_hop_length > self.stft_n_fft:
            raise ValueError(f"stft_hop_length {self.stft_hop_length} exceeds stft_n_fft {self.stft_n_fft}")
        if self.conv_frequency_bins < 1:
            raise ValueError(
                f"the conv stack reduces {self.stft_n_fft // 2 + 1} frequency bins to none; use fewer layers "
                "or smaller frequency strides"
            )
        super().__post_init__(**kwargs)

    @property
    def conv_frequency_bins(self) -> int:
        """Frequency bins left after the conv stack (161 -> 4 for Distill-MOS)."""
        bins = self.stft_n_fft // 2 + 1
        for stride in self.conv_freq_strides:
            bins = (bins - self.conv_kernel_size) // stride + 1
        return bins

    @property
    def frames_per_window(self) -> int:
        """Feature frames the head sees per window (384 for 7.68 s windows)."""
        return self.output_frames(self.window_length)

    @property
    def time_stride(self) -> int:
        """STFT frames per output frame (product of the conv time strides)."""
        return math.prod(self.conv_time_strides)

    @property
    def samples_per_frame(self) -> int:
        return self.stft_hop_length * self.time_stride

    @property
    def receptive_margin(self) -> int:
        """STFT frames on each side of a chunk that its edge outputs depend on, rounded up to whole output
        frames: sum over layers of (kernel // 2) x the stride product of the layers before it."""
        radius, stride = 0, 1
        for layer_stride in self.conv_time_strides:
            radius += (self.conv_kernel_size // 2) * stride
            stride *= layer_stride
        return math.ceil((radius + 1) / self.time_stride) * self.time_stride

    def stft_frames(self, num_samples: int) -> int:
        """STFT frames of a clip (reflect-padded by (n_fft - hop) / 2 at both ends, no centring)."""
        side = (self.stft_n_fft - self.stft_hop_length) // 2
        return (num_samples + 2 * side - self.stft_n_fft) // self.stft_hop_length + 1

    def output_frames(self, num_samples: int) -> int:
        """Conv stack output frames of a clip (kernel k, time padding k // 2, odd k)."""
        frames = self.stft_frames(num_samples)
        for stride in self.conv_time_strides:
            frames = (frames - 1) // stride + 1
        return frames


# Named student sizes. "distillmos-v7" is the released Distill-MOS architecture; the smaller ones thin the
# conv stack and the head. Parameter counts: `hf-sqa presets`.
STUDENT_PRESETS: dict[str, dict] = {
    "distillmos-v7": {},
    "large": dict(
        conv_channels=[32, 48, 96, 192, 192, 192], head_hidden_size=160, head_num_layers=6,
        head_num_heads=8, head_ffn_size=320,
    ),
    "medium": dict(
        conv_channels=[32, 32, 64, 128, 128, 128], head_hidden_size=128, head_num_layers=4,
        head_num_heads=8, head_ffn_size=256,
    ),
    # the shipped fast student's layer sizes (< 1 M parameters; run by FastMOSForMOSRegression)
    "fast": dict(
        conv_channels=[32, 32, 64, 128, 128, 128], head_hidden_size=128, head_num_layers=4,
        head_num_heads=4, head_ffn_size=192,
    ),
    "small": dict(
        conv_channels=[16, 32, 48, 96, 96, 96], head_hidden_size=96, head_num_layers=3,
        head_num_heads=4, head_ffn_size=192,
    ),
    "xsmall": dict(
        conv_channels=[16, 16, 32, 48, 64, 64], head_hidden_size=64, head_num_layers=2,
        head_num_heads=4, head_ffn_size=128,
    ),
    "tiny": dict(
        conv_channels=[8, 16, 16, 32, 48, 48], head_hidden_size=48, head_num_layers=2,
        head_num_heads=4, head_ffn_size=96,
    ),
}


def student_config(preset: str, **overrides) -> ConvTransformerMOSConfig:
    """A `ConvTransformerMOSConfig` for a named preset, with optional field overrides."""
    if preset not in STUDENT_PRESETS:
        raise ValueError(f"unknown student preset {preset!r}; choose one of {sorted(STUDENT_PRESETS)}")
    return ConvTransformerMOSConfig(**{**STUDENT_PRESETS[preset], **overrides})
