"""Model size and compute: parameters and multiply-accumulates (MACs) per second of audio.

MACs are counted from the configuration and the built modules' shapes (conv output sizes, matrix sizes,
per-layer head counts and widths of pruned models), for one window; bias adds, norms and activations are
not counted.
"""

from __future__ import annotations

import torch

from .models import ConvTransformerForMOSRegression, MOSPreTrainedModel, XLSRForMOSRegression
from .models.head import MOSHead


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def transformer_layer_macs(frames: int, hidden: int, attention_width: int, ffn_size: int) -> int:
    """One transformer layer on `frames` frames: q/k/v/out projections of `attention_width`
    (heads * head_dim, 0 when the block is removed), attention scores and mixing, feed-forward."""
    attention = 4 * frames * hidden * attention_width + 2 * frames * frames * attention_width
    return attention + 2 * frames * hidden * ffn_size


def head_macs(head: MOSHead, frames: int) -> int:
    """MACs of the MOS head on one window of `frames` feature frames."""
    hidden = head.projection.out_features
    total = frames * head.projection.in_features * hidden
    for layer in head.encoder.layers:
        width = layer.self_attn.out_proj.in_features if layer.self_attn is not None else 0
        ffn = layer.linear1.out_features if layer.linear1 is not None else 0
        total += transformer_layer_macs(frames, hidden, width, ffn)
    return total + frames * hidden * 2 * hidden + frames * 2 * hidden + hidden  # attention pooling


def conv_stack_macs(model: ConvTransformerForMOSRegression) -> int:
    """MACs of a student's conv stack on one window, from the layers' output shapes."""
    total = 0
    with torch.no_grad():
        x = model.frontend.compressed_spectrum(torch.zeros(1, model.config.window_length))
        for layer in model.frontend.convs:
            x = layer(x)
            total += x.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    return total


def backbone_macs(model: XLSRForMOSRegression) -> tuple[int, int]:
    """(MACs, frames) of the teacher's wav2vec 2.0 backbone on one window."""
    backbone = model.wav2vec2
    frames, total = model.config.window_length, 0
    for conv_layer in backbone.feature_extractor.conv_layers:
        conv = conv_layer.conv
        frames = (frames - conv.kernel_size[0]) // conv.stride[0] + 1
        total += frames * conv.kernel_size[0] * conv.in_channels * conv.out_channels
    projection = backbone.feature_projection.projection
    hidden = projection.out_features
    total += frames * projection.in_features * hidden
    pos_conv = backbone.encoder.pos_conv_embed.conv
    total += frames * pos_conv.kernel_size[0] * (hidden // pos_conv.groups) * hidden
    for layer in backbone.encoder.layers:
        width = layer.attention.out_proj.in_features if layer.attention is not None else 0
        ffn = layer.feed_forward.output_dense.in_features if layer.feed_forward is not None else 0
        total += transformer_layer_macs(frames, hidden, width, ffn)
    return total, frames


def macs_per_window(model: MOSPreTrainedModel) -> int:
    config = model.config
    if isinstance(model, ConvTransformerForMOSRegression):
        return conv_stack_macs(model) + head_macs(model.head, config.frames_per_window)
    if isinstance(model, XLSRForMOSRegression):
        backbone, frames = backbone_macs(model)
        # the head sees the window's frames zero-padded to position_scale_length
        return backbone + head_macs(model.head, max(frames, config.position_scale_length))
    raise TypeError(f"no MAC count for {type(model).__name__}")


def realtime_factor(model: MOSPreTrainedModel, clips: int = 8, seconds: float = 10.0, batch_size: int = 8) -> float:
    """Measured scoring speed in seconds of audio per second (x real time) on `clips` synthetic clips of
    `seconds`, after a warm-up, on the model's device with the current torch thread count."""
    import time

    from .scoring import iter_scores
    from .testing import synthetic_speech

    audio = [synthetic_speech(seconds, seed=i) for i in range(clips)]
    list(iter_scores(audio[:2], model, batch_size=batch_size, sampling_rate=16000))
    start = time.perf_counter()
    list(iter_scores(audio, model, batch_size=batch_size, sampling_rate=16000))
    return clips * seconds / (time.perf_counter() - start)


def macs_per_second(model: MOSPreTrainedModel) -> float:
    """MACs per second of audio: one window's MACs divided by its duration; for the fast student, whose
    front end runs once over the clip, the front end's MACs per second plus one head pass per
    `window_max_hop` (the windows of long audio)."""
    from .models import FastMOSForMOSRegression

    config = model.config
    window_seconds = config.window_length / config.sampling_rate
    if isinstance(model, FastMOSForMOSRegression):
        head = head_macs(model.head, config.frames_per_window)
        return conv_stack_macs(model) / window_seconds + head * config.sampling_rate / config.window_max_hop
    return macs_per_window(model) / window_seconds
