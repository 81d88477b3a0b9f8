"""More voices in the fast student's voice stage: what two more sources of speech add on held-out speakers.

`make student`'s voice stage (the refined model trained on for `voice_steps` steps on every training set)
run again with one more source in its training data, against the voice stage as `make student` ran it
(RUNS/voice/final): same start, seed, steps, batch and schedule. The sources:

* klettres: the recorded letters and syllables of Debian's klettres-data (KDE's KLettres, GPL-2+; one
  native speaker per language), silence-trimmed and joined into 4-8 s clips with short pauses: 231 clips
  (25 min) in 19 voices and languages the training never had (Russian, the held-out language, left out), at
  most 150 s per voice;
* short-crops: 1-4 s crops of the LibriSpeech training clips (one from each third of a clip, when it fits):
  597 clips of the training's 251 LibriSpeech voices at the clip length where the student's held-out error
  is largest (the held-out Asterisk prompts are short, the LibriSpeech pieces long).

Each is degraded with both catalogues (klettres also speed-perturbed, as the voice stage's own sets),
labelled by the teacher and packed by `make student`'s own stages under WORK/voice-levers/<source>
(resumable). Needs klettres-data (`apt-get install klettres-data`) and `make student`'s runs. Prints PCC /
SRCC (95 % bootstrap CIs) with the teacher on all held-out clips of both catalogues, scored with the
teacher's windows as in training, and each variant's paired difference from the voice stage as run:

    python benchmarks/voice_levers.py

One run, 2 threads; about 1 h on 2 idle cores (two voice stages of 17 min, about 15 min of data).
"""

from __future__ import annotations

import argparse
import random
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from hf_sqa.audio import load_audio
from hf_sqa.metrics import compare_with_first
from hf_sqa.scoring import load_model, score
from hf_sqa.training.packed import PackedClips
from hf_sqa.training.student_pipeline import DegradationSet, StudentPipeline

from generalisation_gap import pack_sets

SAMPLING_RATE = 16000
HELD_OUT_LANGUAGE = "ru"
SOURCES = {
    "klettres": [DegradationSet("train-kl", "train", None, 6, 41, "kl"),
                 DegradationSet("train-kl-mild", "train", "mild", 3, 43, "klmild"),
                 DegradationSet("train-kl-voice", "train", None, 3, 47, "klvoice", voice=True),
                 DegradationSet("train-kl-mild-voice", "train", "mild", 2, 53, "klmildvoice", voice=True)],
    "short-crops": [DegradationSet("train-short", "train", None, 3, 61, "short"),
                    DegradationSet("train-short-mild", "train", "mild", 1, 67, "shortmild")],
}


def trim_silence(samples: np.ndarray, floor_db: float = -35.0, frame: int = 320) -> np.ndarray:
    """The samples from the first to the last 20 ms frame within `floor_db` of the loudest frame's energy,
    with 40 ms (before) and 60 ms (after) of margin."""
    count = len(samples) // frame
    if count == 0:
        return samples
    energy = 10 * np.log10((samples[: count * frame].reshape(count, frame) ** 2).mean(1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + floor_db)
    return samples[max(loud[0] - 2, 0) * frame : (loud[-1] + 3) * frame]


def klettres_files() -> dict[str, list[Path]]:
    """language -> the .ogg recordings of klettres-data, found with dpkg -L."""
    listing = subprocess.run(["dpkg", "-L", "klettres-data"], capture_output=True, text=True)
    if listing.returncode != 0:
        raise RuntimeError("klettres-data is not installed (Debian: apt-get install klettres-data)")
    files: dict[str, list[Path]] = {}
    for path in sorted(Path(line) for line in listing.stdout.splitlines() if line.endswith(".ogg")):
        files.setdefault(path.parts[-3], []).append(path)  # .../klettres/<language>/<alpha|syllab>/<name>.ogg
    return files


def write_klettres_clips(output: Path, seconds_per_voice: float = 150.0, seed: int = 0) -> None:
    """OUTPUT/klettres-<language>/<index>-0.wav: per language, its recordings in a seeded order,
    silence-trimmed and joined with 0.15-0.5 s pauses into clips of 4-8 s (at most 10 s; peaks above 0.99
    scaled down), until `seconds_per_voice`."""
    rng = random.Random(seed)
    for language, files in sorted(klettres_files().items()):
        if language == HELD_OUT_LANGUAGE:
            continue
        rng.shuffle(files)
        pieces, target, written, index = [], rng.uniform(4, 8), 0.0, 0
        for path in files:
            recording, rate = sf.read(path, always_2d=True, dtype="float32")
            pieces += [trim_silence(soxr.resample(recording.mean(1), rate, SAMPLING_RATE)),
                       np.zeros(int(SAMPLING_RATE * rng.uniform(0.15, 0.5)), np.float32)]
            if sum(map(len, pieces)) / SAMPLING_RATE >= target or path == files[-1]:
                clip = np.concatenate(pieces)[: 10 * SAMPLING_RATE]
                peak = np.abs(clip).max()
                if peak > 0.99:
                    clip = clip * 0.99 / peak
                if len(clip) >= SAMPLING_RATE:
                    target_path = output / f"klettres-{language}" / f"{index:03d}-0.wav"
                    target_path.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(target_path, clip, SAMPLING_RATE, subtype="PCM_16")
                    index += 1
                    written += len(clip) / SAMPLING_RATE
                pieces, target = [], rng.uniform(4, 8)
                if written >= seconds_per_voice:
                    break


def write_short_crops(clean_train: Path, output: Path, seed: int = 0) -> None:
    """OUTPUT/librispeech-short/<clip>-<k>.wav: from every LibriSpeech training clip one crop of 1-4 s
    (seeded length and start) in each third of it, where the third is long enough."""
    rng = random.Random(seed)
    for path in sorted((clean_train / "librispeech-train-clean-100").glob("*.wav")):
        samples = load_audio(path, min_duration=0.0).samples
        third = len(samples) // 3
        for k in range(3):
            length = int(rng.uniform(1.0, 4.0) * SAMPLING_RATE)
            if third < length:
                continue
            start = k * third + rng.randrange(third - length + 1)
            crop_path = output / "librispeech-short" / f"{path.stem}-{k}.wav"
            crop_path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(crop_path, samples[start : start + length], SAMPLING_RATE, subtype="PCM_16")


def lever_data(source: str, work: Path) -> list[Path]:
    """The source's clean clips (written once: a folder that exists is kept), degraded, labelled and packed
    under WORK/voice-levers/<source>; returns the packed folders."""
    root = work / "voice-levers" / source
    clean_train = root / "clean" / "train"
    if not clean_train.is_dir():
        partial = root / "clean" / "train.partial"
        if source == "klettres":
            write_klettres_clips(partial)
        else:
            write_short_crops(work / "clean" / "train", partial)
        partial.rename(clean_train)
    return pack_sets(SOURCES[source], root, root / "clean")


def agreement_line(metrics: dict, differences: dict) -> str:
    """PCC / SRCC with their CIs and the paired differences from the first model (`compare_with_first`'s
    pair): one line of this benchmark's (and conv_widths.py's) table."""
    line = "".join(f"  {statistic.upper()} {metrics[statistic]:.4f} ({metrics[f'{statistic}_ci_low']:.3f}-"
                   f"{metrics[f'{statistic}_ci_high']:.3f})" for statistic in ("pcc", "srcc"))
    for statistic, (difference, low, high) in differences.items():
        line += f"  d{statistic.upper()} {difference:+.4f} ({low:+.3f}, {high:+.3f})"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/student", help="make student's WORK folder")
    parser.add_argument("--runs", default="runs/student", help="make student's RUNS folder")
    parser.add_argument("--output", default="runs/voice-levers", help="the variants' runs")
    args = parser.parse_args()
    torch.set_num_threads(2)

    pipeline = StudentPipeline(work=args.work, runs=args.runs)
    refined, control = Path(args.runs) / "refined" / "final", Path(args.runs) / "voice" / "final"
    for needed in (refined, control):
        if not (needed / "training_recipe.yaml").is_file():
            raise FileNotFoundError(f"{needed}: run `make student` first (this compares with its voice stage)")
    models = {"voice stage as run": control}
    stage_clips = len(PackedClips(pipeline.packed("train")))
    for source in SOURCES:
        extra = lever_data(source, Path(args.work))
        clean = sorted((Path(args.work) / "voice-levers" / source / "clean" / "train").rglob("*.wav"))
        degraded = len(PackedClips(extra))
        print(f"{source}: {len(clean)} clean clips ({sum(sf.info(p).duration for p in clean) / 60:.1f} min) in "
              f"{len({p.parent.name for p in clean})} source folders, "
              f"{degraded} degraded clips, {degraded / (degraded + stage_clips):.0%} of the stage's clips")
        models[f"+ {source}"] = pipeline.train_voice_stage(pipeline.packed("train") + extra,
                                                            Path(args.output) / source, f"voice stage + {source}")

    held = PackedClips(pipeline.packed("heldout"))
    audios = [held.clip(k) for k in range(len(held))]
    scores = {name: np.asarray(score(audios, model=load_model(path).eval(), sampling_rate=SAMPLING_RATE,
                                     batch_size=8)) for name, path in models.items()}
    print(f"all {len(held)} held-out clips (both catalogues), with the teacher; PCC / SRCC (95 % CI)")
    for name, (metrics, differences) in compare_with_first(scores, held.teacher_mos).items():
        print(f"  {name:<20}{agreement_line(metrics, differences)}")


if __name__ == "__main__":
    main()
