import json

import numpy as np
import pytest
from datasets import Audio, load_dataset

from hf_sqa.cli import main
from hf_sqa.data import resolve
from hf_sqa.data.degrade import DegradationPipeline, degraded_stream, load_catalogue, write_degraded_shards
from hf_sqa.testing import synthetic_speech, write_clip


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    for i in range(3):
        write_clip(folder / f"c{i}.wav", synthetic_speech(1.5, seed=i))
    return folder


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise")
    write_clip(folder / "hum.wav", (0.1 * np.sin(np.arange(16000) * 2 * np.pi * 50 / 16000)).astype(np.float32))
    return folder


def _rows(folder):
    data = resolve(str(folder))
    return {row["id"]: row for row in data}


def test_cli_writes_loadable_shards_and_worker_count_does_not_matter(clean_folder, noise_folder, tmp_path):
    base = ["degrade", "--clean", str(clean_folder), "--noise", str(noise_folder), "--num", "10",
            "--shard-size", "4", "--seed", "5", "--quiet"]
    assert main(base + ["--output", str(tmp_path / "one"), "--num-proc", "1"]) == 0
    assert main(base + ["--output", str(tmp_path / "two"), "--num-proc", "2"]) == 0
    files = sorted(p.name for p in (tmp_path / "one").glob("*.parquet"))
    assert files == ["shard-00000-of-00003.parquet", "shard-00001-of-00003.parquet", "shard-00002-of-00003.parquet"]
    raw = load_dataset("parquet", data_files=[str(p) for p in sorted((tmp_path / "one").glob("*.parquet"))], split="train")
    assert isinstance(raw.features["audio"], Audio) and len(raw) == 10
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert sorted(one) == [f"deg-{k:09d}" for k in range(10)]
    for key in one:
        assert one[key]["degradations"] == two[key]["degradations"]
        assert np.array_equal(one[key]["audio"], two[key]["audio"])
        assert one[key]["clean_id"] == f"{clean_folder.name}/c{int(key[-1]) % 3}.wav"


def test_resume_rewrites_only_missing_shards_and_refuses_other_arguments(clean_folder, tmp_path):
    out = tmp_path / "out"
    paths = write_degraded_shards(str(clean_folder), out, num=9, shard_size=3, seed=1, progress=False)
    kept = {p.name: p.stat().st_mtime_ns for p in paths}
    before = _rows(out)
    paths[1].unlink()
    (out / f".{paths[1].name}.123.partial").write_bytes(b"half a shard from a killed run")
    write_degraded_shards(str(clean_folder), out, num=9, shard_size=3, seed=1, progress=False)
    assert paths[0].stat().st_mtime_ns == kept[paths[0].name] and paths[2].stat().st_mtime_ns == kept[paths[2].name]
    after = _rows(out)
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(after[k]["audio"], before[k]["audio"]) for k in before)
    with pytest.raises(ValueError, match="holds shards of a different degrade run"):
        write_degraded_shards(str(clean_folder), out, num=9, shard_size=3, seed=2, progress=False)


def test_id_prefix_and_named_catalogue(clean_folder, tmp_path):
    """Sets trained on together get distinct ids; a shipped catalogue is chosen by name."""
    assert main(["degrade", "--clean", str(clean_folder), "--num", "4", "--seed", "3", "--catalogue", "mild",
                 "--output", str(tmp_path / "mild"), "--quiet"]) == 0
    write_degraded_shards(str(clean_folder), tmp_path / "prefixed", num=4, seed=3, catalogue="mild",
                          id_prefix="mild", progress=False)
    plain, prefixed = _rows(tmp_path / "mild"), _rows(tmp_path / "prefixed")
    assert sorted(prefixed) == [f"mild-{k:09d}" for k in range(4)]
    assert sorted(plain) == [f"deg-{k:09d}" for k in range(4)]
    assert all(json.loads(row["degradations"]) == [] or all(e["family"] in load_catalogue("mild")["families"]
               for e in json.loads(row["degradations"])) for row in prefixed.values())


def test_stream_yields_the_clips_the_shards_hold(clean_folder, tmp_path):
    write_degraded_shards(str(clean_folder), tmp_path / "shards", num=6, shard_size=6, seed=4, progress=False)
    shards = _rows(tmp_path / "shards")
    stream = list(degraded_stream(str(clean_folder), DegradationPipeline(seed=4), num=6, num_shards=4))
    assert sorted(row["id"] for row in stream) == sorted(shards)
    for row in stream:
        stored = shards[row["id"]]
        assert row["degradations"] == stored["degradations"]
        assert np.max(np.abs(np.asarray(row["audio"]) - stored["audio"])) <= 1.0 / 32768 + 1e-6  # 16-bit FLAC


def test_unlimited_stream_keeps_going_over_every_clean_clip(clean_folder):
    stream = degraded_stream(str(clean_folder), DegradationPipeline(seed=0), num=None, num_shards=2)
    rows = list(stream.take(12))
    assert len({row["id"] for row in rows}) == 12
    counts = {}
    for row in rows:
        counts[row["clean_id"]] = counts.get(row["clean_id"], 0) + 1
    assert sorted(counts.values()) == [4, 4, 4]  # blocks of 3 consecutive examples, one per clean clip
