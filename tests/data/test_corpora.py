import pytest

from hf_sqa.cli import main
from hf_sqa.data.corpora import ACR_1_TO_5, CORPORA, MUSHRA_0_TO_100, UNVERIFIED, get_corpus

PAPER_CORPORA = ["nisqa", "pstn", "tencent", "tub", "iub", "bvcc", "conferencingspeech2022", "tcd-voip",
                 "genspeech", "somos"]


def test_registry_lists_the_papers_corpora_with_every_field():
    assert set(PAPER_CORPORA) <= set(CORPORA)
    for corpus in CORPORA.values():
        for field in ("description", "location", "label_column", "licence", "source"):
            assert getattr(corpus, field), f"{corpus.name}.{field} is empty"


@pytest.mark.parametrize("name, rating, mos", [("nisqa", 3.0, 3.0), ("iub", 50.0, 3.0), ("iub", 0.0, 1.0),
                                               ("iub", 100.0, 5.0), ("pstn", 5.0, 5.0)])
def test_ratings_map_linearly_to_mos(name, rating, mos):
    assert get_corpus(name).to_mos(rating) == pytest.approx(mos)


def test_out_of_scale_ratings_and_unknown_corpora_are_refused():
    with pytest.raises(ValueError, match="outside the ACR 1-5"):
        ACR_1_TO_5.to_mos(0.5)
    with pytest.raises(ValueError, match=r"0-100 \(ITU-R BS.1534"):
        MUSHRA_0_TO_100.to_mos(101)
    with pytest.raises(KeyError, match="unknown corpus 'voxceleb'"):
        get_corpus("voxceleb")


def test_cli_prints_the_table(capsys):
    assert main(["corpora"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{name}\n" in f"\n{out}\n" for name in PAPER_CORPORA)
    assert "depositonce.tu-berlin.de" in out and UNVERIFIED in out


def test_prepare_nisqa_makes_the_corpus_a_spec(tmp_path, capsys):
    from hf_sqa.data import resolve
    from hf_sqa.testing import synthetic_speech, write_clip

    root = tmp_path / "NISQA_Corpus"
    for subset, name in (("NISQA_TRAIN_SIM", "a"), ("NISQA_VAL_LIVE", "b")):
        write_clip(root / subset / "deg" / f"{name}.wav", synthetic_speech(1.0, 48000, seed=ord(name)), 48000)
    (root / "NISQA_corpus_file.csv").write_text(
        "db,con,filepath_deg,filepath_ref,mos,noi,col,dis,loud\n"
        "NISQA_TRAIN_SIM,1,NISQA_TRAIN_SIM/deg/a.wav,NISQA_TRAIN_SIM/ref/a.wav,3.2,3.1,3.5,4.0,3.9\n"
        "NISQA_VAL_LIVE,,NISQA_VAL_LIVE/deg/b.wav,,1.8,2.0,2.1,1.9,2.2\n"
    )
    assert main(["corpora", "--prepare", "nisqa", str(root)]) == 0
    data = resolve(str(root))
    assert data["mos"] == pytest.approx([3.2, 1.8]) and data["corpus"] == ["NISQA_TRAIN_SIM", "NISQA_VAL_LIVE"]
    assert data[0]["audio"].shape == (16000,)
    (root / "NISQA_corpus_file.csv").write_text("db,filepath_deg,mos\nX,x.wav,n/a\n")
    assert main(["corpora", "--prepare", "nisqa", str(root)]) == 2
    assert "1 row(s) with unusable MOS:\n  line 2: 'n/a'" in capsys.readouterr().err
