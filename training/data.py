"""Read HAM10000 as distributed, validate it, and decode every image once into a cache.

Two layouts are read:
- Kaggle / Harvard Dataverse: ``HAM10000_metadata.csv`` (lesion_id, image_id, dx, ...) with the
  JPEGs in ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``, or in any one folder.
- ISIC 2018 Task 3: ``ISIC2018_Task3_Training_GroundTruth.csv`` (image, MEL, NV, BCC, AKIEC,
  BKL, DF, VASC one-hot) with the JPEGs in ``ISIC2018_Task3_Training_Input/``; lesion ids come
  from ``ISIC2018_Task3_Training_LesionGroupings.csv``. Without that file each image counts as its
  own lesion, which training refuses unless told (`check_lesion_ids`): the split may then leak.

Decoding goes through the on-disk cache of training/cache.py: one uint8 row per image, read a
batch at a time, so no process holds every decoded image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edge.errors import ImageError, UsageError
from edge.labels import CODES
from edge.preprocess import preprocess
from training import cache

KAGGLE_METADATA = "HAM10000_metadata.csv"
ISIC_GROUND_TRUTH = "ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_GROUPINGS = "ISIC2018_Task3_Training_LesionGroupings.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Columns every records table has; the Kaggle metadata may add age, sex, localization, dx_type.
RECORD_COLUMNS = ["image_id", "lesion_id", "dx", "path"]
# More unreadable images than this share means the copy is damaged: abort rather than train on it.
MAX_CORRUPT_SHARE = 0.01


class DataError(UsageError):
    """The dataset folder cannot be used; the message says what is wrong and where."""


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # Ids stay strings; "utf-8-sig" drops the byte-order mark some spreadsheet exports add.
        return pd.read_csv(path, dtype={"image_id": str, "lesion_id": str, "dx": str, "image": str},
                           encoding="utf-8-sig", keep_default_na=False, na_values={"age": [""]})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a readable CSV table: {err}") from None


def read_kaggle_metadata(path: Path) -> pd.DataFrame:
    """HAM10000_metadata.csv, checked for the columns the pipeline needs."""
    rows = _read_csv(path)
    if rows.empty:
        raise DataError(f"{path} has no rows")
    missing = {"lesion_id", "image_id", "dx"} - set(rows.columns)
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    return rows


def read_isic_ground_truth(path: Path, groupings: Path | None) -> pd.DataFrame:
    """The ISIC 2018 one-hot ground truth (+ lesion groupings) in the Kaggle metadata's shape."""
    truth = _read_csv(path)
    columns = [c.upper() for c in CODES]
    if truth.empty or not {"image", *columns} <= set(truth.columns):
        raise DataError(f"{path} is not an ISIC 2018 ground truth: expected columns image, {', '.join(columns)}")
    hot = truth[columns].astype(float) >= 0.5
    dx = hot.apply(lambda row: row.idxmax().lower() if row.sum() == 1 else f"<{'+'.join(row[row].index) or 'none'}>",
                   axis=1)
    if groupings is not None:
        lesions = _read_csv(groupings).set_index("image")["lesion_id"]
        lesion_id = truth["image"].map(lesions).fillna(truth["image"])
    else:  # each image its own lesion: training refuses this unless told (check_lesion_ids)
        lesion_id = truth["image"]
    return pd.DataFrame({"image_id": truth["image"], "lesion_id": lesion_id, "dx": dx})


def find_metadata(data_dir: Path) -> pd.DataFrame:
    """Detect the layout and return the metadata with image_id, lesion_id and dx."""
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    if not any(data_dir.iterdir()):
        raise DataError(f"data folder {data_dir} is empty")
    if (data_dir / KAGGLE_METADATA).is_file():
        return read_kaggle_metadata(data_dir / KAGGLE_METADATA)
    truth = next(iter(sorted(data_dir.rglob(ISIC_GROUND_TRUTH))), None)
    if truth is not None:
        groupings = next(iter(sorted(data_dir.rglob(ISIC_GROUPINGS))), None)
        return read_isic_ground_truth(truth, groupings)
    raise DataError(f"no {KAGGLE_METADATA} or {ISIC_GROUND_TRUTH} in {data_dir}")


def missing_lesion_groupings(data_dir: Path) -> Path | None:
    """The ISIC 2018 ground truth when no lesion groupings file is beside it, else None."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir() or (data_dir / KAGGLE_METADATA).is_file():
        return None
    truth = next(iter(sorted(data_dir.rglob(ISIC_GROUND_TRUTH))), None)
    if truth is None or next(iter(data_dir.rglob(ISIC_GROUPINGS)), None) is not None:
        return None
    return truth


def check_lesion_ids(data_dir: Path, allow_image_level_split: bool) -> bool:
    """True when the split can only be by image (and the caller allowed it), else False.

    Raises:
        DataError: an ISIC 2018 layout without lesion groupings, and no allowance.
    """
    truth = missing_lesion_groupings(data_dir)
    if truth is None:
        return False
    if not allow_image_level_split:
        raise DataError(
            f"{truth.parent} has no {ISIC_GROUPINGS}, so the lesion of each image is unknown: a split by "
            "image puts photographs of one lesion in both training and test and inflates every figure. "
            f"Add {ISIC_GROUPINGS} (part of the ISIC 2018 Task 3 download) to {data_dir}, or pass "
            "--allow-image-level-split to train anyway (the report will say the split may leak)")
    return True


def index_images(data_dir: Path) -> dict[str, Path]:
    """Map image id (file stem) to path for every image up to two folders deep."""
    index: dict[str, Path] = {}
    for root, dirs, files in os.walk(data_dir):
        if len(Path(root).relative_to(data_dir).parts) >= 2:
            dirs.clear()
        for name in files:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                index.setdefault(stem, Path(root) / name)
    return index


def validate(rows: pd.DataFrame, images: dict[str, Path], data_dir: Path) -> pd.DataFrame:
    """Check ids, codes and files; return the records table (one row per image, metadata order)."""
    duplicates = rows.loc[rows["image_id"].duplicated(), "image_id"].unique().tolist()
    if duplicates:
        raise DataError(f"{len(duplicates)} duplicate image id(s) in the metadata: {', '.join(duplicates[:5])}")
    unknown = rows.loc[~rows["dx"].isin(CODES), "dx"].value_counts()
    if len(unknown):
        listed = ", ".join(f"{code!r} ({n} rows)" for code, n in unknown.head(5).items())
        raise DataError(f"unknown dx code(s) {listed}; expected one of {', '.join(CODES)}")
    paths = rows["image_id"].map(images)
    missing = rows.loc[paths.isna(), "image_id"].tolist()
    if missing:
        raise DataError(f"{len(missing)} of {len(rows)} images listed in the metadata are missing "
                        f"from {data_dir} (first: {', '.join(missing[:5])})")
    return rows.assign(path=paths).reset_index(drop=True)


def load_records(data_dir: Path) -> pd.DataFrame:
    """Read and validate a HAM10000-layout folder: a table with RECORD_COLUMNS and any metadata.

    Raises:
        DataError: missing/empty folder, no metadata, missing images, unknown codes, duplicates.
    """
    data_dir = Path(data_dir)
    return validate(find_metadata(data_dir), index_images(data_dir), data_dir)


@dataclass
class DecodedImages:
    """Model-ready pixels for a records table, and what could not be decoded."""

    records: pd.DataFrame  # the decodable rows, in order, aligned with pixels
    pixels: cache.Pixels  # (N, size, size, 3) uint8, raw RGB, read from the cache when indexed
    corrupt: pd.DataFrame  # image_id, path, reason


def _decode_all(records: pd.DataFrame, size: int, write_row: Callable[[int, np.ndarray], None],
                workers: int) -> dict[str, str]:
    """Decode every image into its row; return image id -> reason for those that cannot be read."""
    def one(i: int, path: Path) -> str | None:
        try:
            write_row(i, preprocess(path, size))
        except ImageError as err:
            return str(err)
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, range(len(records)), records["path"]))
    return {image_id: r for image_id, r in zip(records["image_id"], results, strict=True) if r is not None}


def _cached_rows(records: pd.DataFrame, size: int, cache_dir: Path,
                 workers: int) -> tuple[cache.PixelFile, dict[str, str]]:
    """The dataset's cache at this size, decoded now if absent (one process at a time)."""
    prefix, stem = cache.cache_stem(records, size)
    shape = (len(records), size, size, 3)
    with cache.locked(cache_dir, prefix):
        found = cache.read_cache(cache_dir, stem)
        if found is not None:
            return found
        rows, reasons = cache.write_cache(cache_dir, stem, shape, lambda write: _decode_all(records, size, write, workers))
        for path in cache.remove_stale(cache_dir, prefix, stem, size):
            print(f"removed the stale image cache {path.name}")
        return rows, reasons


def decode_images(records: pd.DataFrame, size: int, cache_dir: Path | None, workers: int = 4) -> DecodedImages:
    """Decode every image once through the shared preprocessing, reusing a cache when possible.

    With a cache folder the pixels stay on disk and are read when indexed; without one (tests,
    benchmarks) they are held in memory.

    Raises:
        DataError: more than MAX_CORRUPT_SHARE of the images cannot be decoded.
    """
    if cache_dir is not None:
        rows, reasons = _cached_rows(records, size, Path(cache_dir), workers)
    else:
        array = np.zeros((len(records), size, size, 3), np.uint8)
        reasons = _decode_all(records, size, array.__setitem__, workers)
        rows = cache.ArrayRows(array)
    bad = records["image_id"].isin(list(reasons)).to_numpy()
    corrupt = records.loc[bad, ["image_id", "path"]].assign(reason=records.loc[bad, "image_id"].map(reasons))
    if len(corrupt) > MAX_CORRUPT_SHARE * len(records):
        first = "; ".join(f"{r.image_id}: {r.reason}" for r in corrupt.head(3).itertuples())
        raise DataError(f"{len(corrupt)} of {len(records)} images cannot be decoded (more than "
                        f"{MAX_CORRUPT_SHARE:.0%}); first: {first}")
    return DecodedImages(records.loc[~bad].reset_index(drop=True), cache.Pixels(rows, np.flatnonzero(~bad)),
                         corrupt.reset_index(drop=True))


def labels_of(records: pd.DataFrame) -> np.ndarray:
    """Class indices in output order for a records table's dx column."""
    return records["dx"].map({code: i for i, code in enumerate(CODES)}).to_numpy(dtype=np.int64)
