import json

import evaluate
import numpy as np
import pytest
from scipy import stats
from transformers import EvalPrediction

from hf_sqa.cli import main
from hf_sqa.metrics import (EVALUATE_METRIC_PATH, bootstrap_ci, compare_with_first, compute_metrics, mos_metrics, paired_bootstrap_ci,
                            point_metrics, system_level)
from hf_sqa.testing import synthetic_speech, write_clip, write_noisy_mos_folder

PRED = [3.1, 4.0, 2.0, 1.5, 4.4, 2.9, 3.3]
TRUE = [3.0, 4.2, 2.5, 1.0, 4.0, 3.4, 2.8]


def test_point_metrics_equal_scipy():
    m = point_metrics(PRED, TRUE)
    assert m["n"] == 7
    assert m["pcc"] == pytest.approx(stats.pearsonr(PRED, TRUE)[0])
    assert m["srcc"] == pytest.approx(stats.spearmanr(PRED, TRUE)[0])
    assert m["ktau"] == pytest.approx(stats.kendalltau(PRED, TRUE)[0])
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((np.array(PRED) - TRUE) ** 2)))


def test_known_vectors():
    assert point_metrics([1, 2, 3, 4], [2, 4, 6, 8])["pcc"] == pytest.approx(1.0)
    assert point_metrics([1, 2, 3, 4], [4, 3, 2, 1])["srcc"] == pytest.approx(-1.0)
    assert point_metrics([1, 2, 3, 4], [1, 3, 2, 4])["ktau"] == pytest.approx(2 / 3)
    assert point_metrics([2, 2, 2], [1, 2, 3])["pcc"] != point_metrics([2, 2, 2], [1, 2, 3])["pcc"]  # NaN
    with pytest.raises(ValueError, match="3 predictions for 2 targets"):
        point_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="must be finite"):
        point_metrics([1, float("nan")], [1, 2])


def test_system_level_averages_per_condition():
    conditions = ["a", "b", "a", "c", "b", "c", "a"]
    sys_p, sys_t, names = system_level(PRED, TRUE, conditions)
    assert names == ["a", "b", "c"]
    assert sys_p == pytest.approx([np.mean([3.1, 2.0, 3.3]), np.mean([4.0, 4.4]), np.mean([1.5, 2.9])])
    assert sys_t == pytest.approx([np.mean([3.0, 2.5, 2.8]), np.mean([4.2, 4.0]), np.mean([1.0, 3.4])])
    m = mos_metrics(PRED, TRUE, conditions, n_boot=100)
    assert m["system_n"] == 3 and m["system_pcc"] == pytest.approx(stats.pearsonr(sys_p, sys_t)[0])
    assert "system_pcc" not in mos_metrics(PRED, TRUE, None, n_boot=100)


def test_bootstrap_intervals_cover_the_true_correlation():
    rho, n, trials, covered = 0.6, 80, 60, 0
    rng = np.random.default_rng(0)
    for trial in range(trials):
        x = rng.standard_normal(n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        low, high = bootstrap_ci(x, y, "pcc", n_boot=300, seed=trial)
        covered += low <= rho <= high
    assert 0.85 <= covered / trials <= 1.0  # nominal 95 %


def test_paired_bootstrap_separates_models_that_separate_intervals_cannot():
    # two models sharing most of their error: their own 95 % intervals overlap, the paired one excludes 0
    rng = np.random.default_rng(1)
    truth = rng.standard_normal(300)
    shared = 0.5 * rng.standard_normal(300)
    better = truth + shared + 0.05 * rng.standard_normal(300)
    worse = truth + shared + 0.25 * rng.standard_normal(300)
    low_b, high_b = bootstrap_ci(better, truth, "pcc", n_boot=300)
    low_w, high_w = bootstrap_ci(worse, truth, "pcc", n_boot=300)
    assert low_b < high_w  # the separate intervals overlap
    difference, low, high = paired_bootstrap_ci(better, worse, truth, "pcc", n_boot=300)
    assert difference == pytest.approx(stats.pearsonr(better, truth)[0] - stats.pearsonr(worse, truth)[0])
    assert 0 < low <= difference <= high
    same, low_same, high_same = paired_bootstrap_ci(worse, worse, truth, "srcc", n_boot=50)
    assert same == low_same == high_same == 0


def test_compare_with_first_gives_each_models_metrics_and_paired_differences_from_the_first():
    rng = np.random.default_rng(2)
    truth = rng.standard_normal(200)
    scores = {"first": truth + 0.3 * rng.standard_normal(200), "second": truth + 0.6 * rng.standard_normal(200)}
    results = compare_with_first(scores, truth, n_boot=100)
    assert list(results) == ["first", "second"] and results["first"][1] == {}
    for name in scores:
        assert results[name][0] == mos_metrics(scores[name], truth, n_boot=100)
    assert results["second"][1] == {statistic: paired_bootstrap_ci(scores["second"], scores["first"], truth, statistic,
                                                                    n_boot=100) for statistic in ("pcc", "srcc")}
    assert results["second"][1]["pcc"][2] < 0  # the noisier model is worse, interval and all


def test_trainer_compute_metrics_and_evaluate_module():
    metrics = compute_metrics(EvalPrediction(predictions=(np.array(PRED), np.zeros((7, 2))), label_ids=np.array(TRUE)))
    assert metrics["pcc"] == pytest.approx(stats.pearsonr(PRED, TRUE)[0]) and "n" not in metrics
    module = evaluate.load(EVALUATE_METRIC_PATH)
    result = module.compute(predictions=PRED, references=TRUE, conditions=list("abacbca"), n_boot=100)
    assert result == mos_metrics(PRED, TRUE, list("abacbca"), n_boot=100)


def test_evaluate_cli_report_and_plot(tiny_checkpoint, tmp_path, capsys):
    for corpus, offset in (("alpha", 0), ("beta", 10)):
        folder = tmp_path / corpus
        lines = ["path,mos,condition"]
        for i in range(6):
            write_clip(folder / f"{i}.wav", synthetic_speech(1.0, seed=offset + i, noise_db=5 * i))
            lines.append(f"{i}.wav,{1 + 0.7 * i:.1f},c{i % 3}")
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    report_path, plot_path = tmp_path / "report.json", tmp_path / "scatter.png"
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--data", str(tmp_path / "alpha"), "--data",
                 str(tmp_path / "beta"), "--output", str(report_path), "--plot", str(plot_path),
                 "--bootstrap", "50"]) == 0
    report = json.loads(report_path.read_text())
    assert set(report) == {"alpha", "beta", "pooled"}
    model = str(tiny_checkpoint)
    assert report["alpha"][model]["n"] == 6 and report["pooled"][model]["n"] == 12
    assert report["alpha"][model]["system_n"] == 3 and report["pooled"][model]["system_n"] == 6
    from hf_sqa import score

    predicted = score([tmp_path / "alpha" / f"{i}.wav" for i in range(6)], model=model)
    assert report["alpha"][model]["rmse"] == pytest.approx(point_metrics(predicted, [1 + 0.7 * i for i in range(6)])["rmse"], abs=1e-4)
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot_path.stat().st_size > 5000
    assert "pooled" in capsys.readouterr().out


def test_evaluate_refuses_unlabelled_data(tiny_checkpoint, tmp_path, capsys):
    write_clip(tmp_path / "audio" / "x.wav", synthetic_speech(1.0))
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--data", str(tmp_path / "audio"),
                 "--output", str(tmp_path / "r.json")]) == 2
    assert "has no MOS label" in capsys.readouterr().err


def test_evaluate_records_each_corpus_reference_and_pools_within_one(tiny_checkpoint, tmp_path):
    """Human-rated folders and a teacher's pseudo-labels of degraded speech are scored against different
    references: the report says which, and pools each reference's corpora apart."""
    from hf_sqa.data.pseudo_label import pseudo_label
    from hf_sqa.evaluation import evaluate_models, format_report

    specs = []
    for seed, corpus in enumerate(("alpha", "beta")):
        folder = write_noisy_mos_folder(tmp_path / corpus, 5, seconds=1.0, seed=seed)
        specs.append(str(folder))
        # the same clips labelled by a teacher (here the tiny model itself): scored against its teacher_mos
        pseudo_label(str(tiny_checkpoint), str(folder), tmp_path / f"{corpus}-labelled", shard_size=3, progress=False)
        specs.append(f"{tmp_path / f'{corpus}-labelled'}#mos=teacher_mos,corpus={corpus}-teacher")
    model = str(tiny_checkpoint)
    teacher = f"teacher:{tiny_checkpoint}"
    report, scores = evaluate_models([model], specs, n_boot=20)
    assert set(report) == {"alpha", "beta", "alpha-teacher", "beta-teacher", "pooled (human)", f"pooled ({teacher})"}
    assert [report[c][model]["reference"] for c in ("alpha", "beta", "pooled (human)")] == ["human"] * 3
    assert [report[c][model]["reference"] for c in ("alpha-teacher", f"pooled ({teacher})")] == [teacher] * 2
    assert report["pooled (human)"][model]["n"] == report[f"pooled ({teacher})"][model]["n"] == 10
    # the teacher's pooled targets are its own scores of the clips, not the human ratings
    human, labels = scores["pooled (human)"], scores[f"pooled ({teacher})"]
    np.testing.assert_allclose(labels.targets, labels.predictions[model], atol=1e-4)
    assert not np.allclose(human.targets, labels.targets)
    assert report[f"pooled ({teacher})"][model]["pcc"] == pytest.approx(1.0, abs=1e-4)
    # one reference: a single "pooled" row, as before
    report, _ = evaluate_models([model], specs[1::2], n_boot=20)
    assert set(report) == {"alpha-teacher", "beta-teacher", "pooled"} and report["pooled"][model]["reference"] == teacher
    # a teacher_mos column without the pseudo-labeller's manifest: a teacher, name unknown
    (tmp_path / "alpha-labelled" / "manifest.json").unlink()
    report, _ = evaluate_models([model], [specs[1]], n_boot=20)
    assert report["alpha-teacher"][model]["reference"] == "teacher"
    assert "a teacher's MOS" in format_report(report)


@pytest.fixture
def shifted_checkpoint(tiny_checkpoint, tmp_path):
    """tiny_checkpoint with its logit 1 higher: every score higher, the same order."""
    import torch

    from hf_sqa.scoring import load_model

    model = load_model(str(tiny_checkpoint))
    with torch.no_grad():
        model.head.pooling.output.bias.add_(1.0)
    model.save_pretrained(tmp_path / "shifted")
    return tmp_path / "shifted"


def test_model_agreement_on_a_random_sample(tiny_checkpoint, shifted_checkpoint, tmp_path):
    from hf_sqa.evaluation import model_agreement

    paths = [str(write_clip(tmp_path / f"clip{i}.wav", synthetic_speech(1.0 + i, seed=i, noise_db=5.0 * i)))
             for i in range(6)]
    itself = model_agreement(paths, str(tiny_checkpoint), str(tiny_checkpoint), sample=None)
    assert itself.inputs == paths and itself.total == 6 and itself.errors == [None] * 6
    assert itself.metrics["pcc"] == pytest.approx(1.0) and itself.metrics["rmse"] == 0.0
    assert itself.mean_difference == 0.0 and itself.audio_seconds == pytest.approx(sum(range(1, 7)))
    shifted = model_agreement(paths, str(shifted_checkpoint), str(tiny_checkpoint), sample=4, seed=3)
    assert len(shifted.inputs) == 4 and shifted.total == 6 and set(shifted.inputs) <= set(paths)
    assert shifted.inputs == sorted(shifted.inputs, key=paths.index)  # kept in input order
    assert shifted.inputs == model_agreement(paths, str(shifted_checkpoint), str(tiny_checkpoint), sample=4,
                                             seed=3).inputs  # the seed fixes the sample
    assert shifted.metrics["srcc"] == pytest.approx(1.0)  # a monotone shift keeps the order
    assert np.all(shifted.model_mos > shifted.reference_mos) and shifted.mean_difference > 0
    assert set(shifted.seconds) == {"model", "reference"} and min(shifted.seconds.values()) > 0


def test_compare_cli_reports_agreement_and_leaves_out_bad_inputs(tiny_checkpoint, shifted_checkpoint, tmp_path,
                                                                 capsys):
    import csv

    folder = tmp_path / "clips"
    for i in range(4):
        write_clip(folder / f"clip{i}.wav", synthetic_speech(1.0 + i, seed=i, noise_db=5.0 * i))
    (folder / "broken.wav").write_bytes(b"not audio at all")
    out = tmp_path / "agreement.csv"
    assert main(["compare", str(folder), "--model", str(shifted_checkpoint), "--reference", str(tiny_checkpoint),
                 "--sample", "10", "--output", str(out)]) == 1  # the broken file is reported, as `score` does
    printed = capsys.readouterr().out
    assert "on 5 of 5 inputs" in printed and "1 could not be scored" in printed and "SRCC 1.000" in printed
    rows = list(csv.DictReader(open(out)))
    assert [row["path"].rsplit("/", 1)[1] for row in rows] == ["broken.wav"] + [f"clip{i}.wav" for i in range(4)]
    assert rows[0]["mos"] == "" and "not a recognised audio format" in rows[0]["error"]
    assert all(float(row["mos"]) > float(row["reference_mos"]) for row in rows[1:])
    assert main(["compare", str(folder / "clip0.wav"), "--model", str(tiny_checkpoint)]) == 2
    assert "at least 3 inputs" in capsys.readouterr().err
    for i in range(3):
        (tmp_path / "bad" / f"b{i}.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "bad" / f"b{i}.wav").write_bytes(b"")
    assert main(["compare", str(tmp_path / "bad"), "--model", str(tiny_checkpoint)]) == 1
    assert "only 0 of 3 sampled inputs could be scored by both models" in capsys.readouterr().err
