"""The attention core shared by the MOS head and the teacher's backbone layers.

Both own their projections (so heads can be pruned: a layer with h of its H heads has h * head_dim-wide
query/key/value projections) and call `attend` for the part in between.
"""

from __future__ import annotations

import torch
from torch import nn


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    head_dim: int,
    key_mask: torch.Tensor | None = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention over heads of `head_dim`.

    query, key, value: (N, L, heads * head_dim); key_mask: (N, L) True on real frames, or None
    returns (N, L, heads * head_dim)
    """
    batch, length, width = query.shape

    def split(x: torch.Tensor) -> torch.Tensor:  # (N, L, h * d) -> (N, h, L, d)
        return x.view(batch, length, width // head_dim, head_dim).transpose(1, 2)

    mask = None if key_mask is None else key_mask[:, None, None, :]
    context = nn.functional.scaled_dot_product_attention(
        split(query), split(key), split(value), attn_mask=mask, dropout_p=dropout
    )
    return context.transpose(1, 2).reshape(batch, length, width)
