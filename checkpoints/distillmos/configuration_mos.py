"""Configuration fields shared by every hf_sqa MOS model: windowing, the MOS head, and the loss."""

from __future__ import annotations

from transformers import PreTrainedConfig

LOSS_TYPES = ("mse", "l1")


class MOSConfig(PreTrainedConfig):
    r"""
    Base of the hf_sqa model configurations; not used on its own.

    sampling_rate (`int`, defaults to 16000):
        Sampling rate the model expects, in Hz. Audio loading resamples to it.
    window_length (`int`, defaults to 122880):
        Samples per model window (7.68 s at 16 kHz). Shorter clips are zero-padded to one window.
    window_max_hop (`int`, defaults to 16000):
        Largest distance in samples between the starts of consecutive windows of a long clip; the windows
        are spread evenly so the last one ends at the clip's end (Distill-MOS's rule).
    max_windows_per_forward (`int`, defaults to 256):
        Memory bound: a batch whose windows exceed this number runs them in chunks of this size (CPU
        inference uses chunks of at most 4, which the CPU caches favour).
    head_hidden_size (`int`, defaults to 32):
        Width of the head's transformer (the down-projection size).
    head_num_layers (`int`, defaults to 4):
        Transformer encoder layers in the head.
    head_num_heads (`int`, defaults to 4):
        Attention heads per head transformer layer; their width is `head_hidden_size // head_num_heads`.
    head_ffn_size (`int`, defaults to 64):
        Feed-forward width of the head transformer layers.
    head_layer_num_heads (`list[int]`, *optional*):
        Pruned structure: heads kept in each head transformer layer (0 removes its attention block).
        `None` means `head_num_heads` in every layer.
    head_layer_ffn_sizes (`list[int]`, *optional*):
        Pruned structure: feed-forward width of each head transformer layer (0 removes the block).
        `None` means `head_ffn_size` in every layer.
    head_dropout (`float`, defaults to 0.0):
        Dropout in the head (after projection, in the transformer, after it, and in the pooling scorer).
    position_scale_length (`int`, defaults to 384):
        Length that scales the head's sinusoidal position frequencies (the frames in one window).
    loss_type (`str`, defaults to `"mse"`):
        Regression loss against `labels`: `"mse"` or `"l1"`.
    imported_from (`str`, *optional*):
        Provenance of imported weights (`"distillmos"`, `"xls-r-sqa"`), set by `hf-sqa convert`; model
        cards state the source and its licence from it.
    """

    sampling_rate: int = 16000
    window_length: int = 122880
    window_max_hop: int = 16000
    max_windows_per_forward: int = 256
    head_hidden_size: int = 32
    head_num_layers: int = 4
    head_num_heads: int = 4
    head_ffn_size: int = 64
    head_layer_num_heads: list[int] | None = None
    head_layer_ffn_sizes: list[int] | None = None
    head_dropout: float | int = 0.0
    position_scale_length: int = 384
    loss_type: str = "mse"
    imported_from: str | None = None

    def __post_init__(self, **kwargs):
        for name in ("sampling_rate", "window_length", "window_max_hop", "max_windows_per_forward",
                     "head_hidden_size", "head_num_layers", "head_num_heads", "head_ffn_size",
                     "position_scale_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{type(self).__name__}.{name} must be positive, got {getattr(self, name)}")
        if self.head_hidden_size % 2:
            raise ValueError(f"head_hidden_size must be even (sine/cosine pairs), got {self.head_hidden_size}")
        if self.head_hidden_size % self.head_num_heads:
            raise ValueError(
                f"head_hidden_size {self.head_hidden_size} is not divisible by head_num_heads {self.head_num_heads}"
            )
        for name, full in (("head_layer_num_heads", self.head_num_heads), ("head_layer_ffn_sizes", self.head_ffn_size)):
            _check_layer_sizes(self, name, full, self.head_num_layers)
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type {self.loss_type!r} is not one of {LOSS_TYPES}")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        super().__post_init__(**kwargs)

    @property
    def head_attention_head_size(self) -> int:
        """Width of one attention head of the head transformer (fixed by the unpruned structure)."""
        return self.head_hidden_size // self.head_num_heads

    @property
    def head_heads_per_layer(self) -> list[int]:
        return list(self.head_layer_num_heads or [self.head_num_heads] * self.head_num_layers)

    @property
    def head_ffn_sizes_per_layer(self) -> list[int]:
        return list(self.head_layer_ffn_sizes or [self.head_ffn_size] * self.head_num_layers)


def _check_layer_sizes(config: PreTrainedConfig, name: str, full: int, num_layers: int) -> None:
    """A per-layer structure list: one entry per layer, each in 0..full (0: the block is removed)."""
    sizes = getattr(config, name)
    if sizes is None:
        return
    sizes = [int(size) for size in sizes]
    setattr(config, name, sizes)
    if len(sizes) != num_layers:
        raise ValueError(f"{name} needs one entry per layer ({num_layers}), got {len(sizes)}: {sizes}")
    bad = [size for size in sizes if not 0 <= size <= full]
    if bad:
        raise ValueError(f"{name} entries must be in 0..{full}, got {bad}")
