"""Clean speech for the student: speaker-disjoint splits, pieces of bounded length, resumable."""

import csv

import numpy as np
import pytest

from hf_sqa.data.student_speech import (
    WORD_SOURCES,
    SpeechSplit,
    cut_pieces,
    join_word_clips,
    recordings_by_voice,
    trim_silence,
    write_student_speech,
    write_word_speech,
)
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


def test_recorded_words_are_trimmed_and_joined_into_clips_per_language(tmp_path):
    """Word recordings (any rate, stereo) -> 4-10 s clips of one language each, silences trimmed, seeded."""
    import soundfile as sf

    files = {}
    for language, rate in (("ca", 44100), ("da", 22050)):
        for k in range(12):  # 12 words of ~0.8 s speech between 0.5 s silences
            word = np.concatenate([np.zeros(rate // 2), 0.5 * synthetic_speech(0.8, seed=k, sampling_rate=rate),
                                   np.zeros(rate // 2)]).astype(np.float32)
            path = tmp_path / "words" / language / f"{k}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.stack([word, word], 1), rate)
            files.setdefault(language, []).append(path)
    silent = np.concatenate([np.zeros(8000), np.ones(3200), np.zeros(8000)]).astype(np.float32)
    assert len(trim_silence(silent)) == 3200 + 4 * 320  # 40 ms before and after the loud frames
    join_word_clips(files, tmp_path / "out", "words", seconds_per_voice=9.0)
    for language in ("ca", "da"):
        clips = sorted((tmp_path / "out" / f"words-{language}").glob("*.wav"))
        assert [c.name for c in clips][:2] == ["000-0.wav", "001-0.wav"]  # stops once 9 s are written
        for clip in clips:
            info = sf.info(clip)
            assert info.samplerate == 16000 and info.channels == 1 and 1.0 <= info.duration <= 10.0
        # trimmed: each word keeps ~0.9 s with its margins, plus a 0.15-0.5 s pause; never the 1 s silences
        assert sum(sf.info(c).duration for c in clips[:-1]) / len(clips[:-1]) >= 4.0
    again = tmp_path / "again"
    join_word_clips(files, again, "words", seconds_per_voice=9.0)
    assert all(np.array_equal(sf.read(c)[0], sf.read(again / c.relative_to(tmp_path / "out"))[0])
               for c in (tmp_path / "out").rglob("*.wav"))
    # prompt-length clips (the short word sources): 1-3 s asked for, so one or two ~0.9 s words and a pause
    join_word_clips(files, tmp_path / "short", "words", seconds_per_voice=9.0, clip_seconds=(1.0, 3.0))
    short = sorted((tmp_path / "short" / "words-ca").glob("*.wav"))
    assert len(short) > len(sorted((tmp_path / "out" / "words-ca").glob("*.wav")))
    assert all(1.0 <= sf.info(c).duration <= 4.0 for c in short)


def test_word_sources_find_each_recordings_voice_and_drop_repeats(tmp_path):
    """Each package's layout (what dpkg -L lists) -> its files by voice: the language from the path's
    folders (KLettres, KTuberling) or its name (Tux Paint), language and speaker (Fish Fillets: the two fish,
    the same across levels; other characters left out), other files left out, repeated bytes once."""
    layouts = {
        "klettres": {"usr/share/klettres/fr/alpha/a.ogg": "fr", "usr/share/klettres/en_GB/syllab/ba.ogg": "en_GB",
                     "usr/share/klettres/fr/pics/a.png": None},
        "ktuberling": {"usr/share/ktuberling/sounds/da/hat.wav": "da", "usr/share/ktuberling/sounds/sr/eye.ogg": "sr",
                       "usr/share/ktuberling/sounds/sr@latin/eye.ogg": "sr@latin"},
        "tuxpaint": {"usr/share/tuxpaint/stamps/animals/frog_desc_ro.ogg": "ro",
                     "usr/share/tuxpaint/stamps/animals/frog_desc_el.ogg": "el",
                     "usr/share/tuxpaint/stamps/animals/frog_desc.ogg": None,  # English: no language in its name
                     "usr/share/tuxpaint/stamps/animals/frog.ogg": None,  # the stamp's sound effect
                     "usr/share/tuxpaint/stamps/town/stone_desc_da.ogg.ogg": None},
        "fillets": {"usr/share/games/fillets-ng/sound/barrel/cs/bar-m-no.ogg": "cs-m",
                    "usr/share/games/fillets-ng/sound/city/cs/vit-m-hlava.ogg": "cs-m",
                    "usr/share/games/fillets-ng/sound/city/nl/vit-v-proc.ogg": "nl-v",
                    "usr/share/games/fillets-ng/sound/city/cs/vit-hs-klid1.ogg": None,  # a level's own character
                    "usr/share/games/fillets-ng/sound/city/en/vit-x-end.ogg": None,  # English: effects, no fish
                    "usr/share/games/fillets-ng/sound/share/help1.ogg": None,
                    "usr/share/games/fillets-ng/music/kufrik.ogg": None},
    }
    for source, layout in layouts.items():
        paths = []
        for k, name in enumerate(layout):
            path = tmp_path / source / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"same" if name.endswith("eye.ogg") else f"{source}{k}".encode())
            paths.append(path)
        found = recordings_by_voice(paths + [paths[0].parent], WORD_SOURCES[source].voice_pattern)
        expected: dict[str, list] = {}
        for path, language in zip(paths, layout.values()):
            if language and not (source == "ktuberling" and language == "sr@latin"):  # its bytes repeat "sr"'s
                expected.setdefault(language, []).append(path)
        assert found == expected, source


def test_word_speech_leaves_out_every_voice_of_the_held_out_language(tmp_path, monkeypatch):
    """A source with several speakers per language (voices "<language>-<speaker>"): every voice of the
    held-out language is left out, the others become clips in folders of their own; a folder that exists is
    kept as it is."""
    import soundfile as sf

    from hf_sqa.data import student_speech

    recordings = {}
    for voice in ("cs-m", "cs-v", "ru-m"):
        for k in range(4):
            path = tmp_path / "recorded" / voice / f"{k}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.5 * synthetic_speech(2.5, seed=k), 16000)
            recordings.setdefault(voice, []).append(path)
    monkeypatch.setattr(student_speech, "word_recordings", lambda source: recordings)
    folder = write_word_speech(tmp_path / "clean", "fillets", held_out_languages=("ru",))
    assert sorted(d.name for d in folder.iterdir()) == ["fillets-cs-m", "fillets-cs-v"]
    assert all(len(list(d.glob("*.wav"))) >= 1 for d in folder.iterdir())
    monkeypatch.setattr(student_speech, "word_recordings", lambda source: {"nl-m": recordings["cs-m"]})
    assert sorted(d.name for d in write_word_speech(tmp_path / "clean", "fillets", ("ru",)).iterdir()) == [
        "fillets-cs-m", "fillets-cs-v"]
