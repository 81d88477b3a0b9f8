import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_sqa.cli import main
from hf_sqa.scoring import quality_band
from hf_sqa.testing import synthetic_speech, write_clip


def _read_csv(path):
    return list(csv.DictReader(open(path)))


def test_score_folder_to_csv(tiny_checkpoint, clip_folder, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["score", str(clip_folder), "--model", str(tiny_checkpoint), "--output", str(out), "--quiet"]) == 0
    rows = _read_csv(out)
    assert [Path(r["path"]).name for r in rows] == ["clean.wav", "noisy.wav"]  # not recursive by default
    assert all(1 <= float(r["mos"]) <= 5 and r["error"] == "" for r in rows)
    assert float(rows[1]["duration_s"]) == pytest.approx(9.0)


def test_recursive_segments_jsonl_channel_and_file_list(tiny_checkpoint, clip_folder, tmp_path):
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(clip_folder), "--recursive", "--segments", "--model", str(tiny_checkpoint),
                 "--output", str(out), "--quiet", "--batch-size", "2"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    records = [r for r in lines if "segment" not in r]  # a file's line follows its windows' lines
    assert [Path(r["path"]).name for r in records] == ["clean.wav", "noisy.wav", "stereo.flac"]
    assert [r["windows"] for r in records] == [1, 3, 1]
    windows = [r for r in lines if "segment" in r and r["path"] == records[1]["path"]]
    assert [w["segment"] for w in windows] == [0, 1, 2]
    assert windows[2] == pytest.approx({"path": records[1]["path"], "segment": 2, "start_s": 1.32, "end_s": 9.0,
                                        "mos": windows[2]["mos"]})
    assert lines.index(windows[2]) < lines.index(records[1])

    # speech on the left channel, digital silence on the right: the silent flag shows which was read
    speech = synthetic_speech(2.0)
    stereo = write_clip(tmp_path / "half.wav", np.stack([speech, np.zeros_like(speech)], axis=1))
    file_list = tmp_path / "list.txt"
    file_list.write_text(f"# one stereo clip\n{stereo}\n\n")
    left, right = tmp_path / "left.csv", tmp_path / "right.csv"
    for channel, target in ((0, left), (1, right)):
        assert main(["score", "--file-list", str(file_list), "--channel", str(channel), "--model",
                     str(tiny_checkpoint), "--output", str(target), "--quiet"]) == 0
    assert _read_csv(left)[0]["silent"] == "False" and _read_csv(right)[0]["silent"] == "True"


def test_shards_split_the_inputs_once_each(tiny_checkpoint, tmp_path, capsys):
    """--shard I/N scores every N-th input from the I-th: the shards' rows are the whole run's rows, each
    input in exactly one shard; a shard with nothing left is not an error; a bad I/N is a usage error."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(5):
        write_clip(folder / f"clip{i}.wav", synthetic_speech(1.0 + 0.5 * i, seed=i))
    whole = tmp_path / "whole.csv"
    assert main(["score", str(folder), "--model", str(tiny_checkpoint), "--output", str(whole), "--quiet"]) == 0
    parts = []
    for index in range(3):
        part = tmp_path / f"part{index}.csv"
        assert main(["score", str(folder), "--model", str(tiny_checkpoint), "--output", str(part), "--quiet",
                     "--shard", f"{index}/3"]) == 0
        parts.append(_read_csv(part))
    assert [Path(r["path"]).name for r in parts[0]] == ["clip0.wav", "clip3.wav"]
    assert [Path(r["path"]).name for r in parts[2]] == ["clip2.wav"]
    expected = {r["path"]: r["mos"] for r in _read_csv(whole)}
    assert {r["path"]: r["mos"] for part in parts for r in part} == expected
    assert sum(len(part) for part in parts) == 5
    assert main(["score", str(folder), "--model", str(tiny_checkpoint), "--quiet", "--shard", "6/7"]) == 0
    assert "shard 6/7: 0 of 5 inputs" in capsys.readouterr().err
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        assert main(["score", str(folder), "--model", str(tiny_checkpoint), "--quiet", f"--shard={bad}"]) == 2
        assert "--shard: expected I/N with 0 <= I < N" in capsys.readouterr().err


def test_segments_csv_has_a_row_per_window(tiny_checkpoint, clip_folder, tmp_path):
    out = tmp_path / "segments.csv"
    assert main(["score", str(clip_folder / "noisy.wav"), "--segments", "--model", str(tiny_checkpoint),
                 "--output", str(out), "--quiet"]) == 0
    rows = _read_csv(out)
    assert [r["segment"] for r in rows] == ["0", "1", "2", ""]  # windows as they are scored, then the file
    assert np.mean([float(r["mos"]) for r in rows[:3]]) == pytest.approx(float(rows[3]["mos"]), abs=1e-3)
    assert rows[2]["start_s"] == "1.320" and rows[2]["end_s"] == "9.000"


def test_table_on_stdout_flags_silence(tiny_checkpoint, tmp_path, capsys):
    clip = write_clip(tmp_path / "silence.wav", np.zeros(16000, np.float32))
    assert main(["score", str(clip), "--model", str(tiny_checkpoint), "--quiet"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["path", "mos", "quality", "note"]
    mos = float(row.split()[1])
    assert row.split()[2] == quality_band(mos) and row.endswith("digital silence")


def test_console_script_exit_status_with_one_bad_file(tiny_checkpoint, clip_folder, tmp_path):
    """The installed `hf-sqa` executable: a truncated file among good ones is reported, the rest scored,
    and the exit status is 1; all good gives 0."""
    broken = write_clip(tmp_path / "broken.flac", synthetic_speech(2.0))
    broken.write_bytes(broken.read_bytes()[:3000])
    out = tmp_path / "mixed.csv"
    exe = Path(sys.executable).with_name("hf-sqa")
    cmd = [str(exe), "score", str(clip_folder / "clean.wav"), str(broken), str(clip_folder / "noisy.wav"),
           "--model", str(tiny_checkpoint), "--output", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert run.returncode == 1, run.stderr
    rows = _read_csv(out)
    assert [Path(r["path"]).name for r in rows] == ["clean.wav", "broken.flac", "noisy.wav"]
    assert rows[1]["mos"] == "" and "corrupt or truncated" in rows[1]["error"]
    assert rows[0]["error"] == rows[2]["error"] == ""
    assert "1 of 3 inputs could not be scored" in run.stderr
    assert "scoring" in run.stderr  # tqdm progress bar on stderr

    good_only = [arg for arg in cmd if arg != str(broken)]
    good = subprocess.run(good_only, capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr


def test_resume_after_a_kill_scores_every_input_once(tiny_checkpoint, clip_folder, tmp_path, capsys):
    """--resume keeps the rows a killed run finished (a bad input's row too: it still sets the exit status),
    drops the row a kill cut short and scores the rest; the result is the uninterrupted run's."""
    broken = write_clip(tmp_path / "broken.flac", synthetic_speech(2.0))
    broken.write_bytes(broken.read_bytes()[:3000])
    inputs = [str(clip_folder / "clean.wav"), str(broken), str(clip_folder / "noisy.wav"),
              str(clip_folder / "sub" / "stereo.flac")]
    whole, out = tmp_path / "whole.csv", tmp_path / "scores.csv"
    command = ["score", *inputs, "--model", str(tiny_checkpoint), "--quiet", "--output"]
    assert main(command + [str(whole)]) == 1
    lines = whole.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:20])  # header, two rows, the third cut mid-line
    capsys.readouterr()
    assert main(command + [str(out), "--resume"]) == 1  # broken.flac, scored before the kill, still failed
    assert "2 of 4 inputs already scored" in capsys.readouterr().err
    assert out.read_text() == whole.read_text()
    assert main(command + [str(out), "--resume"]) == 1  # nothing left to score
    assert "4 of 4 inputs already scored" in capsys.readouterr().err and out.read_text() == whole.read_text()


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_resume_scores_a_half_written_file_again_without_its_old_window_rows(tiny_checkpoint, clip_folder, tmp_path,
                                                                             capsys, suffix):
    whole, out = tmp_path / f"whole.{suffix}", tmp_path / f"scores.{suffix}"
    command = ["score", str(clip_folder), "--recursive", "--segments", "--model", str(tiny_checkpoint), "--quiet",
               "--output"]
    assert main(command + [str(whole)]) == 0
    lines = whole.read_text().splitlines(keepends=True)
    rows = [json.loads(line) for line in lines] if suffix == "jsonl" else _read_csv(whole)
    is_window = (lambda r: "segment" in r) if suffix == "jsonl" else (lambda r: r["segment"] != "")
    noisy_windows = [k for k, r in enumerate(rows) if is_window(r) and r["path"].endswith("noisy.wav")]
    kill_after = noisy_windows[1] + (1 if suffix == "jsonl" else 2)  # the CSV's header is a line too
    out.write_text("".join(lines[:kill_after]))  # killed after two of noisy.wav's three windows
    assert main(command + [str(out), "--resume"]) == 0
    assert sorted(out.read_text().splitlines()) == sorted(whole.read_text().splitlines())  # each row once, same
    finished = sum(not is_window(r) for r in rows[: noisy_windows[1] + 1])
    assert f"{finished} of 3 inputs already scored" in capsys.readouterr().err


def test_resume_refuses_to_mix_in_another_models_scores(tiny_checkpoint, clip_folder, tmp_path):
    from hf_sqa.scoring import load_model

    other = load_model(str(tiny_checkpoint))
    with torch.no_grad():
        other.head.pooling.output.bias.add_(1.0)  # the same model, its logit 1 higher: scores higher
    other.save_pretrained(tmp_path / "other")
    out = tmp_path / "scores.csv"
    command = ["score", str(clip_folder), "--quiet", "--output", str(out), "--resume", "--model"]
    assert main(command + [str(tiny_checkpoint)]) == 0
    written = out.read_text()
    with pytest.raises(SystemExit, match="written by another model or other options"):
        main(command + [str(tmp_path / "other")])
    assert main(command + [str(tiny_checkpoint), "--precision", "bf16"]) == 0  # scores within 0.01: accepted
    assert out.read_text() == written


def test_resume_refuses_an_output_of_other_options(tiny_checkpoint, clip_folder, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    command = ["score", str(clip_folder), "--model", str(tiny_checkpoint), "--quiet", "--output", str(out)]
    assert main(command) == 0
    with pytest.raises(SystemExit, match="resume with the options that wrote it"):
        main(command + ["--resume", "--segments"])
    assert main(["score", str(clip_folder), "--model", str(tiny_checkpoint), "--resume"]) == 2
    assert "--resume continues an --output file" in capsys.readouterr().err


def test_convert_distillmos_cli(tmp_path, capsys):
    assert main(["convert", "distillmos", str(tmp_path / "dm")]) == 0
    assert "4.13 M parameters" in capsys.readouterr().out
    assert (tmp_path / "dm" / "model.safetensors").is_file()


def test_presets_lists_every_size(capsys):
    from hf_sqa.models import STUDENT_PRESETS

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "4,133,226" in out and all(name in out for name in STUDENT_PRESETS)


def test_cuda_request_without_cuda_is_a_usage_error(tiny_checkpoint, clip_folder, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["score", str(clip_folder), "--model", str(tiny_checkpoint), "--device", "cuda:0"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_usage_errors(tiny_checkpoint, tmp_path, capsys):
    assert main(["score", "--model", str(tiny_checkpoint)]) == 2
    assert main(["score", "x.wav", "--model", str(tmp_path / "no-such-model")]) == 2
    assert "neither a built-in name" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="must end in .csv or .jsonl"):
        main(["score", "x.wav", "--model", str(tiny_checkpoint), "--output", str(tmp_path / "x.txt")])


def test_hop_and_summary_columns(tiny_checkpoint, tmp_path, capsys):
    clip = write_clip(tmp_path / "long.wav", synthetic_speech(20.0, seed=5))
    default, hopped = tmp_path / "default.csv", tmp_path / "hopped.csv"
    assert main(["score", str(clip), "--model", str(tiny_checkpoint), "--output", str(default), "--quiet"]) == 0
    assert main(["score", str(clip), "--model", str(tiny_checkpoint), "--output", str(hopped), "--quiet",
                 "--hop", "7.68", "--below", "3.0", "--segments"]) == 0
    row = _read_csv(default)[0]
    assert "share_below" not in row and float(row["lowest_mos"]) <= float(row["p10_mos"]) <= float(row["mos"]) + 1e-4
    rows = _read_csv(hopped)
    assert [r["segment"] for r in rows] == ["0", "1", "2", ""]  # 3 windows at hop 7.68 s instead of 14
    assert float(rows[3]["lowest_mos"]) == pytest.approx(min(float(r["mos"]) for r in rows[:3]), abs=1e-4)
    assert 0.0 <= float(rows[3]["share_below"]) <= 1.0
    out = tmp_path / "hopped.jsonl"
    assert main(["score", str(clip), "--model", str(tiny_checkpoint), "--output", str(out), "--quiet",
                 "--hop", "2", "--below", "5"]) == 0
    record = json.loads(out.read_text())
    assert record["share_below"] == 1.0 and record["lowest_mos"] <= record["p10_mos"]
    assert main(["score", str(clip), "--model", str(tiny_checkpoint), "--hop", "0", "--quiet"]) == 2
    assert "--hop: window_hop must be in (0, 7.68]" in capsys.readouterr().err


def test_long_file_streams_its_window_rows_and_progress_counts_audio_seconds(tiny_checkpoint, tmp_path, capsys):
    long = write_clip(tmp_path / "long.flac", synthetic_speech(75.0, seed=6))  # over the 60 s stream threshold
    short = write_clip(tmp_path / "short.wav", synthetic_speech(4.0, seed=7))
    out = tmp_path / "windows.csv"
    assert main(["score", str(long), str(short), "--segments", "--model", str(tiny_checkpoint), "--output",
                 str(out), "--hop", "7.68"]) == 0
    rows = _read_csv(out)
    assert [r["segment"] for r in rows] == [str(k) for k in range(10)] + ["", "0", ""]  # ceil(67.32 / 7.68) + 1
    assert float(rows[9]["end_s"]) == pytest.approx(75.0)
    bar = capsys.readouterr().err
    assert "79/79 s of audio" in bar and "x real time" in bar


def test_progress_ends_exactly_at_the_audio_total():
    """A long file's windows move the bar by fractions of a second: it must end on its total, neither a hair
    short (a bar never full) nor past it (tqdm's clamping warning, a negative time left)."""
    import warnings

    import numpy as np

    from hf_sqa.cli import _AudioProgress

    progress = _AudioProgress([10.0, 10.0, 10.0, 1200.0], quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for index in range(3):
            progress.advance(index, float("inf"))
        for start in np.linspace(0, 1, 312) * (1200 * 16000 - 122880):  # fast's windows of 20 minutes
            progress.advance(3, min(int(start) + 122880, 1200 * 16000) / 16000)
            assert progress.bar.n <= progress.bar.total
        progress.advance(3, float("inf"))
    assert progress.bar.n == progress.bar.total == 1230.0
    progress.close()


def test_train_online_runs_with_catalogue_shares(tmp_path, capsys):
    """`hf-sqa train-online`: a student distilled on clean clips degraded and labelled in every step."""
    import yaml

    from hf_sqa.models import ConvTransformerForMOSRegression, student_config

    torch.manual_seed(0)
    ConvTransformerForMOSRegression(student_config("small")).save_pretrained(tmp_path / "teacher")
    for i in range(3):
        write_clip(tmp_path / "clean" / f"c{i}.wav", synthetic_speech(1.5 + i, seed=i))
    assert main(["train-online", "--clean", str(tmp_path / "clean"), "--teacher", str(tmp_path / "teacher"),
                 "--preset", "small", "--catalogue", "default=2", "mild=1", "--steps", "2", "--batch-size", "2",
                 "--workers", "0", "--output", str(tmp_path / "run")]) == 0
    assert str(tmp_path / "run" / "final") in capsys.readouterr().out
    recipe = yaml.safe_load((tmp_path / "run" / "final" / "training_recipe.yaml").read_text())
    assert recipe["catalogues"] == {"default": 2.0, "mild": 1.0} and recipe["steps"] == 2
    assert main(["train-online", "--clean", str(tmp_path / "no-such-folder"), "--output", str(tmp_path / "x")]) == 2
    assert "no-such-folder" in capsys.readouterr().err
