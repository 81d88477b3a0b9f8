"""The fast student: one front-end pass per clip, the head per window on the shared frames.

    clip (T,) -> / peak -> STFT + conv stack over the whole clip, in overlapping chunks -> frames (L, C * F)
    -> BatchNorm (the batch's frames together) -> windows of <= frames_per_window frames on the frame grid
    -> MOS head per window (windows of equal length batched) -> window MOS -> clip MOS = their mean

Same parameter names as `ConvTransformerForMOSRegression`, so a Distill-MOS import or a pruned student
loads into it; only how the front end is run differs (no per-window recomputation of overlapping audio, no
zero-padded windows for short clips).
"""

from __future__ import annotations

import torch

from .configuration_fast_mos import FastMOSConfig
from .modeling_conv_transformer_mos import ConvTransformerForMOSRegression
from .windowing import window_starts


def reflect_padded_slice(samples: torch.Tensor, side: int, start: int, stop: int) -> torch.Tensor:
    """Samples [start, stop) of `samples` (T,) reflect-padded by `side` at both ends, without building the
    whole padded signal."""
    index = torch.arange(start - side, stop - side, device=samples.device)
    last = samples.shape[0] - 1
    index = index.abs()  # reflection at the start: -k -> k
    index = torch.where(index > last, 2 * last - index, index)  # and at the end
    return samples[index]


class FastMOSForMOSRegression(ConvTransformerForMOSRegression):
    config_class = FastMOSConfig
    config: FastMOSConfig

    def clip_features(self, samples: torch.Tensor) -> torch.Tensor:
        """One level-normalised clip (T,) -> conv features (L, C * F), L = config.output_frames(T).

        Chunks of `frontend_chunk_frames` output frames; each chunk's conv input extends by the receptive
        margin beyond its edges (cut at the clip's ends, where the conv's zero padding is what the whole-clip
        computation sees too), so the result equals one pass over the whole clip.
        """
        cfg = self.config
        frontend = self.frontend
        stride, margin = cfg.time_stride, cfg.receptive_margin
        total_stft = cfg.stft_frames(samples.shape[0])
        total_out = cfg.output_frames(samples.shape[0])
        if total_stft < 1:
            raise ValueError(f"a clip of {samples.shape[0]} samples is shorter than one STFT frame")
        pieces = []
        for first in range(0, total_out, cfg.frontend_chunk_frames):
            last = min(first + cfg.frontend_chunk_frames, total_out)
            lo = max(0, first * stride - margin)  # a multiple of stride: output k sits at input lo + k * stride
            hi = min(total_stft, last * stride + margin)
            padded = reflect_padded_slice(samples, frontend.edge_padding, lo * cfg.stft_hop_length,
                                          (hi - 1) * cfg.stft_hop_length + cfg.stft_n_fft)
            features = frontend.conv_stack(frontend.spectrum_of_padded(padded[None]))  # (1, C, F, t)
            offset = lo // stride
            pieces.append(frontend.frames(features)[0, first - offset : last - offset])
        return torch.cat(pieces)

    def window_frames(self, num_samples: int) -> list[tuple[int, int, int]]:
        """(sample start, first frame, frame count) of each window of a clip: the windowing rule's starts,
        moved to the nearest frame."""
        cfg = self.config
        total = cfg.output_frames(num_samples)
        per_window = cfg.frames_per_window
        windows = []
        for start in window_starts(num_samples, cfg.window_length, cfg.window_max_hop):
            first = min(int(round(start / cfg.samples_per_frame)), max(total - per_window, 0))
            windows.append((start, first, min(per_window, total - first)))
        return windows

    def score_clips(
        self, input_values: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every window of every clip scored from the clip's shared frames: (window MOS, batch item of each
        window, its start sample), all (num_windows,).

        input_values: (batch, time) padded; lengths: (batch,) real samples per clip
        """
        device = input_values.device
        lengths = lengths.tolist()
        # front end per clip (no padding computed), then one BatchNorm over every frame of the batch
        features = []
        for item, length in enumerate(lengths):
            clip = input_values[item, :length]
            features.append(self.clip_features(clip / (clip.abs().amax() + 1e-8)))
        frame_counts = [f.shape[0] for f in features]
        features = self.feature_norm(torch.cat(features).T[None])[0].T.split(frame_counts)  # (frames, C * F) each

        # windows of equal frame count go through the head together
        item_index, starts, groups = [], [], {}
        for item, length in enumerate(lengths):
            for start, first, count in self.window_frames(length):
                groups.setdefault(count, []).append((len(starts), item, first))
                item_index.append(item)
                starts.append(start)
        chunk = self.windows_per_forward(device)
        rows, scores = [], []
        for count, members in groups.items():
            for i in range(0, len(members), chunk):
                part = members[i : i + chunk]
                windows = torch.stack([features[item][first : first + count] for _, item, first in part])
                rows.extend(row for row, _, _ in part)
                scores.append(self.head(windows))
        scores = torch.cat(scores)
        window_mos = scores.new_empty(len(starts)).index_put((torch.tensor(rows, device=device),), scores)
        return window_mos, torch.tensor(item_index, device=device), torch.tensor(starts, device=device)
