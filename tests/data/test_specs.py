import io
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset, DatasetDict

from hf_sqa.audio import AudioError
from hf_sqa.data import SpecError, parse_spec, resolve, resolve_many, shard_for_node
from hf_sqa.testing import synthetic_speech, write_clip


def _flac_bytes(samples, rate=16000):
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


@pytest.fixture
def mos_folder(tmp_path):
    folder = tmp_path / "corpus_a"
    for i in range(4):
        write_clip(folder / "audio" / f"c{i}.wav", synthetic_speech(1.0, 8000, seed=i), 8000)
    (folder / "labels.csv").write_text(
        "path,mos,condition\naudio/c0.wav,4.5,clean\naudio/c1.wav,2.25,noisy\naudio/c2.wav,3,noisy\naudio/c3.wav,1,codec\n"
    )
    return folder


@pytest.fixture
def parquet_folder(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for shard in range(2):
        rows = {
            "id": [f"deg-{shard}-{i}" for i in range(3)],
            "audio": [{"bytes": _flac_bytes(synthetic_speech(0.5, seed=10 * shard + i)), "path": None} for i in range(3)],
            "teacher_mos": [1.5 + shard + i / 2 for i in range(3)],
        }
        Dataset.from_dict(rows).to_parquet(str(folder / f"shard-{shard:05d}.parquet"))
    return folder


def test_parse_spec_kinds_and_options(mos_folder, parquet_folder, tmp_path):
    assert parse_spec(str(mos_folder)).kind == "mos_folder"
    assert parse_spec(str(mos_folder / "audio")).kind == "audio_folder"
    assert parse_spec(str(parquet_folder)).kind == "parquet"
    hub = parse_spec("someone/mos-corpus:clean@test#mos=MOS,audio=wav,weight=0.2,corpus=mc")
    assert (hub.kind, hub.location, hub.config, hub.split) == ("hub", "someone/mos-corpus", "clean", "test")
    assert hub.options == {"mos": "MOS", "audio": "wav", "weight": "0.2", "corpus": "mc"} and hub.weight == 0.2
    assert parse_spec("someone/corpus").split == "train"
    assert parse_spec(str(mos_folder) + "#corpus=A").corpus == "A"


@pytest.mark.parametrize(
    "text, message",
    [
        ("someone/corpus#speed=3", "bad option"),
        ("someone/corpus#weight=0", "weight must be positive"),
        ("someone/corpus#weight=abc", "is not a number"),
        ("/no/such/folder", "no such folder"),
    ],
)
def test_bad_specs_are_refused(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_a_file_is_not_a_spec(mos_folder):
    with pytest.raises(SpecError, match="not a file"):
        parse_spec(str(mos_folder / "labels.csv"))
    with pytest.raises(SpecError, match="only saved datasets have splits"):
        parse_spec(f"{mos_folder}@train")


def test_mos_folder_resolves_to_the_uniform_schema(mos_folder):
    data = resolve(str(mos_folder))
    assert data.column_names == ["id", "audio", "mos", "corpus", "condition"]
    first = data[0]
    assert first["id"] == "corpus_a/audio/c0.wav" and first["corpus"] == "corpus_a"
    assert first["mos"] == 4.5 and first["condition"] == "clean"
    assert first["audio"].dtype == np.float32 and first["audio"].shape == (16000,)  # 8 kHz -> 16 kHz
    assert [row["mos"] for row in data] == [4.5, 2.25, 3.0, 1.0]


def test_bad_rows_are_reported_with_their_line_and_skipped_or_refused(mos_folder, caplog):
    (mos_folder / "audio" / "broken.wav").write_bytes(b"RIFF....not really")
    (mos_folder / "labels.csv").write_text(
        "path,mos\naudio/c0.wav,4\naudio/missing.wav,3\naudio/c1.wav,good\naudio/broken.wav,2\naudio/c2.wav,9\n"
    )
    report = []
    data = resolve(str(mos_folder), report=report)
    assert [row["id"] for row in data] == ["corpus_a/audio/c0.wav"]
    assert [(bad.row, bad.reason.split(": ", 1)[1]) for bad in report] == [
        ("labels.csv line 3", "audio file does not exist"),
        ("labels.csv line 4", "MOS 'good' is not a number"),
        ("labels.csv line 5", report[2].reason.split(": ", 1)[1]),
        ("labels.csv line 6", "MOS 9.0 is outside 1..5 (map the corpus scale to 1-5 first)"),
    ]
    assert "unreadable audio" in report[2].reason
    assert "skipping 4 bad row(s)" in caplog.text and "labels.csv line 4" in caplog.text
    with pytest.raises(SpecError, match=r"4 bad row\(s\):\n  labels.csv line 3: 'audio/missing.wav'"):
        resolve(str(mos_folder), on_error="raise")


def test_labels_without_required_columns_are_refused(tmp_path):
    folder = tmp_path / "c"
    write_clip(folder / "a.wav", synthetic_speech(0.5))
    (folder / "labels.csv").write_text("file,score\na.wav,3\n")
    with pytest.raises(SpecError, match=r"missing column\(s\) \['mos', 'path'\]"):
        resolve(str(folder))


def test_audio_folder_is_unlabelled_and_recursive(mos_folder):
    write_clip(mos_folder / "audio" / "deeper" / "x.flac", synthetic_speech(0.5))
    data = resolve(str(mos_folder / "audio"))
    assert data["id"] == ["audio/c0.wav", "audio/c1.wav", "audio/c2.wav", "audio/c3.wav", "audio/deeper/x.flac"]
    assert set(data["mos"]) == {None}


def test_parquet_shards_pass_extra_columns_through(parquet_folder):
    data = resolve(str(parquet_folder))
    assert len(data) == 6 and "teacher_mos" in data.column_names
    row = data[4]
    assert row["id"] == "deg-1-1" and row["teacher_mos"] == 3.0 and row["mos"] is None
    assert np.allclose(row["audio"], synthetic_speech(0.5, seed=11), atol=1e-4)


def test_streaming_yields_the_same_rows(mos_folder, parquet_folder):
    for spec in (str(mos_folder), str(parquet_folder)):
        eager = resolve(spec)
        streamed = list(resolve(spec, streaming=True))
        assert [row["id"] for row in streamed] == eager["id"]
        for row, expected in zip(streamed, eager):
            assert np.allclose(row["audio"], expected["audio"]) and row["mos"] == expected["mos"]


def test_saved_dataset_with_column_mapping_and_splits(tmp_path, mos_folder):
    paths = [str(mos_folder / "audio" / f"c{i}.wav") for i in range(4)]
    table = Dataset.from_dict({"name": list("abcd"), "wav": paths, "score": [1.5, 2.5, 3.5, 4.5], "room": list("xxyy")})
    DatasetDict({"train": table.select(range(3)), "test": table.select([3])}).save_to_disk(str(tmp_path / "saved"))
    spec = f"{tmp_path / 'saved'}#audio=wav,mos=score,id=name,condition=room,corpus=mine"
    train = resolve(spec)
    assert train["id"] == ["a", "b", "c"] and train["mos"] == [1.5, 2.5, 3.5]
    assert train[0]["condition"] == "x" and train[0]["corpus"] == "mine" and train[0]["audio"].shape == (16000,)
    assert resolve(f"{tmp_path / 'saved'}@test#audio=wav,mos=score,id=name")["id"] == ["d"]
    with pytest.raises(SpecError, match="has splits \\['train', 'test'\\], not 'dev'"):
        resolve(f"{tmp_path / 'saved'}@dev#audio=wav")
    with pytest.raises(SpecError, match="no audio column 'sound'"):
        resolve(f"{tmp_path / 'saved'}#audio=sound")


def test_undecodable_audio_names_the_row(tmp_path):
    folder = tmp_path / "bad_shards"
    folder.mkdir()
    Dataset.from_dict({"id": ["good", "bad"], "audio": [
        {"bytes": _flac_bytes(synthetic_speech(0.5)), "path": None}, {"bytes": b"garbage", "path": None}
    ]}).to_parquet(str(folder / "s.parquet"))
    data = resolve(str(folder))
    assert data[0]["audio"].shape == (8000,)
    with pytest.raises(AudioError, match="row bad: not a recognised audio format"):
        data[1]


@pytest.mark.parametrize("streaming", [True, False])
def test_resolve_many_mixes_by_weight(tmp_path, streaming):
    folders = []
    for name in ("big", "small"):
        folder = tmp_path / name
        for i in range(40):
            write_clip(folder / f"{i}.wav", np.full(4000, 0.1, np.float32) * (i + 1) / 40)
        folders.append(folder)
    mixed = resolve_many([f"{folders[0]}#weight=3", f"{folders[1]}#weight=1"], streaming=streaming, seed=1,
                         stopping_strategy="first_exhausted")
    rows = list(mixed.take(40)) if streaming else [mixed[i] for i in range(40)]
    counts = Counter(row["corpus"] for row in rows)
    assert counts["big"] > 2 * counts["small"] > 0
    assert rows[0]["audio"].dtype == np.float32


def test_shard_for_node_splits_without_overlap(mos_folder):
    streamed = resolve(str(mos_folder), streaming=True)
    seen = [[row["id"] for row in shard_for_node(streamed, rank, 2)] for rank in range(2)]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(resolve(str(mos_folder))["id"])


@pytest.mark.slow
def test_hub_dataset_spec():
    """Needs the Hub: a public dataset with an audio column, mapped to the uniform schema."""
    data = resolve("hf-internal-testing/librispeech_asr_dummy:clean@validation#mos=none", streaming=True)
    row = next(iter(data))
    assert row["audio"].dtype == np.float32 and row["mos"] is None


def test_shared_real_corpus_resolves(caplog):
    from ..conftest import SHARED_MOS_CORPUS

    if not (SHARED_MOS_CORPUS / "labels.csv").is_file():
        pytest.skip("shared bvrnn_mushra corpus absent")
    data = resolve(str(SHARED_MOS_CORPUS), on_error="raise")
    assert len(data) == 128 and "skipping" not in caplog.text
    assert min(data["mos"]) >= 1 and max(data["mos"]) <= 5
    assert data[0]["audio"].dtype == np.float32 and data[0]["corpus"] == "bvrnn_mushra"
