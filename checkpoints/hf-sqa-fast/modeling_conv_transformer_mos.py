"""ConvTransformer students: compressed complex STFT -> 2-D conv stack -> the shared MOS head."""

from __future__ import annotations

import math

import torch
from torch import nn

from .configuration_conv_transformer_mos import ConvTransformerMOSConfig
from .modeling_mos import MOSPreTrainedModel


def _fused_conv_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class CompressedSpectrumConvStack(nn.Module):
    """(N, window_length) waveforms -> (N, frames, channels * frequency_bins) features."""

    def __init__(self, config: ConvTransformerMOSConfig):
        super().__init__()
        self.n_fft = config.stft_n_fft
        self.hop_length = config.stft_hop_length
        self.compression = config.spectrum_compression
        self.negative_slope = config.conv_negative_slope
        kernel = config.conv_kernel_size
        in_channels = [2] + list(config.conv_channels[:-1])
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel, stride=(f_stride, t_stride), padding=(0, kernel // 2))
            for c_in, c_out, f_stride, t_stride in zip(
                in_channels, config.conv_channels, config.conv_freq_strides, config.conv_time_strides
            )
        )
        self.output_size = config.conv_channels[-1] * config.conv_frequency_bins

    @property
    def edge_padding(self) -> int:
        """Samples of reflect padding at both ends of a signal before the STFT."""
        return (self.n_fft - self.hop_length) // 2

    def compressed_spectrum(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, samples) -> (N, 2, n_fft // 2 + 1, frames): real/imag of |X|^c * X / |X|."""
        side = self.edge_padding
        padded = nn.functional.pad(windows[:, None], (side, side), mode="reflect")[:, 0]
        return self.spectrum_of_padded(padded)

    def spectrum_of_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """(N, padded samples) already edge-padded -> (N, 2, n_fft // 2 + 1, frames), no centring."""
        spectrum = torch.stft(
            padded,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=torch.hann_window(self.n_fft, device=padded.device, dtype=padded.dtype),
            center=False,
            return_complex=True,
        )
        parts = torch.view_as_real(spectrum)  # (N, F, T, 2)
        magnitude = parts.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-12)
        compressed = magnitude.pow(self.compression) * parts / magnitude
        return compressed.permute(0, 3, 1, 2)

    def _fused_cpu_inference(self, windows: torch.Tensor) -> bool:
        return (
            not self.training
            and not torch.is_grad_enabled()
            and windows.device.type == "cpu"
            and windows.dtype == torch.float32
            and _fused_conv_available()
            # the fused path calls oneDNN with the conv weights directly, bypassing forward hooks on the
            # conv modules (hf_sqa.pruning's unit gates use them)
            and not any(conv._forward_hooks for conv in self.convs)
        )

    def _conv_stack_fused(self, spectrum: torch.Tensor) -> torch.Tensor:
        """CPU inference: oneDNN convolutions with the LeakyReLU fused in, on channels-last tensors.

        Under CPU autocast to bfloat16 the convolutions run in bfloat16 (AMX / AVX512-BF16 units) where the
        CPU supports it, else in float32.
        """
        dtype = torch.float32
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            dtype = torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
        x = spectrum.to(dtype)
        for conv in self.convs:
            x = self.fused_conv(x, conv, dtype)
        return x

    def fused_conv(self, x: torch.Tensor, conv: nn.Conv2d, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One conv layer and its LeakyReLU as one oneDNN kernel, in `dtype`: (N, C_in, F, T) channels-last ->
        (N, C_out, F', T')."""
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight.to(dtype), conv.bias.to(dtype), list(conv.padding), list(conv.stride), [1, 1], 1,
            "leaky_relu", [self.negative_slope], "",
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if self._fused_cpu_inference(windows):
            # one window at a time: a window's activations (~30 MB in the first layers) then stay in the
            # CPU caches between layers (Distill-MOS, 2 threads: 93 ms/window one at a time, 111 ms/window
            # 8 at once; benchmarks/score_speed.py --breakdown)
            x = torch.cat([self.conv_stack(self.compressed_spectrum(window[None])) for window in windows])
        else:
            x = self.conv_stack(self.compressed_spectrum(windows))
        return self.frames(x)

    def conv_stack(self, spectrum: torch.Tensor) -> torch.Tensor:
        """(N, 2, bins, frames) compressed spectrum -> (N, C, F, T) conv features (fused oneDNN kernels
        for CPU inference)."""
        x = spectrum.contiguous(memory_format=torch.channels_last)
        if self._fused_cpu_inference(spectrum):
            return self._conv_stack_fused(x)
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), self.negative_slope)
        return x

    @staticmethod
    def frames(features: torch.Tensor) -> torch.Tensor:
        """(N, C, F, T) -> (N, C * F, T) channel-major, as Distill-MOS flattens -> (N, T, C * F)."""
        return features.flatten(1, 2).transpose(1, 2)


class ConvTransformerForMOSRegression(MOSPreTrainedModel):
    config_class = ConvTransformerMOSConfig
    config: ConvTransformerMOSConfig
    base_model_prefix = "frontend"

    def __init__(self, config: ConvTransformerMOSConfig):
        super().__init__(config)
        self.frontend = CompressedSpectrumConvStack(config)
        self.feature_norm = nn.BatchNorm1d(self.frontend.output_size)
        self.head = self.build_head(self.frontend.output_size)
        self._silence_cache: tuple[tuple, torch.Tensor] | None = None
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, nn.Conv2d) and not getattr(module.weight, "_is_hf_initialized", False):
            # He init for LeakyReLU stacks trains from scratch far better than N(0, 0.02)
            nn.init.kaiming_normal_(module.weight, a=self.config.conv_negative_slope, nonlinearity="leaky_relu")

    def score_windows(self, windows: torch.Tensor, lengths: torch.Tensor, output_hidden_states: bool = False):
        """windows: (N, window_length) -> (N,) MOS; with output_hidden_states also the head's hidden states
        (projection and each transformer layer, (N, frames, d) each)."""
        if self.config.peak_normalize_windows:
            windows = windows / (windows.abs().amax(dim=-1, keepdim=True) + 1e-8)
        features = self.window_features(windows, lengths)  # (N, frames, C * F)
        features = self.feature_norm(features.transpose(1, 2)).transpose(1, 2)
        return self.head(features, output_hidden_states)

    def window_features(self, windows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(N, window_length) windows, zero past `lengths` -> conv features (N, frames_per_window, C * F).

        In CPU inference (windows one at a time) a window of a clip shorter than a window costs the front end
        of its own samples only: its frames that see nothing but the zero padding are `silence_frames()`,
        the same numbers up to float rounding. Elsewhere (training, GPU batches, even conv kernels, whose
        receptive field is lopsided) every window runs whole."""
        if (not self.frontend._fused_cpu_inference(windows) or self.config.conv_kernel_size % 2 == 0
                or bool((lengths >= windows.shape[-1]).all())):
            return self.frontend(windows)
        full = windows.shape[-1]
        return torch.stack([
            self.zero_padded_window_frames(window[:length]) if length < full else self.frontend(window[None])[0]
            for window, length in zip(windows, lengths.tolist())
        ])

    def silence_frames(self) -> torch.Tensor:
        """Conv features (frames_per_window, C * F) of one window of zeros: what the front end gives the zero
        padding of a short clip (constant, but for the conv's zero padding at the end).

        Depends on the weights only, and is taken as a constant of them: computed without gradients (in
        training the padding then shapes the head, not the front end) and cached, keyed on the front end's
        parameters and their in-place version counters (an optimiser step or load_state_dict changes the
        key), so a training step computes it once, inference once per set of weights."""
        device = self.frontend.convs[0].weight.device
        autocast = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type)
        key = (device, autocast, tuple((id(p), p._version) for p in self.frontend.parameters()))
        if self._silence_cache is None or self._silence_cache[0] != key:
            with torch.no_grad():
                silence = self.frontend(torch.zeros(1, self.config.window_length, device=device))[0]
            self._silence_cache = (key, silence)
        return self._silence_cache[1]

    def zero_padded_window_frames(self, samples: torch.Tensor) -> torch.Tensor:
        """A clip (T,) shorter than a window, already level-normalised -> conv features (frames_per_window,
        C * F) of the clip zero-padded to one window: the front end runs over the clip and just enough zeros
        for the frames that see it; the frames that see only zeros are `silence_frames()`."""
        cfg = self.config
        stride, hop, margin = cfg.time_stride, cfg.stft_hop_length, cfg.receptive_margin
        # first output frame whose receptive field (STFT frames k * stride +- margin, each n_fft samples
        # from (frame * hop - edge padding)) starts at or after the clip's end
        silent_from = min(math.ceil((samples.shape[0] + self.frontend.edge_padding + margin * hop) / (stride * hop)),
                          cfg.frames_per_window)
        # frames before it need STFT frames up to (silent_from - 1) * stride + margin, all inside the zeros
        extended = min(cfg.window_length, ((silent_from - 1) * stride + margin) * hop + cfg.stft_n_fft)
        clip_part = self.frontend(nn.functional.pad(samples, (0, extended - samples.shape[0]))[None])[0]
        return torch.cat([clip_part[:silent_from], self.silence_frames()[silent_from:].to(clip_part.dtype)])
