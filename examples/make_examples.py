"""Regenerate the example clips in this folder: real recorded speech (LibriSpeech), clean and degraded in
documented ways, so that `make run` shows what the scores mean.

    python examples/make_examples.py        (reads ../shared/data: LibriSpeech utterances, a noise recording)

Deterministic: every degradation has fixed parameters and a fixed seed. Sources and licences: SOURCE.md.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

import hf_sqa
from hf_sqa.data.transforms import G711Codec, Mp3Codec, PacketLoss

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
RATE = 16000
# a female and a male LibriSpeech speaker (train-clean-100; CC BY 4.0)
SPEECH = SHARED / "librispeech_speakers" / "train-clean-100" / "1088-129236-0000.flac"
OTHER_SPEECH = SHARED / "librispeech_speakers" / "train-clean-100" / "1081-125237-0000.flac"
NOISE = SHARED / "noise_speech_commands" / "running_tap.wav"  # Speech Commands background noise (CC BY 4.0)


def at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled to `snr_db` dB (power over the whole clip)."""
    noise = noise[: len(speech)]
    gain = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return speech + gain * noise


def fixed(transform, samples: np.ndarray, seed: int, **parameters) -> np.ndarray:
    """One transform of hf_sqa.data.transforms with its random parameters set to `parameters`."""
    random.seed(seed)
    np.random.seed(seed)
    transform.randomize_parameters(samples, RATE)
    transform.parameters.update(parameters)
    return transform.apply(samples, RATE)


def degraded_clips(clean: np.ndarray, noise: np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    """file name -> (samples, what was done), all from the same clean utterance."""
    peak = np.abs(clean).max()
    return {
        "clean.wav": (clean, "the utterance as recorded (16 kHz)"),
        "noise_snr5.wav": (at_snr(clean, noise, 5.0), "a running tap (real recording) added at 5 dB SNR"),
        "narrowband_g711.wav": (fixed(G711Codec(p=1.0), clean, 0, law="mu"),
                                "G.711 telephone codec: 8 kHz, 8-bit mu-law, back to 16 kHz"),
        "packet_loss_10.wav": (fixed(PacketLoss(p=1.0, min_loss_rate=0.1, max_loss_rate=0.1, min_mean_burst=1.0,
                                                max_mean_burst=1.0), clean, 0, mode="zero"),
                               "10 % of 20 ms frames lost (single-frame bursts), zeroed"),
        "clipped.wav": (np.clip(clean, -0.25 * peak, 0.25 * peak) / (0.25 * peak) * 0.9,
                        "hard clipping at a quarter of the peak, then levelled"),
        "mp3_16kbps.wav": (fixed(Mp3Codec(p=1.0), clean, 0, bitrate_kbps=16), "MP3 at 16 kb/s (LAME), decoded"),
    }


def main() -> None:
    if not SPEECH.is_file():
        raise SystemExit(f"{SPEECH} is missing: the examples are made from ../shared/data (see SOURCE.md)")
    clean = hf_sqa.load_audio(SPEECH).samples
    noise = hf_sqa.load_audio(NOISE).samples[RATE * 10:]  # from 10 s in, past the recording's start
    clips = degraded_clips(clean, noise)
    for name, (samples, _) in clips.items():
        sf.write(HERE / name, np.clip(samples, -1, 1).astype(np.float32), RATE, subtype="PCM_16")
    # another speaker at 44.1 kHz stereo (the right channel quieter): resampling and channel mixing
    other = hf_sqa.load_audio(OTHER_SPEECH).samples
    stereo = soxr.resample(np.stack([other, 0.8 * other], axis=1), RATE, 44100)
    sf.write(HERE / "clean_44k_stereo.flac", stereo, 44100, subtype="PCM_16")
    print(f"wrote {len(clips) + 1} clips to {HERE}")
    for name, (_, what) in clips.items():
        print(f"  {name:<22} {what}")


if __name__ == "__main__":
    main()
