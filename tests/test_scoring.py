import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_sqa
from hf_sqa import AudioError, iter_scores, load_audio, load_model, score
from hf_sqa.models import ConvTransformerForMOSRegression
from hf_sqa.scoring import packaged_model_path
from hf_sqa.testing import synthetic_speech, tiny_student_config, write_clip


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return ConvTransformerForMOSRegression(tiny_student_config()).eval()


def _alone(model, samples):
    with torch.no_grad():
        return model(torch.from_numpy(samples)[None]).mos.item()


def test_score_paths_and_arrays_equal_single_forward(tiny_model, clip_folder):
    paths = sorted(str(p) for p in clip_folder.rglob("*.*"))
    expected = [_alone(tiny_model, load_audio(p).samples) for p in paths]
    for batch_size in (1, 2, 8):
        assert np.allclose(score(paths, model=tiny_model, batch_size=batch_size), expected, atol=1e-5)
    arrays = [load_audio(p).samples for p in paths]
    assert np.allclose(score(arrays, model=tiny_model, sampling_rate=16000), expected, atol=1e-5)
    assert score(paths[0], model=tiny_model).shape == (1,)


def test_iter_scores_goes_on_past_bad_inputs_in_order(tiny_model, clip_folder, tmp_path):
    good = sorted(str(p) for p in clip_folder.rglob("*.wav"))
    bad = str(write_clip(tmp_path / "nan.wav", np.full(16000, np.nan, np.float32), subtype="FLOAT"))
    silent = str(write_clip(tmp_path / "silent.wav", np.zeros(16000, np.float32)))
    inputs = [good[0], str(tmp_path / "missing.wav"), bad, good[1], silent]
    results = list(iter_scores(inputs, tiny_model, batch_size=2))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.source for r in results] == inputs
    assert [r.ok for r in results] == [True, False, False, True, True]
    assert results[1].error == "file does not exist" and "NaN" in results[2].error
    assert np.isnan(results[1].mos)
    assert results[4].is_silent and 1 <= results[4].mos <= 5
    assert results[3].mos == pytest.approx(_alone(tiny_model, load_audio(good[1]).samples), abs=1e-5)
    # 9 s clip -> 3 windows, ends clipped to the clip
    noisy = results[3]
    assert [round(s.start, 3) for s in noisy.segments] == [0.0, 0.66, 1.32]
    assert noisy.segments[-1].end == pytest.approx(9.0)


def test_score_raises_on_bad_input(tiny_model, tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file does not exist"):
        score([str(tmp_path / "missing.wav")], model=tiny_model)


def test_default_model_is_packaged_and_equals_a_fresh_conversion(distillmos_dir):
    """The shipped Distill-MOS checkpoint is what `hf-sqa convert distillmos` makes from the installed wheel
    today: same config, bit-identical weights, the wheel's licence next to them."""
    from safetensors.torch import load_file

    packaged = packaged_model_path("distillmos")
    model = load_model("distillmos")
    assert Path(model.config._name_or_path) == packaged and model.config.imported_from == "distillmos"
    assert sum(p.numel() for p in model.parameters()) == 4_133_226 and not model.training
    fresh, shipped = load_file(distillmos_dir / "model.safetensors"), load_file(packaged / "model.safetensors")
    assert fresh.keys() == shipped.keys() and all(torch.equal(fresh[k], shipped[k]) for k in fresh)
    config = json.loads((packaged / "config.json").read_text())
    assert config == json.loads((distillmos_dir / "config.json").read_text())
    assert (packaged / "LICENSE").read_text() == (distillmos_dir / "LICENSE").read_text()
    assert "MIT License" in (packaged / "LICENSE").read_text() and (packaged / "README.md").is_file()


def test_load_model_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a built-in name"):
        load_model(str(tmp_path / "nope"))


def test_unexpected_decoder_failure_becomes_an_error_row(tiny_model, clip_folder, monkeypatch):
    from hf_sqa.audio import AudioStream

    real_read = AudioStream.read

    def flaky_read(self):
        if self.label.endswith("noisy.wav"):
            raise RuntimeError("decoder crashed")
        return real_read(self)

    monkeypatch.setattr(AudioStream, "read", flaky_read)
    paths = [str(clip_folder / "noisy.wav"), str(clip_folder / "clean.wav")]
    results = list(iter_scores(paths, tiny_model))
    assert results[0].error == "RuntimeError: decoder crashed" and results[1].ok


def test_builtin_fast_model_ships_in_the_package_and_scores():
    from hf_sqa.models import FastMOSForMOSRegression

    model = load_model("fast")
    assert isinstance(model, FastMOSForMOSRegression)
    assert sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert (packaged_model_path("fast") / "README.md").is_file()  # its model card travels with it
    speech = load_audio(Path(__file__).resolve().parents[1] / "examples" / "clean.wav").samples
    noise = np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    noisy = speech + noise * np.sqrt(np.mean(speech**2) / 10 ** (-5 / 10))  # white noise at -5 dB SNR
    scores = score([speech, noisy], model="fast", sampling_rate=16000)
    assert np.all((scores >= 1) & (scores <= 5)) and scores[0] > scores[1] + 0.3


def test_window_hop_sets_the_distance_between_window_starts(tiny_model):
    from hf_sqa.models.windowing import window_starts

    clip = synthetic_speech(20.0, seed=7)
    default = next(iter_scores([clip], tiny_model, sampling_rate=16000))
    assert len(default.segments) == 14  # the model's rule: windows at most 1 s apart
    for hop in (2.0, 7.68):
        (result,) = iter_scores([clip], tiny_model, sampling_rate=16000, window_hop=hop)
        expected = window_starts(len(clip), 122880, int(round(hop * 16000)))
        assert [round(s.start * 16000) for s in result.segments] == expected
        with torch.no_grad():
            alone = tiny_model(torch.from_numpy(clip), window_max_hop=int(round(hop * 16000))).mos.item()
        assert result.mos == pytest.approx(alone, abs=1e-5)
        assert score(clip, model=tiny_model, sampling_rate=16000, window_hop=hop)[0] == pytest.approx(alone, abs=1e-5)
    assert len(expected) == 3 and tiny_model.config.window_max_hop == 16000  # the model itself is unchanged
    for bad in (0, -1.0, 7.7, float("nan")):
        with pytest.raises(ValueError, match="window_hop must be in"):
            list(iter_scores([clip], tiny_model, sampling_rate=16000, window_hop=bad))


def test_load_model_with_a_window_hop(tmp_path):
    torch.manual_seed(0)
    ConvTransformerForMOSRegression(tiny_student_config()).save_pretrained(tmp_path / "tiny")
    assert load_model(tmp_path / "tiny", window_hop=3.84).config.window_max_hop == 61440
    with pytest.raises(ValueError, match="window_hop must be in"):
        load_model(tmp_path / "tiny", window_hop=0.0)


def test_summary_of_a_files_windows():
    from hf_sqa.scoring import Segment, summarize_windows

    # the MOS of an instant is the mean of the windows covering it: 2 on [0, 2), 3 on [2, 4), 4 on [4, 6)
    windows = [Segment(0.0, 4.0, 2.0), Segment(2.0, 6.0, 4.0)]
    lowest, p10, share = summarize_windows(windows, below=3.0)
    assert (lowest, p10) == pytest.approx((2.0, 2.2)) and share == pytest.approx(2 / 6)
    assert summarize_windows(windows, below=3.5)[2] == pytest.approx(4 / 6)
    assert np.isnan(summarize_windows(windows)[2])
    # one window per instant (hop = window): time-weighted, the short last window counts for its length
    assert summarize_windows([Segment(0.0, 7.68, 2.0), Segment(7.68, 9.0, 4.0)], below=3.0)[2] == pytest.approx(7.68 / 9)


def test_results_carry_where_a_file_is_worst(tiny_model):
    clean = synthetic_speech(12.0, seed=8)
    noisy = synthetic_speech(12.0, seed=8, noise_db=-5.0)
    both = np.concatenate([clean, noisy])  # the file gets worse half way
    (result,) = iter_scores([both], tiny_model, sampling_rate=16000, below=3.0)
    window_mos = np.array([s.mos for s in result.segments])
    assert result.lowest_mos == pytest.approx(window_mos.min())
    assert result.p10_mos == pytest.approx(np.percentile(window_mos, 10))
    assert 0.0 <= result.share_below <= 1.0
    (without,) = iter_scores([both], tiny_model, sampling_rate=16000)
    assert np.isnan(without.share_below) and without.lowest_mos == result.lowest_mos


def test_streamed_inputs_score_as_whole_ones(tiny_model, clip_folder):
    paths = sorted(str(p) for p in clip_folder.rglob("*.*")) + [synthetic_speech(12.0, seed=3)]
    whole = list(iter_scores(paths, tiny_model, sampling_rate=16000))
    events = []
    streamed = list(iter_scores(paths, tiny_model, sampling_rate=16000, stream_seconds=0.0,
                                on_segment=lambda result, segment: events.append((result.index, segment))))
    for a, b in zip(whole, streamed):
        assert a.ok and b.ok and b.mos == pytest.approx(a.mos, abs=1e-6)
        assert [s.start for s in a.segments] == [s.start for s in b.segments]
        assert [s.end for s in a.segments] == [s.end for s in b.segments]
        assert np.allclose([s.mos for s in a.segments], [s.mos for s in b.segments], atol=1e-6)
        assert (a.duration, a.is_silent, a.p10_mos) == pytest.approx((b.duration, b.is_silent, b.p10_mos), abs=1e-6)
    assert [index for index, _ in events] == [r.index for r in streamed for _ in r.segments]


def test_a_long_file_that_stops_decoding_is_an_error_row_naming_where(tiny_model, tmp_path):
    good = write_clip(tmp_path / "good.flac", synthetic_speech(70.0, seed=1))
    cut = write_clip(tmp_path / "cut.flac", synthetic_speech(70.0, seed=2))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    results = list(iter_scores([str(cut), str(good)], tiny_model))
    assert "stops decoding at" in results[0].error and "corrupt or truncated" in results[0].error
    assert 20 < float(results[0].error.split("stops decoding at ")[1].split(" s")[0]) < 50
    assert results[1].ok and len(results[1].segments) == 64  # ceil((70 - 7.68) / 1) + 1


def test_a_stream_failing_while_scored_keeps_the_windows_before(tiny_model, tmp_path, monkeypatch):
    from hf_sqa.audio import AudioStream

    path = write_clip(tmp_path / "long.wav", synthetic_speech(90.0, seed=4))
    passes = []
    original = AudioStream.blocks

    def failing_second_pass(self):
        passes.append(1)
        for number, block in enumerate(original(self)):
            if number == 2:  # the scoring pass (the scan decodes on its own), 60 s in (30 s blocks)
                raise AudioError(self.label, "stops decoding at 60.0 s (simulated)")
            yield block

    monkeypatch.setattr(AudioStream, "blocks", failing_second_pass)
    seen = []
    (result,) = iter_scores([str(path)], tiny_model, on_segment=lambda r, s: seen.append(s))
    assert result.error == "stops decoding at 60.0 s (simulated)" and np.isnan(result.mos)
    assert 40 < len(result.segments) == len(seen) < 83 and result.segments[-1].end <= 60.0
    assert passes == [1]  # the scoring pass; the scan decodes on its own


def test_long_inputs_are_decoded_once_and_spooled_one_at_a_time(tiny_model, tmp_path, monkeypatch):
    """Each long input is decoded once (its scan's samples are read back for scoring), and its temporary file
    exists only while it is scored: a queue of long inputs holds one at a time, not one per input."""
    import tempfile

    from hf_sqa.audio import AudioStream

    paths = [str(write_clip(tmp_path / f"long{i}.flac", synthetic_speech(12.0 + i, seed=i))) for i in range(3)]
    whole = list(iter_scores(paths, tiny_model))
    decodes, spools, open_at_once = [], [], []
    original_blocks, original_file = AudioStream._source_blocks, tempfile.TemporaryFile

    def counted(self):
        decodes.append(self.label)
        yield from original_blocks(self)

    def spool_file():
        spools.append(original_file())
        open_at_once.append(sum(not spool.closed for spool in spools))
        return spools[-1]

    monkeypatch.setattr(AudioStream, "_source_blocks", counted)
    monkeypatch.setattr(tempfile, "TemporaryFile", spool_file)
    streamed = list(iter_scores(paths, tiny_model, stream_seconds=10.0))
    assert sorted(decodes) == paths and len(spools) == 3 and open_at_once == [1, 1, 1]
    assert all(spool.closed for spool in spools)
    assert [r.mos for r in streamed] == pytest.approx([r.mos for r in whole], abs=1e-6)


def _audio_dataset(folder, count: int = 5):
    import datasets

    paths = [str(write_clip(folder / f"clip{i}.wav", synthetic_speech(1.0 + 2 * i, seed=i))) for i in range(count)]
    (folder / "junk.wav").write_bytes(b"not audio")
    paths.append(str(folder / "junk.wav"))
    rows = {"audio": paths, "id": [f"row{i}" for i in range(len(paths))]}
    return datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio()), paths


def test_score_dataset_adds_mos_and_keeps_the_rest(tiny_model, tmp_path):
    import datasets

    dataset, paths = _audio_dataset(tmp_path)
    expected = score(paths[:-1], model=tiny_model)
    scored = hf_sqa.score_dataset(dataset, model=tiny_model, batch_size=2, windows=True)
    assert scored.features["audio"] == dataset.features["audio"] and scored["id"] == dataset["id"]
    assert np.allclose(scored["mos"][:-1], expected, atol=1e-6)
    assert np.isnan(scored["mos"][-1]) and "not a recognised audio format" in scored["mos_error"][-1]
    assert list(scored["mos_error"][:-1]) == [None] * (len(paths) - 1)
    row = scored.remove_columns("audio")[4]  # 9 s: 3 windows (decoding the audio rows would need torchcodec)
    assert len(row["window_mos"]) == len(row["window_start"]) > 1
    assert np.mean(row["window_mos"]) == pytest.approx(row["mos"], abs=1e-5)
    # parquet shards (bytes in the rows, as `hf-sqa degrade` writes them), several processes
    dataset.cast_column("audio", datasets.Audio(decode=False)).select(range(4)).to_parquet(tmp_path / "s.parquet")
    shards = datasets.load_dataset("parquet", data_files=str(tmp_path / "s.parquet"), split="train")
    in_two = hf_sqa.score_dataset(shards, model=tiny_model, num_proc=2)
    assert np.allclose(in_two["mos"], expected[:4], atol=1e-6)


def test_score_dataset_on_parquet_shards_written_by_hf_sqa_degrade(tiny_model, clip_folder, tmp_path):
    import datasets

    from hf_sqa.cli import main

    assert main(["degrade", "--clean", str(clip_folder), "--output", str(tmp_path / "shards"), "--num", "5",
                 "--shard-size", "2", "--quiet"]) == 0
    shards = datasets.load_dataset("parquet", data_files=str(tmp_path / "shards" / "*.parquet"), split="train")
    scored = hf_sqa.score_dataset(shards, model=tiny_model, batch_size=2)
    assert len(scored) == 5 and scored["id"] == shards["id"] and set(scored["mos_error"]) == {None}
    expected = score([row["audio"]["bytes"] for row in shards], model=tiny_model)
    assert np.allclose(scored["mos"], expected, atol=1e-6)


def test_score_dataset_streams_an_iterable_dataset(tiny_model, tmp_path):
    dataset, paths = _audio_dataset(tmp_path, count=3)
    scored = hf_sqa.score_dataset(dataset.to_iterable_dataset(), model=tiny_model)
    rows = list(scored)
    assert [r["id"] for r in rows] == dataset["id"]
    assert np.allclose([r["mos"] for r in rows[:-1]], score(paths[:-1], model=tiny_model), atol=1e-6)
    assert rows[-1]["mos_error"] and np.isnan(rows[-1]["mos"])
    with pytest.raises(ValueError, match="num_proc is for map-style"):
        hf_sqa.score_dataset(dataset.to_iterable_dataset(), model=tiny_model, num_proc=2)
    with pytest.raises(ValueError, match="no column 'speech'"):
        hf_sqa.score_dataset(dataset, model=tiny_model, audio_column="speech")


def test_score_dataset_on_a_mos_corpus_spec(tiny_model, tmp_path):
    """A SPEC of a MOS folder (audio as bytes/path structs, a human `mos` column): ours goes elsewhere."""
    from hf_sqa.data.specs import resolve
    from hf_sqa.testing import write_noisy_mos_folder

    corpus = resolve(str(write_noisy_mos_folder(tmp_path / "corpus", count=4))).with_format(None)
    with pytest.raises(ValueError, match="already has a column 'mos'; pass another output_column="):
        hf_sqa.score_dataset(corpus, model=tiny_model)
    scored = list(hf_sqa.score_dataset(corpus.to_iterable_dataset(), model=tiny_model, output_column="predicted"))
    expected = score([row["audio"]["bytes"] or row["audio"]["path"] for row in corpus], model=tiny_model)
    assert np.allclose([row["predicted"] for row in scored], expected, atol=1e-6)
    assert [row["mos"] for row in scored] == corpus["mos"] and all(r["predicted_error"] is None for r in scored)


@pytest.mark.parametrize("mos, band", [(4.6, "excellent"), (4.5, "excellent"), (4.49, "good"), (3.0, "fair"),
                                       (2.0, "poor"), (1.49, "bad"), (1.0, "bad"), (float("nan"), "")])
def test_quality_band_is_the_p800_category(mos, band):
    from hf_sqa.scoring import quality_band

    assert quality_band(mos) == band
