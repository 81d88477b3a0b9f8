"""Clean, many-speaker speech for student distillation, split by speaker into training and held-out sets.

Sources (all offline):

* LibriSpeech utterances (`../shared/data/librispeech_speakers`, CC BY 4.0): `train-clean-100` (251
  speakers, one utterance each) for training, `test-other` (10 other speakers) held out;
* Debian's recorded Asterisk prompts (CC-BY-SA-3.0, one professional speaker per language): some
  languages for training, one language (a speaker the training never hears) held out;
* a small share of espeak-ng utterances for training only;
* recorded words of more voices (`write_word_speech`): Debian's klettres-data and ktuberling-data (KDE's
  KLettres and KTuberling, GPL-2+; one native speaker per language, about 20 languages each), joined into
  4-8 s clips, the held-out language left out; each source is a training split of its own (likewise the
  lines of the two fish of Fish Fillets NG's Czech and Dutch dialogue, fillets-ng-data-cs / -nl, GPL-2+).
  A word source's voice is its language, or the language and a speaker.

Clips longer than `max_seconds` are cut into equal pieces no longer than that, so a training example is
never mostly one long utterance and the teacher's per-window labels stay few per clip. Output:

    OUTPUT/train/<source>/<name>.wav      16 kHz mono 16-bit
    OUTPUT/heldout/<source>/<name>.wav
    OUTPUT/<word source>/<word source>-<voice>/<index>-0.wav   (write_word_speech)
    OUTPUT/speakers.csv                   path,split,source,speaker,duration_s
    OUTPUT/left_out.txt                   clips left out (shorter than min_seconds, undecodable)

Both folders are audio-folder SPECs. Every file is written atomically and existing files are kept, so
the stage resumes after a kill and a rerun is cheap.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..audio import AudioError, load_audio
from .synth import asterisk_prompt_files, decode_g722, random_espeak_speech

SAMPLING_RATE = 16000


@dataclass(frozen=True)
class SpeechSplit:
    """Which sources go where. Defaults: the issue's held-out set (LibriSpeech test-other + Russian)."""

    librispeech_root: str | None = "../shared/data/librispeech_speakers"
    librispeech_train_subset: str = "train-clean-100"
    librispeech_heldout_subset: str = "test-other"
    asterisk_train: tuple[str, ...] = ("en", "es", "fr", "it")
    asterisk_heldout: tuple[str, ...] = ("ru",)
    espeak_train: int = 150
    max_seconds: float = 10.0
    min_seconds: float = 1.0
    seed: int = 0


def cut_pieces(samples: np.ndarray, max_samples: int) -> list[np.ndarray]:
    """Equal consecutive pieces of at most `max_samples` (one piece when the clip is short enough)."""
    count = max(1, math.ceil(len(samples) / max_samples))
    bounds = np.linspace(0, len(samples), count + 1).astype(int)
    return [samples[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _write_atomic(path: Path, samples: np.ndarray, scratch: Path) -> None:
    """Write then rename; the partial file lives outside the SPEC folders so a kill leaves no stray audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    partial = scratch / f"{os.getpid()}.wav"
    sf.write(partial, samples, SAMPLING_RATE, subtype="PCM_16")
    os.replace(partial, path)


def _librispeech(root: Path, subset: str) -> list[tuple[Path, str]]:
    with open(root / "speakers.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["subset"] == subset]
    if not rows:
        raise FileNotFoundError(f"{root / 'speakers.csv'}: no utterances of subset {subset!r}")
    return [(root / row["path"], row["speaker"]) for row in rows]


def write_student_speech(output: str | os.PathLike, split: SpeechSplit = SpeechSplit()) -> dict[str, int]:
    """Fill OUTPUT/train and OUTPUT/heldout (see module doc); returns clips per split. Clips that cannot be
    decoded are left out with a warning naming them."""
    output = Path(output)
    max_samples = int(split.max_seconds * SAMPLING_RATE)
    min_samples = int(split.min_seconds * SAMPLING_RATE)
    rows: list[dict] = []
    skipped: list[str] = []

    # clips left out before (too short, undecodable), so a rerun does not decode them again
    left_out_file = output / "left_out.txt"
    left_out = set(left_out_file.read_text().splitlines()) if left_out_file.is_file() else set()

    def leave_out(key: str) -> None:
        with open(left_out_file, "a") as handle:
            handle.write(key + "\n")

    def add(part: str, source: str, name: str, speaker: str, load) -> None:
        """Write the pieces of one clip (decoded only when a piece is missing)."""
        first = output / part / source / f"{name}-0.wav"
        key = f"{part}/{source}/{name}"
        if key in left_out:
            return
        if first.is_file():  # done before: list what is there
            # exactly NAME-<k>.wav: another clip's name may start with this one's
            pieces = [p for p in first.parent.glob(f"{name}-*.wav") if p.stem[len(name) + 1:].isdigit()]
            pieces.sort(key=lambda p: int(p.stem[len(name) + 1:]))
            durations = [sf.info(p).duration for p in pieces]
        else:
            try:
                samples = load()
            except AudioError as error:  # e.g. an empty prompt file in a package: skipped, reported
                skipped.append(f"{source}/{name}: {error.reason}")
                leave_out(key)
                return
            if len(samples) < min_samples:
                leave_out(key)
                return
            pieces, durations = [], []
            # the first piece is written last: its presence marks the clip complete
            chunks = cut_pieces(samples, max_samples)
            for index in list(range(1, len(chunks))) + [0]:
                path = output / part / source / f"{name}-{index}.wav"
                _write_atomic(path, chunks[index], output / "_partial")
            pieces = [output / part / source / f"{name}-{i}.wav" for i in range(len(chunks))]
            durations = [len(c) / SAMPLING_RATE for c in chunks]
        for path, seconds in zip(pieces, durations):
            rows.append({"path": str(path.relative_to(output)), "split": part, "source": source,
                         "speaker": speaker, "duration_s": round(seconds, 3)})

    if split.librispeech_root:
        root = Path(split.librispeech_root)
        for part, subset in (("train", split.librispeech_train_subset), ("heldout", split.librispeech_heldout_subset)):
            for path, speaker in _librispeech(root, subset):
                add(part, f"librispeech-{subset}", path.stem, f"librispeech-{speaker}",
                    lambda path=path: load_audio(path, min_duration=0.0).samples)
    for part, languages in (("train", split.asterisk_train), ("heldout", split.asterisk_heldout)):
        for language in languages:
            prompts = asterisk_prompt_files(language)
            root = Path(os.path.commonpath(prompts)) if len(prompts) > 1 else prompts[0].parent
            for prompt in prompts:
                # named by the path below the package's sound folder: digits/1 and 1 are different prompts
                name = "_".join(prompt.relative_to(root).with_suffix("").parts)
                add(part, f"asterisk-{language}", name, f"asterisk-{language}",
                    lambda prompt=prompt: decode_g722(prompt))
    for index in range(split.espeak_train):
        add("train", "espeak", f"{split.seed}-{index:05d}", "espeak",
            lambda index=index: random_espeak_speech(split.seed * 1_000_003 + index)[0])

    speakers = {"train": set(), "heldout": set()}
    for row in rows:
        speakers[row["split"]].add(row["speaker"])
    shared = speakers["train"] & speakers["heldout"]
    if shared:
        raise ValueError(f"speakers in both the training and the held-out set: {sorted(shared)}")
    partial = output / "speakers.csv.partial"
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "split", "source", "speaker", "duration_s"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, output / "speakers.csv")
    if skipped:
        warnings.warn(f"{len(skipped)} clips could not be decoded and were left out: {skipped[:5]}")
    return {part: sum(1 for r in rows if r["split"] == part) for part in ("train", "heldout")}


@dataclass(frozen=True)
class WordSource:
    """Recorded speech of Debian packages (single words, or a game's lines), joined per voice into clips of
    `clip_seconds`: 4-8 s like the training's recorded speech, or 1-3 s like the short Asterisk prompts
    (the held-out Russian prompts are short, and the training's short clips come from four Asterisk voices;
    in the vocoder stage the short ones added nothing: README, "The same words at the held-out prompts' length"),
    at most `seconds_per_voice` of clips per voice."""

    packages: tuple[str, ...]
    # a file's voice: the groups of this pattern, searched in its path, joined by "-" (files it misses are left
    # out); the first group is the language. The word packages have one speaker per language: the language alone
    voice_pattern: str
    clip_seconds: tuple[float, float] = (4.0, 8.0)
    seconds_per_voice: float = 150.0


_KLETTRES = WordSource(("klettres-data",), r"/klettres/([^/]+)/[^/]+/[^/]+$")  # <language>/<alpha|syllab>/<name>.ogg
_KTUBERLING = WordSource(("ktuberling-data",), r"/sounds/([^/]+)/[^/]+$")  # sounds/<language>/<name>.ogg|wav
WORD_SOURCES = {
    "klettres": _KLETTRES,
    "ktuberling": _KTUBERLING,
    "klettres-short": replace(_KLETTRES, clip_seconds=(1.0, 3.0)),
    "ktuberling-short": replace(_KTUBERLING, clip_seconds=(1.0, 3.0)),
    # Tux Paint's spoken stamp names (<stamp>_desc_<language>.ogg; English's minute has no suffix, left out):
    # 12 languages, 5-30 min in 8 of them, so up to 7.5 min per language (in the vocoder stage it added
    # nothing: README, "Nor do an hour of Tux Paint's voices")
    "tuxpaint": WordSource(("tuxpaint-stamps-default",), r"_desc_([a-z]{2})\.ogg$", seconds_per_voice=450.0),
    # Fish Fillets NG's acted dialogue (GPL-2+), Czech and Dutch: sound/<level>/<language>/<level>-<speaker>-
    # <line>.ogg, the two fish (speakers m and v: 34-38 min each per language) through every level; the
    # levels' other characters (short, each its own speaker code per level) left out. Sentences, not words
    # (in the vocoder stage they added nothing: README, "Nor do four acted voices of Fish Fillets")
    "fillets": WordSource(("fillets-ng-data-cs", "fillets-ng-data-nl"),
                          r"/fillets-ng/sound/[^/]+/(cs|nl)/[^/-]+-([mv])-[^/]+\.ogg$", seconds_per_voice=600.0),
}


def word_recordings(source: str) -> dict[str, list[Path]]:
    """voice -> the recordings of a `WORD_SOURCES` source, found with dpkg -L (`recordings_by_voice`)."""
    paths = []
    for package in WORD_SOURCES[source].packages:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        if listing.returncode != 0:
            raise RuntimeError(f"{package} is not installed (Debian: apt-get install --no-install-recommends {package})")
        paths += [Path(line) for line in listing.stdout.splitlines()]
    return recordings_by_voice(paths, WORD_SOURCES[source].voice_pattern)


def recordings_by_voice(paths: list[Path], voice_pattern: str) -> dict[str, list[Path]]:
    """voice -> the .ogg / .wav files of `paths` (sorted) whose path `voice_pattern` finds a voice in (its
    groups joined by "-"); a file with the bytes of one listed before it is left out (ktuberling's four
    Serbian scripts share one recording)."""
    pattern = re.compile(voice_pattern)
    files: dict[str, list[Path]] = {}
    seen = set()
    for path in sorted(path for path in paths if path.suffix in (".ogg", ".wav")):
        voice = pattern.search(path.as_posix())
        if voice is None:
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            files.setdefault("-".join(voice.groups()), []).append(path)
    return files


def trim_silence(samples: np.ndarray, floor_db: float = -35.0, frame: int = 320) -> np.ndarray:
    """The samples from the first to the last 20 ms frame within `floor_db` of the loudest frame's energy,
    with 40 ms of margin on either side."""
    count = len(samples) // frame
    if count == 0:
        return samples
    energy = 10 * np.log10((samples[: count * frame].reshape(count, frame) ** 2).mean(1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + floor_db)
    return samples[max(loud[0] - 2, 0) * frame : (loud[-1] + 3) * frame]


def join_word_clips(files: dict[str, list[Path]], output: Path, source: str, seconds_per_voice: float = 150.0,
                    seed: int = 0, clip_seconds: tuple[float, float] = (4.0, 8.0)) -> None:
    """OUTPUT/<source>-<voice>/<index>-0.wav from recordings of single words (or lines) per voice (`files`): in
    a seeded order, silence-trimmed and joined with 0.15-0.5 s pauses into clips of `clip_seconds` (uniform; a
    clip closes at the first recording that reaches it; at most 10 s; peaks above 0.99 scaled down; clips under
    1 s left out), until `seconds_per_voice` per voice."""
    rng = random.Random(seed)
    for voice, paths in sorted(files.items()):
        paths = list(paths)
        rng.shuffle(paths)
        pieces, target, written, index = [], rng.uniform(*clip_seconds), 0.0, 0
        for path in paths:
            recording, rate = sf.read(path, always_2d=True, dtype="float32")
            pieces += [trim_silence(soxr.resample(recording.mean(1), rate, SAMPLING_RATE)),
                       np.zeros(int(SAMPLING_RATE * rng.uniform(0.15, 0.5)), np.float32)]
            if sum(map(len, pieces)) / SAMPLING_RATE >= target or path == paths[-1]:
                clip = np.concatenate(pieces)[: 10 * SAMPLING_RATE]
                peak = np.abs(clip).max()
                if peak > 0.99:
                    clip = clip * 0.99 / peak
                if len(clip) >= SAMPLING_RATE:
                    target_path = output / f"{source}-{voice}" / f"{index:03d}-0.wav"
                    target_path.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(target_path, clip, SAMPLING_RATE, subtype="PCM_16")
                    index += 1
                    written += len(clip) / SAMPLING_RATE
                pieces, target = [], rng.uniform(*clip_seconds)
                if written >= seconds_per_voice:
                    break


def write_word_speech(output: str | os.PathLike, source: str, held_out_languages: tuple[str, ...]) -> Path:
    """OUTPUT/<source>: the recordings of `source` (`WORD_SOURCES`) joined into clips, voices of languages in
    `held_out_languages` left out; written whole into a partial folder and renamed, so a folder that exists
    is complete (and kept)."""
    folder = Path(output) / source
    if not folder.is_dir():
        files = {voice: paths for voice, paths in word_recordings(source).items()
                 if voice.split("-")[0] not in held_out_languages}
        partial = Path(output) / f"{source}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        join_word_clips(files, partial, source, WORD_SOURCES[source].seconds_per_voice,
                        clip_seconds=WORD_SOURCES[source].clip_seconds)
        partial.rename(folder)
    return folder
