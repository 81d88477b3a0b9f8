"""Codec artefacts in the fast student's voice stage: does the student learn its teacher's judgement of codecs?

On bvrnn_mushra's neural codecs `fast` follows its teacher at PCC 0.66 where the teacher's weights in the same
fast path follow it at 0.90, and it misses the codecs' damage most (Lyra at 3 kbps: the teacher 3.14, `fast`
3.49). This runs `make student`'s voice stage again (same start, seed, steps, batch and schedule) with one
more training set, every training clip coded twice by one codec (`--codec`), against the voice stage as
`make student` ran it (RUNS/voice/final):

* opus: Ogg Opus at 6-24 kbps (`catalogue_opus.yaml`; SILK's linear-prediction coding below about 12 kbps),
  a speech codec the training catalogues do not have (they code with MP3, G.711 and a Griffin-Lim vocoder);
* vocoder: the Griffin-Lim vocoder resynthesis of the mild catalogue alone, over a wider range (the
  package's `catalogue_vocoder.yaml`): the artefact family that lifted bvrnn_mushra when the mild set came
  in. Its training set is `make student`'s vocoder set, read from where `make student` keeps it
  (WORK/packed/train-vocoder; made there first when missing), which the recipe trains on in a stage of its
  own after the voice stage; this benchmark's variant is the recipe with `--set vocoder_enters=voice
  vocoder_steps=0`.

It prints PCC / SRCC with the teacher (95 % bootstrap CIs and paired differences) on

* all held-out clips of both catalogues (the floors' clips),
* the held-out speakers coded by the codec (one draw, another seed): what the new set teaches on unheard voices,
* a human-rated SPEC (`--human`, default bvrnn_mushra, scored by the teacher in the same run): with the
  teacher and with the human MOS, and each model's mean score per condition (its `condition` column).

Each model's scores are also split into a part within groups of clips and the groups' means (held-out clips:
the degraded versions of one clean clip; the human-rated clips: one stimulus, the clips of one folder, as in
MUSHRA sets like bvrnn_mushra, whose listeners rate the conditions of one stimulus against its reference):
standard deviations and PCC of each part with the teacher's (and the human MOS's) same part. `--also MODEL`
adds other models to every comparison (e.g. runs/distillmos-fast, the teacher's weights as a fast model).

The other sets are degraded, labelled and packed by `make student`'s own stages under WORK/codec-lever
(resumable):

    python benchmarks/codec_lever.py --codec opus --also runs/distillmos-fast checkpoints/hf-sqa-fast

One run, 2 threads; about 46 min on this machine (13 for the sets, 30 for the voice stage), 7 once they exist.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hf_sqa.data.degrade import CATALOGUE_NAMES
from hf_sqa.evaluation import spec_clips
from hf_sqa.metrics import compare_with_first
from hf_sqa.scoring import load_model, score
from hf_sqa.training.packed import PackedClips
from hf_sqa.training.student_pipeline import VOCODER_SEED, DegradationSet, StudentPipeline

from generalisation_gap import made_run, pack_sets
from heldout_by_source import clean_ids
from voice_levers import agreement_line

SAMPLING_RATE = 16000


def codec_sets(codec: str, seed: int) -> tuple[DegradationSet, DegradationSet]:
    """The codec's training set (two draws of every training clip) and held-out set (one draw), degraded
    with the package's catalogue of that name, or else benchmarks/catalogue_<codec>.yaml."""
    catalogue = codec if codec in CATALOGUE_NAMES else str(Path(__file__).with_name(f"catalogue_{codec}.yaml"))
    return (DegradationSet(f"train-{codec}", "train", catalogue, 2, seed, codec),
            DegradationSet(f"heldout-{codec}", "heldout", catalogue, 1, seed + 2, f"h{codec}"))


CODEC_SETS = {"opus": codec_sets("opus", 81), "vocoder": codec_sets("vocoder", VOCODER_SEED)}


def within_and_between(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values minus their group's mean, their group's mean), per value."""
    _, index = np.unique(groups, return_inverse=True)
    means = np.bincount(index, weights=values) / np.bincount(index)
    return values - means[index], means[index]


def print_decomposition(scores: dict[str, np.ndarray], references: dict[str, np.ndarray], groups: np.ndarray) -> None:
    """Per model: standard deviation of its within-group part and of its group means, and each part's PCC
    with the same part of every reference. Nothing where every group is one clip (no within part)."""
    sizes = np.unique(groups, return_counts=True)[1]
    if sizes.max() == 1:
        return
    print(f"  within groups / group means ({len(sizes)} groups of {sizes.min()}-{sizes.max()} clips):")
    parts = {name: within_and_between(values, groups) for name, values in {**references, **scores}.items()}
    for name in parts:
        within, between = parts[name]
        line = f"    {name:<22} sd {within.std():.3f} / {between.std():.3f}"
        for reference in references:
            if reference != name:
                pcc = [np.corrcoef(parts[name][k], parts[reference][k])[0, 1] for k in (0, 1)]
                line += f"   PCC with {reference} {pcc[0]:.3f} / {pcc[1]:.3f}"
        print(line)


def print_agreement(title: str, scores: dict[str, np.ndarray], reference: np.ndarray) -> None:
    print(title)
    for name, (metrics, differences) in compare_with_first(scores, reference).items():
        print(f"  {name:<22}{agreement_line(metrics, differences)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="data/student", help="make student's WORK folder")
    parser.add_argument("--runs", default="runs/student", help="make student's RUNS folder")
    parser.add_argument("--output", default="runs/codec-lever", help="the variant's run")
    parser.add_argument("--human", default="../shared/data/bvrnn_mushra", help="a human-rated SPEC ('' : none)")
    parser.add_argument("--codec", choices=sorted(CODEC_SETS), default="opus", help="the added training set")
    parser.add_argument("--also", nargs="*", default=[], help="other models to compare (folders or names)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    pipeline = StudentPipeline(work=args.work, runs=args.runs)
    control = made_run(args.runs, "voice/final", "its voice stage")
    codec = args.codec
    train_set, heldout_set = CODEC_SETS[codec]
    work, clean = Path(args.work), Path(args.work) / "clean"
    # make student's own set of that name (the vocoder set) is read from, or made in, WORK: not made twice
    own = {d.name: d for d in pipeline.degradation_sets()}.get(train_set.name)
    [coded_train] = pack_sets([own or train_set], work if own else work / "codec-lever", clean)
    [coded_heldout] = pack_sets([heldout_set], work / "codec-lever", clean)
    stage_clips, extra = len(PackedClips(pipeline.packed("train", "voice"))), len(PackedClips([coded_train]))
    print(f"train-{codec}: {extra} coded training clips, {extra / (extra + stage_clips):.0%} of the stage's clips")
    variant = pipeline.train_voice_stage(pipeline.packed("train", "voice") + [coded_train], Path(args.output) / codec,
                                         f"voice stage + {codec}")
    models = {"voice stage as run": load_model(control).eval(), f"+ {codec}": load_model(variant).eval(),
              **{name: load_model(name).eval() for name in args.also}}

    for title, folders in (("all held-out clips (both catalogues)", pipeline.packed("heldout")),
                           (f"held-out speakers coded by {codec}", [coded_heldout])):
        clips = PackedClips(folders)
        audios = [clips.clip(k) for k in range(len(clips))]
        scores = {name: np.asarray(score(audios, model=model, sampling_rate=SAMPLING_RATE, batch_size=8))
                  for name, model in models.items()}
        print_agreement(f"{title}, {len(clips)} clips, with the teacher; PCC / SRCC (95 % CI)", scores,
                        clips.teacher_mos)
        clean_of = {}
        for folder in folders:
            clean_of.update(clean_ids(folder))
        print_decomposition(scores, {"teacher": clips.teacher_mos}, np.array([clean_of[str(i)] for i in clips.ids]))
    if not args.human:
        return
    rated = spec_clips(args.human)
    teacher = np.asarray(score(rated.audios, model="distillmos", sampling_rate=SAMPLING_RATE, batch_size=8))
    scores = {name: np.asarray(score(rated.audios, model=model, sampling_rate=SAMPLING_RATE, batch_size=8))
              for name, model in models.items()}
    print_agreement(f"{rated.corpus} ({len(teacher)} clips) with the teacher", scores, teacher)
    print_agreement(f"{rated.corpus} with human MOS", {"teacher": teacher, **scores}, rated.mos)
    print_decomposition(scores, {"teacher": teacher, "human MOS": rated.mos},
                        np.array([str(Path(clip).parent) for clip in rated.ids]))
    conditions = np.array([str(condition or "") for condition in rated.conditions])
    if all(conditions):  # rated conditions (a SPEC's `condition` column): each model's mean score per condition
        print(f"  mean MOS per condition: {'human':>6} {'teacher':>8}" + "".join(f" {n:>20}" for n in scores))
        for condition in sorted(set(conditions)):
            rows = conditions == condition
            print(f"  {condition:<24}{rated.mos[rows].mean():6.2f} {teacher[rows].mean():8.2f}"
                  + "".join(f" {values[rows].mean():20.2f}" for values in scores.values()))


if __name__ == "__main__":
    main()
