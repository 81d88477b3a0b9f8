"""The fast student: one front-end pass per clip, the head per window on the shared frames.

    clip (T,) -> / peak -> STFT + conv stack over the whole clip, in overlapping chunks -> frames (L, C * F)
    [clip shorter than a window: its frames + the frames of silence up to one window, L = frames_per_window]
    -> BatchNorm (the batch's frames together) -> windows of <= frames_per_window frames on the frame grid
    -> MOS head per window (windows of equal length batched) -> window MOS -> clip MOS = their mean

Same parameter names as `ConvTransformerForMOSRegression`, so a Distill-MOS import or a pruned student
loads into it; only how the front end is run differs: no per-window recomputation of overlapping audio,
and a short clip's zero padding costs no front-end work (the frames of silence are computed once).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .configuration_fast_mos import FastMOSConfig
from .modeling_conv_transformer_mos import ConvTransformerForMOSRegression
from .windowing import SampleBuffer, window_starts


# training groups windows whose frame counts fall in the same bucket of this many frames into one head call
# (padded and masked), by device type: on a GPU, where a step's time goes to kernel launches, a few calls per
# batch instead of one per short clip; on the CPU the padding's arithmetic cancels the saving (1.08x at 16
# clips per batch, 0.91x at 64: benchmarks/head_buckets.py), so each count keeps its own call there
TRAINING_BUCKET_FRAMES = {"cpu": 1, "cuda": 64}


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

    def pads(self, num_samples: int) -> bool:
        """Whether a clip of `num_samples` is scored as one window zero-padded to `window_length`."""
        return self.config.pad_short_clips and num_samples < self.config.window_length

    def clip_frames(self, samples: torch.Tensor, level: torch.Tensor | float = 1.0) -> torch.Tensor:
        """Conv features the head's windows are cut from: (config.output_frames(T), C * F), or
        (frames_per_window, C * F) for a clip that `pads`."""
        if self.pads(samples.shape[0]):
            return self.zero_padded_window_frames(samples / level)
        return self.clip_features(samples, level)

    def clip_features(self, samples: torch.Tensor, level: torch.Tensor | float = 1.0) -> torch.Tensor:
        """One clip (T,) / level -> conv features (L, C * F), L = config.output_frames(T)."""
        return torch.cat([piece for _, piece in self.clip_feature_chunks(samples, level)])

    def clip_level(self, samples: torch.Tensor) -> torch.Tensor:
        """What a clip (T,) is divided by before the front end (level_normalization "peak")."""
        low, high = torch.aminmax(samples)  # without an abs() copy of a long clip
        return torch.maximum(-low, high) + 1e-8

    def clip_feature_chunks(self, samples, level: torch.Tensor | float = 1.0) -> Iterator[tuple[int, torch.Tensor]]:
        """One clip (T,) (a tensor, or a `SampleBuffer` read in time order), divided by `level` chunk by
        chunk (no normalised copy of a long clip) -> (first frame, conv features (l, C * F)) of each chunk
        of `frontend_chunk_frames` output frames, in time order.

        Each chunk's conv input extends by the receptive margin beyond its edges (cut at the clip's ends,
        where the conv's zero padding is what the whole-clip computation sees too), so the chunks together
        equal one pass over the whole clip.
        """
        frontend = self.frontend
        for first, last, offset, padded in self.frontend_chunk_inputs(samples):
            padded = padded.to(frontend.convs[0].weight.device) / level
            features = frontend.conv_stack(frontend.spectrum_of_padded(padded[None]))  # (1, C, F, t)
            yield first, frontend.frames(features)[0, first - offset : last - offset]

    def frontend_chunk_inputs(self, samples) -> Iterator[tuple[int, int, int, torch.Tensor]]:
        """The front end's chunks of a clip (T,) (a tensor, or a `SampleBuffer` read in time order): (first
        and last + 1 output frame the chunk gives, output frame of its input's first STFT frame, its
        edge-padded samples (t,), before level normalisation) — each chunk's samples reach the receptive
        margin beyond its frames, cut at the clip's ends."""
        cfg = self.config
        stride, margin = cfg.time_stride, cfg.receptive_margin
        total_stft = cfg.stft_frames(samples.shape[0])
        total_out = cfg.output_frames(samples.shape[0])
        if total_stft < 1:
            raise ValueError(f"a clip of {samples.shape[0]} samples is shorter than one STFT frame")
        for first in range(0, total_out, cfg.frontend_chunk_frames):
            last = min(first + cfg.frontend_chunk_frames, total_out)
            lo = max(0, first * stride - margin)  # a multiple of stride: output k sits at input lo + k * stride
            hi = min(total_stft, last * stride + margin)
            padded = reflect_padded_slice(samples, self.frontend.edge_padding, lo * cfg.stft_hop_length,
                                          (hi - 1) * cfg.stft_hop_length + cfg.stft_n_fft)
            yield first, last, lo // stride, padded

    def window_frames(self, num_samples: int, window_max_hop: int | None = None) -> list[tuple[int, int, int]]:
        """(sample start, first frame, frame count) of each window of a clip: the windowing rule's starts
        (windows at most `window_max_hop` apart, default config.window_max_hop), moved to the nearest frame
        (a clip that `pads` is one whole window)."""
        cfg = self.config
        if self.pads(num_samples):
            return [(0, 0, cfg.frames_per_window)]
        total = cfg.output_frames(num_samples)
        per_window = cfg.frames_per_window
        windows = []
        for start in window_starts(num_samples, cfg.window_length, window_max_hop or cfg.window_max_hop):
            first = min(int(round(start / cfg.samples_per_frame)), max(total - per_window, 0))
            windows.append((start, first, min(per_window, total - first)))
        return windows

    def score_clips(
        self, input_values: torch.Tensor, lengths: torch.Tensor, window_max_hop: int | None = None,
        output_hidden_states: bool = False,
    ) -> tuple:
        """Every window of every clip scored from the clip's shared frames: (window MOS, batch item of each
        window, its start sample), all (num_windows,); with output_hidden_states also the head's hidden
        states (projection and each transformer layer: (num_windows, frames_per_window, d) each, zero after
        a window's frames) and their frame mask (num_windows, frames_per_window).

        input_values: (batch, time) padded; lengths: (batch,) real samples per clip;
        window_max_hop: samples between window starts at most (None: config.window_max_hop)

        Inference (eval mode, no gradients) streams each clip: BatchNorm then applies fixed statistics frame
        by frame, so a window is scored as soon as the front end has reached its end and only the frames
        of windows still to come are kept (memory bounded by a front-end chunk plus a window, whatever the
        clip's length). Training normalises with the statistics of the batch's frames, so it needs them all.
        """
        device = input_values.device
        lengths = lengths.tolist()
        if not self.training and not torch.is_grad_enabled() and not output_hidden_states:
            item_index, starts, scores = [], [], []
            for item, length in enumerate(lengths):
                clip_starts, clip_scores = self._stream_clip(input_values[item, :length], window_max_hop)
                item_index += [item] * len(clip_starts)
                starts += clip_starts
                scores.append(clip_scores)
            return (torch.cat(scores), torch.tensor(item_index, device=device),
                    torch.tensor(starts, device=device))
        # front end per clip (no padding computed), then one BatchNorm over every frame of the batch
        features = []
        for item, length in enumerate(lengths):
            clip = input_values[item, :length]
            features.append(self.clip_frames(clip, self.clip_level(clip)))
        frame_counts = [f.shape[0] for f in features]
        features = self.feature_norm(torch.cat(features).T[None])[0].T.split(frame_counts)  # (frames, C * F) each

        item_index, starts, windows = [], [], []
        for item, length in enumerate(lengths):
            for start, first, count in self.window_frames(length, window_max_hop):
                windows.append(features[item][first : first + count])
                item_index.append(item)
                starts.append(start)
        index = (torch.tensor(item_index, device=device), torch.tensor(starts, device=device))
        if not output_hidden_states:
            return self._head_by_length(windows), *index
        window_mos, hidden_states, hidden_mask = self._head_by_length(windows, output_hidden_states=True)
        return window_mos, *index, hidden_states, hidden_mask

    def _head_by_length(self, windows: list[torch.Tensor], output_hidden_states: bool = False):
        """Window MOS (n,) of n windows' frames ((count, C * F) each), in their order, with the head run
        `windows_per_forward` windows at a time over windows of similar frame count. Inference groups
        equal counts (no padding: exactly what each window gets alone), and so does training on the CPU.
        Training on a GPU, where every head call is a forward and a backward of small kernels (a batch of
        short clips, each its own count, made ~26,000 kernel launches per step), puts counts in buckets of
        `TRAINING_BUCKET_FRAMES` frames, padded to the bucket's longest window and masked (the head then
        gives each window its own score; in training mode its BatchNorms count the real frames only). With
        output_hidden_states also the head's hidden states, each (n, frames_per_window, d) zero after a
        window's frames, and their frame mask (n, frames_per_window)."""
        device = windows[0].device.type
        bucket = TRAINING_BUCKET_FRAMES.get(device, TRAINING_BUCKET_FRAMES["cuda"]) if torch.is_grad_enabled() else 1
        groups: dict[int, list[int]] = {}
        for row, frames in enumerate(windows):
            groups.setdefault(-(-frames.shape[0] // bucket), []).append(row)
        chunk = self.windows_per_forward(windows[0].device)
        rows, scores, hidden_parts = [], [], []
        for members in groups.values():
            for i in range(0, len(members), chunk):
                part = members[i : i + chunk]
                rows.extend(part)
                counts = [windows[row].shape[0] for row in part]
                width = max(counts)
                features = torch.stack([windows[row] if windows[row].shape[0] == width else  # no copy when equal
                                        torch.nn.functional.pad(windows[row], (0, 0, 0, width - windows[row].shape[0]))
                                        for row in part])
                mask = None
                if min(counts) < width:
                    mask = torch.arange(width, device=features.device)[None] < torch.tensor(counts, device=features.device)[:, None]
                result = self.head(features, output_hidden_states, frame_mask=mask)
                if output_hidden_states:
                    result, hidden = result
                    hidden_parts.append(hidden)
                scores.append(result)
        order = torch.tensor(rows, device=windows[0].device)
        scores = torch.cat(scores)
        window_mos = scores.new_empty(len(windows)).index_put((order,), scores)
        if not output_hidden_states:
            return window_mos
        width = max(self.config.frames_per_window, max(frames.shape[0] for frames in windows))
        hidden_states = []
        for layer in range(len(hidden_parts[0])):
            padded = [torch.nn.functional.pad(part[layer], (0, 0, 0, width - part[layer].shape[1]))
                      for part in hidden_parts]
            stacked = torch.cat(padded)  # (n, width, d) in `rows` order
            hidden_states.append(stacked.new_zeros(stacked.shape).index_put((order,), stacked))
        counts = torch.tensor([frames.shape[0] for frames in windows], device=order.device)
        hidden_mask = torch.arange(width, device=order.device)[None] < counts[:, None]
        return window_mos, tuple(hidden_states), hidden_mask

    def score_stream(self, blocks, summary, window_max_hop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """`MOSPreTrainedModel.score_stream`: the clip's peak comes from the summary, then the front end
        runs chunk by chunk over the stream as in inference on a whole clip."""
        samples = SampleBuffer(blocks, summary.num_samples)
        level = torch.tensor(summary.peak, dtype=torch.float32) + 1e-8  # as clip_level computes it
        yield from self._stream_windows(samples, level, window_max_hop)

    def _stream_clip(self, clip: torch.Tensor, window_max_hop: int | None = None) -> tuple[list[int], torch.Tensor]:
        """(start samples, window MOS (windows,)) of one clip (T,) (inference only)."""
        starts, scores = zip(*self._stream_windows(clip, self.clip_level(clip), window_max_hop))
        return list(starts), torch.stack(scores)

    def _stream_windows(self, samples, level, window_max_hop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """(start sample, window MOS) of each window of one clip, in time order, each scored as soon as the
        front end has reached its end (inference only: BatchNorm with its running statistics); only the
        frames of windows still to come are kept.

        samples: the clip, a (T,) tensor or a `SampleBuffer` over a stream (read in time order)
        """
        num_samples = samples.shape[0]
        if self.pads(num_samples):  # one window, shorter than a front-end chunk
            clip = samples[0:num_samples]
            frames = self.feature_norm(self.clip_frames(clip, level).T[None])[0].T
            yield 0, self.head(frames[None])[0]
            return
        windows = self.window_frames(num_samples, window_max_hop)  # (start, first frame, count), ascending
        done = 0  # windows scored and yielded
        kept, kept_first = [], 0  # normalised frames from frame `kept_first` on, (l, C * F) pieces
        for first, piece in self.clip_feature_chunks(samples, level):
            kept.append(self.feature_norm(piece.T[None])[0].T)
            frames = torch.cat(kept)
            reached = first + piece.shape[0]
            ready = done
            while ready < len(windows) and windows[ready][1] + windows[ready][2] <= reached:
                ready += 1
            if ready > done:
                offsets = [(windows[k][1] - kept_first, windows[k][2]) for k in range(done, ready)]  # in `frames`
                values = self._head_by_length([frames[at : at + count] for at, count in offsets])
                yield from zip([windows[k][0] for k in range(done, ready)], values)
                done = ready
            keep_from = windows[done][1] if done < len(windows) else reached
            kept, kept_first = [frames[keep_from - kept_first :]], keep_from
