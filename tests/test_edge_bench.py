"""`python -m edge bench`: JSON structure and sanity of the figures, data metrics, pure helpers."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge import Classifier, bench
from edge.labels import CODES


def make_ham_folder(root, sample_images):
    """A HAM10000-layout folder: metadata, images in part_1, and a split.csv marking 4 as test."""
    images = root / "HAM10000_images_part_1"
    images.mkdir(parents=True)
    rows = []
    for i, path in enumerate(sample_images):
        image_id = f"ISIC_{i:07d}"
        shutil.copy(path, images / f"{image_id}.jpg")
        rows.append({"lesion_id": f"HAM_{i}", "image_id": image_id, "dx": CODES[i % len(CODES)]})
    with open(root / "HAM10000_metadata.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ["lesion_id", "image_id", "dx"])
        writer.writeheader()
        writer.writerows(rows)
    with open(root / "split.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image_id", "split"])
        writer.writerows([r["image_id"], "test" if i < 4 else "train"] for i, r in enumerate(rows))
    return rows[:4]


@pytest.fixture(scope="module")
def bench_run(repo_root, tiny_bundle, sample_images, tmp_path_factory):
    """One short benchmark of every variant, with data, shared by the tests below."""
    out = tmp_path_factory.mktemp("bench")
    test_rows = make_ham_folder(out / "data", sample_images)
    command = [sys.executable, "-m", "edge", "bench", str(tiny_bundle), "--runs", "5", "--warmup", "1",
               "--threads", "1", "--data", str(out / "data"), "--json", str(out / "bench.json"),
               "--png", str(out / "bench.png")]  # fmt: skip
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result, json.loads((out / "bench.json").read_text()), out, test_rows


def test_json_has_one_entry_per_variant_with_ordered_percentiles(bench_run, tiny_bundle):
    _, results, _, _ = bench_run
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert [r["variant"] for r in results] == list(manifest["variants"])
    for r in results:
        assert r["bytes"] == (tiny_bundle / r["file"]).stat().st_size
        assert list(r["threads"]) == ["1"]
        figures = r["threads"]["1"]
        assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]
        assert figures["images_per_s"] > 0 and figures["classifier_p50_ms"] > 0
        assert r["load_ms"] > 0 and r["peak_rss_mb"] > r["rss_before_load_mb"] > 0
        assert set(r["e2e_ms"]) == {"600x450", "4032x3024"} and min(r["e2e_ms"].values()) > 0
        assert r["e2e_12mp_vs_invoke"] == pytest.approx(r["e2e_ms"]["4032x3024"] / figures["p50_ms"])
    float32 = results[0]["threads"]["1"]["p50_ms"]
    assert results[-1]["p50_vs_float32"]["1"] == pytest.approx(
        results[-1]["threads"]["1"]["p50_ms"] / float32
    )


def test_data_metrics_match_the_classifier_on_the_test_split(bench_run, tiny_bundle):
    _, results, out, test_rows = bench_run
    for r in results:
        classifier = Classifier(tiny_bundle, r["variant"])
        predicted = [
            classifier.classify(out / "data/HAM10000_images_part_1" / f"{row['image_id']}.jpg")[0].code
            for row in test_rows
        ]
        correct = [p == row["dx"] for p, row in zip(predicted, test_rows, strict=True)]
        assert r["metrics"]["images"] == 4
        assert r["metrics"]["accuracy"] == pytest.approx(np.mean(correct))
        assert set(r["metrics"]["per_class_recall"]) == {row["dx"] for row in test_rows}
    assert results[0]["metrics"]["top1_agreement_float32"] == 1.0


def test_report_prints_tables_and_target_ratios(bench_run):
    result, results, out, _ = bench_run
    int8 = next(r for r in results if r["variant"] == "int8")
    assert "| variant | threads | p50 ms | p90 ms | p99 ms | images/s |" in result.stdout
    assert f"| int8 | 1 | {int8['threads']['1']['p50_ms']:.2f} |" in result.stdout
    assert f"- full int8 p50 / float32 p50 at 1 thread(s): {int8['p50_vs_float32']['1']:.2f}" in result.stdout
    assert "- Classifier overhead over bare invoke (int8, 1 thread(s)): " in result.stdout
    assert (
        f"- 12 MP end-to-end / int8 invoke (1 thread(s)): {int8['e2e_12mp_vs_invoke']:.2f}x" in result.stdout
    )
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_is_skipped_with_a_note_without_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    bench.write_png([], tmp_path / "chart.png")
    assert not (tmp_path / "chart.png").exists()
    assert f"note: matplotlib is not installed: skipping {tmp_path / 'chart.png'}" in capsys.readouterr().err


def test_classification_metrics_by_hand():
    y_true = np.array([0, 0, 1, 1, 4, 4])
    y_pred = np.array([0, 1, 1, 1, 4, 0])
    metrics = bench.classification_metrics(y_true, y_pred, list(CODES))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["per_class_recall"] == {"akiec": 0.5, "bcc": 1.0, "mel": 0.5}
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    assert metrics["melanoma_recall"] == 0.5


def test_test_images_reads_the_split_and_names_missing_files(tmp_path, sample_images):
    test_rows = make_ham_folder(tmp_path, sample_images)
    items = bench.test_images(tmp_path, None)
    assert [(p.stem, dx) for p, dx in items] == [(r["image_id"], r["dx"]) for r in test_rows]
    (tmp_path / "HAM10000_images_part_1" / f"{test_rows[1]['image_id']}.jpg").unlink()
    with pytest.raises(
        bench.BenchError, match=f"1 of 4 images are missing under .*, e.g. {test_rows[1]['image_id']}"
    ):
        bench.test_images(tmp_path, None)
    with pytest.raises(bench.BenchError, match="HAM10000_metadata.csv is missing: --data must be"):
        bench.test_images(tmp_path / "HAM10000_images_part_1", None)


def test_thread_list_parses_sorts_and_rejects():
    assert bench.thread_list("4,1,2,2") == [1, 2, 4]
    with pytest.raises(argparse.ArgumentTypeError, match="thread counts must be >= 1"):
        bench.thread_list("0,2")
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated integers"):
        bench.thread_list("two")


def test_synthetic_photos_are_jpegs_of_the_asked_size():
    with Image.open(io.BytesIO(bench.synthetic_jpeg(4032, 3024))) as photo:
        assert (photo.format, photo.size) == ("JPEG", (4032, 3024))


def test_keras_baseline_row_comes_from_a_separate_program(repo_root, tiny_bundle, sample_images, tmp_path):
    make_ham_folder(tmp_path / "data", sample_images)
    command = [sys.executable, "-m", "edge", "bench", str(tiny_bundle), "--variants", "float32", "--runs", "3",
               "--warmup", "1", "--threads", "1", "--data", str(tmp_path / "data"), "--keras-baseline",
               "--json", str(tmp_path / "bench.json")]  # fmt: skip
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {r["variant"]: r for r in json.loads((tmp_path / "bench.json").read_text())}
    assert set(rows) == {"float32", "keras"}
    assert rows["keras"]["threads"]["default"]["p50_ms"] > 0
    assert rows["keras"]["metrics"]["top1_agreement_float32"] == 1.0  # float32 reproduces Keras
    assert rows["keras"]["metrics"]["accuracy"] == rows["float32"]["metrics"]["accuracy"]
