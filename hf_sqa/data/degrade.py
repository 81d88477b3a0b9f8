"""DegradationPipeline: random chains of speech degradations, a pure function of (seed, example id).

The transforms come from a catalogue (YAML or JSON; `catalogue_default.yaml` is the shipped default,
its header documents the format). Each call seeds Python's and numpy's global generators from a hash of
(seed, example id) before drawing the chain and the transforms' parameters, so a clip's degradation is
the same in any worker, shard or process. The global generators are shared within a process: run
parallel pipelines in processes (datasets' `num_proc`, DataLoader workers), not threads.

Every output records what was applied: a list of {"family", "transform", "params"} (JSON-safe).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import audiomentations
import numpy as np
import torch
import yaml
from datasets import Features, IterableDataset, List, Value
from tqdm import tqdm

from . import transforms as hf_sqa_transforms
from .shards import check_manifest, encode_flac, shard_name, write_shard
from .specs import resolve

DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue_default.yaml")
# shipped catalogues by name (load_catalogue, --catalogue): catalogue_<name>.yaml next to this module
CATALOGUE_NAMES = ("default", "mild", "vocoder")


def stable_seed(seed: int, example_id: str) -> int:
    """A 63-bit seed from (seed, id) that is the same on every machine and Python run (unlike hash())."""
    digest = hashlib.blake2b(f"{seed}:{example_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def load_catalogue(catalogue: str | os.PathLike | dict | None) -> dict:
    if catalogue is None:
        catalogue = DEFAULT_CATALOGUE
    if isinstance(catalogue, dict):
        return catalogue
    if catalogue in CATALOGUE_NAMES:
        catalogue = Path(__file__).with_name(f"catalogue_{catalogue}.yaml")
    path = Path(catalogue)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such degradation catalogue")
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _transform_class(name: str):
    for module in (hf_sqa_transforms, audiomentations):
        if hasattr(module, name):
            return getattr(module, name)
    raise ValueError(f"unknown degradation transform {name!r} (not in audiomentations or hf_sqa.data.transforms)")


def _weighted_transforms(options: list[dict], where: str, noises, rirs) -> list[tuple[float, object]]:
    """A catalogue's options ({transform, weight, params}) as (weight, transform) pairs, each transform
    always applied (p = 1: the pipeline decides what to apply). NoiseFromClips is left out without noises;
    recorded RIRs replace Reverberation's synthetic ones when given."""
    built = []
    for option in options:
        cls = _transform_class(option["transform"])
        params = dict(option.get("params", {}))
        if cls is hf_sqa_transforms.NoiseFromClips:
            if not noises:
                continue
            params["noises"] = noises
        if cls is hf_sqa_transforms.Reverberation and rirs:
            params["rirs"] = rirs
        try:
            transform = cls(p=1.0, **params)
        except TypeError as error:
            raise ValueError(f"catalogue option {option['transform']} in {where!r}: {error}") from error
        built.append((float(option.get("weight", 1.0)), transform))
    return built


def _applied_parameters(transform) -> dict:
    """A transform's drawn parameters, including those of transforms it is made of (e.g. the shelf and
    peaking filters inside SevenBandParametricEQ)."""
    params = {k: v for k, v in transform.parameters.items() if k != "should_apply"}
    for name, part in vars(transform).items():
        parts = part if isinstance(part, list) else [part]
        if parts and all(hasattr(p, "parameters") and hasattr(p, "randomize_parameters") for p in parts):
            nested = [_applied_parameters(p) for p in parts]
            params[name] = nested if isinstance(part, list) else nested[0]
    return params


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class DegradationPipeline:
    """Degrade clean speech with a random chain of transforms drawn from a catalogue.

    noises: decoded noise clips for NoiseFromClips (16 kHz float32); without them that option is left out.
    rirs:   decoded room impulse responses; with them Reverberation convolves with these, not synthetic ones.
    """

    def __init__(self, catalogue=None, seed: int = 0, noises: list[np.ndarray] | None = None,
                 rirs: list[np.ndarray] | None = None):
        spec = load_catalogue(catalogue)
        self.seed = seed
        chain = spec.get("chain", {})
        self.min_families = int(chain.get("min_families", 1))
        self.max_families = int(chain.get("max_families", 1))
        # chain lengths min..max drawn uniformly, or by `count_weights` (one per length); length 0 = the clean clip
        self.count_weights = [float(w) for w in chain.get("count_weights", [])] or None
        self.order = list(spec["order"])
        self.families: dict[str, tuple[float, list[tuple[float, object]]]] = {}
        for name, family in spec["families"].items():
            if name not in self.order:
                raise ValueError(f"catalogue family {name!r} is missing from 'order'")
            options = _weighted_transforms(family["options"], name, noises, rirs)
            if options:
                self.families[name] = (float(family.get("weight", 1.0)), options)
        if not 0 <= self.min_families <= self.max_families:
            raise ValueError(f"chain needs 0 <= min_families <= max_families, got {self.min_families}, {self.max_families}")
        if self.count_weights is not None and len(self.count_weights) != self.max_families - self.min_families + 1:
            raise ValueError(f"chain count_weights needs one weight per chain length {self.min_families}.."
                             f"{self.max_families}, got {len(self.count_weights)}")
        # optional `voice` stage: {probability, options}, applied to the clean clip before the chain (another
        # speaker from the same recording, e.g. SpeedPerturbation); not a degradation family
        voice = spec.get("voice")
        self.voice_probability = float(voice.get("probability", 1.0)) if voice else 0.0
        self.voice_options = _weighted_transforms(voice["options"], "voice", noises, rirs) if voice else []
        if not 0.0 <= self.voice_probability <= 1.0:
            raise ValueError(f"voice probability must be in [0, 1], got {self.voice_probability}")
        if self.max_families > len(self.families):
            raise ValueError(f"max_families {self.max_families} exceeds the {len(self.families)} usable families")

    @staticmethod
    def _weighted_pick(items: list[tuple[float, object]]):
        return random.choices([item for _, item in items], weights=[w for w, _ in items], k=1)[0]

    def degrade(self, samples: np.ndarray, example_id: str, sampling_rate: int = 16000) -> tuple[np.ndarray, list[dict]]:
        """(degraded samples, applied transforms) for one clip; the same for the same (seed, example_id)."""
        seed = stable_seed(self.seed, example_id)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        lengths = range(self.min_families, self.max_families + 1)
        count = random.choices(lengths, weights=self.count_weights)[0] if self.count_weights else random.choice(lengths)
        remaining = dict(self.families)
        chosen = set()
        for _ in range(count):  # weighted draw without replacement
            name = random.choices(list(remaining), weights=[w for w, _ in remaining.values()], k=1)[0]
            chosen.add(name)
            del remaining[name]
        out = np.asarray(samples, dtype=np.float32)
        applied = []
        stages = [(name, self.families[name][1]) for name in self.order if name in chosen]
        if self.voice_options and random.random() < self.voice_probability:
            stages.insert(0, ("voice", self.voice_options))  # the clean clip's voice first, then the chain
        for name, options in stages:
            transform = self._weighted_pick(options)
            out = transform(out, sampling_rate)
            applied.append({"family": name, "transform": type(transform).__name__,
                            "params": _json_safe(_applied_parameters(transform))})
        return np.nan_to_num(out).astype(np.float32), applied

    def __call__(self, example: dict) -> dict:
        """For `datasets` map: degrade example["audio"] (16 kHz float32) keyed by example["id"]."""
        degraded, applied = self.degrade(np.asarray(example["audio"], dtype=np.float32), example["id"])
        return {"audio": degraded, "degradations": json.dumps(applied)}


# --- degraded data: written as parquet shards, or streamed -----------------------------------------------

DEGRADED_FEATURES = Features({"id": Value("string"), "clean_id": Value("string"), "corpus": Value("string"),
                              "degradations": Value("string")})


def degraded_example(clean, index: int, pipeline: DegradationPipeline, corpus: str = "degraded",
                     id_prefix: str = "deg") -> dict:
    """Degraded example number `index`: clean example `index % len(clean)` with the chain drawn for its id
    ("<id_prefix>-<index>"). A pure function of (pipeline seed, id), whatever worker computes it."""
    source = clean[index % len(clean)]
    example_id = f"{id_prefix}-{index:09d}"
    audio, applied = pipeline.degrade(source["audio"], example_id)
    return {"id": example_id, "clean_id": source["id"], "corpus": corpus, "audio": audio,
            "degradations": json.dumps(applied)}


def _decoded_clips(spec: str | None) -> list[np.ndarray] | None:
    return None if spec is None else [row["audio"] for row in resolve(spec)]


_WORKER: dict = {}


def _init_worker(clean_spec, catalogue, seed, noise_spec, rir_spec, id_prefix="deg"):
    _WORKER["clean"] = resolve(clean_spec)
    _WORKER["id_prefix"] = id_prefix
    _WORKER["pipeline"] = DegradationPipeline(catalogue, seed=seed, noises=_decoded_clips(noise_spec),
                                              rirs=_decoded_clips(rir_spec))


def _write_degraded_shard(task) -> int:
    index, count, start, stop, path = task
    columns = {name: [] for name in ("id", "clean_id", "corpus", "degradations", "audio")}
    for k in range(start, stop):
        example = degraded_example(_WORKER["clean"], k, _WORKER["pipeline"], id_prefix=_WORKER["id_prefix"])
        example["audio"] = {"bytes": encode_flac(example["audio"]), "path": None}
        for name, value in example.items():
            columns[name].append(value)
    write_shard(columns, DEGRADED_FEATURES, path)
    return stop - start


def write_degraded_shards(
    clean: str, output: str | os.PathLike, num: int, noise: str | None = None, rirs: str | None = None,
    catalogue=None, seed: int = 0, num_proc: int = 1, shard_size: int = 500, progress: bool = True,
    id_prefix: str = "deg",
) -> list[Path]:
    """Write `num` degraded clips of the clean SPEC as parquet shards into `output` (a SPEC afterwards).
    Clip ids are "<id_prefix>-<index>" (another prefix keeps sets that are trained on together apart).

    Shards already present are kept, so a killed run finishes when started again with the same
    arguments; a run with different arguments into the same folder is refused (manifest.json).
    """
    if num < 1 or shard_size < 1:
        raise ValueError(f"num and shard_size must be positive, got {num}, {shard_size}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    settings = {"clean": str(clean), "num": num, "noise": noise, "rirs": rirs, "seed": seed,
                "shard_size": shard_size, "catalogue": load_catalogue(catalogue)}
    if id_prefix != "deg":  # (manifests written before prefixes existed stay valid)
        settings["id_prefix"] = id_prefix
    check_manifest(output, settings, "shards of a different degrade run")
    count = (num + shard_size - 1) // shard_size
    paths = [output / shard_name(i, count) for i in range(count)]
    tasks = [(i, count, i * shard_size, min(num, (i + 1) * shard_size), paths[i])
             for i in range(count) if not paths[i].is_file()]
    bar = tqdm(total=num, initial=num - sum(t[3] - t[2] for t in tasks), unit="clip", desc="degrading",
               disable=not progress)
    init_args = (clean, catalogue, seed, noise, rirs, id_prefix)
    if num_proc <= 1:
        _init_worker(*init_args)
        for task in tasks:
            bar.update(_write_degraded_shard(task))
    else:
        with ProcessPoolExecutor(num_proc, initializer=_init_worker, initargs=init_args) as pool:
            for done in pool.map(_write_degraded_shard, tasks):
                bar.update(done)
    bar.close()
    return paths


def degraded_stream(clean: str, pipeline: DegradationPipeline, num: int | None = None,
                    num_shards: int = 16) -> IterableDataset:
    """Degraded clips as an `IterableDataset`, computed on the fly (unlimited when `num` is None): the same
    clips `write_degraded_shards` writes for the same seed and catalogue.

    Indices come in blocks of len(clean) consecutive examples (each block uses every clean clip once);
    block b belongs to generator shard b % num_shards, so DataLoader workers and `shard_for_node` split
    the stream, and even an unlimited stream that never leaves its first shard uses all clean clips."""
    features = Features({**DEGRADED_FEATURES, "audio": List(Value("float32"))})
    return IterableDataset.from_generator(
        _stream_shard, features=features,
        gen_kwargs={"shard": list(range(num_shards)), "num_shards": [num_shards] * num_shards,
                    "clean_spec": [clean] * num_shards, "pipeline": [pipeline] * num_shards,
                    "num": [num] * num_shards},
    )


def _stream_shard(shard, num_shards, clean_spec, pipeline, num):
    clean, pipe, total, stride = resolve(clean_spec[0]), pipeline[0], num[0], num_shards[0]
    block = len(clean)
    for shard_id in shard:
        for step in itertools.count():
            first = (shard_id + step * stride) * block
            if total is not None and first >= total:
                break
            for index in range(first, first + block if total is None else min(first + block, total)):
                yield degraded_example(clean, index, pipe)


class DegradedClipStream(torch.utils.data.IterableDataset):
    """An endless stream of freshly degraded clean clips for online distillation (the teacher labels each
    clip in the training step, so no draw is stored or reused): {"audio": (T,) float32, 16 kHz}.

    Each draw picks a clean clip at random (with replacement) and a catalogue by weight, and degrades the
    clip with that catalogue's pipeline under the id "<seed>-<worker>-<n>", so a worker's n-th clip is a
    pure function of (seed, worker, n). Every DataLoader worker streams on its own (no shards to split),
    so each batch, built by one worker, mixes clips of every source. The output is clipped to [-1, 1] and
    rounded to 16 bits, as a degraded clip written to a file and read back (the offline path) would be.

    clean:      folder(s) of clean clips (any format `load_audio` reads; resampled to 16 kHz)
    noise:      SPEC of noise recordings for NoiseFromClips (decoded once, here), or None
    catalogues: {catalogue name or file: weight}
    """

    def __init__(self, clean: str | os.PathLike | list, noise: str | None = None, catalogues: dict | None = None,
                 seed: int = 0):
        from ..audio import find_audio_files

        folders = [clean] if isinstance(clean, (str, os.PathLike)) else list(clean)
        missing = [str(f) for f in folders if not Path(f).is_dir()]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)}: no such folder of clean speech")
        self.files = [path for folder in folders for path in find_audio_files(folder)]
        if not self.files:
            raise ValueError(f"{', '.join(map(str, folders))}: no audio files for the degraded stream")
        self.catalogues = dict(catalogues or {"default": 1.0})
        if not self.catalogues or min(self.catalogues.values()) <= 0:
            raise ValueError(f"catalogue weights must be positive, got {self.catalogues}")
        for catalogue in self.catalogues:
            load_catalogue(catalogue)  # an unknown catalogue fails here, not inside a worker
        self.noises, self.seed = _decoded_clips(None if noise is None else str(noise)), seed

    def __iter__(self):
        from ..audio import from_pcm16, load_audio, to_pcm16

        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        names = list(self.catalogues)
        # one pipeline per catalogue; each seeds the global generators per clip, so draw the clip and the
        # catalogue from a generator of our own
        pipelines = [DegradationPipeline(name, seed=self.seed, noises=self.noises) for name in names]
        weights = np.asarray([self.catalogues[n] for n in names], dtype=float)
        choose = np.random.default_rng([self.seed, worker])
        decoded = {}  # file index -> 16-bit samples: each file is decoded (and resampled) once per worker
        for count in itertools.count():
            index = int(choose.integers(len(self.files)))
            pipeline = pipelines[choose.choice(len(names), p=weights / weights.sum())]
            if index not in decoded:
                decoded[index] = to_pcm16(load_audio(self.files[index], target_sampling_rate=16000,
                                                     min_duration=0.0).samples)
            degraded, _ = pipeline.degrade(from_pcm16(decoded[index]), f"{self.seed}-{worker}-{count}")
            yield {"audio": from_pcm16(to_pcm16(degraded))}

    def mean_seconds(self) -> float:
        """Mean clean clip length (degradations keep the length): the audio per draw."""
        import soundfile as sf

        return float(np.mean([sf.info(str(path)).duration for path in self.files]))
