"""`python -m bench external`: a bundle scored on a set in the ISIC 2018 Task 3 layout, its figures
checked against scikit-learn, the balanced accuracy's definition worked out here, and the ISIC
Challenge's own scorer; the submission format; one-line errors for unusable sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from edge.labels import CODES
from tests.conftest import ARTIFACTS, ROOT, built_once, source_hash
from tests.test_bench import run_bench

COLUMNS = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def _scored_set(tiny_bundle, test_split_images) -> Path:
    """The tiny run's test images as an ISIC 2018 Task 3 folder (JPEGs renamed ISIC_*, a one-hot
    CSV) and the bundle's float32 and int8 scored on it, built once per machine for this code and
    bundle (test_publish.py publishes the same scores)."""
    key = source_hash("bench.__main__", "tests.test_bench_external", extra=str(tiny_bundle))

    def build(tmp: Path) -> None:
        folder = tmp / "isic"
        (folder / "ISIC2018_Task3_Test_Input").mkdir(parents=True)
        rows = []
        for i, (path, code) in enumerate(sorted(test_split_images)):
            name = f"ISIC_{9000000 + i:07d}"
            shutil.copy(path, folder / "ISIC2018_Task3_Test_Input" / f"{name}.jpg")
            rows.append({"image": name, **{c: float(c == code.upper()) for c in COLUMNS}})
        pd.DataFrame(rows).to_csv(folder / "ISIC2018_Task3_Test_GroundTruth.csv", index=False)
        (tmp / "scored").mkdir()
        result = run_bench(ROOT, "external", tiny_bundle, "--data", folder, "--out", tmp / "scored", "--variants",
                           "float32", "int8", timeout=900)
        assert result.returncode == 0, result.stderr
        (tmp / "stdout.txt").write_text(result.stdout)

    return built_once(ARTIFACTS / f"isic-scored-{key}", build)


@pytest.fixture(scope="module")
def isic_set(tiny_bundle, test_split_images) -> Path:
    return _scored_set(tiny_bundle, test_split_images) / "isic"


@pytest.fixture(scope="module")
def scored(tiny_bundle, test_split_images) -> tuple[Path, str]:
    folder = _scored_set(tiny_bundle, test_split_images)
    return folder / "scored", (folder / "stdout.txt").read_text()


def test_predictions_are_a_challenge_submission(scored, isic_set):
    out, _ = scored
    truth = pd.read_csv(isic_set / "ISIC2018_Task3_Test_GroundTruth.csv")
    for variant in ("float32", "int8"):
        predictions = pd.read_csv(out / variant / "predictions.csv")
        assert list(predictions.columns) == ["image", *COLUMNS]
        assert sorted(predictions["image"]) == sorted(truth["image"])
        assert np.allclose(predictions[COLUMNS].sum(axis=1), 1.0, atol=1e-5)


def test_balanced_accuracy_is_the_mean_recall_and_the_challenge_scorer_agrees(scored, isic_set):
    from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore

    from bench.external_report import scorer_on_pandas_3

    scorer_on_pandas_3()  # the scorer itself, called here as the command calls it
    out, _ = scored
    truth_file = isic_set / "ISIC2018_Task3_Test_GroundTruth.csv"
    truth = pd.read_csv(truth_file).set_index("image")[COLUMNS].idxmax(axis=1)
    for variant in ("float32", "int8"):
        figures = json.loads((out / "metrics.json").read_text())["variants"][variant]
        predicted = pd.read_csv(out / variant / "predictions.csv").set_index("image")[COLUMNS].idxmax(axis=1)[truth.index]
        # The definition, by hand: the share of each class's images whose top class is right, averaged.
        recalls = [np.mean(predicted[truth == c] == c) for c in COLUMNS if (truth == c).any()]
        assert figures["balanced_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-9)
        assert figures["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, predicted), abs=1e-9)
        official = ClassificationScore.from_file(truth_file, out / variant / "predictions.csv",
                                                 ClassificationMetric.BALANCED_ACCURACY)
        assert figures["balanced_accuracy"] == pytest.approx(official.overall, abs=1e-9)
        assert 0 < figures["balanced_accuracy"] <= 1


def test_figures_match_scikit_learn_and_the_answers(scored, isic_set):
    out, _ = scored
    truth = pd.read_csv(isic_set / "ISIC2018_Task3_Test_GroundTruth.csv").set_index("image")[COLUMNS]
    for variant in ("float32", "int8"):
        figures = json.loads((out / variant / "metrics.json").read_text())
        probabilities = pd.read_csv(out / variant / "predictions.csv").set_index("image").loc[truth.index, COLUMNS]
        labels, predicted = truth.idxmax(axis=1).str.lower(), probabilities.idxmax(axis=1).str.lower()
        precision, recall, _, support = skm.precision_recall_fscore_support(labels, predicted, labels=list(CODES),
                                                                            zero_division=0)
        for i, code in enumerate(CODES):
            entry = figures["per_class"][code]
            assert (entry["support"], entry["recall"], entry["precision"]) == (
                support[i], pytest.approx(recall[i]), pytest.approx(precision[i], abs=1e-6))
        answers = pd.read_csv(out / variant / "answers.csv")
        assert sum(figures["statuses"].values()) == len(truth) == len(answers)
        assert figures["statuses"]["ok"] == (answers["status"] == "ok").sum()
        per_class_ok = answers[answers["status"] == "ok"].groupby("dx").size()
        assert {c: figures["per_class"][c]["statuses"]["ok"] for c in per_class_ok.index} == per_class_ok.to_dict()
        mel = answers["dx"] == "mel"
        referral = figures["melanoma"]["referral_sensitivity"]
        assert (referral["image_hits"], referral["images"]) == (int(answers.loc[mel, "referred"].sum()), int(mel.sum()))
        low, high = referral["image_ci95"]
        assert low <= referral["image_rate"] <= high and high - low > 0.05  # never a collapsed interval


def test_the_report_has_one_table_per_variant(scored):
    out, stdout = scored
    report = (out / "report.md").read_text()
    assert report.count("### ") == 2 and "### float32" in report and "### int8" in report
    assert "balanced accuracy (ISIC challenge scorer)" in report and "told to see a doctor" in report
    assert stdout.strip().endswith(report.strip().splitlines()[-1])
    assert (out / "int8" / "confusion_matrix.png").stat().st_size > 10_000


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: (d / "ISIC2018_Task3_Test_GroundTruth.csv").unlink(), "expected one *GroundTruth*.csv in"),
    (lambda d: pd.read_csv(d / "ISIC2018_Task3_Test_GroundTruth.csv").assign(MEL=1.0).to_csv(
        d / "ISIC2018_Task3_Test_GroundTruth.csv", index=False), "do not mark exactly one class"),
    (lambda d: next((d / "ISIC2018_Task3_Test_Input").iterdir()).unlink(), "are missing from"),
])
def test_unusable_sets_get_one_line(repo_root, random_bundle, isic_set, tmp_path, change, message):
    broken = tmp_path / "set"
    shutil.copytree(isic_set, broken)
    change(broken)
    result = run_bench(repo_root, "external", random_bundle, "--data", broken, "--out", tmp_path / "out")
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_variant_names_the_ones_there_are(repo_root, random_bundle, isic_set, tmp_path):
    result = run_bench(repo_root, "external", random_bundle, "--data", isic_set, "--out", tmp_path, "--variants", "int4")
    assert result.returncode == 2 and "has no variant(s) int4; it has float32, float16, dynamic_int8, int8" in result.stderr
