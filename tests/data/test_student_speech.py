"""Clean speech for the student: speaker-disjoint splits, pieces of bounded length, resumable."""

import csv

import numpy as np
import pytest

from hf_sqa.data.student_speech import SpeechSplit, cut_pieces, write_student_speech
from hf_sqa.testing import synthetic_speech, write_clip


def test_cut_pieces_are_equal_consecutive_and_bounded():
    samples = np.arange(25)
    pieces = cut_pieces(samples, 10)
    assert [len(p) for p in pieces] == [8, 8, 9]
    assert np.array_equal(np.concatenate(pieces), samples)
    assert len(cut_pieces(samples, 25)) == 1


@pytest.fixture
def librispeech_like(tmp_path):
    """A speakers.csv corpus: 3 training speakers (one 23 s utterance among them), 2 held-out speakers and a
    0.5 s clip that is too short."""
    root = tmp_path / "libri"
    rows = [("train-clean-100/1-1-0000.flac", "1", 23.0), ("train-clean-100/2-1-0000.flac", "2", 4.0),
            ("train-clean-100/3-1-0000.flac", "3", 0.5), ("test-other/8-1-0000.flac", "8", 6.0),
            ("test-other/9-1-0000.flac", "9", 3.0)]
    root.mkdir()
    with open(root / "speakers.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "speaker", "sex", "subset", "duration_s"])
        for k, (path, speaker, seconds) in enumerate(rows):
            write_clip(root / path, synthetic_speech(seconds, seed=k), format="FLAC")
            writer.writerow([path, speaker, "F", path.split("/")[0], seconds])
    return root


def test_speaker_disjoint_splits_with_bounded_pieces(librispeech_like, tmp_path):
    split = SpeechSplit(librispeech_root=str(librispeech_like), asterisk_train=(), asterisk_heldout=(),
                        espeak_train=0, max_seconds=10.0)
    out = tmp_path / "clean"
    counts = write_student_speech(out, split)
    assert counts == {"train": 3 + 1, "heldout": 2}  # 23 s -> 3 pieces of 7.67 s; 0.5 s left out
    with open(out / "speakers.csv") as handle:
        rows = list(csv.DictReader(handle))
    train = {r["speaker"] for r in rows if r["split"] == "train"}
    heldout = {r["speaker"] for r in rows if r["split"] == "heldout"}
    assert train == {"librispeech-1", "librispeech-2"} and heldout == {"librispeech-8", "librispeech-9"}
    assert max(float(r["duration_s"]) for r in rows) <= 10.0
    assert sorted(p.name for p in (out / "train").rglob("*.wav"))[:3] == ["1-1-0000-0.wav", "1-1-0000-1.wav",
                                                                          "1-1-0000-2.wav"]
    assert (out / "left_out.txt").read_text().split() == ["train/librispeech-train-clean-100/3-1-0000"]
    # a rerun finds everything and writes no audio again
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    assert write_student_speech(out, split) == counts
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
