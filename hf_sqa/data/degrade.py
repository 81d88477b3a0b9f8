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
import json
import os
import random
from pathlib import Path

import audiomentations
import numpy as np
import yaml

from . import transforms as hf_sqa_transforms

DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue_default.yaml")


def stable_seed(seed: int, example_id: str) -> int:
    """A 63-bit seed from (seed, id) that is the same on every machine and Python run (unlike hash())."""
    digest = hashlib.blake2b(f"{seed}:{example_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def load_catalogue(catalogue: str | os.PathLike | dict | None) -> dict:
    if catalogue is None:
        catalogue = DEFAULT_CATALOGUE
    if isinstance(catalogue, dict):
        return catalogue
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
        self.order = list(spec["order"])
        self.families: dict[str, tuple[float, list[tuple[float, object]]]] = {}
        for name, family in spec["families"].items():
            if name not in self.order:
                raise ValueError(f"catalogue family {name!r} is missing from 'order'")
            options = []
            for option in family["options"]:
                cls = _transform_class(option["transform"])
                params = dict(option.get("params", {}))
                if cls is hf_sqa_transforms.NoiseFromClips:
                    if not noises:
                        continue
                    params["noises"] = noises
                if cls is hf_sqa_transforms.Reverberation and rirs:
                    params["rirs"] = rirs
                try:
                    transform = cls(p=1.0, **params)  # the pipeline decides what to apply
                except TypeError as error:
                    raise ValueError(f"catalogue option {option['transform']} in {name!r}: {error}") from error
                options.append((float(option.get("weight", 1.0)), transform))
            if options:
                self.families[name] = (float(family.get("weight", 1.0)), options)
        if not 1 <= self.min_families <= self.max_families:
            raise ValueError(f"chain needs 1 <= min_families <= max_families, got {self.min_families}, {self.max_families}")
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
        count = random.randint(self.min_families, self.max_families)
        remaining = dict(self.families)
        chosen = set()
        for _ in range(count):  # weighted draw without replacement
            name = random.choices(list(remaining), weights=[w for w, _ in remaining.values()], k=1)[0]
            chosen.add(name)
            del remaining[name]
        out = np.asarray(samples, dtype=np.float32)
        applied = []
        for name in self.order:
            if name not in chosen:
                continue
            transform = self._weighted_pick(self.families[name][1])
            out = transform(out, sampling_rate)
            applied.append({"family": name, "transform": type(transform).__name__,
                            "params": _json_safe(_applied_parameters(transform))})
        return np.nan_to_num(out).astype(np.float32), applied

    def __call__(self, example: dict) -> dict:
        """For `datasets` map: degrade example["audio"] (16 kHz float32) keyed by example["id"]."""
        degraded, applied = self.degrade(np.asarray(example["audio"], dtype=np.float32), example["id"])
        return {"audio": degraded, "degradations": json.dumps(applied)}
