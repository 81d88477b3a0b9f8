"""Long test recordings for the long-audio benchmarks: real speech whose degradation changes along the file.

A recording is a run of segments (20-60 s each, lengths drawn by its seed); each segment is LibriSpeech
utterances of ../shared/data/librispeech_speakers back to back (speakers and order drawn by the seed), then
degraded by one draw of the default degradation catalogue (0-3 families: some segments stay clean; real noise
recordings of ../shared/data/noise_speech_commands among the noises). Written segment by segment to a 16 kHz
FLAC, so a 3-hour file is never held in memory; an existing file is reused (same path = same recording).
Without ../shared, synthetic speech stands in for LibriSpeech (and synthetic noise for the recordings).

    python benchmarks/long_recordings.py runs/long_audio/rec0.flac --minutes 5.5 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import soundfile

import hf_sqa
from hf_sqa.data.degrade import DegradationPipeline, load_catalogue
from hf_sqa.testing import synthetic_speech

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
LIBRISPEECH = SHARED / "librispeech_speakers"
NOISES = SHARED / "noise_speech_commands"
RATE = 16000
SEGMENT_SECONDS = (20.0, 60.0)
PAUSE_SECONDS = 0.3  # between utterances of a segment


def _pipeline(seed: int) -> DegradationPipeline:
    catalogue = load_catalogue(None)
    # chain lengths 0..3: one segment in six is left clean, so a file's quality moves between clean and degraded
    catalogue["chain"] = {"min_families": 0, "max_families": 3, "count_weights": [1, 2, 2, 1]}
    noises = [hf_sqa.load_audio(path).samples for path in sorted(NOISES.glob("*.wav"))] if NOISES.is_dir() else None
    return DegradationPipeline(catalogue, seed=seed, noises=noises)


def build_recording(path: str | Path, minutes: float, seed: int = 0) -> Path:
    """Write (or reuse) a `minutes`-long recording at `path` (16 kHz FLAC) and a `.json` listing its
    segments (start, seconds, applied degradations)."""
    path = Path(path)
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    utterances = sorted(LIBRISPEECH.rglob("*.flac")) if LIBRISPEECH.is_dir() else []
    rng.shuffle(utterances)
    pipeline = _pipeline(seed)
    target = int(minutes * 60 * RATE)
    pause = np.zeros(int(PAUSE_SECONDS * RATE), dtype=np.float32)
    written, next_utterance, segments = 0, 0, []
    partial = path.with_name(path.name + ".partial")
    with soundfile.SoundFile(partial, "w", samplerate=RATE, channels=1, format="FLAC", subtype="PCM_16") as out:
        while written < target:
            length = min(int(rng.uniform(*SEGMENT_SECONDS) * RATE), target - written)
            pieces, filled = [], 0
            while filled < length:
                if utterances:
                    speech = hf_sqa.load_audio(utterances[next_utterance % len(utterances)]).samples
                    next_utterance += 1
                else:
                    speech = synthetic_speech(10.0, seed=seed * 100003 + len(segments) * 101 + len(pieces))
                pieces += [speech, pause]
                filled += len(speech) + len(pause)
            clean = np.concatenate(pieces)[:length]
            degraded, applied = pipeline.degrade(clean, f"rec{seed}-seg{len(segments)}")
            degraded = np.pad(degraded[:length], (0, max(0, length - len(degraded))))  # codecs may change length
            peak = float(np.max(np.abs(degraded))) if len(degraded) else 0.0
            if peak > 0.99:  # FLAC holds [-1, 1): scale a segment a transform pushed over full scale
                degraded = degraded * (0.99 / peak)
            out.write(degraded)
            segments.append({"start": written / RATE, "seconds": length / RATE,
                             "degradations": [a["transform"] for a in applied]})
            written += length
    path.with_suffix(".json").write_text(json.dumps({"seed": seed, "minutes": minutes, "segments": segments},
                                                    indent=1))
    partial.replace(path)  # only a complete file gets the real name (a killed build starts over)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_recording(args.path, args.minutes, args.seed))


if __name__ == "__main__":
    main()
