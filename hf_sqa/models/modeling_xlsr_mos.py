"""XLSRForMOSRegression: the XLS-R-SQA teacher as a transformers model."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from transformers import Wav2Vec2Model
from transformers.masking_utils import create_bidirectional_mask

from .configuration_xlsr_mos import XLSRMOSConfig
from .layer_fusion import HiddenLayerFusion
from .modeling_mos import MOSPreTrainedModel


class XLSRForMOSRegression(MOSPreTrainedModel):
    config_class = XLSRMOSConfig
    config: XLSRMOSConfig
    base_model_prefix = "wav2vec2"

    def __init__(self, config: XLSRMOSConfig, backbone: Wav2Vec2Model | None = None):
        super().__init__(config)
        if backbone is None:
            wav2vec2_config = copy.deepcopy(config.wav2vec2_config)
            wav2vec2_config.num_hidden_layers = config.num_backbone_layers_built
            backbone = Wav2Vec2Model(wav2vec2_config)
        elif len(backbone.encoder.layers) != config.num_backbone_layers_built:
            raise ValueError(
                f"backbone has {len(backbone.encoder.layers)} layers, config builds "
                f"{config.num_backbone_layers_built}"
            )
        if not config.applies_final_layer_norm:
            # the top layer is not read, so its final LayerNorm never runs: don't build it
            backbone.encoder.layer_norm = nn.Identity()
        self.wav2vec2 = backbone
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
        backbone = Wav2Vec2Model.from_pretrained(
            pretrained_wav2vec2, num_hidden_layers=config.num_backbone_layers_built
        )
        backbone.train()  # from_pretrained returns eval mode; the new model's mode is the caller's choice
        return cls(config, backbone=backbone)

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
        # zero mean, unit variance over each clip's real samples (Wav2Vec2FeatureExtractor: var + 1e-7)
        real = torch.arange(input_values.shape[1], device=input_values.device)[None] < lengths[:, None]
        count = lengths.to(input_values.dtype)[:, None]
        mean = (input_values * real).sum(-1, keepdim=True) / count
        variance = (((input_values - mean) * real) ** 2).sum(-1, keepdim=True) / count
        return (input_values - mean) / torch.sqrt(variance + 1e-7) * real

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
        attention_mask = create_bidirectional_mask(
            config=backbone.config, inputs_embeds=hidden, attention_mask=real_frames
        )
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
                hidden = layer(hidden, attention_mask=attention_mask)
            if index == last and backbone.config.do_stable_layer_norm:
                hidden = encoder.layer_norm(hidden)  # Identity unless this is the backbone's true top layer
            if index in wanted:
                read[index] = hidden
        return [read[index].masked_fill(~real_frames[..., None], 0.0) for index in self.config.feature_layers]

    def score_windows(self, windows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        layers = self.read_hidden_layers(windows, lengths)
        # XLS-R-SQA zero-pads its 383 frames per 7.68 s window to 384 before normalising
        missing = self.config.position_scale_length - layers[0].shape[1]
        if missing > 0:
            layers = [nn.functional.pad(layer, (0, 0, 0, missing)) for layer in layers]
        return self.head(self.layer_fusion(layers))
