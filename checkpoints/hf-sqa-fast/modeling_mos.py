"""What every hf_sqa MOS model does the same way: windowing, averaging, loss, outputs.

A model family implements two hooks:

* ``normalize_clips(input_values, lengths)``: per-clip input normalisation before windowing (identity by
  default);
* ``score_windows(windows, lengths, output_hidden_states=False)``: (num_windows, window_length) -> (num_windows,)
  MOS in [1, 5]; with output_hidden_states also the head's hidden states per window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_mos import MOSConfig
from .feature_extraction_mos import MOSFeatureExtractor
from .head import MOSHead
from .windowing import (
    SampleBuffer, average_per_item, check_window_max_hop, cut_windows, pad_per_item, plan_windows, window_starts,
)

# CPU inference scores windows in chunks of this many: larger chunks overflow the CPU caches (the head's
# attention maps alone are 8 x 384 x 384 floats per window). Distill-MOS head, 2 threads: 14-16 ms/window
# in chunks of 4, 14-15 in chunks of 8 (with torch's fused encoder layer, before the head had its own
# layers: 17-18 vs 28-31; benchmarks/score_speed.py --breakdown). GPUs and training take
# all windows at once.
CPU_INFERENCE_WINDOWS_PER_CHUNK = 4


@dataclass
class MOSRegressionOutput(ModelOutput):
    """
    loss:          scalar regression loss against `labels` (MSE or L1, see `config.loss_type`), when given
    mos:           (batch,) predicted MOS in [1, 5], the mean of the clip's window scores
    window_mos:    (batch, max_windows) MOS of each window, NaN where a clip has fewer windows
    window_mask:   (batch, max_windows) True where `window_mos` holds a window
    window_starts: (batch, max_windows) start sample of each window in its clip, -1 where none
    hidden_states: with `output_hidden_states`: the head's input projection and each of its transformer
                   layers, (num_windows, frames_per_window, d) each; windows in clip order (the clips'
                   windows in time order, as `window_mos` lists them), zero after a window's frames
    hidden_mask:   (num_windows, frames_per_window) True on a window's frames (a windowed model's window
                   is all frames: a short clip's zero padding is part of what its head sees)
    """

    loss: torch.Tensor | None = None
    mos: torch.Tensor | None = None
    window_mos: torch.Tensor | None = None
    window_mask: torch.Tensor | None = None
    window_starts: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    hidden_mask: torch.Tensor | None = None


def regression_loss(mos: torch.Tensor, labels: torch.Tensor, loss_type: str) -> torch.Tensor:
    """MSE or L1 between (batch,) predicted MOS and labels."""
    labels = labels.to(device=mos.device, dtype=mos.dtype).reshape(mos.shape)
    if loss_type == "l1":
        return torch.nn.functional.l1_loss(mos, labels)
    return torch.nn.functional.mse_loss(mos, labels)


class MOSPreTrainedModel(PreTrainedModel):
    config: MOSConfig
    main_input_name = "input_values"
    input_modalities = "audio"

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Weights, config and flat code as transformers saves them, plus the feature extractor
        (`preprocessor_config.json`), so that every hf_sqa checkpoint (converters, trainers, pruning, `hf-sqa
        push`) loads with `AutoFeatureExtractor` too."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            MOSFeatureExtractor.from_model_config(self.config).save_pretrained(save_directory)

    def build_head(self, input_size: int) -> MOSHead:
        cfg = self.config
        return MOSHead(
            input_size=input_size,
            hidden_size=cfg.head_hidden_size,
            layer_num_heads=cfg.head_heads_per_layer,
            head_dim=cfg.head_attention_head_size,
            layer_ffn_sizes=cfg.head_ffn_sizes_per_layer,
            dropout=cfg.head_dropout,
            position_scale_length=cfg.position_scale_length,
        )

    def normalize_clips(self, input_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return input_values

    def score_windows(self, windows: torch.Tensor, lengths: torch.Tensor, output_hidden_states: bool = False):
        raise NotImplementedError

    def windows_per_forward(self, device: torch.device) -> int:
        """How many windows one `score_windows` call takes (small chunks for CPU inference, see above)."""
        chunk = self.config.max_windows_per_forward
        if device.type == "cpu" and not self.training and not torch.is_grad_enabled():
            chunk = min(chunk, CPU_INFERENCE_WINDOWS_PER_CHUNK)
        return chunk

    def score_clips(
        self, input_values: torch.Tensor, lengths: torch.Tensor, window_max_hop: int | None = None,
        output_hidden_states: bool = False,
    ) -> tuple:
        """Every window of every clip scored: (window MOS, batch item of each window, its start sample), all
        (num_windows,), windows of an item contiguous and in time order; with output_hidden_states also the
        head's hidden states ((num_windows, frames, d) each) and their frame mask (num_windows, frames).

        input_values: (batch, time) padded; lengths: (batch,) real samples per clip;
        window_max_hop: samples between window starts at most (None: config.window_max_hop)
        """
        cfg = self.config
        hop = window_max_hop or cfg.window_max_hop
        input_values = self.normalize_clips(input_values, lengths)
        item_index, starts, valid = plan_windows(lengths, cfg.window_length, hop)
        chunk = self.windows_per_forward(input_values.device)
        window_mos, hidden_parts = [], []
        for i in range(0, len(starts), chunk):  # windows cut a chunk at a time: a long clip's are never all held
            part = slice(i, i + chunk)
            windows = cut_windows(input_values, item_index[part], starts[part], valid[part], cfg.window_length)
            scores = self.score_windows(windows.windows, windows.lengths, output_hidden_states)
            if output_hidden_states:
                scores, hidden = scores
                hidden_parts.append(hidden)
            window_mos.append(scores)
        device = input_values.device
        index = (torch.tensor(item_index, device=device), torch.tensor(starts, device=device))
        if not output_hidden_states:
            return torch.cat(window_mos), *index
        hidden_states = tuple(torch.cat(layer) for layer in zip(*hidden_parts))
        hidden_mask = torch.ones(hidden_states[0].shape[:2], dtype=torch.bool, device=device)
        return torch.cat(window_mos), *index, hidden_states, hidden_mask

    def normalize_stream(self, samples: torch.Tensor, summary) -> torch.Tensor:
        """`normalize_clips` for part of a streamed clip, from the whole clip's `summary` (identity by
        default)."""
        return samples

    def score_stream(self, blocks, summary, window_max_hop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """One clip given as a stream of sample blocks (1-D arrays at `config.sampling_rate`, in order):
        (start sample, window MOS) of each of its windows, in time order, each as soon as the stream has
        passed the window's end. Memory is bounded by a chunk of windows and a block, whatever the clip's
        length; the scores are those `forward` gives the whole clip.

        summary: what a first pass over the clip found (`hf_sqa.audio.StreamSummary`: num_samples, peak,
        mean, variance), for the windowing rule and the per-clip normalisation. Call it under
        `torch.inference_mode()`.
        """
        cfg = self.config
        total = summary.num_samples
        starts = window_starts(total, cfg.window_length, window_max_hop or cfg.window_max_hop)
        samples = SampleBuffer(blocks, total)
        device = next(self.parameters()).device
        chunk = self.windows_per_forward(device)
        for i in range(0, len(starts), chunk):
            part = starts[i : i + chunk]
            counts = [min(cfg.window_length, total - start) for start in part]
            windows = torch.zeros(len(part), cfg.window_length)
            for row, (start, count) in enumerate(zip(part, counts)):
                windows[row, :count] = self.normalize_stream(samples[start : start + count], summary)
            scores = self.score_windows(windows.to(device), torch.tensor(counts, device=device))
            yield from zip(part, scores)

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        window_max_hop: int | None = None,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> MOSRegressionOutput | tuple:
        """
        input_values:   (batch, time) or (time,) waveform at `config.sampling_rate`
        attention_mask: (batch, time), 1 on real samples and 0 on padding; each clip is then scored exactly
                        as if it were alone (its windows are cut from its real samples only)
        labels:         (batch,) human or teacher MOS for the loss
        window_max_hop: samples between window starts at most, for this call (default:
                        `config.window_max_hop`, the model's own rule; see `check_window_max_hop`)
        output_hidden_states: also return the head's hidden states per window (the training path, also
                        under no_grad: frame-level distillation targets)
        """
        if input_values.dim() == 1:
            input_values = input_values[None]
        batch_size, num_samples = input_values.shape
        if attention_mask is None:
            lengths = torch.full((batch_size,), num_samples, dtype=torch.long, device=input_values.device)
        else:
            lengths = attention_mask.to(torch.long).sum(dim=-1)
        if (lengths <= 0).any():
            empty = torch.nonzero(lengths <= 0).flatten().tolist()
            raise ValueError(f"batch items {empty} have no samples (attention_mask is all zero)")

        if window_max_hop is not None:
            check_window_max_hop(window_max_hop, self.config.window_length)
        hidden_states = hidden_mask = None
        if output_hidden_states:
            window_mos, item_index, starts, hidden_states, hidden_mask = self.score_clips(
                input_values, lengths, window_max_hop, output_hidden_states=True)
        else:
            window_mos, item_index, starts = self.score_clips(input_values, lengths, window_max_hop)
        mos = average_per_item(window_mos, item_index, batch_size)
        window_grid, window_mask = pad_per_item(window_mos, item_index, batch_size)
        start_grid, _ = pad_per_item(starts, item_index, batch_size, fill_value=-1)

        loss = None if labels is None else regression_loss(mos, labels, self.config.loss_type)
        output = MOSRegressionOutput(
            loss=loss, mos=mos, window_mos=window_grid, window_mask=window_mask, window_starts=start_grid,
            hidden_states=hidden_states, hidden_mask=hidden_mask,
        )
        return output if return_dict is not False else output.to_tuple()
