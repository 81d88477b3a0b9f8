"""Degradations that audiomentations does not offer without extra dependencies, on its transform interface.

Each transform draws its parameters in `randomize_parameters` from the global `random` / `numpy.random`
generators (as audiomentations' own transforms do), so `DegradationPipeline` makes every one of them
reproducible by seeding those generators per example. Input and output: (time,) float32 at the given
sampling rate, same length.
"""

from __future__ import annotations

import io
import random

import numpy as np
import soundfile as sf
import soxr
from audiomentations.core.transforms_interface import BaseWaveformTransform
from scipy.signal import fftconvolve

from .synth import speech_like


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that 10 log10(P_speech / P_noise) = snr_db."""
    speech_rms, noise_rms = _rms(speech), _rms(noise)
    if speech_rms == 0 or noise_rms == 0:
        return speech.copy()
    gain = speech_rms / (noise_rms * 10 ** (snr_db / 20))
    return (speech + gain * noise).astype(np.float32)


def _excerpt(source: np.ndarray, length: int) -> np.ndarray:
    """`length` samples of `source` from a random start, looped when the source is shorter."""
    if len(source) < length:
        source = np.tile(source, length // len(source) + 1)
    start = random.randint(0, len(source) - length)
    return source[start : start + length]


class BabbleNoise(BaseWaveformTransform):
    """Several simultaneous speech-like talkers as noise, at an SNR from [min_snr_db, max_snr_db]."""

    def __init__(self, min_snr_db: float = -5.0, max_snr_db: float = 40.0, min_talkers: int = 3,
                 max_talkers: int = 8, p: float = 0.5):
        super().__init__(p)
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db
        self.min_talkers, self.max_talkers = min_talkers, max_talkers

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["snr_db"] = random.uniform(self.min_snr_db, self.max_snr_db)
            self.parameters["talkers"] = random.randint(self.min_talkers, self.max_talkers)
            self.parameters["talker_seed"] = random.getrandbits(31)

    def apply(self, samples, sample_rate):
        seconds = len(samples) / sample_rate
        seed = self.parameters["talker_seed"]
        # int(seconds * rate) can come out one sample short of len(samples): fit every talker to the clip
        babble = sum(_fit_length(speech_like(seconds, sample_rate, seed=seed + k), len(samples))
                     for k in range(self.parameters["talkers"]))
        return mix_at_snr(samples, np.asarray(babble, dtype=np.float32), self.parameters["snr_db"])


class NoiseFromClips(BaseWaveformTransform):
    """Additive noise cut from recorded noise clips (already decoded, e.g. from a noise SPEC)."""

    def __init__(self, noises: list[np.ndarray], min_snr_db: float = -5.0, max_snr_db: float = 40.0, p: float = 0.5):
        super().__init__(p)
        if not noises:
            raise ValueError("NoiseFromClips needs at least one noise clip")
        self.noises = noises
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["snr_db"] = random.uniform(self.min_snr_db, self.max_snr_db)
            self.parameters["noise_index"] = random.randrange(len(self.noises))

    def apply(self, samples, sample_rate):
        noise = _excerpt(self.noises[self.parameters["noise_index"]], len(samples))
        return mix_at_snr(samples, noise, self.parameters["snr_db"])


def synthetic_rir(rt60: float, sample_rate: int, direct_to_reverberant_db: float, seed: int) -> np.ndarray:
    """A room impulse response: a unit direct path followed by exponentially decaying noise whose energy
    falls by 60 dB in `rt60` seconds, scaled to the given direct-to-reverberant ratio."""
    rng = np.random.default_rng(seed)
    length = int(rt60 * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)  # amplitude 10^(-3) at rt60
    tail[: int(0.0025 * sample_rate)] = 0.0  # first reflections arrive after ~2.5 ms
    tail *= 10 ** (-direct_to_reverberant_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail.astype(np.float32)


class Reverberation(BaseWaveformTransform):
    """Convolution with a synthetic room impulse response (RT60, direct-to-reverberant ratio drawn), or
    with one of the given recorded RIRs. Output is level-matched to the input."""

    def __init__(self, min_rt60: float = 0.2, max_rt60: float = 1.2, min_drr_db: float = -6.0,
                 max_drr_db: float = 12.0, rirs: list[np.ndarray] | None = None, p: float = 0.5):
        super().__init__(p)
        self.min_rt60, self.max_rt60 = min_rt60, max_rt60
        self.min_drr_db, self.max_drr_db = min_drr_db, max_drr_db
        self.rirs = rirs or []

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            if self.rirs:
                self.parameters["rir_index"] = random.randrange(len(self.rirs))
            else:
                self.parameters["rt60"] = random.uniform(self.min_rt60, self.max_rt60)
                self.parameters["drr_db"] = random.uniform(self.min_drr_db, self.max_drr_db)
                self.parameters["rir_seed"] = random.getrandbits(31)

    def apply(self, samples, sample_rate):
        if self.rirs:
            rir = self.rirs[self.parameters["rir_index"]]
        else:
            rir = synthetic_rir(self.parameters["rt60"], sample_rate, self.parameters["drr_db"],
                                self.parameters["rir_seed"])
        wet = fftconvolve(samples, rir)[: len(samples)]
        return (wet * (_rms(samples) / (_rms(wet) + 1e-12))).astype(np.float32)


LAME_ENCODER_DELAY = 1105


class _LowBitrateCodec(BaseWaveformTransform):
    """A codec round trip through libsndfile at a bitrate drawn uniformly (integer kbps) per clip."""

    def __init__(self, min_bitrate_kbps: int, max_bitrate_kbps: int, p: float = 0.5):
        super().__init__(p)
        self.min_bitrate_kbps, self.max_bitrate_kbps = min_bitrate_kbps, max_bitrate_kbps

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["bitrate_kbps"] = random.randint(self.min_bitrate_kbps, self.max_bitrate_kbps)

    def _round_trip(self, samples: np.ndarray, sample_rate: int, **write_options) -> np.ndarray:
        """`samples` encoded with sf.write(..., **write_options) and decoded (float32); the bitrate actually
        encoded is recorded as `encoded_kbps`."""
        buffer = io.BytesIO()
        sf.write(buffer, samples, sample_rate, **write_options)
        self.parameters["encoded_kbps"] = round(len(buffer.getvalue()) * 8 / (len(samples) / sample_rate) / 1000, 1)
        buffer.seek(0)
        return sf.read(buffer, dtype="float32")[0]


class Mp3Codec(_LowBitrateCodec):
    """MP3 encode/decode round trip through libsndfile (LAME / mpg123) at a low bitrate."""

    def __init__(self, min_bitrate_kbps: int = 8, max_bitrate_kbps: int = 48, p: float = 0.5):
        super().__init__(min_bitrate_kbps, max_bitrate_kbps, p)

    def apply(self, samples, sample_rate):
        # libsndfile sets a constant MP3 bitrate from compression_level: about (1 - level) x the MPEG
        # version's maximum (160 kbps below 32 kHz, 320 kbps above), rounded to a standard bitrate, and
        # refuses level 1.0. The bitrate actually encoded is recorded.
        top = 160 if sample_rate < 32000 else 320
        level = float(np.clip(1 - self.parameters["bitrate_kbps"] / top, 0.0, 0.95))
        self.parameters["compression_level"] = level
        decoded = self._round_trip(samples, sample_rate, format="MP3", bitrate_mode="CONSTANT", compression_level=level)
        # Some streams come back untrimmed, longer than the input and late by LAME's encoder delay of
        # 1105 samples (576 + 529; measured at 8-48 kHz); trimmed ones have the input's length and no lag
        if len(decoded) - len(samples) >= LAME_ENCODER_DELAY:
            decoded = decoded[LAME_ENCODER_DELAY:]
        return _fit_length(decoded, len(samples))


class OpusCodec(_LowBitrateCodec):
    """Opus encode/decode round trip through libsndfile (Ogg Opus) at a low bitrate: below about 12 kbps
    Opus codes speech with SILK's linear prediction, whose artefacts differ from MP3's (and are nearer
    to those of very-low-bitrate neural codecs)."""

    RATES = (8000, 12000, 16000, 24000, 48000)  # the only sampling rates Opus codes

    def __init__(self, min_bitrate_kbps: int = 6, max_bitrate_kbps: int = 24, p: float = 0.5):
        if not 6 <= min_bitrate_kbps <= max_bitrate_kbps <= 256:
            raise ValueError("OpusCodec needs 6 <= min_bitrate_kbps <= max_bitrate_kbps <= 256")
        super().__init__(min_bitrate_kbps, max_bitrate_kbps, p)

    def apply(self, samples, sample_rate):
        # libsndfile sets Opus's bitrate from compression_level linearly: 256 kbps at 0 down to 6 kbps at 1
        # (measured at 8-48 kHz; Ogg adds about 0.3 kbps). Other sampling rates go through 48 kHz.
        rate = sample_rate if sample_rate in self.RATES else 48000
        signal = samples if rate == sample_rate else soxr.resample(samples, sample_rate, rate)
        level = float(np.clip(1 - (self.parameters["bitrate_kbps"] - 6) / 250, 0.0, 1.0))
        decoded = self._round_trip(signal, rate, format="OGG", subtype="OPUS", compression_level=level)  # aligned
        if rate != sample_rate:
            decoded = soxr.resample(decoded, rate, sample_rate)
        return _fit_length(decoded, len(samples))


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    if len(samples) >= length:
        return samples[:length].astype(np.float32)
    return np.pad(samples, (0, length - len(samples))).astype(np.float32)


def _mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    encoded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    quantized = np.round((encoded + 1) * 127.5) / 127.5 - 1  # 8 bits
    return np.sign(quantized) * np.expm1(np.abs(quantized) * np.log1p(mu)) / mu


def _a_law(x: np.ndarray, a: float = 87.6) -> np.ndarray:
    ax = np.abs(x)
    small = ax < 1 / a
    encoded = np.sign(x) * np.where(small, a * ax, 1 + np.log(np.maximum(a * ax, 1e-12))) / (1 + np.log(a))
    quantized = np.round((encoded + 1) * 127.5) / 127.5 - 1
    aq = np.abs(quantized) * (1 + np.log(a))
    return np.sign(quantized) * np.where(aq < 1, aq / a, np.exp(aq - 1) / a)


class G711Codec(BaseWaveformTransform):
    """G.711 round trip: resample to 8 kHz, 8-bit mu-law or A-law companding, back to the input rate."""

    def __init__(self, p: float = 0.5):
        super().__init__(p)

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["law"] = random.choice(["mu", "a"])

    def apply(self, samples, sample_rate):
        narrow = soxr.resample(np.clip(samples, -1, 1), sample_rate, 8000)
        coded = _mu_law(narrow) if self.parameters["law"] == "mu" else _a_law(narrow)
        return _fit_length(soxr.resample(coded.astype(np.float32), 8000, sample_rate), len(samples))


class ResamplingChain(BaseWaveformTransform):
    """Down to a lower rate and back up (band limitation plus resampler artefacts), 1-3 hops."""

    RATES = (4000, 6000, 8000, 11025, 12000)

    def __init__(self, max_hops: int = 3, p: float = 0.5):
        super().__init__(p)
        self.max_hops = max_hops

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            hops = random.randint(1, self.max_hops)
            self.parameters["rates"] = [random.choice(self.RATES) for _ in range(hops)]
            self.parameters["quality"] = random.choice(["QQ", "LQ", "MQ", "HQ"])

    def apply(self, samples, sample_rate):
        current, rate = samples, sample_rate
        for target in self.parameters["rates"] + [sample_rate]:
            current = soxr.resample(current, rate, target, quality=self.parameters["quality"])
            rate = target
        return _fit_length(current, len(samples))


class SpeedPerturbation(BaseWaveformTransform):
    """Another voice from the same recording: played `rate` times faster (resampled), so pitch and formants
    rise by `rate` together, as from a shorter vocal tract, and the clip gets 1 / rate as long. Not a
    degradation: a catalogue's `voice` stage applies it to the clean clip before the chain (Kaldi-style
    speed perturbation, for speaker variety); the rate is drawn log-uniformly."""

    def __init__(self, min_rate: float = 0.85, max_rate: float = 1.18, p: float = 0.5):
        super().__init__(p)
        if not 0 < min_rate <= max_rate:
            raise ValueError(f"SpeedPerturbation needs 0 < min_rate <= max_rate, got {min_rate}, {max_rate}")
        self.min_rate, self.max_rate = min_rate, max_rate

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["rate"] = float(np.exp(random.uniform(np.log(self.min_rate), np.log(self.max_rate))))

    def apply(self, samples, sample_rate):
        # the samples read as if taken at sample_rate * rate, brought back to sample_rate: rate times faster
        return soxr.resample(samples, sample_rate * self.parameters["rate"], sample_rate, quality="HQ").astype(np.float32)


class PacketLoss(BaseWaveformTransform):
    """Lost 20 ms frames from a two-state (Gilbert-Elliott) burst model: a frame is lost in the 'bad' state.

    loss_rate is the long-run fraction of lost frames, mean_burst the mean run of lost frames. Lost frames
    are zeroed (concealment-free decoder) or dropped (the signal closes up, then is zero-padded to length).
    """

    def __init__(self, min_loss_rate: float = 0.0, max_loss_rate: float = 0.3, min_mean_burst: float = 1.0,
                 max_mean_burst: float = 4.0, frame_ms: float = 20.0, p: float = 0.5):
        super().__init__(p)
        self.min_loss_rate, self.max_loss_rate = min_loss_rate, max_loss_rate
        self.min_mean_burst, self.max_mean_burst = min_mean_burst, max_mean_burst
        self.frame_ms = frame_ms

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            rate = random.uniform(self.min_loss_rate, self.max_loss_rate)
            burst = random.uniform(self.min_mean_burst, self.max_mean_burst)
            frames = int(np.ceil(len(samples) / (sample_rate * self.frame_ms / 1000)))
            # bad -> good with probability 1/burst; good -> bad chosen so the stationary loss rate is `rate`
            leave_bad = 1.0 / burst
            enter_bad = rate * leave_bad / max(1e-9, 1.0 - rate)
            lost, bad = [], random.random() < rate
            for _ in range(frames):
                lost.append(bad)
                bad = (random.random() >= leave_bad) if bad else (random.random() < enter_bad)
            self.parameters.update(loss_rate=rate, mean_burst=burst, mode=random.choice(["zero", "drop"]),
                                   lost_frames=[i for i, flag in enumerate(lost) if flag], frames=frames)

    def apply(self, samples, sample_rate):
        frame = int(sample_rate * self.frame_ms / 1000)
        keep = np.ones(len(samples), dtype=bool)
        for index in self.parameters["lost_frames"]:
            keep[index * frame : (index + 1) * frame] = False
        if self.parameters["mode"] == "zero":
            return (samples * keep).astype(np.float32)
        return _fit_length(samples[keep], len(samples))


class BandLimit(BaseWaveformTransform):
    """Telephone-style band limitation: narrowband 300-3400 Hz (through an 8 kHz round trip, as a
    narrowband link does), wideband 50-7000 Hz or super-wideband 50-14000 Hz (capped below Nyquist)."""

    BANDS = {"nb": (300.0, 3400.0), "wb": (50.0, 7000.0), "swb": (50.0, 14000.0)}

    def __init__(self, bands: list[str] | tuple[str, ...] = ("nb", "wb", "swb"), p: float = 0.5):
        super().__init__(p)
        unknown = set(bands) - set(self.BANDS)
        if unknown:
            raise ValueError(f"unknown bands {sorted(unknown)}; choose from {sorted(self.BANDS)}")
        self.bands = list(bands)

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["band"] = random.choice(self.bands)

    def apply(self, samples, sample_rate):
        from scipy.signal import butter, sosfilt

        low, high = self.BANDS[self.parameters["band"]]
        work, rate = samples, sample_rate
        if self.parameters["band"] == "nb" and sample_rate > 8000:
            work, rate = soxr.resample(samples, sample_rate, 8000), 8000
        high = min(high, 0.45 * rate)
        sos = butter(8, [low, high], btype="band", fs=rate, output="sos")
        filtered = sosfilt(sos, work).astype(np.float32)
        if rate != sample_rate:
            filtered = soxr.resample(filtered, rate, sample_rate)
        return _fit_length(filtered, len(samples))


def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced on the mel scale from 0 to Nyquist."""
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(0.0, mel(sample_rate / 2), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / np.maximum(centre - low, 1e-9)
    falling = (high - bins) / np.maximum(high - centre, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None)


class VocoderResynthesis(BaseWaveformTransform):
    """Speech rebuilt from a coarse spectral envelope, as a very-low-bitrate (neural or parametric) codec
    does: the STFT magnitude is reduced to `n_mels` mel bands, quantised in steps of `step_db`, spread back
    to linear frequency, and a waveform is found for it by Griffin-Lim (`iterations`) starting from the
    input's phase disturbed by uniform noise of +- `phase_noise` radians (pi: random phase). Fewer bands,
    coarser steps and more phase noise give buzzier, more smeared, phasier speech. The output has the
    input's RMS level."""

    N_FFT, HOP = 512, 128

    def __init__(self, min_mels: int = 16, max_mels: int = 80, min_step_db: float = 0.0, max_step_db: float = 6.0,
                 min_iterations: int = 2, max_iterations: int = 32, min_phase_noise: float = 0.0,
                 max_phase_noise: float = np.pi, p: float = 0.5):
        super().__init__(p)
        if not 1 <= min_mels <= max_mels or not 0 <= min_step_db <= max_step_db or not 1 <= min_iterations <= max_iterations:
            raise ValueError("VocoderResynthesis needs 1 <= min_mels <= max_mels, 0 <= min_step_db <= max_step_db "
                             "and 1 <= min_iterations <= max_iterations")
        self.min_mels, self.max_mels = min_mels, max_mels
        self.min_step_db, self.max_step_db = min_step_db, max_step_db
        self.min_iterations, self.max_iterations = min_iterations, max_iterations
        self.min_phase_noise, self.max_phase_noise = min_phase_noise, max_phase_noise

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters.update(n_mels=random.randint(self.min_mels, self.max_mels),
                                   step_db=random.uniform(self.min_step_db, self.max_step_db),
                                   iterations=random.randint(self.min_iterations, self.max_iterations),
                                   phase_noise=random.uniform(self.min_phase_noise, self.max_phase_noise),
                                   phase_seed=random.randrange(2**31))

    def _frames(self, samples: np.ndarray) -> np.ndarray:
        """(frames, N_FFT) Hann-windowed frames every HOP samples of the zero-padded signal."""
        padded = np.pad(samples, (self.N_FFT, self.N_FFT + self.HOP))
        count = (len(padded) - self.N_FFT) // self.HOP + 1
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.N_FFT)[:: self.HOP][:count]
        return frames * np.hanning(self.N_FFT)

    def _overlap_add(self, spectra: np.ndarray, length: int) -> np.ndarray:
        """Inverse of `_frames` (weighted overlap-add), cut to `length` samples."""
        window = np.hanning(self.N_FFT)
        frames = np.fft.irfft(spectra, n=self.N_FFT, axis=1) * window
        size = (len(frames) - 1) * self.HOP + self.N_FFT
        signal, weight = np.zeros(size), np.zeros(size)
        for k, frame in enumerate(frames):
            signal[k * self.HOP : k * self.HOP + self.N_FFT] += frame
            weight[k * self.HOP : k * self.HOP + self.N_FFT] += window**2
        return (signal / np.maximum(weight, 1e-8))[self.N_FFT : self.N_FFT + length]

    def apply(self, samples, sample_rate):
        original = np.fft.rfft(self._frames(samples.astype(np.float64)), axis=1)  # (frames, bins)
        magnitude = np.abs(original)
        bank = _mel_filterbank(sample_rate, self.N_FFT, self.parameters["n_mels"])
        mel_db = 20 * np.log10(magnitude @ bank.T + 1e-6)  # (frames, n_mels)
        step = self.parameters["step_db"]
        if step > 0:
            mel_db = np.round(mel_db / step) * step
        # back to linear frequency: each bin from the bands that cover it, weighted by their filters
        spread = bank / np.maximum(bank.sum(axis=0, keepdims=True), 1e-9)
        coarse = (10 ** (mel_db / 20) / np.maximum(bank.sum(axis=1), 1e-9)) @ spread
        noise = self.parameters["phase_noise"]
        phase = np.angle(original) + np.random.default_rng(self.parameters["phase_seed"]).uniform(-noise, noise, coarse.shape)
        spectra = coarse * np.exp(1j * phase)
        for _ in range(self.parameters["iterations"]):  # Griffin-Lim
            signal = self._overlap_add(spectra, len(samples))
            rebuilt = np.fft.rfft(self._frames(signal), axis=1)
            spectra = coarse * np.exp(1j * np.angle(rebuilt))
        out = self._overlap_add(spectra, len(samples))
        out *= _rms(samples) / max(_rms(out), 1e-9)
        return out.astype(np.float32)
