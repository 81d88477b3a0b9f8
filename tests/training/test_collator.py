import numpy as np
import torch

from hf_sqa.training import MOSCollator


def _examples():
    return [
        {"audio": np.arange(1, 11, dtype=np.float32), "mos": 4.0},
        {"audio": np.arange(1, 5, dtype=np.float32), "mos": None, "teacher_mos": 2.5},
        {"audio": np.arange(1, 31, dtype=np.float32), "mos": 1.5, "teacher_mos": 3.0},
    ]


def test_crop_pad_masks_and_float_labels():
    batch = MOSCollator(window_length=8, random_crop=False)(_examples())
    assert batch["input_values"].shape == (3, 8) and batch["input_values"].dtype == torch.float32
    assert batch["attention_mask"].sum(1).tolist() == [8, 4, 8]
    assert batch["input_values"][1].tolist() == [1, 2, 3, 4, 0, 0, 0, 0]
    assert batch["input_values"][0].tolist() == list(range(2, 10))  # centred crop of 10 -> 8
    assert batch["input_values"][2].tolist() == list(range(12, 20))
    labels = batch["labels"]
    assert labels.dtype == torch.float32 and labels[0] == 4.0 and torch.isnan(labels[1]) and labels[2] == 1.5
    assert torch.isnan(batch["teacher_mos"][0]) and batch["teacher_mos"][1:].tolist() == [2.5, 3.0]


def test_random_crops_stay_inside_and_vary_reproducibly():
    clip = {"audio": np.arange(100, dtype=np.float32), "mos": 3.0}
    crops = [MOSCollator(window_length=10, seed=1)([clip])["input_values"][0] for _ in range(2)]
    assert torch.equal(crops[0], crops[1])  # same seed, same crop
    collator = MOSCollator(window_length=10, seed=2)
    crops = [collator([clip])["input_values"][0] for _ in range(30)]
    starts = {int(crop[0]) for crop in crops}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 90
    assert all(torch.equal(crop, torch.arange(crop[0], crop[0] + 10)) for crop in crops)  # contiguous


def test_short_batches_are_padded_to_the_longest_clip_only():
    batch = MOSCollator(window_length=100)([{"audio": np.ones(5)}, {"audio": np.ones(7)}])
    assert batch["input_values"].shape == (2, 7) and "labels" not in batch and "teacher_mos" not in batch
