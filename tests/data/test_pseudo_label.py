import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_sqa import load_audio, score
from hf_sqa.cli import main
from hf_sqa.data import resolve
from hf_sqa.data.pseudo_label import pseudo_label
from hf_sqa.models import ConvTransformerForMOSRegression, student_config
from hf_sqa.testing import synthetic_speech, write_clip


@pytest.fixture(scope="module")
def tiny_teacher(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unlabelled")
    for i in range(7):
        write_clip(folder / f"c{i}.wav", synthetic_speech(1.0 + i, seed=i))
    (folder / "broken.wav").write_bytes(b"RIFF and then nothing")
    return folder


def _labelled(folder):
    return {row["id"]: row for row in resolve(str(folder)).with_format(None)}


def test_labels_equal_direct_scoring_and_bad_rows_are_kept(tiny_teacher, data_folder, tmp_path):
    assert main(["pseudo-label", "--teacher", str(tiny_teacher), "--data", str(data_folder), "--output",
                 str(tmp_path / "out"), "--shard-size", "3", "--batch-size", "2", "--quiet"]) == 0
    rows = _labelled(tmp_path / "out")
    assert sorted(rows) == sorted(resolve(str(data_folder)).with_format(None)["id"])
    broken = rows[f"{data_folder.name}/broken.wav"]
    assert broken["teacher_mos"] is None and "not a recognised audio format" in broken["teacher_error"]
    good = [r for r in rows.values() if r["teacher_error"] is None]
    expected = score([data_folder / Path(r["id"]).name for r in good], model=str(tiny_teacher))
    assert np.allclose([r["teacher_mos"] for r in good], expected, atol=1e-5)
    longest = rows[f"{data_folder.name}/c6.wav"]  # 7 s clip -> 1 window; audio kept as the file's bytes
    assert len(longest["teacher_window_mos"]) == 1
    assert np.array_equal(load_audio(longest["audio"]["bytes"]).samples, load_audio(data_folder / "c6.wav").samples)


def test_split_over_processes_gives_the_same_shards(tiny_teacher, data_folder, tmp_path):
    pseudo_label(str(tiny_teacher), str(data_folder), tmp_path / "one", shard_size=2, progress=False)
    for index in range(3):
        pseudo_label(str(tiny_teacher), str(data_folder), tmp_path / "three", shard_size=2, num_shards=3,
                     shard_index=index, progress=False)
    one, three = _labelled(tmp_path / "one"), _labelled(tmp_path / "three")
    assert one.keys() == three.keys()
    assert all(one[k]["teacher_mos"] == three[k]["teacher_mos"] for k in one)
    assert sorted(p.name for p in (tmp_path / "one").glob("*.parquet")) == \
        sorted(p.name for p in (tmp_path / "three").glob("*.parquet"))


def test_other_arguments_into_the_same_folder_are_refused(tiny_teacher, data_folder, tmp_path):
    pseudo_label(str(tiny_teacher), str(data_folder), tmp_path / "out", shard_size=4, progress=False)
    with pytest.raises(ValueError, match="holds pseudo-labels of a different run"):
        pseudo_label(str(tiny_teacher), str(data_folder), tmp_path / "out", shard_size=5, progress=False)
    with pytest.raises(ValueError, match="shard_index 3 is outside 0..2"):
        pseudo_label(str(tiny_teacher), str(data_folder), tmp_path / "x", num_shards=3, shard_index=3)


def test_killed_run_resumes_with_every_example_exactly_once(tmp_path):
    """SIGKILL a real `hf-sqa pseudo-label` process mid-run, start it again, and check the result."""
    torch.manual_seed(1)
    teacher = tmp_path / "teacher"
    ConvTransformerForMOSRegression(student_config("distillmos-v7")).save_pretrained(teacher)  # ~0.1 s/clip
    data = tmp_path / "data"
    for i in range(80):
        write_clip(data / f"{i:03d}.wav", synthetic_speech(1.0, seed=i))
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("hf-sqa")), "pseudo-label", "--teacher", str(teacher),
               "--data", str(data), "--output", str(out), "--shard-size", "8", "--batch-size", "2", "--quiet"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list(out.glob("shard-*.parquet"))) < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = len(list(out.glob("shard-*.parquet")))
    assert 2 <= done_before < 10, f"the kill did not land mid-run ({done_before} of 10 shards)"

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list(out.glob("shard-*.parquet"))) == 10 and not list(out.glob(".*partial"))
    rows = resolve(str(out)).with_format(None)
    assert sorted(rows["id"]) == [f"{data.name}/{i:03d}.wav" for i in range(80)]  # each exactly once
    spot = [0, 37, 79]
    expected = score([data / f"{i:03d}.wav" for i in spot], model=str(teacher))
    by_id = {row["id"]: row["teacher_mos"] for row in rows}
    assert np.allclose([by_id[f"{data.name}/{i:03d}.wav"] for i in spot], expected, atol=1e-5)


def test_accelerate_launch_splits_the_units_between_processes(tiny_teacher, data_folder, tmp_path):
    out = tmp_path / "out"
    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1"}
    run = subprocess.run(
        [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "hf_sqa.cli", "pseudo-label",
         "--teacher", str(tiny_teacher), "--data", str(data_folder), "--output", str(out), "--shard-size", "2",
         "--quiet"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("2 shard(s) of") == 2  # 4 units, two each
    assert sorted(_labelled(out)) == sorted(resolve(str(data_folder)).with_format(None)["id"])
