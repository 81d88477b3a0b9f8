"""Pseudo-labelling: a teacher's MOS for every example of a SPEC, written as parquet shards.

The input rows are cut into fixed units of `shard_size` rows in input order; unit u is written as
`shard-u-of-U.parquet`, atomically. A unit whose file exists is done, so a run that is killed at any
moment and started again with the same arguments computes only the missing units: every input example
ends up in the output exactly once. Units are dealt out round-robin over processes (`num_shards` /
`shard_index`, or the processes of `accelerate launch`), and the output does not depend on how many
processes wrote it.

Output rows keep the input's columns, with the audio stored as encoded bytes (file contents for
folder SPECs), plus `teacher_mos` (float), `teacher_window_mos` (list of floats, one per 7.68 s window)
and `teacher_error` (why an example could not be scored, else null; its teacher_mos is then null).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from datasets import Features, List, Value
from tqdm import tqdm

from ..audio import AudioError, load_audio
from ..scoring import score_batch, load_model
from .shards import check_manifest, shard_name, write_shard
from .specs import resolve

TEACHER_MOS = "teacher_mos"  # the column of the teacher's clip MOS (what `hf-sqa evaluate` recognises as one)
TEACHER_FEATURES = {
    TEACHER_MOS: Value("float32"),
    "teacher_window_mos": List(Value("float32")),
    "teacher_error": Value("string"),
}


def _process_slot(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    if num_shards is not None:
        index = 0 if shard_index is None else shard_index
        if not 0 <= index < num_shards:
            raise ValueError(f"shard_index {index} is outside 0..{num_shards - 1}")
        return num_shards, index
    from accelerate import PartialState

    # without cpu=True, PartialState ignores a CPU-only multi-process launch (it reports one process)
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.num_processes, state.process_index


def _encoded(audio: dict) -> dict:
    """The row's audio as bytes: kept when already encoded, else the file's bytes (not re-encoded)."""
    if audio.get("bytes"):
        return {"bytes": audio["bytes"], "path": None}
    path = audio.get("path")
    data = Path(path).read_bytes() if path and Path(path).is_file() else b""
    return {"bytes": data, "path": None}


def pseudo_label(
    teacher: str,
    data: str,
    output: str | os.PathLike,
    batch_size: int = 8,
    shard_size: int = 500,
    num_shards: int | None = None,
    shard_index: int | None = None,
    device: str | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> list[Path]:
    """Label `data` (a SPEC) with `teacher` (built-in name, folder or Hub id) into `output`; returns the
    shard paths this process wrote or found done."""
    rows = resolve(data)
    raw = rows.with_format(None)  # encoded audio and every column, without decoding
    total = len(raw)
    units = (total + shard_size - 1) // shard_size
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    check_manifest(output, {"teacher": str(teacher), "data": str(data), "rows": total, "shard_size": shard_size},
                   "pseudo-labels of a different run")
    count, index = _process_slot(num_shards, shard_index)
    mine = [u for u in range(units) if u % count == index]
    todo = [u for u in mine if not (output / shard_name(u, units)).is_file()]
    if not todo:
        return [output / shard_name(u, units) for u in mine]

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(teacher, device=device)
    columns = list(raw.column_names)
    features = Features({**{c: raw.features[c] for c in columns if c != "audio"}, **TEACHER_FEATURES})
    bar = tqdm(total=sum(min(total, (u + 1) * shard_size) - u * shard_size for u in todo), unit="clip",
               desc=f"pseudo-labelling ({index + 1}/{count})", disable=not progress)
    for unit in todo:
        start, stop = unit * shard_size, min(total, (unit + 1) * shard_size)
        out = {c: [] for c in columns + list(TEACHER_FEATURES)}
        for batch_start in range(start, stop, batch_size):
            batch = [raw[k] for k in range(batch_start, min(stop, batch_start + batch_size))]
            audios, errors = [], []
            for row in batch:
                source = row["audio"].get("bytes") or row["audio"].get("path")
                try:
                    audios.append(load_audio(source, name=f"row {row['id']}",
                                             target_sampling_rate=model.config.sampling_rate))
                    errors.append(None)
                except AudioError as error:
                    audios.append(None)
                    errors.append(error.reason)
            good = [a for a in audios if a is not None]
            scored = iter(zip(*score_batch(model, good, precision))) if good else iter(())
            for row, audio, error in zip(batch, audios, errors):
                mos, segments = next(scored) if audio is not None else (None, [])
                for c in columns:
                    out[c].append(_encoded(row[c]) if c == "audio" else row[c])
                out[TEACHER_MOS].append(None if mos is None else float(mos))
                out["teacher_window_mos"].append([s.mos for s in segments])
                out["teacher_error"].append(error)
            bar.update(len(batch))
        write_shard(out, features, output / shard_name(unit, units))
    bar.close()
    return [output / shard_name(u, units) for u in mine]
