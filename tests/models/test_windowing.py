import numpy as np
import pytest
import torch

from hf_sqa.models.windowing import (
    SampleBuffer, average_per_item, cut_windows, make_windows, pad_per_item, plan_windows, window_starts,
)

WINDOW, HOP = 122880, 16000


@pytest.mark.parametrize(
    "num_samples, expected",
    [
        (1000, [0]),
        (WINDOW, [0]),
        (WINDOW + 1, [0, 1]),  # overhang 1 -> ceil(1/16000)+1 = 2 windows
        (160000, [0, 12373, 24746, 37120]),  # 10 s: overhang 37120 -> 4 windows, linspace starts
        (WINDOW + 2 * HOP, [0, 16000, 32000]),
    ],
)
def test_window_starts_follow_distillmos_rule(num_samples, expected):
    assert window_starts(num_samples, WINDOW, HOP) == expected


def test_windows_cover_long_clip_with_bounded_hops():
    for num_samples in (200_000, 500_001, 1_234_567):
        starts = window_starts(num_samples, WINDOW, HOP)
        assert starts[0] == 0 and starts[-1] + WINDOW == num_samples
        assert max(b - a for a, b in zip(starts, starts[1:])) <= HOP


def test_window_starts_refuses_empty():
    with pytest.raises(ValueError, match="0 samples"):
        window_starts(0, WINDOW, HOP)


def test_make_windows_slices_and_zero_pads_each_item():
    window, hop = 10, 4
    values = torch.arange(1, 31, dtype=torch.float32).reshape(2, 15)
    values[1, 6:] = 99.0  # padding garbage past item 1's length must not leak into its window
    batch = make_windows(values, torch.tensor([15, 6]), window, hop)
    # item 0: overhang 5 -> ceil(5/4)+1 = 3 windows at 0, 2, 5; item 1: one zero-padded window
    assert batch.item_index.tolist() == [0, 0, 0, 1]
    assert batch.starts.tolist() == [0, 2, 5, 0]
    assert batch.lengths.tolist() == [10, 10, 10, 6]
    assert torch.equal(batch.windows[1], values[0, 2:12])
    assert torch.equal(batch.windows[2], values[0, 5:15])
    assert torch.equal(batch.windows[3, :6], values[1, :6])
    assert torch.all(batch.windows[3, 6:] == 0)


def test_average_and_pad_per_item():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0])
    items = torch.tensor([0, 0, 0, 1])
    assert torch.allclose(average_per_item(scores, items, 2), torch.tensor([2.0, 5.0]))
    grid, mask = pad_per_item(scores, items, 2)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert grid[0].tolist() == [1.0, 2.0, 3.0] and grid[1, 0] == 5.0 and torch.isnan(grid[1, 1:]).all()


def test_cut_windows_cuts_a_slice_of_the_plan():
    values = torch.randn(2, 300)
    lengths = torch.tensor([300, 120])
    every = make_windows(values, lengths, 100, 30)
    item_index, starts, valid = plan_windows(lengths, 100, 30)
    for rows in (slice(0, 3), slice(3, 8), slice(8, None)):
        part = cut_windows(values, item_index[rows], starts[rows], valid[rows], 100)
        assert torch.equal(part.windows, every.windows[rows]) and torch.equal(part.starts, every.starts[rows])


def test_sample_buffer_reads_a_stream_like_the_whole_clip():
    clip = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    sizes = np.random.default_rng(1).integers(1, 900, 100)
    edges = np.cumsum(sizes)[np.cumsum(sizes) < len(clip)]
    blocks = np.split(clip, edges)
    buffer = SampleBuffer(iter(blocks), len(clip))
    for start in range(0, 9_000, 700):  # windows in time order, overlapping
        assert torch.equal(buffer[start : start + 1000], torch.from_numpy(clip[start : start + 1000]))
        assert len(buffer.samples) < 1000 + 900  # at most one read's span plus one block held
    index = torch.tensor([8_500, 8_400, 9_999])
    assert torch.equal(buffer[index], torch.from_numpy(clip[index.numpy()]))
    with pytest.raises(ValueError, match="already dropped"):
        buffer[100:200]
    short = SampleBuffer(iter([clip[:500]]), 1000)
    with pytest.raises(ValueError, match="stream ended after 500 samples; 1000 were announced"):
        short[400:800]
    with pytest.raises(IndexError, match="past the clip"):
        SampleBuffer(iter(blocks), len(clip))[torch.tensor([9_000, 10_000])]
