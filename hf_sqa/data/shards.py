"""Parquet shards written by hf_sqa: encoded audio, atomic writes, names that say which shard is which.

A shard is written to a temporary file and renamed into place, so a killed job never leaves a partial
shard: a shard file that exists is complete, which is what makes jobs resumable shard by shard.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
from datasets import Audio, Dataset, Features

from .specs import ENCODED_AUDIO


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.parquet"


def encode_flac(samples: np.ndarray, sampling_rate: int = 16000) -> bytes:
    """16-bit FLAC bytes of a float waveform (clipped to [-1, 1], as any 16-bit file would be)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sampling_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def write_shard(columns: dict[str, list], features: Features, path: str | os.PathLike) -> Path:
    """Write one shard atomically. `columns["audio"]` holds {"bytes", "path"} dicts; the file's audio
    column is typed datasets.Audio (decode=False), so the Hub and load_dataset show it as audio."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = Dataset.from_dict(columns, features=Features({**features, "audio": ENCODED_AUDIO}))
    table = table.cast_column("audio", Audio(decode=False))
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    table.to_parquet(str(partial))
    os.replace(partial, path)
    return path


def check_manifest(output: Path, manifest: dict, refusal: str) -> None:
    """Record a job's arguments in output/manifest.json, or refuse to resume into a folder written with
    other arguments (`refusal` says what the folder holds). Written atomically, so concurrent processes of
    one run agree."""
    path = output / "manifest.json"
    manifest = json.loads(json.dumps(manifest))  # as it reads back (tuples become lists)
    if path.is_file():
        if json.loads(path.read_text()) != manifest:
            raise ValueError(f"{output} holds {refusal} (see {path}); use another output folder")
        return
    partial = path.with_name(f".manifest.{os.getpid()}.partial")
    partial.write_text(json.dumps(manifest, indent=1))
    os.replace(partial, path)
