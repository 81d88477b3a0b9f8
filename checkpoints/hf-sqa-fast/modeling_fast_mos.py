"""The fast student: one front-end pass per clip, the head per window on the shared frames.

    clip (T,) -> / peak -> STFT + conv stack over the whole clip, in overlapping chunks -> frames (L, C * F)
    -> BatchNorm (the batch's frames together) -> windows of <= frames_per_window frames on the frame grid
    -> MOS head per window (windows of equal length batched) -> window MOS -> clip MOS = their mean

Same parameter names as `ConvTransformerForMOSRegression`, so a Distill-MOS import or a pruned student
loads into it; only how the front end is run differs (no per-window recomputation of overlapping audio, no
zero-padded windows for short clips).
"""

from __future__ import annotations

from collections.abc import Iterator

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

    def clip_features(self, samples: torch.Tensor, level: torch.Tensor | float = 1.0) -> torch.Tensor:
        """One clip (T,) / level -> conv features (L, C * F), L = config.output_frames(T)."""
        return torch.cat([piece for _, piece in self.clip_feature_chunks(samples, level)])

    def clip_level(self, samples: torch.Tensor) -> torch.Tensor:
        """What a clip (T,) is divided by before the front end (level_normalization "peak")."""
        low, high = torch.aminmax(samples)  # without an abs() copy of a long clip
        return torch.maximum(-low, high) + 1e-8

    def clip_feature_chunks(self, samples: torch.Tensor, level: torch.Tensor | float = 1.0
                            ) -> Iterator[tuple[int, torch.Tensor]]:
        """One clip (T,), divided by `level` chunk by chunk (no normalised copy of a long clip) -> (first
        frame, conv features (l, C * F)) of each chunk of `frontend_chunk_frames` output frames, in time
        order.

        Each chunk's conv input extends by the receptive margin beyond its edges (cut at the clip's ends,
        where the conv's zero padding is what the whole-clip computation sees too), so the chunks together
        equal one pass over the whole clip.
        """
        cfg = self.config
        frontend = self.frontend
        stride, margin = cfg.time_stride, cfg.receptive_margin
        total_stft = cfg.stft_frames(samples.shape[0])
        total_out = cfg.output_frames(samples.shape[0])
        if total_stft < 1:
            raise ValueError(f"a clip of {samples.shape[0]} samples is shorter than one STFT frame")
        for first in range(0, total_out, cfg.frontend_chunk_frames):
            last = min(first + cfg.frontend_chunk_frames, total_out)
            lo = max(0, first * stride - margin)  # a multiple of stride: output k sits at input lo + k * stride
            hi = min(total_stft, last * stride + margin)
            padded = reflect_padded_slice(samples, frontend.edge_padding, lo * cfg.stft_hop_length,
                                          (hi - 1) * cfg.stft_hop_length + cfg.stft_n_fft) / level
            features = frontend.conv_stack(frontend.spectrum_of_padded(padded[None]))  # (1, C, F, t)
            offset = lo // stride
            yield first, frontend.frames(features)[0, first - offset : last - offset]

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

        Inference (eval mode, no gradients) streams each clip: BatchNorm then applies fixed statistics frame
        by frame, so a window is scored as soon as the front end has reached its end and only the frames
        of windows still to come are kept (memory bounded by a front-end chunk plus a window, whatever the
        clip's length). Training normalises with the statistics of the batch's frames, so it needs them all.
        """
        device = input_values.device
        lengths = lengths.tolist()
        if not self.training and not torch.is_grad_enabled():
            item_index, starts, scores = [], [], []
            for item, length in enumerate(lengths):
                clip_starts, clip_scores = self._stream_clip(input_values[item, :length])
                item_index += [item] * len(clip_starts)
                starts += clip_starts
                scores.append(clip_scores)
            return (torch.cat(scores), torch.tensor(item_index, device=device),
                    torch.tensor(starts, device=device))
        # front end per clip (no padding computed), then one BatchNorm over every frame of the batch
        features = []
        for item, length in enumerate(lengths):
            clip = input_values[item, :length]
            features.append(self.clip_features(clip, self.clip_level(clip)))
        frame_counts = [f.shape[0] for f in features]
        features = self.feature_norm(torch.cat(features).T[None])[0].T.split(frame_counts)  # (frames, C * F) each

        item_index, starts, windows = [], [], []
        for item, length in enumerate(lengths):
            for start, first, count in self.window_frames(length):
                windows.append(features[item][first : first + count])
                item_index.append(item)
                starts.append(start)
        window_mos = self._head_by_length(windows)
        return window_mos, torch.tensor(item_index, device=device), torch.tensor(starts, device=device)

    def _head_by_length(self, windows: list[torch.Tensor]) -> torch.Tensor:
        """Window MOS (n,) of n windows' frames ((count, C * F) each), in their order: windows of equal frame
        count go through the head together, `windows_per_forward` at a time."""
        groups: dict[int, list[int]] = {}
        for row, frames in enumerate(windows):
            groups.setdefault(frames.shape[0], []).append(row)
        chunk = self.windows_per_forward(windows[0].device)
        rows, scores = [], []
        for members in groups.values():
            for i in range(0, len(members), chunk):
                part = members[i : i + chunk]
                rows.extend(part)
                scores.append(self.head(torch.stack([windows[row] for row in part])))
        scores = torch.cat(scores)
        return scores.new_empty(len(windows)).index_put((torch.tensor(rows, device=scores.device),), scores)

    def _stream_clip(self, clip: torch.Tensor) -> tuple[list[int], torch.Tensor]:
        """(start samples, window MOS (windows,)) of one clip (T,), windows scored as the front end reaches
        their ends (inference only: BatchNorm with its running statistics)."""
        windows = self.window_frames(clip.shape[0])  # (start, first frame, count), starts ascending
        scores: list[torch.Tensor | None] = [None] * len(windows)
        pending = list(range(len(windows)))
        kept, kept_first = [], 0  # normalised frames from frame `kept_first` on, (l, C * F) pieces
        for first, piece in self.clip_feature_chunks(clip, self.clip_level(clip)):
            kept.append(self.feature_norm(piece.T[None])[0].T)
            frames = torch.cat(kept)
            reached = first + piece.shape[0]
            ready = [k for k in pending if windows[k][1] + windows[k][2] <= reached]
            if ready:
                offsets = [(windows[k][1] - kept_first, windows[k][2]) for k in ready]  # (first, count) in `frames`
                values = self._head_by_length([frames[at : at + count] for at, count in offsets])
                for k, value in zip(ready, values):
                    scores[k] = value
            pending = [k for k in pending if scores[k] is None]
            keep_from = min((windows[k][1] for k in pending), default=reached)
            kept, kept_first = [frames[keep_from - kept_first :]], keep_from
        return [start for start, _, _ in windows], torch.stack(scores)
