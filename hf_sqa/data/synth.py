"""Clean speech without the Hub: espeak-ng synthesis, and a fast numpy speech-like signal.

`espeak_speech` needs the espeak-ng program (Debian: apt-get install espeak-ng); `speech_like` needs
nothing and is used for babble noise and test fixtures.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..audio import load_audio

# short sentences recombined at random; English, with a few voices of other languages below
_SUBJECTS = ["The old man", "A young woman", "The small dog", "Our neighbour", "The teacher", "My brother",
             "The driver", "A tall stranger", "The children", "The engineer"]
_VERBS = ["opened", "carried", "painted", "found", "repaired", "watched", "described", "forgot", "sold", "moved"]
_OBJECTS = ["the wooden door", "a heavy box", "the blue car", "an empty bottle", "the garden gate",
            "a long letter", "the kitchen table", "a broken clock", "the red umbrella", "a silver key"]
_ENDINGS = ["before the rain started.", "on a quiet Sunday morning.", "near the railway station.",
            "without saying a word.", "after the long meeting.", "in the middle of the night.",
            "while the radio was playing.", "at the end of the street."]
ESPEAK_VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f5", "de", "fr", "es", "it", "nl"]


def random_sentence(rng: random.Random) -> str:
    return " ".join([rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_ENDINGS)])


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak_speech(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50,
                  sampling_rate: int = 16000) -> np.ndarray:
    """Synthesise `text` with espeak-ng: float32 mono at `sampling_rate`."""
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True)
        return load_audio(wav, target_sampling_rate=sampling_rate).samples


def random_espeak_speech(seed: int, sentences: int = 2, sampling_rate: int = 16000) -> tuple[np.ndarray, dict]:
    """A random utterance (voice, speed, pitch, sentences drawn from `seed`) and what was drawn."""
    rng = random.Random(seed)
    settings = {
        "voice": rng.choice(ESPEAK_VOICES),
        "speed": rng.randint(130, 190),
        "pitch": rng.randint(30, 70),
        "text": " ".join(random_sentence(rng) for _ in range(sentences)),
    }
    return espeak_speech(sampling_rate=sampling_rate, **settings), settings


def speech_like(seconds: float, sampling_rate: int = 16000, seed: int = 0, noise_db: float | None = None) -> np.ndarray:
    """A speech-like clip: a gliding harmonic voice with syllable-rate amplitude modulation and pauses,
    optionally with white noise at `noise_db` dB SNR. float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = rng.uniform(90, 220) + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 15))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * t + rng.uniform(0, np.pi)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.35 * t + rng.uniform(0, np.pi)) > -0.7).astype(float)
    clip = voice * syllables * pauses
    clip = 0.3 * clip / (np.abs(clip).max() + 1e-9)
    if noise_db is not None:
        noise = rng.standard_normal(len(clip))
        clip = clip + noise * np.sqrt(np.mean(clip**2) / 10 ** (noise_db / 10))
    return np.clip(clip, -1, 1).astype(np.float32)
