"""Configuration of the XLS-R teacher (XLS-R-SQA): a wav2vec 2.0 backbone read into the MOS head."""

from __future__ import annotations

from transformers import Wav2Vec2Config
from transformers.configuration_utils import SubConfigSpec

from .configuration_mos import MOSConfig, _check_layer_sizes
from .layer_fusion import LAYER_FUSION_MODES

# facebook/wav2vec2-xls-r-300m's architecture, so `XLSRMOSConfig()` describes the 300M teacher
XLSR_300M_BACKBONE = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    conv_bias=True,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    hidden_dropout=0.1,
    activation_dropout=0.0,
    attention_dropout=0.1,
    feat_proj_dropout=0.1,
    layerdrop=0.1,
    mask_time_prob=0.075,
)


class XLSRMOSConfig(MOSConfig):
    r"""
    wav2vec2_config (`Wav2Vec2Config` or `dict`, defaults to XLS-R 300M's architecture):
        The full pretrained backbone. Transformer layers above the highest one read are not built.
    pretrained_wav2vec2 (`str`, *optional*):
        Where the backbone weights came from (Hub id or folder); provenance for model cards.
    feature_layers (`list[int]`, defaults to `[21]`):
        Hidden layers read, as `hidden_states` indices: 0 is the input of the first transformer layer,
        `num_hidden_layers` the final output. `None` with `layer_fusion="weighted_sum"` reads all layers.
    layer_fusion (`str`, defaults to `"single"`):
        `"single"` (one layer), `"fusion"` (XLS-R-SQA's per-layer BatchNorm + learned linear mix) or
        `"weighted_sum"` (softmax-weighted sum of per-layer-normalised layers).
    normalize_input (`bool`, defaults to `True`):
        Zero-mean unit-variance normalise each clip over its real samples, as Wav2Vec2FeatureExtractor does.
    backbone_layer_num_heads (`list[int]`, *optional*):
        Pruned structure: attention heads kept in each built transformer layer (0 removes the layer's
        attention block). `None` means `wav2vec2_config.num_attention_heads` everywhere. Heads keep their
        width `hidden_size // num_attention_heads`.
    backbone_layer_ffn_sizes (`list[int]`, *optional*):
        Pruned structure: feed-forward width of each built transformer layer (0 removes the block).
        `None` means `wav2vec2_config.intermediate_size` everywhere. The conv feature encoder's channels
        are `wav2vec2_config.conv_dim`, already one entry per conv layer.
    """

    model_type = "xlsr_mos"
    sub_configs_defaults = {
        "wav2vec2_config": SubConfigSpec(config_class=Wav2Vec2Config, init_kwargs=XLSR_300M_BACKBONE),
    }

    wav2vec2_config: dict | Wav2Vec2Config | None = None
    pretrained_wav2vec2: str | None = None
    feature_layers: list[int] | tuple[int, ...] | None = (21,)
    layer_fusion: str = "single"
    normalize_input: bool = True
    backbone_layer_num_heads: list[int] | None = None
    backbone_layer_ffn_sizes: list[int] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)  # resolves wav2vec2_config first
        depth = self.wav2vec2_config.num_hidden_layers
        if self.layer_fusion not in LAYER_FUSION_MODES:
            raise ValueError(f"layer_fusion {self.layer_fusion!r} is not one of {LAYER_FUSION_MODES}")
        if self.feature_layers is None or len(self.feature_layers) == 0:
            if self.layer_fusion != "weighted_sum":
                raise ValueError(f"layer_fusion {self.layer_fusion!r} needs explicit feature_layers")
            self.feature_layers = list(range(depth + 1))
        self.feature_layers = [int(layer) for layer in self.feature_layers]
        if len(set(self.feature_layers)) != len(self.feature_layers):
            raise ValueError(f"feature_layers has repeated layers: {self.feature_layers}")
        bad = [layer for layer in self.feature_layers if not 0 <= layer <= depth]
        if bad:
            raise ValueError(f"feature_layers {bad} are outside 0..{depth} for a {depth}-layer backbone")
        if self.layer_fusion == "single" and len(self.feature_layers) != 1:
            raise ValueError(f"layer_fusion 'single' reads one layer, got feature_layers={self.feature_layers}")
        if self.layer_fusion == "fusion" and len(self.feature_layers) < 2:
            raise ValueError(f"layer_fusion 'fusion' mixes two or more layers, got {self.feature_layers}")
        backbone = self.wav2vec2_config
        for name, full in (("backbone_layer_num_heads", backbone.num_attention_heads),
                           ("backbone_layer_ffn_sizes", backbone.intermediate_size)):
            _check_layer_sizes(self, name, full, self.num_backbone_layers_built)

    @property
    def num_backbone_layers_built(self) -> int:
        """Transformer layers actually built: up to the highest layer read."""
        return max(self.feature_layers)

    @property
    def applies_final_layer_norm(self) -> bool:
        """Pre-norm (stable layer norm) backbones normalise only the output of their top layer."""
        return (
            not self.wav2vec2_config.do_stable_layer_norm
            or self.num_backbone_layers_built == self.wav2vec2_config.num_hidden_layers
        )

    @property
    def backbone_heads_per_layer(self) -> list[int]:
        full = self.wav2vec2_config.num_attention_heads
        return list(self.backbone_layer_num_heads or [full] * self.num_backbone_layers_built)

    @property
    def backbone_ffn_sizes_per_layer(self) -> list[int]:
        full = self.wav2vec2_config.intermediate_size
        return list(self.backbone_layer_ffn_sizes or [full] * self.num_backbone_layers_built)

    @property
    def backbone_attention_head_size(self) -> int:
        return self.wav2vec2_config.hidden_size // self.wav2vec2_config.num_attention_heads
