"""Batching uniform examples (SPEC rows) for training: crop / pad to the training window.

Training runs one window per clip: a clip longer than `window_length` is cropped (at a random start
when `random_crop`, else centred, as for evaluation); a shorter one is zero-padded and its
`attention_mask` marks the real samples, which the models use to score exactly the real part.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class MOSCollator:
    """examples: dicts with `audio` (1-D float array) and optionally `mos` and `teacher_mos` ->
    {"input_values" (B, T), "attention_mask" (B, T), "labels" (B,) float, "teacher_mos" (B,) float}.

    Missing labels become NaN (unlabelled examples in a distillation mix); `labels` / `teacher_mos` are
    left out when no example has them. T is `window_length`, or the longest clip when all are shorter.
    """

    window_length: int = 122880
    random_crop: bool = True
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)

    def _crop(self, audio: np.ndarray) -> np.ndarray:
        excess = len(audio) - self.window_length
        if excess <= 0:
            return audio
        start = self._rng.randint(0, excess) if self.random_crop else excess // 2
        return audio[start : start + self.window_length]

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        clips = [self._crop(np.asarray(example["audio"], dtype=np.float32)) for example in examples]
        length = max(len(clip) for clip in clips)
        input_values = torch.zeros(len(clips), length)
        attention_mask = torch.zeros(len(clips), length, dtype=torch.long)
        for row, clip in enumerate(clips):
            input_values[row, : len(clip)] = torch.from_numpy(clip)
            attention_mask[row, : len(clip)] = 1
        batch = {"input_values": input_values, "attention_mask": attention_mask}
        for source, target in (("mos", "labels"), ("teacher_mos", "teacher_mos")):
            values = [example.get(source) for example in examples]
            if any(value is not None for value in values):
                batch[target] = torch.tensor([float("nan") if v is None else float(v) for v in values])
        return batch
