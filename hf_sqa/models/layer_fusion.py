"""Reading a self-supervised backbone: which hidden layers, and how they become one feature sequence.

Hidden layer ``k`` is the encoder's input to transformer layer ``k`` (``k = 0`` is the output of the
convolutional feature encoder plus positional convolution; ``k = num_layers`` is the final output).
This is the ``hidden_states[k]`` indexing of transformers and of XLS-R-SQA's released heads.

Every mode first normalises each read layer with its own BatchNorm (hidden states of different layers
differ in scale by orders of magnitude), then combines them:

* ``single``:       one layer (XLS-R-SQA's single-layer models);
* ``fusion``:       a learned linear mix with bias over the layers (XLS-R-SQA's two-layer fusion);
* ``weighted_sum``: softmax-normalised learned weights over the layers (SUPERB-style).
"""

from __future__ import annotations

import torch
from torch import nn

LAYER_FUSION_MODES = ("single", "fusion", "weighted_sum")


class HiddenLayerFusion(nn.Module):
    def __init__(self, hidden_size: int, num_layers_read: int, mode: str):
        super().__init__()
        if mode not in LAYER_FUSION_MODES:
            raise ValueError(f"layer fusion mode {mode!r} is not one of {LAYER_FUSION_MODES}")
        if mode == "single" and num_layers_read != 1:
            raise ValueError(f"layer fusion 'single' reads exactly one layer, got {num_layers_read}")
        self.mode = mode
        self.layer_norms = nn.ModuleList(nn.BatchNorm1d(hidden_size) for _ in range(num_layers_read))
        if mode == "fusion":
            self.mix = nn.Linear(num_layers_read, 1)
        elif mode == "weighted_sum":
            self.layer_weights = nn.Parameter(torch.zeros(num_layers_read))

    def forward(self, hidden_states: list[torch.Tensor]) -> torch.Tensor:
        """hidden_states: one (N, L, C) tensor per read layer -> (N, L, C)."""
        normed = [
            norm(layer.transpose(1, 2)).transpose(1, 2) for norm, layer in zip(self.layer_norms, hidden_states)
        ]
        if self.mode == "single":
            return normed[0]
        stacked = torch.stack(normed, dim=-1)  # (N, L, C, layers)
        if self.mode == "fusion":
            return self.mix(stacked).squeeze(-1)
        return (stacked * torch.softmax(self.layer_weights, dim=0)).sum(dim=-1)
