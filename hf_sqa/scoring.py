"""Scoring API: `load_model`, `score`, and `iter_scores` (the batch engine the CLI runs on).

Decoding and resampling run ahead of the model in a thread pool (soundfile and soxr release the GIL);
each batch of clips is padded once and every window of the batch runs in one model forward.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import Audio, AudioError, load_audio
from .convert import convert_distillmos
from .models import MOSPreTrainedModel

DEFAULT_MODEL = "distillmos"
PRECISIONS = ("fp32", "bf16")


def cache_dir() -> Path:
    """Where built-in models are converted to: $HF_SQA_CACHE, else $XDG_CACHE_HOME/hf_sqa, else ~/.cache/hf_sqa."""
    if os.environ.get("HF_SQA_CACHE"):
        return Path(os.environ["HF_SQA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hf_sqa"


# built-in model names and the importer that writes each one's checkpoint into the cache
BUILTIN_MODELS = {"distillmos": convert_distillmos}
# built-in models shipped inside the package: name -> folder of the package data `hf_sqa.checkpoints`
# (hf_sqa/checkpoints links to the repository's checkpoints/)
PACKAGED_MODELS = {"fast": "hf-sqa-fast"}
# part of the cached folder's name; raised when converted checkpoints change (config fields, model code),
# so a cache written by an older hf_sqa is not reused
BUILTIN_CHECKPOINT_VERSION = 2


def builtin_model_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """The cached checkpoint of a built-in model, converting it on first use.

    Conversion writes to a temporary folder that is renamed into place, so a killed or concurrent first
    run never leaves a half-written checkpoint behind.
    """
    target = Path(cache or cache_dir()) / f"{name}-v{BUILTIN_CHECKPOINT_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        BUILTIN_MODELS[name](staging)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its checkpoint is complete
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def packaged_model_path(name: str) -> Path:
    """The folder of a model shipped as package data (no conversion, no download)."""
    from importlib.resources import files

    folder = Path(str(files("hf_sqa.checkpoints").joinpath(PACKAGED_MODELS[name])))
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"built-in model {name!r}: {folder} is missing from this installation")
    return folder


def load_model(
    name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device | None = None, **kwargs
) -> MOSPreTrainedModel:
    """An hf_sqa model in eval mode: a built-in name ("distillmos"), a local checkpoint folder or a Hub id.
    Extra keyword arguments go to `AutoModel.from_pretrained` (revision, token, dtype, ...)."""
    from transformers import AutoModel

    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        name = str(builtin_model_path(name))
    elif name in PACKAGED_MODELS:
        name = str(packaged_model_path(name))
    elif not Path(name).exists() and name.count("/") != 1:
        raise ValueError(
            f"model {name!r} is neither a built-in name ({', '.join([*BUILTIN_MODELS, *PACKAGED_MODELS])}), "
            "an existing checkpoint folder, nor a Hub id (owner/name)"
        )
    model = AutoModel.from_pretrained(name, **kwargs)
    if not isinstance(model, MOSPreTrainedModel):
        raise ValueError(f"{name_or_path} is a {type(model).__name__}, not an hf_sqa MOS model")
    model.eval()
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
    index: int
    source: str
    mos: float = float("nan")
    error: str | None = None
    is_silent: bool = False
    duration: float = float("nan")
    segments: list[Segment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def score_batch(
    model: MOSPreTrainedModel, audios: list[Audio], precision: str
) -> tuple[np.ndarray, list[list[Segment]]]:
    """MOS per clip and its windows; all windows of the batch run in one forward.

    precision "bf16" runs the model under bfloat16 autocast (the MOS head stays float32).
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
        output = model(batch.to(device), attention_mask=mask)
    return output.mos.float().cpu().numpy(), window_segments(output, lengths, model.config)


def window_segments(output, lengths: list[int], config) -> list[list[Segment]]:
    """Each clip's windows as Segments (seconds of the clip, window ends clipped to the clip's length)."""
    window_mos = output.window_mos.float().cpu().numpy()
    window_mask = output.window_mask.cpu().numpy()
    starts = output.window_starts.cpu().numpy()
    rate, window = config.sampling_rate, config.window_length
    return [
        [
            Segment(start=starts[row, k] / rate, end=min(starts[row, k] + window, length) / rate,
                    mos=float(window_mos[row, k]))
            for k in np.flatnonzero(window_mask[row])
        ]
        for row, length in enumerate(lengths)
    ]


def iter_scores(
    inputs: Iterable[str | os.PathLike | np.ndarray],
    model: MOSPreTrainedModel,
    batch_size: int = 8,
    sampling_rate: int | None = None,
    channel: int | None = None,
    num_workers: int = 2,
    precision: str = "fp32",
) -> Iterator[ScoreResult]:
    """Score inputs in order, yielding one `ScoreResult` per input; a bad input yields a result with its
    `error` and scoring goes on. Array inputs need `sampling_rate`.

    precision: "fp32" (exact), or "bf16" to run the model's heavy layers in bfloat16 (on CPUs with AMX or
    AVX512-BF16 and on GPUs: several times faster, scores move by about 1e-3; see README, Speed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    target_rate = model.config.sampling_rate

    def load(item, label: str) -> Audio:
        is_path = isinstance(item, (str, os.PathLike))
        return load_audio(
            item,
            sampling_rate=None if is_path else sampling_rate,
            channel=channel,
            target_sampling_rate=target_rate,
            name=label,
        )

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
                label = str(item) if isinstance(item, (str, os.PathLike)) else f"<array {index}>"
                queue.append((index, label, pool.submit(load, item, label)))

        def flush():
            audios = [audio for _, audio in pending if audio is not None]
            if audios:
                mos, segments = score_batch(model, audios, precision)
                scored = iter(zip(mos, segments))
                for result, audio in pending:
                    if audio is not None:
                        value, result.segments = next(scored)
                        result.mos = float(value)
            results = [result for result, _ in pending]
            pending.clear()
            return results

        refill()
        while queue:
            index, label, future = queue.pop(0)
            refill()
            try:
                audio = future.result()
                result = ScoreResult(index, label, is_silent=audio.is_silent, duration=audio.duration)
            except AudioError as error:
                audio, result = None, ScoreResult(index, label, error=error.reason)
            except Exception as error:  # a batch job reports what it could not read and goes on
                audio, result = None, ScoreResult(index, label, error=f"{type(error).__name__}: {error}")
            pending.append((result, audio))
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
) -> np.ndarray:
    """MOS (float32 array, one per input) for one path / array or a list of them.

    model: an hf_sqa model, or a name / folder / Hub id for `load_model` (default "distillmos").
    Raises `AudioError` for the first input that cannot be scored; use `iter_scores` to go on past them.
    """
    single = isinstance(inputs, (str, os.PathLike)) or (hasattr(inputs, "ndim") and inputs.ndim == 1)
    items = [inputs] if single else list(inputs)
    if not isinstance(model, MOSPreTrainedModel):
        model = load_model(model or DEFAULT_MODEL, device=device)
    elif device is not None:
        model.to(device)
    values = np.empty(len(items), dtype=np.float32)
    for result in iter_scores(items, model, batch_size=batch_size, sampling_rate=sampling_rate, channel=channel,
                              precision=precision):
        if result.error is not None:
            raise AudioError(result.source, result.error)
        values[result.index] = result.mos
    return values
