"""The MOS head shared by the teacher and the students (XLS-R-SQA's head, which Distill-MOS reuses).

features (N, L, C) -> BatchNorm over C -> linear C -> d -> dropout -> + sinusoidal positions
-> transformer encoder (post-norm, ReLU; torch's nn.TransformerEncoderLayer, with its parameter names, but
each layer's head count and feed-forward width its own so they can be pruned) -> dropout -> BatchNorm over d -> attention pooling -> (N,) logit
-> MOS = 1 + 4 * sigmoid(logit).

Module names inside are part of the checkpoint format (the importers map onto them).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import attend


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

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frame_mask: (N, L) True on real frames (padding gets no weight), or None"""
        scores = self.attention_score(self.dropout(torch.relu(self.attention_hidden(hidden))))  # (N, L, 1)
        if frame_mask is not None:
            scores = scores.masked_fill(~frame_mask[..., None], float("-inf"))
        weights = torch.softmax(scores, dim=1)
        pooled = (weights * hidden).sum(dim=1)  # (N, d)
        return self.output(pooled).squeeze(-1)


class HeadSelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameters: packed `in_proj_weight`
    (3 * heads * head_dim, d) rows [queries; keys; values] and `out_proj`."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.head_dim = head_dim
        self.dropout = dropout
        width = num_heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, hidden_size))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, hidden_size)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        query, key, value = nn.functional.linear(hidden, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        dropout = self.dropout if self.training else 0.0
        return self.out_proj(attend(query, key, value, self.head_dim, key_mask=frame_mask, dropout=dropout))


class HeadTransformerLayer(nn.Module):
    """Post-norm encoder layer: x = norm1(x + attention(x)); x = norm2(x + linear2(relu(linear1(x)))).

    `num_heads == 0` removes the attention block and `ffn_size == 0` the feed-forward block (their
    residual branch is then zero; the norms stay, as they sit on the residual path).
    """

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, ffn_size: int, dropout: float):
        super().__init__()
        self.self_attn = HeadSelfAttention(hidden_size, num_heads, head_dim, dropout) if num_heads else None
        if ffn_size:
            self.linear1 = nn.Linear(hidden_size, ffn_size)
            self.linear2 = nn.Linear(ffn_size, hidden_size)
        else:
            self.linear1 = self.linear2 = None
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.self_attn is not None:
            hidden = hidden + self.dropout1(self.self_attn(hidden, frame_mask))
        hidden = self.norm1(hidden)
        if self.linear1 is not None:
            hidden = hidden + self.dropout2(self.linear2(self.dropout(torch.relu(self.linear1(hidden)))))
        return self.norm2(hidden)


class HeadTransformerEncoder(nn.Module):
    def __init__(self, layers: list[HeadTransformerLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, hidden: torch.Tensor, output_hidden_states: bool = False, frame_mask: torch.Tensor | None = None):
        """(N, L, d) -> (N, L, d), and with output_hidden_states every layer's output as well; frame_mask
        (N, L) True on real frames: padding frames are not attended to."""
        layer_outputs = []
        for layer in self.layers:
            hidden = layer(hidden, frame_mask)
            layer_outputs.append(hidden)
        return (hidden, tuple(layer_outputs)) if output_hidden_states else hidden


class MOSHead(nn.Module):
    """Feature sequence (N, L, input_size) -> MOS (N,) in [1, 5]."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        layer_num_heads: list[int],
        head_dim: int,
        layer_ffn_sizes: list[int],
        dropout: float,
        position_scale_length: int,
    ):
        """layer_num_heads / layer_ffn_sizes: per transformer layer, 0 where that block is removed."""
        super().__init__()
        self.position_scale_length = position_scale_length
        self.input_norm = nn.BatchNorm1d(input_size)
        self.projection = nn.Linear(input_size, hidden_size)
        self.projection_dropout = nn.Dropout(dropout)
        self.encoder = HeadTransformerEncoder([
            HeadTransformerLayer(hidden_size, heads, head_dim, ffn, dropout)
            for heads, ffn in zip(layer_num_heads, layer_ffn_sizes, strict=True)
        ])
        self.encoder_dropout = nn.Dropout(dropout)
        self.output_norm = nn.BatchNorm1d(hidden_size)
        self.pooling = AttentionPooling(hidden_size, dropout)

    def forward(self, features: torch.Tensor, output_hidden_states: bool = False, frame_mask: torch.Tensor | None = None):
        """(N, L, input_size) -> MOS (N,); with output_hidden_states also the hidden states (N, L, d) of
        the projection and of each transformer layer (a tuple of 1 + num_layers), float32.

        frame_mask: (N, L) True on real frames, for sequences of different lengths padded to one: a
        sequence's MOS is then what it gets alone (padding is not attended to, pooled or counted in the
        BatchNorm statistics); its hidden states are zero on the padding."""
        # The head is a few percent of the compute, and its attention pooling and sigmoid are sensitive to
        # precision: it runs in its parameters' dtype even under autocast (with a bfloat16 conv stack,
        # Distill-MOS scores moved by up to 6.2e-3 with a bfloat16 head, 8.5e-4 with a float32 one:
        # `python benchmarks/score_speed.py --breakdown`)
        with torch.autocast(features.device.type, enabled=False):
            return self._forward(features.to(self.projection.weight.dtype), output_hidden_states, frame_mask)

    @staticmethod
    def _batch_norm(norm: nn.BatchNorm1d, sequences: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """BatchNorm over the channels of (N, L, C) sequences, over real frames only when masked."""
        if frame_mask is None:  # BatchNorm1d normalises dim 1, so go (N, L, C) -> (N, C, L) and back
            return norm(sequences.transpose(1, 2)).transpose(1, 2)
        return sequences.new_zeros(sequences.shape).masked_scatter(frame_mask[..., None], norm(sequences[frame_mask]))

    def _forward(self, features: torch.Tensor, output_hidden_states: bool = False, frame_mask=None):
        hidden = self._batch_norm(self.input_norm, features, frame_mask)
        hidden = self.projection_dropout(self.projection(hidden))  # (N, L, d)
        positions = sinusoidal_position_encoding(
            hidden.shape[1], hidden.shape[2], self.position_scale_length, hidden.device, hidden.dtype
        )
        projected = hidden
        hidden = self.encoder(hidden + positions, output_hidden_states, frame_mask)
        if output_hidden_states:
            hidden, layer_outputs = hidden
        hidden = self.encoder_dropout(hidden)
        hidden = self._batch_norm(self.output_norm, hidden, frame_mask)
        mos = 1.0 + 4.0 * torch.sigmoid(self.pooling(hidden, frame_mask))
        if not output_hidden_states:
            return mos
        states = (projected, *layer_outputs)
        if frame_mask is not None:
            states = tuple(state * frame_mask[..., None] for state in states)
        return mos, states
