"""Long-input windowing: the one place where clips are cut into fixed-length model windows.

Both model families see audio through fixed windows (7.68 s = 122880 samples at 16 kHz by default).
The rule is Distill-MOS's, so imported checkpoints score exactly as the original:

* a clip no longer than one window gives one window, zero-padded at the end;
* a longer clip gives ``ceil(overhang / max_hop) + 1`` windows whose starts are spread evenly
  (``numpy.linspace``) from 0 to ``overhang = length - window_length``, so consecutive windows are at
  most ``max_hop`` samples apart and the last one ends exactly at the clip's end.

All windows of a whole batch are gathered into one tensor so the model runs them in one forward, and the
per-window scores are averaged back per clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def check_window_max_hop(max_hop: int, window_length: int) -> None:
    """A hop between window starts must be a positive whole number of samples and at most one window (a
    longer one would leave audio between windows unscored)."""
    if isinstance(max_hop, bool) or not isinstance(max_hop, int) or not 0 < max_hop <= window_length:
        raise ValueError(f"window hop must be a whole number of samples in (0, window_length = {window_length}], "
                         f"got {max_hop!r}")


def window_starts(num_samples: int, window_length: int, max_hop: int) -> list[int]:
    """Start offsets (in samples) of the windows covering a clip of ``num_samples`` samples."""
    if num_samples <= 0:
        raise ValueError(f"cannot window a clip of {num_samples} samples")
    overhang = num_samples - window_length
    if overhang <= 0:
        return [0]
    num_windows = math.ceil(overhang / max_hop) + 1
    # float64 linspace then int() truncation, exactly as Distill-MOS computes its crop starts
    return [int(fraction * overhang) for fraction in np.linspace(0.0, 1.0, num_windows)]


@dataclass
class WindowBatch:
    """All windows of a batch, flattened along the first axis.

    windows:     (num_windows, window_length) float, zero beyond each window's valid samples
    lengths:     (num_windows,) long, valid (non-padding) samples in each window
    item_index:  (num_windows,) long, the batch item each window was cut from
    starts:      (num_windows,) long, start sample of each window inside its item
    """

    windows: torch.Tensor
    lengths: torch.Tensor
    item_index: torch.Tensor
    starts: torch.Tensor


def make_windows(
    input_values: torch.Tensor, lengths: torch.Tensor, window_length: int, max_hop: int
) -> WindowBatch:
    """Cut every clip of a padded batch into its windows.

    input_values: (batch, time) padded waveforms
    lengths:      (batch,) number of real samples per clip; samples past it are ignored (treated as zeros)
    """
    return cut_windows(input_values, *plan_windows(lengths, window_length, max_hop), window_length)


def cut_windows(
    input_values: torch.Tensor, item_index: list[int], starts: list[int], valid: list[int], window_length: int
) -> WindowBatch:
    """The windows of a `plan_windows` plan (or a slice of it, so a long clip can be cut a chunk of windows at
    a time) from a padded batch (batch, time)."""
    if input_values.dim() != 2:
        raise ValueError(f"input_values must be (batch, time), got shape {tuple(input_values.shape)}")
    device = input_values.device
    # one slice copy per window; samples past a clip's end stay zero
    windows = input_values.new_zeros(len(starts), window_length)
    for row, (item, start, count) in enumerate(zip(item_index, starts, valid)):
        windows[row, :count] = input_values[item, start : start + count]
    item_index_t = torch.tensor(item_index, dtype=torch.long, device=device)
    starts_t = torch.tensor(starts, dtype=torch.long, device=device)
    valid_t = torch.tensor(valid, dtype=torch.long, device=device)
    return WindowBatch(windows=windows, lengths=valid_t, item_index=item_index_t, starts=starts_t)


def plan_windows(lengths: torch.Tensor, window_length: int, max_hop: int) -> tuple[list[int], list[int], list[int]]:
    """(batch item, start sample, real samples) of every window of a batch, items in order, windows of an
    item in time order."""
    item_index, starts, valid = [], [], []
    for item, length in enumerate(lengths.tolist()):
        for start in window_starts(int(length), window_length, max_hop):
            item_index.append(item)
            starts.append(start)
            valid.append(min(window_length, int(length) - start))
    return item_index, starts, valid


class SampleBuffer:
    """A clip that arrives as a stream of sample blocks, read like a (num_samples,) tensor.

    `buffer[a:b]` or `buffer[index_tensor]` returns those samples (float32 tensor), pulling blocks from the
    stream as far as needed; samples before the earliest one a read asks for are dropped, so reads must
    not go back before the start of the previous read (windows and front-end chunks in time order), and
    memory stays bounded by the span of one read plus one block.
    """

    def __init__(self, blocks, num_samples: int):
        self.blocks = iter(blocks)
        self.shape = (num_samples,)
        self.device = torch.device("cpu")
        self.samples = np.zeros(0, np.float32)
        self.first = 0  # clip index of self.samples[0]

    def _load(self, low: int, high: int) -> None:
        """Hold samples [low, high) of the clip (high <= num_samples), dropping those before low."""
        if low < self.first:
            raise ValueError(f"sample {low} was already dropped (the buffer starts at {self.first})")
        if high > self.shape[0]:
            raise IndexError(f"sample {high - 1} is past the clip's {self.shape[0]} samples")
        pieces = [self.samples[low - self.first :]]  # held samples from `low` on (maybe none)
        end = self.first + len(self.samples)  # clip index after the last sample pulled so far
        while end < high:
            block = next(self.blocks, None)
            if block is None:
                raise ValueError(f"the stream ended after {end} samples; {self.shape[0]} were announced")
            block = np.asarray(block, dtype=np.float32)
            pieces.append(block[max(low - end, 0) :])  # empty when the block ends before `low`
            end += len(block)
        self.samples = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        self.first = low

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            start, stop, _ = key.indices(self.shape[0])
            self._load(start, stop)
            return torch.from_numpy(self.samples[start - self.first : stop - self.first].copy())
        index = torch.as_tensor(key)
        self._load(int(index.min()), int(index.max()) + 1)
        return torch.from_numpy(self.samples[(index - self.first).numpy()])


def average_per_item(window_values: torch.Tensor, item_index: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean of per-window values per batch item: (num_windows,) -> (batch,), summed in float64 (an hour
    has thousands of windows; a streamed clip's mean is taken the same way)."""
    sums = torch.zeros(batch_size, dtype=torch.float64, device=window_values.device)
    sums = sums.index_add(0, item_index, window_values.double())
    counts = torch.bincount(item_index, minlength=batch_size).double()
    return (sums / counts).to(window_values.dtype)


def pad_per_item(
    window_values: torch.Tensor, item_index: torch.Tensor, batch_size: int, fill_value: float = float("nan")
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter per-window values into a (batch, max_windows) grid and a boolean mask of filled cells.

    Windows of one item are contiguous and in time order (``make_windows`` emits them that way).
    """
    counts = torch.bincount(item_index, minlength=batch_size)
    max_windows = int(counts.max().item()) if counts.numel() else 0
    first_window = torch.cumsum(counts, 0) - counts  # (batch,) index of each item's first window
    position = torch.arange(item_index.numel(), device=item_index.device) - first_window[item_index]
    grid = torch.full((batch_size, max_windows), fill_value, dtype=window_values.dtype, device=window_values.device)
    grid[item_index, position] = window_values
    mask = torch.zeros((batch_size, max_windows), dtype=torch.bool, device=window_values.device)
    mask[item_index, position] = True
    return grid, mask
