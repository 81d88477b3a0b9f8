"""More voices in the fast student's training: what more sources of speech add on held-out speakers.

`make student`'s voice stage (the refined model trained on for `voice_steps` steps on every training set)
run again with one more source in its training data, against the voice stage as `make student` ran it
(RUNS/voice/final): same start, seed, steps, batch and schedule. With `--stage vocoder` the vocoder stage
(its steps and schedule, from `--start`) is run again instead, against `--control`; with `--together` the
sources go into one variant instead of one each. The sources:

* klettres: the recorded letters and syllables of Debian's klettres-data (KDE's KLettres, GPL-2+; one
  native speaker per language), silence-trimmed and joined into 4-8 s clips with short pauses: 231 clips
  (25 min) in 19 voices and languages the training never had (Russian, the held-out language, left out), at
  most 150 s per voice;
* ktuberling: the recorded words of Debian's ktuberling-data (KDE's KTuberling, GPL-2+; one speaker per
  language), joined the same way: 21 languages besides Russian (one recording of the four Serbian scripts);
* klettres-short, ktuberling-short: the same recordings joined into 1-3 s clips (1,090 clips, 48 min), the
  length of the held-out Asterisk prompts, where the training's short clips come from four Asterisk voices;
  fewer draws per clip (2, 1, 1, 1: as many degraded clips as the 4-8 s sets);
* tuxpaint: the spoken stamp names of Debian's tuxpaint-stamps-default (Tux Paint, GPL-2; 11 languages
  besides Russian, 8 of them with 5-30 min of words, at least one speaker each), joined like the word
  packages into 4-8 s clips, at most 7.5 min per language (525 clips, 61 min): three times the word
  packages' speech per voice, and two Slavic languages the training has from no other source (Belarusian,
  Bulgarian); needs `apt-get install --no-install-recommends tuxpaint-stamps-default`;
* short-crops: 1-4 s crops of the LibriSpeech training clips (one from each third of a clip, when it fits):
  597 clips of the training's 251 LibriSpeech voices at the clip length where the student's held-out error
  is largest (the held-out Asterisk prompts are short, the LibriSpeech pieces long);
* fillets: the lines of the two fish of Fish Fillets NG (Debian's fillets-ng-data-cs and -nl, GPL-2+):
  acted dialogue, four voices in two languages the training never had (Czech, a Slavic language like the
  held-out Russian; Dutch), at most 10 min each, joined into 4-8 s clips; fewer draws (3, 2, 2, 1); needs
  `apt-get install --no-install-recommends fillets-ng-data-cs fillets-ng-data-nl`;
* russian-words: the Russian recordings of both word packages (two speakers, left out of make student's
  word sources as Russian is the held-out language), joined like them and degraded like their sets: a
  diagnostic of how much of the held-out gap is the unheard language rather than the unheard voices (the
  held-out speaker itself stays unheard);
* world: every recorded training clip (2,022, espeak-ng left out) resynthesised once by the WORLD vocoder
  with its pitch and its spectral envelope moved independently (F0 x 0.7-1.45, formants x 0.88-1.14,
  log-uniform): voices the speed perturbation cannot make, as it moves pitch and formants together.

Each is degraded with both catalogues (the word sources also speed-perturbed, as the voice stage's own
sets), labelled by the teacher and packed by `make student`'s own stages (resumable): the word sources
(`WORD_SETS`: klettres, ktuberling, their short variants, tuxpaint) are `make student`'s own, so their sets
are its (WORK/packed/train-kl*, train-kt*, train-tp*; klettres and ktuberling are its default word sources,
its vocoder stage trains on them); the others are made under WORK/voice-levers/<source>. The stages as
run are `make student`'s without the word sources. Needs klettres-data and ktuberling-data (`make student`
installs them), pyworld (`pip install pyworld 'setuptools<81'`: it imports pkg_resources) and `make
student`'s runs. Prints PCC /
SRCC (95 % bootstrap CIs) with the teacher on all held-out clips of both catalogues, scored with the
teacher's windows as in training, and each variant's paired difference from the voice stage as run; last,
the "soup" of them all (their weights averaged: runs from one start, so one more model at no training cost):

    python benchmarks/voice_levers.py
    python benchmarks/voice_levers.py --sources klettres ktuberling --together --stage vocoder \
        --start PREVIOUS_FAST --control VOCODER_STAGE_AS_RUN

One run, 2 threads; about 1.5 h on 2 idle cores (three voice stages of 17-21 min, about 25 min of data).
On a budget, from the shipped model, against a control trained here on reduced data (one draw of each
catalogue, no voice-perturbed or vocoder sets; make student's data stages run with the same --set first):

    python benchmarks/voice_levers.py --work data/fx --runs runs/fx --output runs/fx/levers --sources fillets \
        --stage vocoder --start checkpoints/hf-sqa-fast --control train --set train_draws=1 mild_train_draws=1 \
        voice_train_draws=0 mild_voice_train_draws=0 vocoder_train_draws=0
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import random
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from hf_sqa.audio import load_audio
from hf_sqa.data.student_speech import join_word_clips, word_recordings, write_word_speech
from hf_sqa.metrics import compare_with_first
from hf_sqa.scoring import load_model, score
from hf_sqa.training.packed import PackedClips
from hf_sqa.training.recipe import parse_overrides
from hf_sqa.training.student_pipeline import WORD_SETS, DegradationSet, StudentPipeline, word_degradation_sets

from generalisation_gap import made_run, pack_sets

SAMPLING_RATE = 16000
SOURCES = {
    "short-crops": [DegradationSet("train-short", "train", None, 3, 61, "short"),
                    DegradationSet("train-short-mild", "train", "mild", 1, 67, "shortmild")],
    "world": [DegradationSet("train-world", "train", None, 1, 71, "world"),
              DegradationSet("train-world-mild", "train", "mild", 1, 73, "worldmild")],
    # a diagnostic, not a training source: the held-out language from other speakers, degraded like the word sets
    "russian-words": word_degradation_sets("train", "ru", (181, 191, 193, 197), (6, 3, 3, 2)),
}
# WORLD voices: pitch and vocal-tract length moved independently (speed perturbation moves them together);
# log-uniform, pitch up to about half an octave either way, formants up to 12-14 % (between men and women:
# about an octave and 15-20 %)
WORLD_F0_RATIO = (0.7, 1.45)
WORLD_ENVELOPE_WARP = (0.88, 1.14)


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


def lever_data(source: str, pipeline: StudentPipeline) -> tuple[Path, list[Path]]:
    """(the source's clean clips' folder, its packed training sets). A word source (`WORD_SETS`) is make
    student's own: its clips in WORK/clean/<source>, its sets WORK/packed/train-<prefix>* (made here when
    missing, by the pipeline's stages). The others: their clean clips (written once: a folder that exists is
    kept), degraded, labelled and packed under WORK/voice-levers/<source>."""
    if source in WORD_SETS:
        words = StudentPipeline(work=pipeline.work, runs=pipeline.runs, word_sources=(source,))
        clean = write_word_speech(words.clean_dir, source, words.speech.asterisk_heldout)
        sets = [dset for dset in words.degradation_sets() if dset.clean_split == source]
        return clean, pack_sets(sets, Path(pipeline.work), words.clean_dir)
    root = Path(pipeline.work) / "voice-levers" / source
    clean = root / "clean" / "train"
    if not clean.is_dir():
        partial = root / "clean" / "train.partial"
        if source == "world":
            write_world_voices(Path(pipeline.work) / "clean" / "train", partial)
        elif source == "russian-words":
            for package in ("klettres", "ktuberling"):
                join_word_clips({language: paths for language, paths in word_recordings(package).items()
                                 if language in pipeline.speech.asterisk_heldout}, partial, package)
        else:
            write_short_crops(Path(pipeline.work) / "clean" / "train", partial)
        partial.rename(clean)
    return clean, pack_sets(SOURCES[source], root, root / "clean")


def agreement_line(metrics: dict, differences: dict) -> str:
    """PCC / SRCC with their CIs and the paired differences from the first model (`compare_with_first`'s
    pair): one line of this benchmark's (and conv_widths.py's) table."""
    line = "".join(f"  {statistic.upper()} {metrics[statistic]:.4f} ({metrics[f'{statistic}_ci_low']:.3f}-"
                   f"{metrics[f'{statistic}_ci_high']:.3f})" for statistic in ("pcc", "srcc"))
    for statistic, (difference, low, high) in differences.items():
        line += f"  d{statistic.upper()} {difference:+.4f} ({low:+.3f}, {high:+.3f})"
    return line


def heldout_comparison(pipeline: StudentPipeline, loaded: dict, start: Path | None = None) -> tuple[PackedClips, dict]:
    """Scores the models of `loaded` (name -> model; the first is the reference), and the model `start` the
    runs continued, on all of the pipeline's held-out clips and prints each one's agreement with the teacher
    and its paired difference from the first (`agreement_line`); returns (the held-out clips, name -> scores)."""
    loaded = dict(loaded)
    if start is not None:
        loaded["start"] = load_model(start).eval()
        # scored like the others, with the teacher's windows they trained on (a shipped model scores with fewer)
        loaded["start"].config.window_max_hop = next(iter(loaded.values())).config.window_max_hop
    held = PackedClips(pipeline.packed("heldout"))
    audios = [held.clip(k) for k in range(len(held))]
    scores = {name: np.asarray(score(audios, model=model, sampling_rate=SAMPLING_RATE, batch_size=8))
              for name, model in loaded.items()}
    print(f"all {len(held)} held-out clips (both catalogues), with the teacher; PCC / SRCC (95 % CI)")
    for name, (metrics, differences) in compare_with_first(scores, held.teacher_mos).items():
        print(f"  {name:<20}{agreement_line(metrics, differences)}")
    return held, scores


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
    parser.add_argument("--sources", nargs="+", default=["klettres", "short-crops", "world"],
                        choices=list(WORD_SETS) + list(SOURCES))
    parser.add_argument("--together", action="store_true", help="one variant with every source of --sources "
                        "instead of one per source")
    parser.add_argument("--stage", default="voice", choices=["voice", "vocoder"],
                        help="the stage run again with the sources: the voice stage (from RUNS/refined/final) or "
                        "the vocoder stage (from --start)")
    parser.add_argument("--start", help="--stage vocoder: the model it continues (default RUNS/voice/final)")
    parser.add_argument("--control", help="the stage as run, compared with (default RUNS/<stage>/final); "
                        "'train': trained here, on the stage's own sets from the same start")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="make student's settings the data and stages were made with (StudentPipeline fields, "
                        "e.g. train_draws=1)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    # the stages as they were before the word sources came in; the variants add sources to them
    pipeline = StudentPipeline(**{"final_method": "pruned", **parse_overrides(args.set, parser), "work": args.work,
                                  "runs": args.runs, "word_sources": ()})
    if args.stage == "voice":
        made_run(args.runs, "refined/final", "its voice stage")  # the variants' start
        stage_sets = pipeline.packed("train", "voice")
        train = lambda sets, name: pipeline.train_voice_stage(stage_sets + sets, Path(args.output) / name,
                                                              f"voice stage + {name}")
    else:
        start = Path(args.start) if args.start else made_run(args.runs, "voice/final", "its vocoder stage")
        stage_sets = pipeline.packed("train", "vocoder")
        train = lambda sets, name: pipeline.train_vocoder_stage(stage_sets + sets, Path(args.output) / name,
                                                                f"vocoder stage + {name}", init=start)
    if args.control == "train":
        control = train([], "control")
    else:
        control = Path(args.control) if args.control else made_run(args.runs, f"{args.stage}/final", "its own stage")
    control_name = f"{args.stage} stage " + ("(control)" if args.control == "train" else "as run")
    models = {control_name: control}
    stage_clips = len(PackedClips(stage_sets))
    extras = {}
    for source in args.sources:
        clean_folder, extras[source] = lever_data(source, pipeline)
        clean = sorted(clean_folder.rglob("*.wav"))
        degraded = len(PackedClips(extras[source]))
        print(f"{source}: {len(clean)} clean clips ({sum(sf.info(p).duration for p in clean) / 60:.1f} min) in "
              f"{len({p.parent.name for p in clean})} source folders, "
              f"{degraded} degraded clips, {degraded / (degraded + stage_clips):.0%} of the stage's clips")
    variants = {"+".join(args.sources): sum(extras.values(), [])} if args.together else extras
    for name, sets in variants.items():
        models[f"+ {name}"] = train(sets, name)

    loaded = {name: load_model(path).eval() for name, path in models.items()}
    if len(loaded) > 2:
        loaded["soup of the above"] = weight_average(list(loaded.values()))
    # the vocoder stage also against where it started from (the voice stage's model, or e.g. the shipped model)
    heldout_comparison(pipeline, loaded, start if args.stage == "vocoder" else None)


if __name__ == "__main__":
    main()
