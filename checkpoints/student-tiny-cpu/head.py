"""The MOS head shared by the teacher and the students (XLS-R-SQA's head, which Distill-MOS reuses).

features (N, L, C) -> BatchNorm over C -> linear C -> d -> dropout -> + sinusoidal positions
-> transformer encoder (post-norm, ReLU) -> dropout -> BatchNorm over d -> attention pooling -> (N,) logit
-> MOS = 1 + 4 * sigmoid(logit).

Module names inside are part of the checkpoint format (the importers map onto them).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_position_encoding(
    num_positions: int, dim: int, scale_length: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """(num_positions, dim) sine/cosine table as XLS-R-SQA builds it.

    Unlike the usual 10000 base, the frequencies use ``2 * scale_length`` (the window's frame count), so
    the slowest sinusoid spans twice a window. Computed on the fly so any frame count works.
    """
    position = torch.arange(num_positions, device=device, dtype=torch.float32)[:, None]
    div_term = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(2 * scale_length) / dim)
    )
    table = torch.zeros(num_positions, dim, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table.to(dtype)


class AttentionPooling(nn.Module):
    """NISQA's attention pooling with a feed-forward scorer: (N, L, d) -> (N,) logit."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.attention_hidden = nn.Linear(hidden_size, 2 * hidden_size)
        self.attention_score = nn.Linear(2 * hidden_size, 1)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        scores = self.attention_score(self.dropout(torch.relu(self.attention_hidden(hidden))))  # (N, L, 1)
        weights = torch.softmax(scores, dim=1)
        pooled = (weights * hidden).sum(dim=1)  # (N, d)
        return self.output(pooled).squeeze(-1)


class MOSHead(nn.Module):
    """Feature sequence (N, L, input_size) -> MOS (N,) in [1, 5]."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        ffn_size: int,
        dropout: float,
        position_scale_length: int,
    ):
        super().__init__()
        self.position_scale_length = position_scale_length
        self.input_norm = nn.BatchNorm1d(input_size)
        self.projection = nn.Linear(input_size, hidden_size)
        self.projection_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden_size,
            nhead=num_heads,
            dim_feedforward=ffn_size,
            dropout=dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.encoder_dropout = nn.Dropout(dropout)
        self.output_norm = nn.BatchNorm1d(hidden_size)
        self.pooling = AttentionPooling(hidden_size, dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # The head is a few percent of the compute, and its attention pooling and sigmoid are sensitive to
        # precision: it runs in its parameters' dtype even under autocast (with a bfloat16 conv stack,
        # Distill-MOS scores moved by up to 1.0e-2 with a bfloat16 head, 6.4e-4 with a float32 one:
        # `python benchmarks/score_speed.py --breakdown`)
        with torch.autocast(features.device.type, enabled=False):
            return self._forward(features.to(self.projection.weight.dtype))

    def _forward(self, features: torch.Tensor) -> torch.Tensor:
        # BatchNorm1d normalises dim 1, so go (N, L, C) -> (N, C, L) and back
        hidden = self.input_norm(features.transpose(1, 2)).transpose(1, 2)
        hidden = self.projection_dropout(self.projection(hidden))  # (N, L, d)
        positions = sinusoidal_position_encoding(
            hidden.shape[1], hidden.shape[2], self.position_scale_length, hidden.device, hidden.dtype
        )
        hidden = self.encoder(hidden + positions)
        hidden = self.encoder_dropout(hidden)
        hidden = self.output_norm(hidden.transpose(1, 2)).transpose(1, 2)
        return 1.0 + 4.0 * torch.sigmoid(self.pooling(hidden))
