"""Model size and compute: parameters and multiply-accumulates (MACs) per second of audio.

MACs are counted from the configuration (conv output shapes, head matrix sizes), not with module hooks:
PyTorch's fused transformer fast path does not call the attention's submodules, so hooks would miss it.
"""

from __future__ import annotations

import torch

from .models import ConvTransformerForMOSRegression


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def head_macs(input_size: int, frames: int, hidden: int, layers: int, ffn: int) -> int:
    """MACs of the MOS head on one window of `frames` feature frames."""
    per_layer = 4 * frames * hidden * hidden + 2 * frames * frames * hidden + 2 * frames * hidden * ffn
    pooling = frames * hidden * 2 * hidden + frames * 2 * hidden + hidden
    return frames * input_size * hidden + layers * per_layer + pooling


def conv_stack_macs(model: ConvTransformerForMOSRegression) -> int:
    """MACs of a student's conv stack on one window, from the layers' output shapes."""
    total = 0
    with torch.no_grad():
        x = model.frontend.compressed_spectrum(torch.zeros(1, model.config.window_length))
        for layer in model.frontend.convs:
            x = layer(x)
            total += x.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    return total


def student_macs_per_second(model: ConvTransformerForMOSRegression) -> float:
    """MACs per second of audio of a ConvTransformer student (one window, divided by its duration)."""
    config = model.config
    head = head_macs(model.frontend.output_size, config.frames_per_window, config.head_hidden_size,
                     config.head_num_layers, config.head_ffn_size)
    return (conv_stack_macs(model) + head) / (config.window_length / config.sampling_rate)
