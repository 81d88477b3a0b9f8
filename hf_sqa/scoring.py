"""Scoring API: `load_model`, `score`, and `iter_scores` (the batch engine the CLI runs on).

Decoding and resampling run ahead of the model in a thread pool (soundfile and soxr release the GIL);
each batch of short clips is padded once and runs in one model forward; a long input is scored alone as a
stream (`score_stream`), with memory bounded whatever its length.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import Audio, AudioError, AudioStream
from .models import MOSPreTrainedModel
from .models.windowing import check_window_max_hop

DEFAULT_MODEL = "distillmos"
PRECISIONS = ("fp32", "bf16")
# inputs longer than this (seconds, from the header) are scored as streams, one at a time
STREAM_SECONDS = 60.0


# built-in models, shipped inside the package: name -> folder of the package data `hf_sqa.checkpoints`
# (hf_sqa/checkpoints links to the repository's checkpoints/). `distillmos` is the Distill-MOS v7 wheel's
# weights converted by `hf-sqa convert distillmos` (tests: equal to a fresh conversion).
PACKAGED_MODELS = {"distillmos": "distillmos", "fast": "hf-sqa-fast"}


def packaged_model_path(name: str) -> Path:
    """The folder of a model shipped as package data (no conversion, no download)."""
    from importlib.resources import files

    folder = Path(str(files("hf_sqa.checkpoints").joinpath(PACKAGED_MODELS[name])))
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"built-in model {name!r}: {folder} is missing from this installation")
    return folder


def window_hop_samples(window_hop: float, config) -> int:
    """A hop between window starts in seconds -> samples at the model's rate, checked (positive, at most
    one window)."""
    try:
        samples = int(round(float(window_hop) * config.sampling_rate))
        check_window_max_hop(samples, config.window_length)
    except (ValueError, TypeError, OverflowError):  # not a number, NaN, infinite, out of range
        raise ValueError(f"window_hop must be in (0, {config.window_length / config.sampling_rate:g}] seconds "
                         f"(one window), got {window_hop!r}") from None
    return samples


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device | None = None,
    window_hop: float | None = None, **kwargs
) -> MOSPreTrainedModel:
    """An hf_sqa model in eval mode: a built-in name ("distillmos"), a local checkpoint folder or a Hub id.

    window_hop: seconds between window starts at most, stored as the loaded model's rule
    (`config.window_max_hop`; default: the checkpoint's own). Extra keyword arguments go to
    `AutoModel.from_pretrained` (revision, token, dtype, ...)."""
    from transformers import AutoModel

    name = str(name_or_path)
    if name in PACKAGED_MODELS:
        name = str(packaged_model_path(name))
    elif not Path(name).exists() and name.count("/") != 1:
        raise ValueError(
            f"model {name!r} is neither a built-in name ({', '.join(PACKAGED_MODELS)}), "
            "an existing checkpoint folder, nor a Hub id (owner/name)"
        )
    model = AutoModel.from_pretrained(name, **kwargs)
    if not isinstance(model, MOSPreTrainedModel):
        raise ValueError(f"{name_or_path} is a {type(model).__name__}, not an hf_sqa MOS model")
    model.eval()
    if window_hop is not None:
        model.config.window_max_hop = window_hop_samples(window_hop, model.config)
    if device is not None:
        model.to(device)
    return model


@dataclass
class Segment:
    """One model window of a clip, in seconds of the clip."""

    start: float
    end: float
    mos: float


@dataclass
class ScoreResult:
    """One input's scores. Besides the clip MOS (the mean of its windows), where it is worst:
    `lowest_mos` (its lowest window), `p10_mos` (10th percentile of its windows) and `share_below` (share of
    its time whose MOS is below the `below` threshold asked for, NaN when none was; see `summarize_windows`)."""

    index: int
    source: str
    mos: float = float("nan")
    error: str | None = None
    is_silent: bool = False
    duration: float = float("nan")
    segments: list[Segment] = field(default_factory=list)
    lowest_mos: float = float("nan")
    p10_mos: float = float("nan")
    share_below: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.error is None


# the verbal categories of the 5-point absolute category rating scale (ITU-T P.800): (lowest MOS, name)
QUALITY_BANDS = ((4.5, "excellent"), (3.5, "good"), (2.5, "fair"), (1.5, "poor"), (-float("inf"), "bad"))


def quality_band(mos: float) -> str:
    """The P.800 verbal category a MOS falls in ("" for NaN: no score)."""
    return "" if mos != mos else next(name for lower, name in QUALITY_BANDS if mos >= lower)


def summarize_windows(segments: list[Segment], below: float | None = None) -> tuple[float, float, float]:
    """(lowest window MOS, 10th percentile of window MOS, share of time below `below`) of a clip's windows.

    The MOS of an instant is the mean of the windows covering it (windows overlap under the default rule),
    so the share below is the time where that mean is below `below`, over the time the windows cover (the
    whole clip); NaN when `below` is None.
    """
    mos = np.array([s.mos for s in segments], dtype=np.float64)
    if not len(mos):
        return float("nan"), float("nan"), float("nan")
    share = float("nan")
    if below is not None:
        starts = np.array([s.start for s in segments])
        ends = np.array([s.end for s in segments])
        points = np.unique(np.concatenate([starts, ends]))  # the instants where the covering windows change
        count, total = np.zeros(len(points)), np.zeros(len(points))
        for edges, sign in ((starts, 1.0), (ends, -1.0)):
            at = np.searchsorted(points, edges)
            np.add.at(count, at, sign)
            np.add.at(total, at, sign * mos)
        count, total = np.cumsum(count)[:-1], np.cumsum(total)[:-1]  # over [points[k], points[k + 1])
        spans = np.diff(points)
        covered = count > 0.5
        local = total[covered] / count[covered]
        share = float(spans[covered][local < below].sum() / spans[covered].sum())
    return float(mos.min()), float(np.percentile(mos, 10)), share


def score_batch(
    model: MOSPreTrainedModel, audios: list[Audio], precision: str, window_max_hop: int | None = None
) -> tuple[np.ndarray, list[list[Segment]]]:
    """MOS per clip and its windows; all windows of the batch run in one forward.

    precision "bf16" runs the model under bfloat16 autocast (the MOS head stays float32);
    window_max_hop: samples between window starts at most (None: the model's rule).
    """
    device = next(model.parameters()).device
    lengths = [len(audio.samples) for audio in audios]
    if len(audios) == 1:  # no padding: the clip itself, without a copy or a mask (long recordings)
        batch, mask = torch.from_numpy(audios[0].samples)[None], None
    else:
        batch = torch.zeros((len(audios), max(lengths)), dtype=torch.float32)
        mask = torch.zeros_like(batch, dtype=torch.int32)
        for row, audio in enumerate(audios):
            batch[row, : lengths[row]] = torch.from_numpy(audio.samples)
            mask[row, : lengths[row]] = 1
        mask = mask.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        output = model(batch.to(device), attention_mask=mask, window_max_hop=window_max_hop)
    return output.mos.float().cpu().numpy(), window_segments(output, lengths, model.config)


def window_segments(output, lengths: list[int], config) -> list[list[Segment]]:
    """Each clip's windows as Segments (seconds of the clip, window ends clipped to the clip's length)."""
    window_mos = output.window_mos.float().cpu().numpy()
    window_mask = output.window_mask.cpu().numpy()
    starts = output.window_starts.cpu().numpy()
    return [
        [window_segment(int(starts[row, k]), length, float(window_mos[row, k]), config)
         for k in np.flatnonzero(window_mask[row])]
        for row, length in enumerate(lengths)
    ]


def window_segment(start: int, length: int, mos: float, config) -> Segment:
    """The window starting at sample `start` of a clip of `length` samples, in seconds (its end clipped to
    the clip's)."""
    rate = config.sampling_rate
    return Segment(start=start / rate, end=min(start + config.window_length, length) / rate, mos=mos)


def score_stream(
    model: MOSPreTrainedModel, stream: AudioStream, result: ScoreResult, precision: str = "fp32",
    window_max_hop: int | None = None, on_segment: Callable[[ScoreResult, Segment], None] | None = None,
) -> None:
    """Score one input as a stream into `result`: a first pass over it (`stream.scan()`: its length, and
    the level some models normalise by; it keeps the decoded samples), then its blocks through
    `model.score_stream`, each window added to `result.segments` (and passed to `on_segment`) as soon as
    it is scored. Memory stays bounded whatever the input's length. Raises `AudioError` where the input
    stops decoding; the windows scored before stay in `result.segments`."""
    summary = stream.scan()
    config = model.config
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    result.duration, result.is_silent = summary.num_samples / config.sampling_rate, summary.is_silent
    with torch.inference_mode(), autocast:
        for start, value in model.score_stream(stream.blocks(), summary, window_max_hop):
            segment = window_segment(start, summary.num_samples, float(value), config)
            result.segments.append(segment)
            if on_segment is not None:
                on_segment(result, segment)
    result.mos = float(np.mean([segment.mos for segment in result.segments]))


def input_label(item, index: int) -> str:
    """How results and errors name an input: its path, else its kind and position (<bytes 3>, <array 3>)."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, dict):
        if item.get("path"):
            return str(item["path"])
        kind = "array" if "array" in item or "raw" in item else "bytes"
    else:
        kind = "bytes" if isinstance(item, (bytes, bytearray)) else "array"
    return f"<{kind} {index}>"


def iter_scores(
    inputs: Iterable[str | os.PathLike | bytes | np.ndarray | dict],
    model: MOSPreTrainedModel,
    batch_size: int = 8,
    sampling_rate: int | None = None,
    channel: int | None = None,
    num_workers: int = 2,
    precision: str = "fp32",
    window_hop: float | None = None,
    below: float | None = None,
    on_segment: Callable[[ScoreResult, Segment], None] | None = None,
    stream_seconds: float = STREAM_SECONDS,
) -> Iterator[ScoreResult]:
    """Score inputs in order, yielding one `ScoreResult` per input; a bad input yields a result with its
    `error` and scoring goes on. Inputs: paths, bytes of encoded files, arrays (at `sampling_rate`), dicts
    as `datasets` Audio columns hold ({"array", "sampling_rate"} or {"bytes", "path"}; `hf_sqa.audio`).

    Inputs up to `stream_seconds` long are decoded whole (ahead of the model, in `num_workers` threads)
    and scored `batch_size` at a time; longer ones are scored one at a time as streams (`score_stream`:
    decoded block by block once, into a temporary file that the model's pass reads back; memory bounded
    whatever their length). Both give the same scores.

    precision: "fp32" (exact), or "bf16" to run the model's heavy layers in bfloat16 (on CPUs with AMX or
    AVX512-BF16 and on GPUs: several times faster, scores move by about 1e-3; see README, Speed).
    window_hop: seconds between window starts at most (default: the model's own rule; larger hops score
    long audio with fewer windows). below: a MOS threshold; each result then has `share_below`.
    on_segment(result, segment): called for every window as soon as it is scored (a long input's windows
    while it is being scored), before its result is yielded.
    """
    window_max_hop = None if window_hop is None else window_hop_samples(window_hop, model.config)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    target_rate = model.config.sampling_rate

    def load(item, label: str) -> Audio | AudioStream:
        """A short input decoded whole, or a long one opened (its header checked). A long one is scanned
        when its turn comes (`score_stream`), not ahead: its scan keeps the decoded samples in a temporary
        file until it is scored, so scanning ahead would hold one such file per input in the queue."""
        encoded = isinstance(item, (str, os.PathLike, bytes, bytearray))  # files carry their own rate
        stream = AudioStream(item, sampling_rate=None if encoded else sampling_rate, channel=channel,
                             target_sampling_rate=target_rate, name=label)
        if stream.declared_duration <= stream_seconds:
            with stream:
                return stream.read()
        return stream

    def finish(result: ScoreResult) -> ScoreResult:
        if result.error is None:
            result.lowest_mos, result.p10_mos, result.share_below = summarize_windows(result.segments, below)
        return result

    prefetch = max(2 * batch_size, 4)
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        queue: list[tuple[int, str, Future]] = []
        pending: list[tuple[ScoreResult, Audio | None]] = []
        source_iter = enumerate(inputs)
        exhausted = False

        def refill():
            nonlocal exhausted
            while not exhausted and len(queue) < prefetch:
                try:
                    index, item = next(source_iter)
                except StopIteration:
                    exhausted = True
                    return
                label = input_label(item, index)
                queue.append((index, label, pool.submit(load, item, label)))

        def flush():
            audios = [audio for _, audio in pending if audio is not None]
            if audios:
                mos, segments = score_batch(model, audios, precision, window_max_hop)
                scored = iter(zip(mos, segments))
                for result, audio in pending:
                    if audio is not None:
                        value, result.segments = next(scored)
                        result.mos = float(value)
                        for segment in result.segments if on_segment is not None else ():
                            on_segment(result, segment)
            results = [finish(result) for result, _ in pending]
            pending.clear()
            return results

        refill()
        while queue:
            index, label, future = queue.pop(0)
            refill()
            try:
                loaded = future.result()
            except AudioError as error:
                loaded, result = None, ScoreResult(index, label, error=error.reason)
            except Exception as error:  # a batch job reports what it could not read and goes on
                loaded, result = None, ScoreResult(index, label, error=f"{type(error).__name__}: {error}")
            if isinstance(loaded, AudioStream):  # long: alone, after the batch before it (results stay in order)
                yield from flush()
                result = ScoreResult(index, label)
                try:
                    score_stream(model, loaded, result, precision, window_max_hop, on_segment)
                except AudioError as error:  # stopped decoding part way: the windows before it stay
                    result.error, result.mos = error.reason, float("nan")
                except Exception as error:
                    result.error, result.mos = f"{type(error).__name__}: {error}", float("nan")
                finally:
                    loaded.close()
                yield finish(result)
                continue
            if loaded is not None:
                result = ScoreResult(index, label, is_silent=loaded.is_silent, duration=loaded.duration)
            pending.append((result, loaded))
            if sum(a is not None for _, a in pending) >= batch_size:
                yield from flush()
        yield from flush()


def score(
    inputs,
    model: MOSPreTrainedModel | str | os.PathLike | None = None,
    sampling_rate: int | None = None,
    batch_size: int = 8,
    channel: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    window_hop: float | None = None,
) -> np.ndarray:
    """MOS (float32 array, one per input) for one input (path, bytes, array, dict) or a list of them.

    model: an hf_sqa model, or a name / folder / Hub id for `load_model` (default "distillmos").
    window_hop: seconds between window starts at most (default: the model's own rule).
    Raises `AudioError` for the first input that cannot be scored; use `iter_scores` to go on past them.
    """
    single = isinstance(inputs, (str, os.PathLike, bytes, bytearray, dict)) or getattr(inputs, "ndim", 0) == 1
    items = [inputs] if single else list(inputs)
    if not isinstance(model, MOSPreTrainedModel):
        model = load_model(model or DEFAULT_MODEL, device=device)
    elif device is not None:
        model.to(device)
    values = np.empty(len(items), dtype=np.float32)
    for result in iter_scores(items, model, batch_size=batch_size, sampling_rate=sampling_rate, channel=channel,
                              precision=precision, window_hop=window_hop):
        if result.error is not None:
            raise AudioError(result.source, result.error)
        values[result.index] = result.mos
    return values


DATASET_MAP_ROWS = 64  # rows per `map` batch of score_dataset (decoded ahead, then scored batch_size at a time)


def score_dataset(
    dataset,
    model: MOSPreTrainedModel | str | os.PathLike | None = None,
    audio_column: str = "audio",
    batch_size: int = 8,
    num_proc: int | None = None,
    windows: bool = False,
    output_column: str = "mos",
    sampling_rate: int | None = None,
    precision: str = "fp32",
    window_hop: float | None = None,
    device: str | torch.device | None = None,
):
    """The dataset (`datasets.Dataset`, or `IterableDataset`: scored lazily as it is iterated) with a `mos`
    column (`output_column`), and `mos_error` (`{output_column}_error`: None, or why the row could not be
    scored; its MOS is then NaN).

    audio_column:  a `datasets.Audio` column (read undecoded: bytes or path, through hf_sqa.audio, not
                   torchcodec), or dicts with "array" and "sampling_rate", paths, or arrays (at
                   `sampling_rate`). It is returned as it was.
    windows:       also `window_start` and `window_mos`, lists of each row's window starts (s) and MOS.
    num_proc:      processes for `Dataset.map` (map-style datasets only); each scores with its own copy of
                   the model, on one thread.
    """
    import datasets

    if not isinstance(model, MOSPreTrainedModel):
        model = load_model(model or DEFAULT_MODEL, device=device)
    elif device is not None:
        model.to(device)
    iterable = isinstance(dataset, datasets.IterableDataset)
    if iterable and num_proc is not None:
        raise ValueError("num_proc is for map-style datasets; an IterableDataset is scored as it is iterated")
    features = dataset.features
    error_column = f"{output_column}_error"
    if features is not None and audio_column not in features:
        raise ValueError(f"the dataset has no column {audio_column!r} (columns: {', '.join(features)})")
    taken = [name for name in (output_column, error_column) if features is not None and name in features]
    if taken:  # e.g. a MOS corpus, whose `mos` holds the human ratings
        raise ValueError(f"the dataset already has a column {taken[0]!r}; pass another output_column=")
    audio_feature = None if features is None else features[audio_column]
    decoded_audio = isinstance(audio_feature, datasets.Audio) and audio_feature.decode
    if decoded_audio:  # bytes / paths in, decoded here
        dataset = dataset.cast_column(audio_column, datasets.Audio(sampling_rate=audio_feature.sampling_rate,
                                                                   decode=False))

    parent = os.getpid()

    def score_rows(batch: dict) -> dict:
        if os.getpid() != parent:  # a forked map worker: torch's OpenMP pool does not survive fork (a parallel
            torch.set_num_threads(1)  # region would hang); one thread each, as DataLoader workers do
        results = list(iter_scores(batch[audio_column], model, batch_size=batch_size, sampling_rate=sampling_rate,
                                   precision=precision, window_hop=window_hop))
        out = {output_column: [r.mos for r in results], error_column: [r.error for r in results]}
        if windows:
            out["window_start"] = [[s.start for s in r.segments] for r in results]
            out["window_mos"] = [[s.mos for s in r.segments] for r in results]
        return out

    new_features = None
    if features is not None:  # typed up front: a first batch without errors must not fix `mos_error` as null
        new_features = dataset.features.copy()
        new_features[output_column] = datasets.Value("float32")
        new_features[error_column] = datasets.Value("string")
        if windows:
            new_features["window_start"] = datasets.List(datasets.Value("float32"))
            new_features["window_mos"] = datasets.List(datasets.Value("float32"))
    kwargs = {} if iterable else {"num_proc": num_proc, "desc": "scoring"}
    scored = dataset.map(score_rows, batched=True, batch_size=DATASET_MAP_ROWS, features=new_features, **kwargs)
    if decoded_audio:
        scored = scored.cast_column(audio_column, audio_feature)
    return scored
