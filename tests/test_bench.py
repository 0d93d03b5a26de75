"""`python -m bench`: the edge and serving benchmarks end to end on an untrained bundle, the dataset
reader shared with training (both HAM10000 layouts), one-line errors, and the helpers on inputs
whose answers are worked out by hand."""

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

from bench import BenchError, data, measure, photos, report, serving, thread_list
from edge import Classifier
from edge.labels import CODES

ISIC_COLUMNS = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def run_bench(repo_root, *args, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=repo_root,
                            capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def metadata_rows(data_dir) -> list[dict]:
    with (data_dir / "HAM10000_metadata.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_split(path, rows, test_lesions) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "lesion_id", "dx", "split"])
        writer.writerows([r["image_id"], r["lesion_id"], r["dx"], "test" if r["lesion_id"] in test_lesions else "train"]
                         for r in rows)


@pytest.fixture(scope="module")
def split(small_data, tmp_path_factory):
    """A split.csv for small_data whose test split is the first lesion of each class: (path, test rows)."""
    rows = metadata_rows(small_data)
    first = {}
    for r in rows:
        first.setdefault(r["dx"], r["lesion_id"])
    path = tmp_path_factory.mktemp("split") / "split.csv"
    write_split(path, rows, set(first.values()))
    return path, [r for r in rows if r["lesion_id"] in set(first.values())]


def make_kaggle_folder(root, small_data, rows) -> None:
    """A HAM10000 (Kaggle) folder holding ROWS only, their images in one part folder."""
    images = {p.stem: p for p in small_data.rglob("*.jpg")}
    (root / "HAM10000_images_part_1").mkdir(parents=True)
    for r in rows:
        shutil.copy(images[r["image_id"]], root / "HAM10000_images_part_1")
    with (root / "HAM10000_metadata.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["lesion_id", "image_id", "dx"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def make_isic_folder(root, small_data, rows) -> None:
    """The ISIC 2018 Task 3 layout of ROWS: one-hot ground truth, input folder, lesion groupings."""
    images = {p.stem: p for p in small_data.rglob("*.jpg")}
    (root / "ISIC2018_Task3_Training_Input").mkdir(parents=True)
    for r in rows:
        shutil.copy(images[r["image_id"]], root / "ISIC2018_Task3_Training_Input")
    with (root / "ISIC2018_Task3_Training_GroundTruth.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *ISIC_COLUMNS])
        writer.writerows([r["image_id"], *("1.0" if c == r["dx"].upper() else "0.0" for c in ISIC_COLUMNS)]
                         for r in rows)
    with (root / "ISIC2018_Task3_Training_LesionGroupings.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "lesion_id", "diagnosis_confirm_type"])
        writer.writerows([r["image_id"], r["lesion_id"], "histopathology"] for r in rows)


@pytest.fixture(scope="module")
def bench_run(repo_root, random_bundle, small_data, split, tmp_path_factory):
    """One short benchmark of every variant, with data, shared by the tests below."""
    out = tmp_path_factory.mktemp("bench")
    result = run_bench(repo_root, "edge", random_bundle, "--runs", "5", "--warmup", "1", "--threads", "1",
                       "--data", small_data, "--split", split[0], "--json", out / "bench.json",
                       "--png", out / "bench.png")
    assert result.returncode == 0, result.stderr
    return result, json.loads((out / "bench.json").read_text()), out


# ---------------------------------------------------------------- python -m bench edge


def test_json_has_one_entry_per_variant_with_ordered_percentiles(bench_run, random_bundle):
    _, results, _ = bench_run
    manifest = json.loads((random_bundle / "manifest.json").read_text())
    assert [r["variant"] for r in results] == list(manifest["variants"])
    for r in results:
        assert r["bytes"] == (random_bundle / r["file"]).stat().st_size
        assert list(r["threads"]) == ["1"]
        figures = r["threads"]["1"]
        assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]
        assert figures["images_per_s"] > 0 and figures["classifier_p50_ms"] > 0
        assert r["load_ms"] > 0 and r["peak_rss_mb"] > r["rss_before_load_mb"] > 0
        assert set(r["e2e_ms"]) == {"600x450", "4032x3024"} and min(r["e2e_ms"].values()) > 0
        assert 0 < r["preprocess_600x450_ms"] < r["e2e_ms"]["600x450"]
    assert results[0]["p50_vs_float32"] == {"1": 1.0}


def test_accuracy_is_measured_on_the_split_files_test_images(bench_run, random_bundle, small_data, split):
    _, results, _ = bench_run
    test_rows = split[1]
    for r in results:
        assert r["metrics"]["images"] == len(test_rows)
        assert set(r["metrics"]["per_class_recall"]) == {row["dx"] for row in test_rows}
    # The benchmark preprocesses once into a file; the Classifier on each JPEG must agree with it.
    images = {p.stem: p for p in small_data.rglob("*.jpg")}
    classifier = Classifier(random_bundle, "float32")
    correct = [classifier.classify(images[row["image_id"]]).predictions[0].code == row["dx"] for row in test_rows]
    float32 = results[0]
    assert float32["variant"] == "float32"
    assert float32["metrics"]["accuracy"] == pytest.approx(np.mean(correct))
    assert float32["metrics"]["top1_agreement_float32"] == 1.0
    # Where the others disagree with float32: the bands cover every image and add up to the agreement.
    for r in results[1:]:
        bands = r["metrics"]["disagreements"]["bands"]
        assert sum(b["images"] for b in bands) == len(test_rows)
        differ = sum(b["disagree"] for b in bands)
        assert differ == round((1 - r["metrics"]["top1_agreement_float32"]) * len(test_rows))
        assert r["metrics"]["disagreements"]["text"].startswith(f"{r['variant']}: top-1 disagreements with float32 on "
                                                                f"{len(test_rows)} test images")


def test_report_prints_the_tables_and_writes_a_png(bench_run):
    result, _, out = bench_run
    assert "| variant | threads | p50 ms | p90 ms | p99 ms | images/s |" in result.stdout
    assert "## Targets" in result.stdout
    assert "- Classifier overhead over bare invoke (int8, 1 thread(s)): " in result.stdout
    assert "## Where top-1 disagrees with float32\n- float16: top-1 disagreements" in result.stdout
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_edge_data_accepts_the_isic_2018_layout(repo_root, random_bundle, small_data, split, tmp_path):
    """The folder training accepts, `bench edge --data` accepts: the reader is training's own."""
    rows = metadata_rows(small_data)
    test_rows = split[1]
    make_isic_folder(tmp_path / "isic", small_data, [*test_rows, *[r for r in rows if r not in test_rows][:20]])
    result = run_bench(repo_root, "edge", random_bundle, "--variants", "int8", "--runs", "2", "--warmup", "0",
                       "--threads", "1", "--data", tmp_path / "isic", "--split", split[0],
                       "--json", tmp_path / "bench.json")
    assert result.returncode == 0, result.stderr
    [int8] = json.loads((tmp_path / "bench.json").read_text())
    assert int8["metrics"]["images"] == len(test_rows)
    assert set(int8["metrics"]["per_class_recall"]) == {row["dx"] for row in test_rows}


@pytest.mark.parametrize("args, message", [
    (["edge", "{bundle}", "--threads", "0"], "error: argument --threads: thread counts must be >= 1, got '0'"),
    (["edge", "{bundle}", "--runs", "0"], "error: argument --runs: must be >= 1, got 0"),
    (["edge", "{bundle}", "--variants", "int4"], "error: unknown variant 'int4': this bundle has "),
    (["edge", "{bundle}", "--data", "{tmp}/nowhere"], "error: data folder {tmp}/nowhere does not exist"),
    (["serving", "{bundle}", "--clients", "0"], "error: argument --clients: must be >= 1, got 0"),
    (["serving", "{bundle}", "--requests", "-3"], "error: argument --requests: must be >= 1, got -3"),
    (["training", "--data", "{tmp}", "--images", "x"], "error: argument --images: expected an integer, got 'x'"),
    (["hostile", "{bundle}", "--seconds", "0"], "error: argument --seconds: must be >= 1, got 0"),
    (["hostile", "{bundle}", "--repo", "{tmp}"], "error: {tmp} is not a LesionLite checkout (no pwa/__main__.py)"),
])
def test_bad_options_answer_in_one_line_and_exit_2(args, message, repo_root, random_bundle, tmp_path):
    filled = [a.format(bundle=random_bundle, tmp=tmp_path) for a in args]
    result = run_bench(repo_root, *filled, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message.format(tmp=tmp_path))
    assert result.stdout == ""


@pytest.mark.trained
def test_keras_baseline_row_comes_from_a_separate_program(repo_root, tiny_bundle, small_data, split, tmp_path):
    """Needs model.keras next to the bundle, and a trained one: untrained scores tie too closely
    for float32 and Keras to agree on every argmax."""
    result = run_bench(repo_root, "edge", tiny_bundle, "--variants", "float32", "--runs", "3", "--warmup", "1",
                       "--threads", "1", "--data", small_data, "--split", split[0], "--keras-baseline",
                       "--json", tmp_path / "bench.json")
    assert result.returncode == 0, result.stderr
    rows = {r["variant"]: r for r in json.loads((tmp_path / "bench.json").read_text())}
    assert set(rows) == {"float32", "keras"}
    assert rows["keras"]["threads"]["default"]["p50_ms"] > 0
    assert rows["keras"]["metrics"]["top1_agreement_float32"] == 1.0  # float32 reproduces Keras
    assert rows["keras"]["metrics"]["accuracy"] == rows["float32"]["metrics"]["accuracy"]


# ---------------------------------------------------------------- python -m bench serving


def test_serving_load_test_counts_every_request(repo_root, random_bundle, small_data, tmp_path):
    photo = next(small_data.rglob("*.jpg"))
    result = run_bench(repo_root, "serving", random_bundle, "--variants", "int8", "--photos", "600x450",
                       "--image", photo, "--clients", "2", "--requests", "7", "--json", tmp_path / "serving.json")
    assert result.returncode == 0, result.stderr
    [case] = json.loads((tmp_path / "serving.json").read_text())
    assert (case["variant"], case["photo"], case["clients"], case["requests"], case["errors"]) == (
        "int8", "600x450", 2, 7, 0)
    assert 0 < case["p50_ms"] <= case["p99_ms"] and case["requests_per_s"] > 0
    assert case["server_peak_rss_mb"] > 0
    assert result.stdout.splitlines()[0].split() == ["variant", "photo", "KB", "req/s", "p50", "ms", "p99", "ms",
                                                     "RSS", "MB", "errors"]


def test_requests_are_shared_out_evenly():
    assert serving.shares(10, 3) == [4, 3, 3]
    assert serving.shares(2, 4) == [1, 1, 0, 0]


# ---------------------------------------------------------------- the dataset reader


def test_images_for_accuracy_reads_the_split_and_uses_trainings_checks(small_data, split, tmp_path):
    rows = metadata_rows(small_data)[:30]
    test_lesions = {rows[0]["lesion_id"], rows[5]["lesion_id"]}
    write_split(tmp_path / "split.csv", rows, test_lesions)
    make_kaggle_folder(tmp_path / "data", small_data, rows)
    expected = [(r["image_id"], r["dx"]) for r in rows if r["lesion_id"] in test_lesions]
    items = data.images_for_accuracy(tmp_path / "data", tmp_path / "split.csv")
    assert [(p.stem, dx) for p, dx in items] == expected
    # Without --split, DATA/split.csv; without either, every image (with a note).
    shutil.copy(tmp_path / "split.csv", tmp_path / "data" / "split.csv")
    assert len(data.images_for_accuracy(tmp_path / "data", None)) == len(expected)
    (tmp_path / "data" / "split.csv").unlink()
    assert len(data.images_for_accuracy(tmp_path / "data", None)) == 30
    # Another split, and every third image of it, in metadata order.
    training = [(r["image_id"], r["dx"]) for r in rows if r["lesion_id"] not in test_lesions]
    items = data.images_for_accuracy(tmp_path / "data", tmp_path / "split.csv", "train", every=3)
    assert [(p.stem, dx) for p, dx in items] == training[::3]
    (tmp_path / "data" / "HAM10000_images_part_1" / f"{expected[0][0]}.jpg").unlink()
    with pytest.raises(BenchError, match=f"1 of 30 images listed in the metadata are missing .*{expected[0][0]}"):
        data.images_for_accuracy(tmp_path / "data", tmp_path / "split.csv")


def test_a_leaking_split_file_is_refused_with_read_splits_message(small_data, tmp_path):
    rows = metadata_rows(small_data)[:10]
    make_kaggle_folder(tmp_path / "data", small_data, rows)
    with (tmp_path / "split.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "lesion_id", "split"])
        writer.writerows([[rows[0]["image_id"], "HAM_1", "test"], [rows[1]["image_id"], "HAM_1", "train"]])
    with pytest.raises(BenchError, match="puts 1 lesion.s. in more than one split, e.g. HAM_1"):
        data.images_for_accuracy(tmp_path / "data", tmp_path / "split.csv")


def test_ids_in_split_by_hand(tmp_path):
    (tmp_path / "split.csv").write_text("image_id,lesion_id,dx,split\n"
                                        "a,L1,nv,test\nb,L1,nv,test\nc,L2,mel,train\nd,L3,bcc,val\n")
    assert data.ids_in_split(tmp_path / "split.csv") == {"a", "b"}
    assert data.ids_in_split(tmp_path / "split.csv", "train") == {"c"}
    assert data.ids_in_split(tmp_path / "split.csv", "val") == {"d"}


def test_a_diagnosis_the_bundle_lacks_is_a_bench_error():
    assert data.label_index("mel", ["nv", "mel"]) == 1
    with pytest.raises(BenchError, match="diagnosis 'scc' in the data is not one of the bundle's labels"):
        data.label_index("scc", ["nv", "mel"])


# ---------------------------------------------------------------- measurement and reporting, by hand


def test_percentiles_of_a_known_list():
    # numpy's default (linear) percentile at q sits at index q/100 * (n - 1): for [10, 20, 30, 40],
    # p50 at 1.5 -> 25, p90 at 2.7 -> 37, p99 at 2.97 -> 39.7; the mean 25 ms is 40 calls/s.
    figures = measure.percentiles([40.0, 10.0, 30.0, 20.0])
    assert figures == pytest.approx({"p50_ms": 25.0, "p90_ms": 37.0, "p99_ms": 39.7, "images_per_s": 40.0})


def test_time_ms_is_the_clocks_difference_in_milliseconds():
    ticks = iter([10.0, 10.25])  # a clock read before and after the call, in seconds
    calls = []
    assert measure.time_ms(lambda: calls.append(1), clock=lambda: next(ticks)) == 250.0
    assert calls == [1]


def test_comparisons_and_targets_on_hand_written_results():
    def variant(name, p50, e2e_12mp, top1, top=0.6):
        figures = {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "images_per_s": 1000 / p50,
                   "classifier_overhead": 0.05, "checks_p50_ms": 0.12}
        probabilities = np.full((len(top1), len(CODES)), (1 - top) / (len(CODES) - 1))
        probabilities[np.arange(len(top1)), top1] = top
        return {"variant": name, "bytes": 2048, "load_ms": 1.0, "peak_rss_mb": 50.0, "e2e_threads": 1,
                "threads": {"1": figures}, "e2e_ms": {"600x450": 3.0, "4032x3024": e2e_12mp}, "preprocess_600x450_ms": 1.5,
                "probabilities": probabilities.tolist()}

    results = [variant("float32", 2.0, 10.0, [0, 1, 2, 2]), variant("int8", 1.0, 5.0, [0, 1, 1, 2])]
    report.add_comparisons(results, np.array([0, 1, 2, 3]), list(CODES), images="4 test images")
    float32, int8 = results
    assert (float32["p50_vs_float32"], int8["p50_vs_float32"]) == ({"1": 1.0}, {"1": 0.5})
    assert (float32["e2e_12mp_vs_invoke"], int8["e2e_12mp_vs_invoke"]) == (5.0, 5.0)
    assert (float32["e2e_600x450_vs_invoke"], int8["e2e_600x450_vs_invoke"]) == (1.5, 3.0)
    assert float32["threads"]["1"]["checks_vs_invoke"] == pytest.approx(0.06)
    assert (float32["metrics"]["accuracy"], int8["metrics"]["accuracy"]) == (0.75, 0.5)
    assert int8["metrics"]["top1_agreement_float32"] == 0.75
    # float32's margins are all 0.6 - 0.4/6 > 0.2: int8's one disagreement sits in the top band.
    assert [(b["images"], b["disagree"]) for b in int8["metrics"]["disagreements"]["bands"]] == [(0, 0), (0, 0), (4, 1)]
    assert "disagreements" not in float32["metrics"]
    assert report.target_lines(results) == [
        "- full int8 p50 / float32 p50 at 1 thread(s): 0.50 (target <= 0.6): met",
        "- Classifier overhead over bare invoke (int8, 1 thread(s)): +5.0% (target <= 10%): met",
        "- honesty checks / int8 invoke at 1 thread(s): 12.0% (target <= 10%): MISSED",
        "- 600x450 end-to-end / int8 invoke (1 thread(s)): 3.00x (target <= 2x): MISSED; decoding and preprocessing "
        "alone 1.50 ms",
        "- 12 MP end-to-end / int8 invoke (1 thread(s)): 5.00x (target <= 4x): MISSED",
    ]
    printed = report.markdown_report(results)
    assert "| int8 | 2.0 | 1.0 | 50.0 | 3.00 | 5.00 | 0.500 |" in printed
    assert printed.endswith("## Where top-1 disagrees with float32\n- int8: top-1 disagreements with float32 on 4 test "
                            "images, by float32's margin between its two largest probabilities: 0 of 0 with a margin of "
                            "0-0.05; 0 of 0 with a margin of 0.05-0.2; 1 of 4 with a margin of 0.2-1; 0 images with "
                            "int8's two largest probabilities equal")


def test_classification_metrics_by_hand():
    y_true = np.array([0, 0, 1, 1, 4, 4])
    y_pred = np.array([0, 1, 1, 1, 4, 0])
    metrics = report.classification_metrics(y_true, y_pred, list(CODES))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["per_class_recall"] == {"akiec": 0.5, "bcc": 1.0, "mel": 0.5}
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    assert metrics["melanoma_recall"] == 0.5


def test_png_is_skipped_with_a_note_without_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    report.write_png([], tmp_path / "chart.png")
    assert not (tmp_path / "chart.png").exists()
    assert f"note: matplotlib is not installed: skipping {tmp_path / 'chart.png'}" in capsys.readouterr().err


def test_thread_list_parses_sorts_and_rejects():
    assert thread_list("4,1,2,2") == [1, 2, 4]
    with pytest.raises(argparse.ArgumentTypeError, match="thread counts must be >= 1"):
        thread_list("0,2")
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated integers"):
        thread_list("two")


# ---------------------------------------------------------------- photos


def test_synthetic_photos_are_jpegs_of_the_asked_size():
    made = photos.jpeg_photos({"small": (320, 240), "12mp": (4032, 3024)})
    for name, size in {"small": (320, 240), "12mp": (4032, 3024)}.items():
        with Image.open(io.BytesIO(made[name])) as photo:
            assert (photo.format, photo.size) == ("JPEG", size)


def test_a_given_photo_is_scaled_to_each_size_and_a_bad_one_refused(tmp_path):
    Image.new("RGB", (60, 40), (200, 20, 20)).save(tmp_path / "red.png")
    made = photos.jpeg_photos({"a": (30, 20), "b": (90, 60)}, tmp_path / "red.png")
    with Image.open(io.BytesIO(made["b"])) as photo:
        assert photo.size == (90, 60)
        assert photo.getpixel((45, 30)) == pytest.approx((200, 20, 20), abs=8)
    (tmp_path / "bad.jpg").write_bytes(b"not a photo")
    with pytest.raises(BenchError, match=f"cannot use {tmp_path / 'bad.jpg'} as the photo"):
        photos.jpeg_photos({"a": (30, 20)}, tmp_path / "bad.jpg")
