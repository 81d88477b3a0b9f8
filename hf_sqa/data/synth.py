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
import soundfile as sf

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


def asterisk_prompt_files(language: str = "en") -> list[Path]:
    """The G.722 prompt files of Debian's asterisk-core-sounds-<language>-g722 package (CC-BY-SA-3.0,
    ~570 prompts by one professional speaker), found with dpkg -L."""
    package = f"asterisk-core-sounds-{language}-g722"
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listing.returncode != 0:
        raise RuntimeError(f"{package} is not installed (Debian: apt-get install {package})")
    return sorted(Path(line) for line in listing.stdout.splitlines() if line.endswith(".g722"))


def decode_g722(path: str | Path, sampling_rate: int = 16000) -> np.ndarray:
    """A raw G.722 file decoded with ffmpeg (soundfile has no G.722 decoder)."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "prompt.wav"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "g722", "-i", str(path), "-ar", str(sampling_rate),
                        str(wav)], check=True)
        return load_audio(wav, target_sampling_rate=sampling_rate, min_duration=0.0).samples


def write_clean_speech(output: str | Path, espeak: int = 0, asterisk: tuple[str, ...] = (), seed: int = 0,
                       min_seconds: float = 1.0) -> int:
    """Fill a folder with clean speech (an audio-folder SPEC): `espeak` random espeak-ng utterances and the
    recorded Asterisk prompts of the given languages (prompts shorter than `min_seconds` are left out).
    Files already there are kept, so the call is cheap to repeat. Returns the number of clips present."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for index in range(espeak):
        target = output / "espeak" / f"{seed}-{index:05d}.wav"
        if not target.is_file():
            samples, _ = random_espeak_speech(seed * 1_000_003 + index)
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, samples, 16000, subtype="PCM_16")
    for language in asterisk:
        for prompt in asterisk_prompt_files(language):
            target = output / f"asterisk-{language}" / f"{prompt.stem}.wav"
            if target.is_file():
                continue
            samples = decode_g722(prompt)
            if len(samples) >= min_seconds * 16000:
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(target, samples, 16000, subtype="PCM_16")
    return sum(1 for _ in output.rglob("*.wav"))
