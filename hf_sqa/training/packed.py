"""Labelled clips packed for training: audio in one int16 array (memory-mapped), labels beside it.

Training reads a clip as a slice of a memory map: no per-step decoding, no Python lists of floats, and
worker processes share the pages. A packed set is a folder:

    audio.npy          (total samples,) int16, every clip back to back (16 kHz)
    index.npz          offsets (clips + 1,), teacher_mos (clips,), window_offsets (clips + 1,),
                       teacher_window_mos (total windows,) float32, ids (clips,)

`pack_labelled` writes it from `hf-sqa pseudo-label` shards (decoding in worker processes), atomically: the
folder exists only complete.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..audio import from_pcm16, load_audio, to_pcm16


def _decode(item: tuple[str, bytes]) -> np.ndarray:
    name, data = item
    return to_pcm16(load_audio(data, name=name, target_sampling_rate=16000, min_duration=0.0).samples)


def pack_labelled(spec: str, output: str | os.PathLike, num_proc: int = 2) -> Path:
    """Decode a pseudo-labelled SPEC (rows with `teacher_mos`, `teacher_window_mos`) into a packed set.
    Rows the teacher could not score are left out. Returns the folder; does nothing when it exists."""
    from ..data.specs import resolve

    output = Path(output)
    if (output / "index.npz").is_file():
        return output
    rows = resolve(spec).with_format(None)
    keep = [i for i, mos in enumerate(rows["teacher_mos"]) if mos is not None]
    if not keep:
        raise ValueError(f"{spec}: no rows with a teacher score")
    rows = rows.select(keep)
    ids, teacher = list(rows["id"]), np.asarray(rows["teacher_mos"], dtype=np.float32)
    windows = [np.asarray(w, dtype=np.float32) for w in rows["teacher_window_mos"]]
    items = [(f"row {i}", a["bytes"]) for i, a in zip(ids, rows["audio"])]
    with ProcessPoolExecutor(num_proc) as pool:
        clips = list(pool.map(_decode, items, chunksize=32))
    return _write_packed(output, clips, teacher, windows, np.asarray(ids))


def pack_subset(folders: str | os.PathLike | list, rows, output: str | os.PathLike) -> Path:
    """A packed set of clips `rows` (indices into `PackedClips(folders)`, in that order) of one or more packed
    sets, e.g. a training set without some speakers. Returns the folder; does nothing when it exists."""
    output = Path(output)
    if (output / "index.npz").is_file():
        return output
    source = PackedClips(folders)
    rows = np.asarray(rows, dtype=np.int64)
    clips = [source.audio_parts[source.part_of[k]][source.starts[k] : source.ends[k]] for k in rows]
    windows = [source.teacher_window_mos[source.window_offsets[k] : source.window_offsets[k + 1]] for k in rows]
    return _write_packed(output, clips, source.teacher_mos[rows], windows, source.ids[rows])


def _write_packed(output: Path, clips: list[np.ndarray], teacher: np.ndarray, windows: list[np.ndarray],
                  ids: np.ndarray) -> Path:
    """OUTPUT/audio.npy (every clip's int16 samples, concatenated) and OUTPUT/index.npz (clip and window
    offsets, clip and window labels, ids), written under a .partial name first and renamed (atomic)."""
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    np.save(partial / "audio.npy", np.concatenate(clips))
    np.savez(partial / "index.npz", offsets=offsets, teacher_mos=np.asarray(teacher, dtype=np.float32),
             window_offsets=np.concatenate([[0], np.cumsum([len(w) for w in windows])]).astype(np.int64),
             teacher_window_mos=np.concatenate(windows), ids=ids)
    shutil.rmtree(output, ignore_errors=True)
    partial.rename(output)
    return output


class PackedClips(torch.utils.data.Dataset):
    """One packed set, or several trained on together (a list of folders, clips in the order given), as a
    map-style dataset: {"audio" (T,) float32, "teacher_mos", "teacher_window_mos" (W,)}. `limit` keeps the
    first clips of the whole."""

    def __init__(self, folders: str | os.PathLike | list, limit: int | None = None):
        folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        if not folders:
            raise ValueError("PackedClips needs at least one packed folder")
        self.audio_parts, parts = [], []
        for number, folder in enumerate(map(Path, folders)):
            if not (folder / "index.npz").is_file():
                raise FileNotFoundError(f"{folder}: not a packed set (no index.npz; see pack_labelled)")
            parts.append(dict(np.load(folder / "index.npz")))
            self.audio_parts.append(np.load(folder / "audio.npy", mmap_mode="r"))
        # per clip: its part and its sample range there; window labels re-based onto one array
        self.part_of = np.concatenate([np.full(len(p["teacher_mos"]), n) for n, p in enumerate(parts)])
        self.starts = np.concatenate([p["offsets"][:-1] for p in parts])
        self.ends = np.concatenate([p["offsets"][1:] for p in parts])
        self.teacher_mos = np.concatenate([p["teacher_mos"] for p in parts])
        self.teacher_window_mos = np.concatenate([p["teacher_window_mos"] for p in parts])
        window_base = np.cumsum([0] + [len(p["teacher_window_mos"]) for p in parts])
        self.window_offsets = np.concatenate(
            [p["window_offsets"][:-1] + base for p, base in zip(parts, window_base)] + [window_base[-1:]])
        self.ids = np.concatenate([p["ids"] for p in parts])
        self.size = len(self.teacher_mos) if limit is None else min(limit, len(self.teacher_mos))

    def __len__(self) -> int:
        return self.size

    def seconds(self) -> float:
        return float((self.ends[: self.size] - self.starts[: self.size]).sum()) / 16000

    def clip(self, k: int) -> np.ndarray:
        audio = self.audio_parts[self.part_of[k]]
        return from_pcm16(audio[self.starts[k] : self.ends[k]])

    def __getitem__(self, k: int) -> dict:
        return {
            "audio": self.clip(k),
            "teacher_mos": float(self.teacher_mos[k]),
            "teacher_window_mos": self.teacher_window_mos[self.window_offsets[k] : self.window_offsets[k + 1]],
        }


def collate_clips(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Whole clips padded to the longest: input_values (B, T), attention_mask (B, T), and when the examples
    are labelled (packed clips; an online stream has no labels: its teacher runs in the training step)
    teacher_mos (B,) and teacher_window_mos (B, W), NaN where a clip has fewer windows. No cropping, so
    every target is the teacher's score of exactly the audio the student sees."""
    length = max(len(e["audio"]) for e in examples)
    input_values = torch.zeros(len(examples), length)
    attention_mask = torch.zeros(len(examples), length, dtype=torch.long)
    for row, example in enumerate(examples):
        clip = torch.from_numpy(np.asarray(example["audio"], dtype=np.float32))
        input_values[row, : len(clip)] = clip
        attention_mask[row, : len(clip)] = 1
    batch = {"input_values": input_values, "attention_mask": attention_mask}
    if "teacher_mos" not in examples[0]:
        return batch
    width = max(len(e["teacher_window_mos"]) for e in examples)
    windows = torch.full((len(examples), width), float("nan"))
    for row, example in enumerate(examples):
        windows[row, : len(example["teacher_window_mos"])] = torch.as_tensor(example["teacher_window_mos"])
    return {**batch, "teacher_mos": torch.tensor([float(e["teacher_mos"]) for e in examples]),
            "teacher_window_mos": windows}
