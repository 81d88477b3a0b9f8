"""SPEC: how every hf_sqa command and script names data, and the one resolver that loads it.

A SPEC is a string:

    path/to/mos_folder            labels.csv (path,mos[,condition,corpus,id,...]) + audio, paths relative
    path/to/audio_folder          audio files found recursively, no labels
    path/to/parquet_folder        *.parquet shards written by hf_sqa (id, audio bytes, ...)
    path/to/saved_dataset[@split] a `datasets` dataset written with save_to_disk (split of a DatasetDict)
    owner/name[:config][@split]   a Hub dataset (default split "train")

followed by optional ``#key=value,...`` options: ``weight=`` (mixing weight in `resolve_many`),
``corpus=`` (corpus name; default the folder or dataset name), and column names for Hub / parquet /
saved datasets: ``audio=``, ``mos=``, ``id=``, ``condition=``. Example:
``someone/mos-corpus:clean@test#mos=MOS,audio=wav,weight=0.2``.

Every SPEC resolves to a `datasets.Dataset` (or `IterableDataset` with ``streaming=True``) whose rows
have the uniform fields ``id`` (str), ``audio`` (16 kHz mono float32), ``mos`` (float, None when
unlabelled), ``corpus`` (str) and ``condition`` (str or None); other columns of parquet, saved and Hub
datasets (e.g. ``teacher_mos``) pass through. Audio is decoded lazily by `hf_sqa.audio.load_audio`
(soundfile + soxr, never torchcodec).

Bad rows of a MOS folder (missing or unreadable audio, MOS that is not a number in [1, 5]) are found when
the SPEC is resolved and reported with their labels.csv line: refused (``on_error="raise"``, an error
listing them) or skipped (``on_error="skip"``, the default, a warning listing them and `report` entries).
Audio that fails to decode later (inside parquet or Hub data) raises an `AudioError` naming the row id.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from datasets import (
    Audio,
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    List,
    Value,
    interleave_datasets,
    load_dataset,
    load_from_disk,
)
from datasets.distributed import split_dataset_by_node

from ..audio import find_audio_files, load_audio

logger = logging.getLogger(__name__)

# Encoded audio as a plain struct: the Arrow storage of datasets' Audio feature, but building an Audio
# column from Python objects needs torchcodec, which hf_sqa does not use
ENCODED_AUDIO = {"bytes": Value("binary"), "path": Value("string")}
RAW_FEATURES = Features(
    {
        "id": Value("string"),
        "audio": ENCODED_AUDIO,
        "mos": Value("float32"),
        "corpus": Value("string"),
        "condition": Value("string"),
    }
)
MOS_RANGE = (1.0, 5.0)
_OPTION_KEYS = {"weight", "corpus", "audio", "mos", "id", "condition"}
_HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+)?(@[\w.\[\]:%+-]+)?$")


class SpecError(ValueError):
    """A SPEC that cannot be resolved, or data in it that is refused."""


@dataclass
class BadRow:
    """One row of a source that was skipped or refused, and why."""

    spec: str
    row: str  # e.g. "labels.csv line 7"
    reason: str


@dataclass
class Spec:
    text: str
    kind: str  # mos_folder | audio_folder | parquet | saved | hub
    location: str
    config: str | None = None
    split: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def weight(self) -> float:
        return float(self.options.get("weight", 1.0))

    @property
    def corpus(self) -> str:
        return self.options.get("corpus") or Path(self.location.rstrip("/")).name


def parse_spec(text: str) -> Spec:
    """Split a SPEC string into its kind, location and options (see the module docstring)."""
    body, _, option_text = str(text).partition("#")
    options = {}
    for item in filter(None, (part.strip() for part in option_text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in _OPTION_KEYS:
            raise SpecError(f"{text}: bad option {item!r}; options are key=value with keys {sorted(_OPTION_KEYS)}")
        options[key] = value
    if "weight" in options:
        try:
            weight = float(options["weight"])
        except ValueError:
            raise SpecError(f"{text}: weight {options['weight']!r} is not a number") from None
        if not weight > 0:
            raise SpecError(f"{text}: weight must be positive, got {weight}")
    path, split = Path(body), None
    if "@" in body and Path(body.rpartition("@")[0]).is_dir():  # a saved DatasetDict's split
        path, split = Path(body.rpartition("@")[0]), body.rpartition("@")[2]
    if path.is_dir():
        if (path / "labels.csv").is_file():
            kind = "mos_folder"
        elif (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            kind = "saved"
        elif any(path.glob("*.parquet")):
            kind = "parquet"
        else:
            kind = "audio_folder"
        if split and kind != "saved":
            raise SpecError(f"{text}: only saved datasets have splits (@{split})")
        return Spec(text=str(text), kind=kind, location=str(path), split=split, options=options)
    if path.exists():
        raise SpecError(f"{text}: a SPEC is a folder or a Hub dataset id, not a file")
    if not _HUB_NAME.match(body):
        raise SpecError(f"{text}: no such folder, and not a Hub dataset id (owner/name[:config][@split])")
    name, _, split = body.partition("@")
    name, _, config = name.partition(":")
    return Spec(text=str(text), kind="hub", location=name, config=config or None, split=split or "train",
                options=options)


# --- raw sources: rows with the audio still encoded (Audio(decode=False): {"bytes", "path"}) ---------

def _mos_folder_rows(spec: Spec, on_error: str, report: list[BadRow]) -> list[dict]:
    folder = Path(spec.location)
    labels = folder / "labels.csv"
    with open(labels, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "mos"} - set(reader.fieldnames or [])
        if missing:
            raise SpecError(f"{labels}: missing column(s) {sorted(missing)}; the header is {reader.fieldnames}")
        rows, bad = [], []
        for line, record in enumerate(reader, start=2):  # line 1 is the header
            where = f"{labels.name} line {line}"
            reason = _check_labelled_row(folder, record)
            if reason:
                bad.append(BadRow(spec.text, where, f"{record.get('path')!r}: {reason}"))
                continue
            rows.append(
                {
                    "id": record.get("id") or f"{spec.corpus}/{record['path']}",
                    "audio": {"bytes": None, "path": str((folder / record["path"]).resolve())},
                    "mos": float(record["mos"]),
                    "corpus": record.get("corpus") or spec.corpus,
                    "condition": record.get("condition") or None,
                }
            )
    _handle_bad_rows(spec, bad, on_error, report)
    return rows


def _check_labelled_row(folder: Path, record: dict) -> str | None:
    try:
        mos = float(record["mos"])
    except (TypeError, ValueError):
        return f"MOS {record['mos']!r} is not a number"
    if not (MOS_RANGE[0] <= mos <= MOS_RANGE[1]) or math.isnan(mos):
        return f"MOS {mos} is outside {MOS_RANGE[0]:g}..{MOS_RANGE[1]:g} (map the corpus scale to 1-5 first)"
    if not record.get("path"):
        return "empty path"
    audio = folder / record["path"]
    if not audio.is_file():
        return "audio file does not exist"
    try:
        sf.info(str(audio))
    except Exception as error:  # soundfile raises several types for unreadable files
        return f"unreadable audio ({str(error).strip()})"
    return None


def _handle_bad_rows(spec: Spec, bad: list[BadRow], on_error: str, report: list[BadRow]) -> None:
    if not bad:
        return
    listing = "\n".join(f"  {b.row}: {b.reason}" for b in bad[:50])
    more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
    if on_error == "raise":
        raise SpecError(f"{spec.text}: {len(bad)} bad row(s):\n{listing}{more}")
    logger.warning("%s: skipping %d bad row(s):\n%s%s", spec.text, len(bad), listing, more)
    report.extend(bad)


def _audio_folder_rows(spec: Spec) -> list[dict]:
    folder = Path(spec.location)
    files = find_audio_files(folder, recursive=True)
    if not files:
        raise SpecError(f"{spec.text}: no audio files in this folder")
    return [
        {
            "id": f"{spec.corpus}/{path.relative_to(folder).as_posix()}",
            "audio": {"bytes": None, "path": str(path.resolve())},
            "mos": None,
            "corpus": spec.corpus,
            "condition": None,
        }
        for path in files
    ]


def _load_table(spec: Spec, streaming: bool):
    """Parquet, saved and Hub sources as a datasets object with their own columns."""
    if spec.kind == "parquet":
        files = sorted(str(p) for p in Path(spec.location).glob("*.parquet"))
        return load_dataset("parquet", data_files=files, split="train", streaming=streaming)
    if spec.kind == "saved":
        data = load_from_disk(spec.location)
        if isinstance(data, DatasetDict):
            split = spec.split or "train"
            if split not in data:
                raise SpecError(f"{spec.text}: saved dataset has splits {list(data)}, not {split!r}")
            data = data[split]
        return data.to_iterable_dataset() if streaming else data
    return load_dataset(spec.location, spec.config, split=spec.split, streaming=streaming)


def _standardize_table(spec: Spec, table):
    """Rename mapped columns to the uniform names and fill the ones a source does not have."""
    columns = list(table.features)
    mapping = {spec.options.get(key, key): key for key in ("audio", "mos", "id", "condition")}
    if mapping.keys() - {"mos", "id", "condition"} - set(columns):
        raise SpecError(f"{spec.text}: no audio column {spec.options.get('audio', 'audio')!r}; columns are {columns}")
    renames = {source: target for source, target in mapping.items() if source in columns and source != target}
    for source, target in renames.items():
        if target in columns:
            table = table.remove_columns(target)
        table = table.rename_column(source, target)
    audio_feature = table.features["audio"] if table.features else None
    if isinstance(audio_feature, Audio):
        # Audio(decode=False) first: casting never decodes, so torchcodec is not needed
        table = table.cast_column("audio", Audio(decode=False)).cast_column("audio", ENCODED_AUDIO)
    elif audio_feature == Value("string"):
        table = table.map(lambda example: {"audio": {"bytes": None, "path": example["audio"]}},
                          features=Features({**table.features, "audio": ENCODED_AUDIO}))
    columns = list(table.features)
    corpus = spec.corpus

    def fill(example, index):
        return {
            "id": str(example["id"]) if "id" in columns and example["id"] is not None else f"{corpus}/{index}",
            "mos": None if "mos" not in columns or example["mos"] is None else float(example["mos"]),
            "corpus": example["corpus"] if "corpus" in columns and example["corpus"] else corpus,
            "condition": example.get("condition") if "condition" in columns else None,
        }

    features = Features({**table.features, **{k: RAW_FEATURES[k] for k in ("id", "mos", "corpus", "condition")}})
    return table.map(fill, with_indices=True, features=features)


# --- decoding: the uniform rows ------------------------------------------------------------------------

def _decode(audio_source: dict, row_id: str):
    source = audio_source.get("bytes") or audio_source.get("path")
    return load_audio(source, name=f"row {row_id}").samples


def _decode_batch(batch: dict) -> dict:
    batch = dict(batch)
    batch["audio"] = [_decode(audio, row_id) for audio, row_id in zip(batch["audio"], batch["id"])]
    return batch


def _decode_example(example: dict) -> dict:
    return {"audio": _decode(example["audio"], example["id"])}


def resolve(
    spec: str | Spec, streaming: bool = False, on_error: str = "skip", report: list[BadRow] | None = None
) -> Dataset | IterableDataset:
    """One SPEC -> a dataset with the uniform fields (module docstring). Audio decodes lazily on access
    (Dataset: via `with_transform`; IterableDataset: via `map`)."""
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    spec = spec if isinstance(spec, Spec) else parse_spec(spec)
    report = report if report is not None else []
    if spec.kind in ("mos_folder", "audio_folder"):
        rows = _mos_folder_rows(spec, on_error, report) if spec.kind == "mos_folder" else _audio_folder_rows(spec)
        if not rows:
            raise SpecError(f"{spec.text}: no usable rows")
        if streaming:
            # contiguous slices as generator shards, so DataLoader workers and nodes can split the work
            count = _num_shards(len(rows))
            bounds = [len(rows) * k // count for k in range(count + 1)]
            shards = [rows[a:b] for a, b in zip(bounds, bounds[1:])]
            table = IterableDataset.from_generator(_yield_rows, features=RAW_FEATURES, gen_kwargs={"shards": shards})
        else:
            table = Dataset.from_list(rows, features=RAW_FEATURES)
    else:
        table = _standardize_table(spec, _load_table(spec, streaming))
    if streaming:
        return table.map(_decode_example, features=Features({**table.features, "audio": List(Value("float32"))}))
    return table.with_transform(_decode_batch)


def _num_shards(num_rows: int) -> int:
    return max(1, min(64, num_rows))


def _yield_rows(shards):
    for shard in shards:
        yield from shard


def resolve_many(
    specs: list[str | Spec],
    streaming: bool = True,
    seed: int = 0,
    stopping_strategy: str = "all_exhausted",
    on_error: str = "skip",
    report: list[BadRow] | None = None,
):
    """Several SPECs mixed with `interleave_datasets`, sampled in proportion to their ``weight=`` options.
    Columns other than the uniform fields are dropped unless every source has them."""
    parsed = [s if isinstance(s, Spec) else parse_spec(s) for s in specs]
    if not parsed:
        raise SpecError("no SPEC given")
    datasets_ = [resolve(s, streaming=streaming, on_error=on_error, report=report) for s in parsed]
    if len(datasets_) == 1:
        return datasets_[0]
    if not streaming:
        # map-style datasets carry their decoding as a transform; interleave the raw rows, decode after
        raws = [d.with_format(None) for d in datasets_]
        shared = set.intersection(*(set(d.column_names) for d in raws))
        raws = [d.select_columns([c for c in d.column_names if c in shared]) for d in raws]
        total = sum(s.weight for s in parsed)
        mixed = interleave_datasets(raws, probabilities=[s.weight / total for s in parsed], seed=seed,
                                    stopping_strategy=stopping_strategy)
        return mixed.with_transform(_decode_batch)
    shared = set.intersection(*(set(d.features) for d in datasets_))
    datasets_ = [d.select_columns([c for c in d.features if c in shared]) for d in datasets_]
    total = sum(s.weight for s in parsed)
    return interleave_datasets(datasets_, probabilities=[s.weight / total for s in parsed], seed=seed,
                               stopping_strategy=stopping_strategy)


def shard_for_node(dataset, rank: int, world_size: int):
    """The part of a dataset one distributed process reads (`datasets.distributed.split_dataset_by_node`)."""
    return split_dataset_by_node(dataset, rank=rank, world_size=world_size)
