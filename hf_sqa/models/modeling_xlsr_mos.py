"""XLSRForMOSRegression: the XLS-R-SQA teacher as a transformers model."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model
from transformers.activations import ACT2FN

from .attention import attend
from .configuration_xlsr_mos import XLSRMOSConfig
from .layer_fusion import HiddenLayerFusion
from .modeling_mos import MOSPreTrainedModel


class BackboneAttention(nn.Module):
    """wav2vec 2.0 self-attention (Wav2Vec2Attention's parameter names) with any number of heads."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.head_dim = head_dim
        self.dropout = dropout
        width = num_heads * head_dim
        self.q_proj = nn.Linear(hidden_size, width)
        self.k_proj = nn.Linear(hidden_size, width)
        self.v_proj = nn.Linear(hidden_size, width)
        self.out_proj = nn.Linear(width, hidden_size)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """hidden: (N, L, d), key_mask: (N, L) True on real frames or None -> (N, L, d)"""
        context = attend(self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden), self.head_dim, key_mask,
                         self.dropout if self.training else 0.0)
        return self.out_proj(context)


class BackboneFeedForward(nn.Module):
    def __init__(self, config: Wav2Vec2Config, ffn_size: int):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, ffn_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]
        self.intermediate_dropout = nn.Dropout(config.activation_dropout)
        self.output_dense = nn.Linear(ffn_size, config.hidden_size)
        self.output_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.intermediate_dropout(self.intermediate_act_fn(self.intermediate_dense(hidden)))
        return self.output_dropout(self.output_dense(hidden))


class BackboneLayer(nn.Module):
    """A wav2vec 2.0 transformer layer (Wav2Vec2EncoderLayer / ...StableLayerNorm, same parameter names)
    whose head count and feed-forward width are its own: 0 removes that block.

    Pre-norm (XLS-R): x += attention(layer_norm(x)); x += feed_forward(final_layer_norm(x)); a removed
    block takes its LayerNorm with it. Post-norm: x = layer_norm(x + attention(x));
    x = final_layer_norm(x + feed_forward(x)); the LayerNorms sit on the residual path and stay.
    """

    def __init__(self, config: Wav2Vec2Config, num_heads: int, head_dim: int, ffn_size: int):
        super().__init__()
        if getattr(config, "adapter_attn_dim", None):
            raise ValueError("wav2vec2 attention adapters (adapter_attn_dim) are not supported")
        self.pre_norm = config.do_stable_layer_norm
        hidden, eps = config.hidden_size, config.layer_norm_eps
        self.attention = BackboneAttention(hidden, num_heads, head_dim, config.attention_dropout) if num_heads else None
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps) if num_heads or not self.pre_norm else None
        self.feed_forward = BackboneFeedForward(config, ffn_size) if ffn_size else None
        self.final_layer_norm = nn.LayerNorm(hidden, eps=eps) if ffn_size or not self.pre_norm else None

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_norm:
            if self.attention is not None:
                hidden = hidden + self.dropout(self.attention(self.layer_norm(hidden), key_mask))
            if self.feed_forward is not None:
                hidden = hidden + self.feed_forward(self.final_layer_norm(hidden))
            return hidden
        if self.attention is not None:
            hidden = hidden + self.dropout(self.attention(hidden, key_mask))
        hidden = self.layer_norm(hidden)
        if self.feed_forward is not None:
            hidden = hidden + self.feed_forward(hidden)
        return self.final_layer_norm(hidden)


def build_backbone(config: XLSRMOSConfig) -> Wav2Vec2Model:
    """transformers' Wav2Vec2Model for the conv feature encoder, projection and positional conv, with
    our `BackboneLayer`s (per-layer structure) as its transformer layers, up to the highest layer read."""
    wav2vec2_config = copy.deepcopy(config.wav2vec2_config)
    wav2vec2_config.num_hidden_layers = 0
    backbone = Wav2Vec2Model(wav2vec2_config)
    backbone.encoder.layers = nn.ModuleList(
        BackboneLayer(wav2vec2_config, heads, config.backbone_attention_head_size, ffn)
        for heads, ffn in zip(config.backbone_heads_per_layer, config.backbone_ffn_sizes_per_layer, strict=True)
    )
    backbone.config.num_hidden_layers = config.num_backbone_layers_built
    if not config.applies_final_layer_norm:
        # the top layer is not read, so its final LayerNorm never runs: don't build it
        backbone.encoder.layer_norm = nn.Identity()
    return backbone


class XLSRForMOSRegression(MOSPreTrainedModel):
    config_class = XLSRMOSConfig
    config: XLSRMOSConfig
    base_model_prefix = "wav2vec2"

    def __init__(self, config: XLSRMOSConfig):
        super().__init__(config)
        self.wav2vec2 = build_backbone(config)
        hidden_size = config.wav2vec2_config.hidden_size
        self.layer_fusion = HiddenLayerFusion(hidden_size, len(config.feature_layers), config.layer_fusion)
        self.head = self.build_head(hidden_size)
        self.post_init()

    @classmethod
    def from_backbone(
        cls, pretrained_wav2vec2: str | os.PathLike, **config_kwargs
    ) -> "XLSRForMOSRegression":
        """A teacher on pretrained wav2vec 2.0 / XLS-R weights (Hub id such as facebook/wav2vec2-xls-r-300m,
        or a local folder) with a freshly initialised head. Only the layers up to the highest one read are
        loaded. ``config_kwargs`` are `XLSRMOSConfig` fields (feature_layers, layer_fusion, head sizes...)."""
        wav2vec2_config = Wav2Vec2Model.config_class.from_pretrained(pretrained_wav2vec2)
        config = XLSRMOSConfig(
            wav2vec2_config=wav2vec2_config.to_dict(),
            pretrained_wav2vec2=str(pretrained_wav2vec2),
            **config_kwargs,
        )
        pretrained = Wav2Vec2Model.from_pretrained(
            pretrained_wav2vec2, num_hidden_layers=config.num_backbone_layers_built
        ).state_dict()
        model = cls(config)
        # our layers carry transformers' parameter names, so the pretrained weights load strictly
        kept = model.wav2vec2.state_dict().keys()
        model.wav2vec2.load_state_dict({k: v for k, v in pretrained.items() if k in kept}, strict=True)
        return model

    def freeze_feature_encoder(self):
        """Stop gradients into the convolutional feature encoder (the usual fine-tuning set-up)."""
        self.wav2vec2.feature_extractor._freeze_parameters()

    def freeze_backbone(self):
        """Train only the layer fusion and the head."""
        for parameter in self.wav2vec2.parameters():
            parameter.requires_grad = False

    def normalize_clips(self, input_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.config.normalize_input:
            return input_values
        # zero mean, unit variance over each clip's real samples (Wav2Vec2FeatureExtractor: var + 1e-7); the
        # statistics in float64, as a streamed clip's first pass computes them (normalize_stream)
        real = torch.arange(input_values.shape[1], device=input_values.device)[None] < lengths[:, None]
        wide = input_values.double() * real
        count = lengths.double()[:, None]
        mean = wide.sum(-1, keepdim=True) / count
        variance = (wide * wide).sum(-1, keepdim=True) / count - mean * mean
        return self._standardize(input_values, mean, variance) * real

    def normalize_stream(self, samples: torch.Tensor, summary) -> torch.Tensor:
        if not self.config.normalize_input:
            return samples
        return self._standardize(samples, torch.tensor(summary.mean, dtype=torch.float64),
                                 torch.tensor(summary.variance, dtype=torch.float64))

    @staticmethod
    def _standardize(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        scale = torch.sqrt(variance.clamp_min(0.0) + 1e-7)
        return (samples - mean.to(samples.dtype)) / scale.to(samples.dtype)

    def read_hidden_layers(self, windows: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Run the backbone up to the highest layer read.

        windows: (N, samples), lengths: (N,) real samples per window
        returns one (N, frames, hidden) tensor per `config.feature_layers` entry, zero on padded frames.
        """
        backbone = self.wav2vec2
        encoder = backbone.encoder
        features = backbone.feature_extractor(windows).transpose(1, 2)  # (N, frames, conv_dim)
        hidden, _ = backbone.feature_projection(features)  # (N, frames, hidden)
        frame_lengths = backbone._get_feat_extract_output_lengths(lengths)
        real_frames = torch.arange(hidden.shape[1], device=hidden.device)[None] < frame_lengths[:, None]
        hidden = backbone._mask_hidden_states(hidden, attention_mask=real_frames)  # SpecAugment when training
        hidden = hidden.masked_fill(~real_frames[..., None], 0.0)
        key_mask = None if bool(real_frames.all()) else real_frames
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not backbone.config.do_stable_layer_norm:
            hidden = encoder.layer_norm(hidden)  # post-norm wav2vec2 normalises before the layers
        hidden = encoder.dropout(hidden)

        wanted = set(self.config.feature_layers)
        read = {0: hidden} if 0 in wanted else {}
        last = len(encoder.layers)
        for index, layer in enumerate(encoder.layers, start=1):
            skip = self.training and backbone.config.layerdrop > 0 and torch.rand([]) < backbone.config.layerdrop
            if not skip:
                hidden = layer(hidden, key_mask)
            if index == last and backbone.config.do_stable_layer_norm:
                hidden = encoder.layer_norm(hidden)  # Identity unless this is the backbone's true top layer
            if index in wanted:
                read[index] = hidden
        return [read[index].masked_fill(~real_frames[..., None], 0.0) for index in self.config.feature_layers]

    def score_windows(self, windows: torch.Tensor, lengths: torch.Tensor, output_hidden_states: bool = False):
        """windows: (N, window_length) -> (N,) MOS; with output_hidden_states also the head's hidden states."""
        layers = self.read_hidden_layers(windows, lengths)
        # XLS-R-SQA zero-pads its 383 frames per 7.68 s window to 384 before normalising
        missing = self.config.position_scale_length - layers[0].shape[1]
        if missing > 0:
            layers = [nn.functional.pad(layer, (0, 0, 0, missing)) for layer in layers]
        return self.head(self.layer_fusion(layers), output_hidden_states)
