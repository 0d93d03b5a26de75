"""Reading HAM10000 in both layouts, and a specific message for each kind of bad data."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.labels import CODES
from edge.preprocess import preprocess
from tests.conftest import run_module
from training.data import DataError, check_lesion_ids, decode_images, load_records


@pytest.fixture
def data_copy(small_data, tmp_path) -> Path:
    shutil.copytree(small_data, tmp_path / "data")
    return tmp_path / "data"


def _rows(meta: Path) -> list[dict]:
    with meta.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(meta: Path, rows: list[dict]) -> None:
    with meta.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_kaggle_layout_with_two_part_folders(small_data):
    records = load_records(small_data)
    rows = _rows(small_data / "HAM10000_metadata.csv")
    assert records["image_id"].tolist() == [r["image_id"] for r in rows]
    assert {p.parent.name for p in records["path"]} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert set(records["dx"]) == set(CODES)
    assert records["lesion_id"].nunique() < len(records), "synthetic data must have multi-image lesions"
    assert {"age", "sex", "localization"} <= set(records.columns), "metadata columns travel with the records"


def test_kaggle_layout_with_one_folder(data_copy):
    one = data_copy / "images"
    one.mkdir()
    for jpg in data_copy.glob("HAM10000_images_part_*/*.jpg"):
        jpg.rename(one / jpg.name)
    records = load_records(data_copy)
    assert len(records) == 200 and {p.parent for p in records["path"]} == {one}


def test_isic_2018_layout(data_copy, tmp_path):
    rows = _rows(data_copy / "HAM10000_metadata.csv")
    isic = tmp_path / "isic"
    (isic / "ISIC2018_Task3_Training_Input").mkdir(parents=True)
    for jpg in data_copy.glob("HAM10000_images_part_*/*.jpg"):
        shutil.copy(jpg, isic / "ISIC2018_Task3_Training_Input")
    columns = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    _write(isic / "ISIC2018_Task3_Training_GroundTruth.csv",
           [{"image": r["image_id"], **{c: "1.0" if c.lower() == r["dx"] else "0.0" for c in columns}} for r in rows])
    _write(isic / "ISIC2018_Task3_Training_LesionGroupings.csv",
           [{"image": r["image_id"], "lesion_id": r["lesion_id"], "diagnosis_confirm_type": "histopathology"} for r in rows])
    records = load_records(isic)
    got = list(records[["image_id", "lesion_id", "dx"]].itertuples(index=False, name=None))
    assert got == [(r["image_id"], r["lesion_id"], r["dx"]) for r in rows]
    assert check_lesion_ids(isic, allow_image_level_split=False) is False  # groupings present: no leak


def _isic_without_groupings(data: Path, isic: Path) -> Path:
    """DATA in the ISIC 2018 Task 3 layout, with its ground truth but no lesion groupings."""
    rows = _rows(data / "HAM10000_metadata.csv")
    (isic / "ISIC2018_Task3_Training_Input").mkdir(parents=True)
    for jpg in data.glob("HAM10000_images_part_*/*.jpg"):
        shutil.copy(jpg, isic / "ISIC2018_Task3_Training_Input")
    columns = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    _write(isic / "ISIC2018_Task3_Training_GroundTruth.csv",
           [{"image": r["image_id"], **{c: "1.0" if c.lower() == r["dx"] else "0.0" for c in columns}} for r in rows])
    return isic


def test_isic_2018_layout_without_groupings_is_refused_unless_allowed(data_copy, tmp_path):
    isic = _isic_without_groupings(data_copy, tmp_path / "isic")
    records = load_records(isic)  # reading is fine (benchmarks read it too): each image is its own lesion
    assert (records["lesion_id"] == records["image_id"]).all()
    with pytest.raises(DataError, match=r"has no ISIC2018_Task3_Training_LesionGroupings.csv.*"
                                        r"pass --allow-image-level-split to train anyway"):
        check_lesion_ids(isic, allow_image_level_split=False)
    assert check_lesion_ids(isic, allow_image_level_split=True) is True
    result = run_module("training", "--data", str(isic), "--out", str(tmp_path / "run"), "--config", "demo",
                        check=False)
    assert result.returncode == 2 and "--allow-image-level-split" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run").exists(), "refused before anything was written"


def _delete_images(data: Path, n: int) -> list[str]:
    ids = [r["image_id"] for r in _rows(data / "HAM10000_metadata.csv")[:n]]
    for image_id in ids:
        next(data.glob(f"*/{image_id}.jpg")).unlink()
    return ids


def _set_row(data: Path, index: int, **values) -> None:
    rows = _rows(data / "HAM10000_metadata.csv")
    rows[index].update(values)
    _write(data / "HAM10000_metadata.csv", rows)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"data folder .*nope does not exist"):
        load_records(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"data folder .* is empty"):
        load_records(tmp_path)


def test_no_metadata(data_copy):
    (data_copy / "HAM10000_metadata.csv").unlink()
    with pytest.raises(DataError, match="no HAM10000_metadata.csv or ISIC2018_Task3_Training_GroundTruth.csv in"):
        load_records(data_copy)


def test_missing_images_counted_and_named(data_copy):
    gone = _delete_images(data_copy, 3)
    with pytest.raises(DataError, match=rf"3 of 200 images .* missing .*\(first: {gone[0]}, {gone[1]}, {gone[2]}\)"):
        load_records(data_copy)


def test_unknown_dx_code(data_copy):
    _set_row(data_copy, 5, dx="melanoma")
    with pytest.raises(DataError, match=r"unknown dx code\(s\) 'melanoma' \(1 rows\); expected one of akiec"):
        load_records(data_copy)


def test_duplicate_image_id(data_copy):
    first = _rows(data_copy / "HAM10000_metadata.csv")[0]["image_id"]
    _set_row(data_copy, 1, image_id=first)
    with pytest.raises(DataError, match=rf"1 duplicate image id\(s\) in the metadata: {first}"):
        load_records(data_copy)


def test_missing_column(data_copy):
    rows = [{k: v for k, v in r.items() if k != "dx"} for r in _rows(data_copy / "HAM10000_metadata.csv")]
    _write(data_copy / "HAM10000_metadata.csv", rows)
    with pytest.raises(DataError, match="lacks the column"):
        load_records(data_copy)


def _corrupt(data: Path, n: int) -> list[str]:
    ids = [r["image_id"] for r in _rows(data / "HAM10000_metadata.csv")[10:10 + n]]
    for image_id in ids:
        path = next(data.glob(f"*/{image_id}.jpg"))
        path.write_bytes(path.read_bytes()[:300])
    return ids


def test_one_corrupt_image_is_excluded_and_listed(data_copy, tmp_path):
    bad = _corrupt(data_copy, 1)
    decoded = decode_images(load_records(data_copy), 64, cache_dir=None)
    assert decoded.corrupt["image_id"].tolist() == bad
    assert "truncated" in decoded.corrupt["reason"].iloc[0] or "corrupt" in decoded.corrupt["reason"].iloc[0]
    assert len(decoded.records) == 199 and decoded.pixels.shape == (199, 64, 64, 3)
    assert bad[0] not in set(decoded.records["image_id"])


def test_more_than_one_percent_corrupt_aborts(data_copy):
    _corrupt(data_copy, 3)
    with pytest.raises(DataError, match=r"3 of 200 images cannot be decoded \(more than 1%\)"):
        decode_images(load_records(data_copy), 64, cache_dir=None)


def test_decoded_cache_is_reused_and_byte_identical_to_edge(small_data, tmp_path):
    records = load_records(small_data)
    first = decode_images(records, 96, cache_dir=tmp_path)
    cached = list(tmp_path.glob("images-96px-*.npy"))
    assert len(cached) == 1 and cached[0].stat().st_size >= 200 * 96 * 96 * 3
    second = decode_images(records, 96, cache_dir=tmp_path)
    assert np.array_equal(first.pixels, second.pixels)
    for i in (0, 57, 199):
        assert np.array_equal(second.pixels[i], preprocess(records["path"][i], 96))


def test_training_cli_reports_bad_data_without_traceback(tmp_path):
    result = run_module("training", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"),
                        "--config", "demo", check=False)
    assert result.returncode == 2
    assert "error: data folder" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_acknowledged_image_level_split_trains_and_its_report_says_first_that_it_may_leak(small_data, tmp_path):
    isic = _isic_without_groupings(small_data, tmp_path / "isic")
    result = run_module("training", "--data", str(isic), "--out", str(tmp_path / "run"), "--config", "demo",
                        "--alpha", "0.25", "--image-size", "64", "--epochs", "1", "--set", "head_epochs=0",
                        "--set", "nonlesion_images=20", "--allow-image-level-split", timeout=900)
    assert "WARNING: this run was split by image, not by lesion" in result.stdout
    report = (tmp_path / "run" / "report.md").read_text().splitlines()
    assert report[2].startswith("> **Warning:** this run was split by image, not by lesion"), report[:4]
    assert "may be inflated" in report[2]
