"""Read HAM10000 as distributed, validate it, and decode every image once into a cache.

Two layouts are read:
- Kaggle / Harvard Dataverse: ``HAM10000_metadata.csv`` (lesion_id, image_id, dx, ...) with the
  JPEGs in ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``, or in any one folder.
- ISIC 2018 Task 3: ``ISIC2018_Task3_Training_GroundTruth.csv`` (image, MEL, NV, BCC, AKIEC,
  BKL, DF, VASC one-hot) with the JPEGs in ``ISIC2018_Task3_Training_Input/``; lesion ids come
  from ``ISIC2018_Task3_Training_LesionGroupings.csv`` when it is present.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edge.errors import ImageError, UsageError
from edge.labels import CODES
from edge.preprocess import PREPROCESSING_NAME, preprocess

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
    else:
        print(f"warning: {ISIC_GROUPINGS} not found; each image is treated as its own lesion, "
              "so images of one lesion may land in different splits")
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
    pixels: np.ndarray  # (N, size, size, 3) uint8, raw RGB
    corrupt: pd.DataFrame  # image_id, path, reason


def _cache_key(records: pd.DataFrame, size: int) -> str:
    h = hashlib.sha256(f"{PREPROCESSING_NAME}:{size}".encode())
    for image_id, path in zip(records["image_id"], records["path"], strict=True):
        stat = Path(path).stat()
        h.update(f"{image_id}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())  # not the path: relative or absolute, same cache
    return h.hexdigest()[:20]


def _decode(path: Path, size: int) -> np.ndarray | str:
    try:
        return preprocess(path, size)
    except ImageError as err:
        return str(err)


def decode_images(records: pd.DataFrame, size: int, cache_dir: Path | None, workers: int = 4) -> DecodedImages:
    """Decode every image once through the shared preprocessing, reusing a cache when possible.

    Raises:
        DataError: more than MAX_CORRUPT_SHARE of the images cannot be decoded.
    """
    cache = Path(cache_dir) / f"images-{size}-{_cache_key(records, size)}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            reasons = dict(zip(stored["corrupt_ids"].tolist(), stored["corrupt_reasons"].tolist(), strict=True))
            pixels = stored["pixels"]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda p: _decode(p, size), records["path"]))
        reasons = {i: res for i, res in zip(records["image_id"], results, strict=True) if isinstance(res, str)}
        good = [res for res in results if not isinstance(res, str)]
        pixels = np.stack(good) if good else np.zeros((0, size, size, 3), np.uint8)
        if cache is not None:
            _save_cache(cache, reasons, pixels)
    bad = records["image_id"].isin(list(reasons))
    corrupt = records.loc[bad, ["image_id", "path"]].assign(reason=records.loc[bad, "image_id"].map(reasons))
    if len(corrupt) > MAX_CORRUPT_SHARE * len(records):
        first = "; ".join(f"{r.image_id}: {r.reason}" for r in corrupt.head(3).itertuples())
        raise DataError(f"{len(corrupt)} of {len(records)} images cannot be decoded (more than "
                        f"{MAX_CORRUPT_SHARE:.0%}); first: {first}")
    return DecodedImages(records.loc[~bad].reset_index(drop=True), pixels, corrupt.reset_index(drop=True))


def _save_cache(cache: Path, reasons: dict[str, str], pixels: np.ndarray) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, pixels=pixels, corrupt_ids=np.array(list(reasons), dtype=str),
             corrupt_reasons=np.array(list(reasons.values()), dtype=str))
    tmp.replace(cache)


def labels_of(records: pd.DataFrame) -> np.ndarray:
    """Class indices in output order for a records table's dx column."""
    return records["dx"].map({code: i for i, code in enumerate(CODES)}).to_numpy(dtype=np.int64)
