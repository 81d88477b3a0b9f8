"""Regenerate the example clips in this folder: espeak-ng speech, clean and with a few degradations.

    python examples/make_examples.py        (needs espeak-ng: apt-get install espeak-ng)

Deterministic for a given espeak-ng version: noise uses a fixed seed.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, sosfilt

HERE = Path(__file__).resolve().parent
RATE = 16000
TEXT = (
    "The quality of a speech recording depends on the microphone, the room, the codec and the network. "
    "Listeners rate it from one, bad, to five, excellent."
)


def synthesize(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
        samples, rate = sf.read(wav, dtype="float32")
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return speech + gain * noise


def main() -> None:
    rng = np.random.default_rng(0)
    clean = 0.5 * synthesize(TEXT) / np.abs(synthesize(TEXT)).max()
    clips = {
        "clean.wav": clean,
        "white_noise_snr5.wav": at_snr(clean, rng.standard_normal(len(clean)), 5.0),
        # narrowband telephone: 300-3400 Hz band-pass through an 8 kHz round trip
        "narrowband_8k.wav": soxr.resample(
            sosfilt(butter(6, [300, 3400], btype="band", fs=8000, output="sos"), soxr.resample(clean, RATE, 8000)),
            8000, RATE,
        ),
        "clipped.wav": np.clip(clean * 8.0, -0.5, 0.5),
        # 20 ms frames zeroed at random, 25 % of them
        "packet_loss_25.wav": clean * np.repeat(rng.random(len(clean) // 320 + 1) > 0.25, 320)[: len(clean)],
    }
    for name, samples in clips.items():
        sf.write(HERE / name, np.clip(samples, -1, 1).astype(np.float32), RATE, subtype="PCM_16")
    # a 44.1 kHz stereo FLAC to show resampling and channel mixing
    stereo = soxr.resample(np.stack([clean, 0.8 * clean], axis=1), RATE, 44100)
    sf.write(HERE / "clean_44k_stereo.flac", stereo, 44100, subtype="PCM_16")
    print(f"wrote {len(clips) + 1} clips to {HERE}")


if __name__ == "__main__":
    main()
