"""More voices in the fast student's voice stage: what three more sources of speech add on held-out speakers.

`make student`'s voice stage (the refined model trained on for `voice_steps` steps on every training set)
run again with one more source in its training data, against the voice stage as `make student` ran it
(RUNS/voice/final): same start, seed, steps, batch and schedule. The sources:

* klettres: the recorded letters and syllables of Debian's klettres-data (KDE's KLettres, GPL-2+; one
  native speaker per language), silence-trimmed and joined into 4-8 s clips with short pauses: 231 clips
  (25 min) in 19 voices and languages the training never had (Russian, the held-out language, left out), at
  most 150 s per voice;
* short-crops: 1-4 s crops of the LibriSpeech training clips (one from each third of a clip, when it fits):
  597 clips of the training's 251 LibriSpeech voices at the clip length where the student's held-out error
  is largest (the held-out Asterisk prompts are short, the LibriSpeech pieces long);
* world: every recorded training clip (2,022, espeak-ng left out) resynthesised once by the WORLD vocoder
  with its pitch and its spectral envelope moved independently (F0 x 0.7-1.45, formants x 0.88-1.14,
  log-uniform): voices the speed perturbation cannot make, as it moves pitch and formants together.

Each is degraded with both catalogues (klettres also speed-perturbed, as the voice stage's own sets),
labelled by the teacher and packed by `make student`'s own stages under WORK/voice-levers/<source>
(resumable). Needs klettres-data (`apt-get install klettres-data`), pyworld (`pip install pyworld
'setuptools<81'`: it imports pkg_resources) and `make student`'s runs. Prints PCC /
SRCC (95 % bootstrap CIs) with the teacher on all held-out clips of both catalogues, scored with the
teacher's windows as in training, and each variant's paired difference from the voice stage as run; last,
the "soup" of them all (their weights averaged: runs from one start, so one more model at no training cost):

    python benchmarks/voice_levers.py

One run, 2 threads; about 1.5 h on 2 idle cores (three voice stages of 17-21 min, about 25 min of data).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
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

from generalisation_gap import made_run, pack_sets

SAMPLING_RATE = 16000
HELD_OUT_LANGUAGE = "ru"
SOURCES = {
    "klettres": [DegradationSet("train-kl", "train", None, 6, 41, "kl"),
                 DegradationSet("train-kl-mild", "train", "mild", 3, 43, "klmild"),
                 DegradationSet("train-kl-voice", "train", None, 3, 47, "klvoice", voice=True),
                 DegradationSet("train-kl-mild-voice", "train", "mild", 2, 53, "klmildvoice", voice=True)],
    "short-crops": [DegradationSet("train-short", "train", None, 3, 61, "short"),
                    DegradationSet("train-short-mild", "train", "mild", 1, 67, "shortmild")],
    "world": [DegradationSet("train-world", "train", None, 1, 71, "world"),
              DegradationSet("train-world-mild", "train", "mild", 1, 73, "worldmild")],
}
# WORLD voices: pitch and vocal-tract length moved independently (speed perturbation moves them together);
# log-uniform, pitch up to about half an octave either way, formants up to 12-14 % (between men and women:
# about an octave and 15-20 %)
WORLD_F0_RATIO = (0.7, 1.45)
WORLD_ENVELOPE_WARP = (0.88, 1.14)


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


def world_voice(samples: np.ndarray, f0_ratio: float, envelope_warp: float) -> np.ndarray:
    """`samples` (16 kHz) resynthesised by the WORLD vocoder with its F0 times `f0_ratio` and its spectral
    envelope and aperiodicity stretched along frequency by `envelope_warp` (> 1: formants up, as from a
    shorter vocal tract)."""
    try:
        import pyworld
    except ImportError as error:  # a benchmark-only dependency
        raise RuntimeError("the world source needs pyworld: pip install pyworld 'setuptools<81'") from error

    signal = samples.astype(np.float64)
    f0, times = pyworld.dio(signal, SAMPLING_RATE, frame_period=5.0)
    f0 = pyworld.stonemask(signal, f0, times, SAMPLING_RATE)
    envelope = pyworld.cheaptrick(signal, f0, times, SAMPLING_RATE)  # (frames, bins)
    aperiodicity = pyworld.d4c(signal, f0, times, SAMPLING_RATE)
    bins = np.arange(envelope.shape[1])
    source_bins = np.clip(bins / envelope_warp, 0, bins[-1])  # new bin k reads the old envelope at k / warp
    warped = [np.stack([np.interp(source_bins, bins, row) for row in frames]) for frames in (envelope, aperiodicity)]
    voice = pyworld.synthesize(f0 * f0_ratio, *warped, SAMPLING_RATE, 5.0).astype(np.float32)[: len(samples)]
    peak = np.abs(voice).max()
    return voice * 0.99 / peak if peak > 0.99 else voice


def _write_world_voice(job: tuple[Path, Path, float, float]) -> None:
    path, target, f0_ratio, envelope_warp = job
    target.parent.mkdir(parents=True, exist_ok=True)
    voice = world_voice(load_audio(path, min_duration=0.0).samples, f0_ratio, envelope_warp)
    sf.write(target, voice, SAMPLING_RATE, subtype="PCM_16")


def write_world_voices(clean_train: Path, output: Path, seed: int = 0, processes: int = 2) -> None:
    """OUTPUT/world-<source>/<clip>.wav: every recorded training clip (espeak-ng left out) once as a WORLD
    voice with a seeded F0 ratio and envelope warp (`WORLD_F0_RATIO`, `WORLD_ENVELOPE_WARP`)."""
    rng = random.Random(seed)
    jobs = [(path, output / f"world-{path.parent.name}" / path.name,
             float(np.exp(rng.uniform(*np.log(WORLD_F0_RATIO)))), float(np.exp(rng.uniform(*np.log(WORLD_ENVELOPE_WARP)))))
            for path in sorted(clean_train.glob("*/*.wav")) if path.parent.name != "espeak"]
    with multiprocessing.Pool(processes) as pool:
        pool.map(_write_world_voice, jobs, chunksize=16)


def lever_data(source: str, work: Path) -> list[Path]:
    """The source's clean clips (written once: a folder that exists is kept), degraded, labelled and packed
    under WORK/voice-levers/<source>; returns the packed folders."""
    root = work / "voice-levers" / source
    clean_train = root / "clean" / "train"
    if not clean_train.is_dir():
        partial = root / "clean" / "train.partial"
        if source == "klettres":
            write_klettres_clips(partial)
        elif source == "world":
            write_world_voices(work / "clean" / "train", partial)
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


def weight_average(models: list[torch.nn.Module]) -> torch.nn.Module:
    """A "model soup": the first model with every floating-point tensor of its state (weights and BatchNorm
    statistics) replaced by the mean over `models`, which must share one architecture (here: runs from one
    start, so their weights lie in one basin and their mean is a model of its own)."""
    states = [model.state_dict() for model in models]
    soup = copy.deepcopy(models[0])
    soup.load_state_dict({key: torch.stack([state[key].double() for state in states]).mean(0).to(value.dtype)
                          if value.is_floating_point() else value for key, value in states[0].items()})
    return soup.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/student", help="make student's WORK folder")
    parser.add_argument("--runs", default="runs/student", help="make student's RUNS folder")
    parser.add_argument("--output", default="runs/voice-levers", help="the variants' runs")
    args = parser.parse_args()
    torch.set_num_threads(2)

    pipeline = StudentPipeline(work=args.work, runs=args.runs)
    made_run(args.runs, "refined/final", "its voice stage")  # the variants' start
    control = made_run(args.runs, "voice/final", "its voice stage")
    models = {"voice stage as run": control}
    stage_clips = len(PackedClips(pipeline.packed("train", "voice")))
    for source in SOURCES:
        extra = lever_data(source, Path(args.work))
        clean = sorted((Path(args.work) / "voice-levers" / source / "clean" / "train").rglob("*.wav"))
        degraded = len(PackedClips(extra))
        print(f"{source}: {len(clean)} clean clips ({sum(sf.info(p).duration for p in clean) / 60:.1f} min) in "
              f"{len({p.parent.name for p in clean})} source folders, "
              f"{degraded} degraded clips, {degraded / (degraded + stage_clips):.0%} of the stage's clips")
        models[f"+ {source}"] = pipeline.train_voice_stage(pipeline.packed("train", "voice") + extra,
                                                            Path(args.output) / source, f"voice stage + {source}")

    loaded = {name: load_model(path).eval() for name, path in models.items()}
    loaded["soup of the above"] = weight_average(list(loaded.values()))
    held = PackedClips(pipeline.packed("heldout"))
    audios = [held.clip(k) for k in range(len(held))]
    scores = {name: np.asarray(score(audios, model=model, sampling_rate=SAMPLING_RATE, batch_size=8))
              for name, model in loaded.items()}
    print(f"all {len(held)} held-out clips (both catalogues), with the teacher; PCC / SRCC (95 % CI)")
    for name, (metrics, differences) in compare_with_first(scores, held.teacher_mos).items():
        print(f"  {name:<20}{agreement_line(metrics, differences)}")


if __name__ == "__main__":
    main()
