import json

import numpy as np
import pytest
from datasets import Dataset

from hf_sqa.data.degrade import DegradationPipeline, load_catalogue, stable_seed
from hf_sqa.data.synth import speech_like
from hf_sqa.data import transforms as T
import audiomentations

RATE = 16000


def _apply(transform, samples, **parameters):
    """Run a transform with fixed parameters (audiomentations' freeze mechanism)."""
    transform.parameters = {"should_apply": True, **parameters}
    transform.freeze_parameters()
    return transform(samples, RATE)


def _snr_db(clean, degraded):
    noise = degraded - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))


def _band_energy_db(samples, low, high):
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    total = spectrum.sum()
    return 10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() / total + 1e-30)


@pytest.fixture(scope="module")
def clean():
    return speech_like(6.0, seed=5)


@pytest.fixture(scope="module")
def white():
    return (np.random.default_rng(0).standard_normal(6 * RATE) * 0.1).astype(np.float32)


@pytest.mark.parametrize("snr", [-5.0, 10.0, 35.0])
def test_additive_noises_hit_their_snr(clean, snr):
    colour = audiomentations.AddColorNoise(min_snr_db=snr, max_snr_db=snr, p=1.0)
    assert _snr_db(clean, colour(clean, RATE)) == pytest.approx(snr, abs=0.5)
    babble = T.BabbleNoise(min_snr_db=snr, max_snr_db=snr, p=1.0)
    assert _snr_db(clean, babble(clean, RATE)) == pytest.approx(snr, abs=0.1)
    recorded = T.NoiseFromClips([speech_like(2.0, seed=9)], min_snr_db=snr, max_snr_db=snr, p=1.0)
    assert _snr_db(clean, recorded(clean, RATE)) == pytest.approx(snr, abs=0.1)


@pytest.mark.parametrize("band, low, high", [("nb", 300, 3400), ("wb", 50, 7000)])
def test_band_limits_are_visible_in_the_spectrum(white, band, low, high):
    out = _apply(T.BandLimit(p=1.0), white, band=band)
    assert _band_energy_db(out, high * 1.15, RATE / 2) < -35
    assert _band_energy_db(out, 0, low * 0.6) < -25
    assert _band_energy_db(out, low * 0.8, high * 1.1) > -0.2  # nearly all energy inside the band


def test_low_pass_and_resampling_chain_remove_high_band(white):
    low_pass = _apply(audiomentations.LowPassFilter(p=1.0), white, cutoff_freq=2000.0, rolloff=24, zero_phase=False)
    assert _band_energy_db(low_pass, 4000, RATE / 2) < -20
    chained = _apply(T.ResamplingChain(p=1.0), white, rates=[8000, 11025], quality="HQ")
    assert _band_energy_db(chained, 4100, RATE / 2) < -35


def test_clipping_ratio_matches_the_percentile(clean):
    out = _apply(audiomentations.ClippingDistortion(p=1.0), clean, percentile_threshold=20)
    # the percentile is split between the two ends: 10 % clipped at the top, 10 % at the bottom
    clipped = np.mean(np.isclose(out, out.max(), rtol=1e-6) | np.isclose(out, out.min(), rtol=1e-6))
    assert clipped == pytest.approx(0.20, abs=0.03)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.3])
def test_packet_loss_rate_and_bursts(rate):
    ones = np.ones(60 * RATE, np.float32)  # 3000 frames of 20 ms
    transform = T.PacketLoss(min_loss_rate=rate, max_loss_rate=rate, min_mean_burst=3, max_mean_burst=3, p=1.0)
    import random
    random.seed(1)
    transform.randomize_parameters(ones, RATE)
    transform.parameters["mode"] = "zero"
    transform.freeze_parameters()
    out = transform(ones, RATE)
    frames = out[: 3000 * 320].reshape(3000, 320)
    lost = np.all(frames == 0, axis=1)
    assert lost.mean() == pytest.approx(rate, abs=0.04)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, lost.astype(int), 0])))[::2]
    assert runs.mean() == pytest.approx(3.0, rel=0.35)
    dropped = _apply(T.PacketLoss(p=1.0), np.arange(1, 6401, dtype=np.float32), lost_frames=[1, 2], mode="drop")
    assert np.array_equal(dropped[:320], np.arange(1, 321)) and dropped[320] == 961 and np.all(dropped[-640:] == 0)


def test_codecs(clean):
    mp3 = T.Mp3Codec(p=1.0)
    out = _apply(mp3, clean, bitrate_kbps=16)
    assert out.shape == clean.shape and 8 <= mp3.parameters["encoded_kbps"] <= 40
    assert 0.5 < np.corrcoef(out, clean)[0, 1] < 0.9999  # aligned (encoder delay removed), yet changed
    opus = {kbps: _apply(T.OpusCodec(p=1.0), clean, bitrate_kbps=kbps) for kbps in (6, 24)}
    for kbps, out in opus.items():
        assert out.shape == clean.shape and out.dtype == np.float32
    assert np.corrcoef(opus[24], clean)[0, 1] > np.corrcoef(opus[6], clean)[0, 1] > 0.3  # aligned; 6 kbps worse
    coded = T.OpusCodec(p=1.0)
    _apply(coded, clean, bitrate_kbps=8)
    assert 6 <= coded.parameters["encoded_kbps"] <= 12
    seconds = len(clean) / RATE
    at_44k = np.interp(np.arange(int(seconds * 44100)) / 44100, np.arange(len(clean)) / RATE, clean).astype(np.float32)
    coded.parameters = {"should_apply": True, "bitrate_kbps": 16}
    coded.freeze_parameters()
    out_44k = coded(at_44k, 44100)  # not an Opus rate: coded through 48 kHz
    assert out_44k.shape == at_44k.shape and np.corrcoef(out_44k, at_44k)[0, 1] > 0.5
    with pytest.raises(ValueError, match="min_bitrate_kbps"):
        T.OpusCodec(min_bitrate_kbps=2)
    for law in ("mu", "a"):
        g711 = _apply(T.G711Codec(p=1.0), clean, law=law)
        assert 15 < _snr_db(clean, g711) < 45  # 8-bit companding at 8 kHz: band limit + quantisation


def _log_spectral_distance_db(a, b):
    """RMS over frames and bins of the difference of 512-point log power spectra (dB)."""
    from scipy.signal import stft

    _, _, sa = stft(a, nperseg=512)
    _, _, sb = stft(b, nperseg=512)
    return float(np.sqrt(np.mean((10 * np.log10(np.abs(sa) ** 2 + 1e-10) - 10 * np.log10(np.abs(sb) ** 2 + 1e-10)) ** 2)))


def test_vocoder_resynthesis_keeps_the_envelope_and_loses_detail_as_drawn(clean):
    fine = dict(n_mels=256, step_db=0.0, iterations=8, phase_noise=0.0, phase_seed=1)
    coarse = dict(n_mels=16, step_db=6.0, iterations=8, phase_noise=np.pi, phase_seed=1)
    outputs = {name: _apply(T.VocoderResynthesis(p=1.0), clean, **params)
               for name, params in (("fine", fine), ("coarse", coarse))}
    for out in outputs.values():
        assert out.shape == clean.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(clean**2)), rel=1e-3)  # level kept
    fine_lsd, coarse_lsd = (_log_spectral_distance_db(clean, outputs[k]) for k in ("fine", "coarse"))
    assert coarse_lsd > fine_lsd + 2  # fewer bands, coarse steps, random phase: further from the input
    assert np.corrcoef(outputs["fine"], clean)[0, 1] > 0.5  # the input's phase kept: still aligned
    assert abs(np.corrcoef(outputs["coarse"], clean)[0, 1]) < 0.5
    again = _apply(T.VocoderResynthesis(p=1.0), clean, **coarse)
    assert np.array_equal(again, outputs["coarse"])  # a function of its drawn parameters
    with pytest.raises(ValueError, match="min_mels <= max_mels"):
        T.VocoderResynthesis(min_mels=40, max_mels=20)


def test_mild_catalogue_keeps_some_clips_clean_and_the_rest_light(clean):
    pipeline = DegradationPipeline("mild", seed=0, noises=[speech_like(1.0, seed=2)])
    lengths = []
    for i in range(120):
        audio, applied = pipeline.degrade(clean[: RATE], f"m{i}")
        lengths.append(len(applied))
        if not applied:
            assert np.array_equal(audio, clean[: RATE])  # chain length 0: the clean clip itself
    counts = np.bincount(lengths, minlength=3)
    assert len(counts) == 3  # at most two families
    assert 0.12 < counts[0] / 120 < 0.4 and counts[1] > counts[2] > 0  # count_weights 1 : 2 : 1


def test_vocoder_catalogue_resynthesises_every_clip_within_its_ranges(clean):
    pipeline = DegradationPipeline("vocoder", seed=0)
    for i in range(4):
        audio, applied = pipeline.degrade(clean[: RATE], f"v{i}")
        assert [entry["family"] for entry in applied] == ["codec"]  # exactly one family: the vocoder
        params = applied[0]["params"]
        assert applied[0]["transform"] == "VocoderResynthesis" and 16 <= params["n_mels"] <= 128
        assert audio.shape == (RATE,) and not np.array_equal(audio, clean[: RATE])


def test_reverberation_decays_at_the_drawn_rt60():
    impulse = np.zeros(2 * RATE, np.float32)
    impulse[0] = 1.0
    rir = T.synthetic_rir(0.6, RATE, direct_to_reverberant_db=-10.0, seed=0)
    energy = np.cumsum((rir[::-1].astype(np.float64)) ** 2)[::-1]  # Schroeder backward integration
    decay_db = 10 * np.log10(energy / energy[0])
    t20 = (np.argmax(decay_db < -25) - np.argmax(decay_db < -5)) / RATE
    assert 3 * t20 == pytest.approx(0.6, rel=0.2)  # RT60 from the -5..-25 dB slope
    out = _apply(T.Reverberation(p=1.0), speech_like(3.0, seed=2), rt60=0.8, drr_db=0.0, rir_seed=3)
    assert np.isfinite(out).all() and out.shape == (3 * RATE,)


def test_level_and_bitcrush(clean):
    quiet = _apply(audiomentations.Gain(p=1.0), clean, amplitude_ratio=0.1)
    assert np.sqrt(np.mean(quiet**2) / np.mean(clean**2)) == pytest.approx(0.1, rel=1e-3)
    crushed = _apply(audiomentations.BitCrush(p=1.0), clean, bit_depth=4)
    assert len(np.unique(crushed)) <= 2**4 + 1


def test_pipeline_is_a_pure_function_of_seed_and_id(clean):
    first = DegradationPipeline(seed=7)
    outputs = [first.degrade(clean, f"clip-{i}") for i in range(8)]
    again = DegradationPipeline(seed=7)
    for i in reversed(range(8)):  # other order, fresh object
        audio, applied = again.degrade(clean, f"clip-{i}")
        assert np.array_equal(audio, outputs[i][0]) and applied == outputs[i][1]
    other_seed = DegradationPipeline(seed=8).degrade(clean, "clip-0")
    assert other_seed[1] != outputs[0][1] or not np.array_equal(other_seed[0], outputs[0][0])
    assert stable_seed(7, "clip-0") == stable_seed(7, "clip-0") != stable_seed(7, "clip-1")


def test_records_are_json_with_parameters(clean):
    families = set()
    pipeline = DegradationPipeline(seed=1)
    for i in range(40):
        _, applied = pipeline.degrade(clean[: RATE * 2], f"x{i}")
        assert 1 <= len(applied) <= 3
        json.dumps(applied)
        families.update(entry["family"] for entry in applied)
        for entry in applied:
            assert entry["params"], entry
    assert len(families) >= 8  # the chain draws from most families


def test_identical_output_whatever_the_number_of_workers():
    clips = Dataset.from_dict({"id": [f"c{i}" for i in range(8)],
                               "audio": [speech_like(1.0, seed=i).tolist() for i in range(8)]})
    pipeline = DegradationPipeline(seed=3)
    single = clips.map(pipeline, num_proc=1)
    double = clips.map(pipeline, num_proc=2)
    assert single["degradations"] == double["degradations"]
    assert all(np.array_equal(a, b) for a, b in zip(single["audio"], double["audio"]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["families"]["noise"]["options"].append({"transform": "Nope"}), "unknown degradation transform 'Nope'"),
        (lambda c: c["order"].remove("noise"), "'noise' is missing from 'order'"),
        (lambda c: c["families"]["eq"]["options"][0]["params"].update(speed=2), "SevenBandParametricEQ in 'eq'"),
        (lambda c: c["chain"].update(max_families=50), "exceeds the"),
        (lambda c: c["chain"].update(count_weights=[1, 1]), "one weight per chain length 1..3"),
        (lambda c: c["chain"].update(min_families=-1), "0 <= min_families"),
    ],
)
def test_bad_catalogues_are_refused(change, message):
    catalogue = load_catalogue(None)
    change(catalogue)
    with pytest.raises(ValueError, match=message):
        DegradationPipeline(catalogue)


def test_eq_tanh_and_aliasing_change_the_signal_as_named(clean, white):
    import random

    random.seed(2)
    coloured = audiomentations.SevenBandParametricEQ(min_gain_db=-12, max_gain_db=12, p=1.0)(white, RATE)
    octaves = [(100, 200), (200, 400), (400, 800), (800, 1600), (1600, 3200), (3200, 6400)]
    ratios = [_band_energy_db(coloured, lo, hi) - _band_energy_db(white, lo, hi) for lo, hi in octaves]
    assert max(ratios) - min(ratios) > 2  # colouration: octave bands change differently (a flat gain: ~0 dB)
    sine = (0.5 * np.sin(2 * np.pi * 500 * np.arange(RATE) / RATE)).astype(np.float32)  # 500 Hz: bin 500
    tanh = _apply(audiomentations.TanhDistortion(p=1.0), sine, distortion_amount=0.6)
    spectrum = np.abs(np.fft.rfft(tanh)) ** 2
    harmonics = sum(spectrum[500 * k] for k in range(2, 16))
    clean_spectrum = np.abs(np.fft.rfft(sine)) ** 2
    assert sum(clean_spectrum[500 * k] for k in range(2, 16)) / clean_spectrum[500] < 1e-8
    assert harmonics / spectrum[500] > 1e-3  # THD above 3 % (measured 5.6 %): new harmonics
    assert np.sqrt(np.mean(tanh**2)) == pytest.approx(np.sqrt(np.mean(sine**2)), rel=1e-3)  # loudness kept
    tone = (0.5 * np.sin(2 * np.pi * 6000 * np.arange(RATE) / RATE)).astype(np.float32)
    aliased = _apply(audiomentations.Aliasing(p=1.0), tone, new_sample_rate=8000)
    peak_hz = np.argmax(np.abs(np.fft.rfft(aliased))) * RATE / len(aliased)
    assert peak_hz == pytest.approx(2000, abs=20)  # 6 kHz folds around 4 kHz to 2 kHz


@pytest.mark.skipif(not __import__("hf_sqa.data.synth", fromlist=["x"]).espeak_available(), reason="espeak-ng not installed")
def test_espeak_synthesis_is_random_but_reproducible():
    from hf_sqa.data.synth import random_espeak_speech

    first, settings = random_espeak_speech(seed=3)
    again, same = random_espeak_speech(seed=3)
    other, different = random_espeak_speech(seed=4)
    assert settings == same and np.array_equal(first, again)
    assert different != settings and len(settings["text"].split()) >= 8
    assert first.dtype == np.float32 and 1.0 < len(first) / RATE < 20 and np.abs(first).max() > 0.05


@pytest.mark.parametrize("catalogue", ["default", "mild"])
@pytest.mark.parametrize("length", [32370, 4007, 16001])  # 32370, 4007: int(n / sr * sr) == n - 1
def test_every_option_keeps_the_clip_length(length, catalogue):
    import random

    clip = speech_like(3.0, seed=1)[:length]
    pipeline = DegradationPipeline(catalogue, seed=0, noises=[speech_like(1.0, seed=2)])
    for family, (_, options) in pipeline.families.items():
        for _, transform in options:
            random.seed(length)
            np.random.seed(length)
            out = transform(clip, RATE)
            assert out.shape == (length,), (family, type(transform).__name__)
            assert np.isfinite(out).all()


def test_asterisk_prompts_decode_when_installed():
    import shutil
    import subprocess

    from hf_sqa.data.synth import asterisk_prompt_files, decode_g722

    if shutil.which("ffmpeg") is None or subprocess.run(["dpkg", "-s", "asterisk-core-sounds-en-g722"],
                                                        capture_output=True).returncode != 0:
        pytest.skip("asterisk-core-sounds-en-g722 or ffmpeg not installed")
    prompts = asterisk_prompt_files("en")
    assert len(prompts) > 500
    speech = decode_g722(next(p for p in prompts if p.name == "hello-world.g722"))
    assert speech.dtype == np.float32 and 0.5 < len(speech) / RATE < 5 and np.abs(speech).max() > 0.05


def _clean_folder(root, count=4):
    from hf_sqa.testing import synthetic_speech, write_clip

    for i in range(count):
        write_clip(root / f"clip{i}.wav", synthetic_speech(1.0 + 0.5 * i, seed=i))
    return root


def test_degraded_clip_stream_is_reproducible_per_worker_and_16_bit(tmp_path):
    import itertools
    from unittest import mock

    from hf_sqa.data.degrade import DegradedClipStream

    clean = _clean_folder(tmp_path / "clean")
    stream = DegradedClipStream(clean, catalogues={"default": 1, "mild": 1}, seed=3)
    first = [x["audio"] for x in itertools.islice(iter(stream), 6)]
    again = [x["audio"] for x in itertools.islice(iter(stream), 6)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    lengths = {len(a) for a in first}
    assert lengths <= {16000, 24000, 32000, 40000}  # whole clean clips: the degradations keep the length
    for audio in first:  # clipped and rounded to 16 bits, as a degraded file read back
        assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
        assert np.allclose(audio * 32767, np.round(audio * 32767), atol=1e-3)
    # another DataLoader worker draws other clips and chains
    with mock.patch("torch.utils.data.get_worker_info", return_value=mock.Mock(id=1)):
        other = [x["audio"] for x in itertools.islice(iter(stream), 6)]
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(first, other))
    assert stream.mean_seconds() == pytest.approx(np.mean([1.0, 1.5, 2.0, 2.5]), abs=1e-3)


def test_degraded_clip_stream_refuses_bad_inputs(tmp_path):
    from hf_sqa.data.degrade import DegradedClipStream

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        DegradedClipStream(tmp_path / "empty")
    clean = _clean_folder(tmp_path / "clean", count=1)
    with pytest.raises(FileNotFoundError, match="no-such-catalogue"):
        DegradedClipStream(clean, catalogues={"no-such-catalogue": 1})
    with pytest.raises(ValueError, match="positive"):
        DegradedClipStream(clean, catalogues={"default": 0})


def test_speed_perturbation_moves_pitch_and_length_together():
    """SpeedPerturbation plays the clip `rate` times faster: a 200 Hz tone goes to 200 * rate Hz and the
    clip to 1 / rate of its length."""
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    for rate in (0.87, 1.15):
        transform = T.SpeedPerturbation(min_rate=rate, max_rate=rate, p=1.0)
        out = transform(tone, RATE)
        assert transform.parameters["rate"] == pytest.approx(rate)
        assert len(out) == pytest.approx(len(tone) / rate, abs=2)
        spectrum = np.abs(np.fft.rfft(out))
        assert np.fft.rfftfreq(len(out), 1 / RATE)[spectrum.argmax()] == pytest.approx(200 * rate, rel=0.01)
    with pytest.raises(ValueError, match="min_rate"):
        T.SpeedPerturbation(min_rate=1.2, max_rate=1.0)


def test_voice_stage_comes_before_the_chain_for_its_share_of_clips(clean):
    catalogue = dict(load_catalogue("mild"))
    catalogue["voice"] = {"probability": 0.5, "options": [
        {"transform": "SpeedPerturbation", "params": {"min_rate": 0.85, "max_rate": 1.18}}]}
    pipeline = DegradationPipeline(catalogue, seed=1)
    records = [pipeline.degrade(clean, f"clip-{i}") for i in range(40)]
    voiced = [(audio, applied) for audio, applied in records if applied and applied[0]["family"] == "voice"]
    assert 10 <= len(voiced) <= 30  # about half
    assert all(a["family"] != "voice" for _, applied in records for a in applied[1:])  # first, and only once
    for audio, applied in voiced:
        assert len(audio) == pytest.approx(len(clean) / applied[0]["params"]["rate"], abs=2)
    assert all(len(audio) == len(clean) for audio, applied in records if not applied or applied[0]["family"] != "voice")
    catalogue["voice"]["probability"] = 1.5
    with pytest.raises(ValueError, match="voice probability"):
        DegradationPipeline(catalogue)
