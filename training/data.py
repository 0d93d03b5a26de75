"""Read HAM10000 as distributed, validate it, and decode every image once into a cache.

Two layouts are read:
- Kaggle / Harvard Dataverse: ``HAM10000_metadata.csv`` (lesion_id, image_id, dx, ...) with the
  JPEGs in ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``, or in any one folder.
- ISIC 2018 Task 3: ``ISIC2018_Task3_Training_GroundTruth.csv`` (image, MEL, NV, BCC, AKIEC,
  BKL, DF, VASC one-hot) with the JPEGs in ``ISIC2018_Task3_Training_Input/``; lesion ids come
  from ``ISIC2018_Task3_Training_LesionGroupings.csv`` when it is present.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.labels import CODES
from edge.preprocess import PREPROCESSING_NAME, ImageError, preprocess

KAGGLE_METADATA = "HAM10000_metadata.csv"
ISIC_GROUND_TRUTH = "ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_GROUPINGS = "ISIC2018_Task3_Training_LesionGroupings.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# More unreadable images than this share means the copy is damaged: abort rather than train on it.
MAX_CORRUPT_SHARE = 0.01


class DataError(ValueError):
    """The dataset folder cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True)
class Record:
    image_id: str
    lesion_id: str
    dx: str
    path: Path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def read_kaggle_metadata(path: Path) -> list[dict[str, str]]:
    """Rows of HAM10000_metadata.csv, checked for the columns the pipeline needs."""
    rows = _read_csv(path)
    if not rows:
        raise DataError(f"{path} has no rows")
    missing = {"lesion_id", "image_id", "dx"} - set(rows[0])
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    return rows


def read_isic_ground_truth(path: Path, groupings: Path | None) -> list[dict[str, str]]:
    """Rows in the Kaggle shape from the ISIC 2018 one-hot ground truth (+ lesion groupings)."""
    rows = _read_csv(path)
    columns = [c.upper() for c in CODES]
    if not rows or not set(columns) <= set(rows[0]) or "image" not in rows[0]:
        raise DataError(f"{path} is not an ISIC 2018 ground truth: expected columns image, {', '.join(columns)}")
    lesions = {}
    if groupings is not None:
        lesions = {r["image"]: r["lesion_id"] for r in _read_csv(groupings)}
    else:
        print(f"warning: {ISIC_GROUPINGS} not found; each image is treated as its own lesion, "
              "so images of one lesion may land in different splits")
    out = []
    for row in rows:
        hot = [c for c in columns if float(row[c]) >= 0.5]
        dx = hot[0].lower() if len(hot) == 1 else f"<{'+'.join(hot) or 'none'}>"
        out.append({"image_id": row["image"], "lesion_id": lesions.get(row["image"], row["image"]), "dx": dx})
    return out


def find_metadata(data_dir: Path) -> list[dict[str, str]]:
    """Detect the layout and return metadata rows with image_id, lesion_id and dx."""
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


def validate(rows: list[dict[str, str]], images: dict[str, Path], data_dir: Path) -> list[Record]:
    """Check ids, codes and files; return one Record per image, in metadata order."""
    duplicates = [i for i, n in Counter(r["image_id"] for r in rows).items() if n > 1]
    if duplicates:
        raise DataError(f"{len(duplicates)} duplicate image id(s) in the metadata: {', '.join(duplicates[:5])}")
    unknown = Counter(r["dx"] for r in rows if r["dx"] not in CODES)
    if unknown:
        listed = ", ".join(f"{code!r} ({n} rows)" for code, n in unknown.most_common(5))
        raise DataError(f"unknown dx code(s) {listed}; expected one of {', '.join(CODES)}")
    missing = [r["image_id"] for r in rows if r["image_id"] not in images]
    if missing:
        raise DataError(f"{len(missing)} of {len(rows)} images listed in the metadata are missing "
                        f"from {data_dir} (first: {', '.join(missing[:5])})")
    return [Record(r["image_id"], r["lesion_id"], r["dx"], images[r["image_id"]]) for r in rows]


def load_records(data_dir: Path) -> list[Record]:
    """Read and validate a HAM10000-layout folder.

    Raises:
        DataError: missing/empty folder, no metadata, missing images, unknown codes, duplicates.
    """
    data_dir = Path(data_dir)
    return validate(find_metadata(data_dir), index_images(data_dir), data_dir)


@dataclass
class DecodedImages:
    """Model-ready pixels for a list of records, and what could not be decoded."""

    records: list[Record]
    pixels: np.ndarray  # (N, size, size, 3) uint8, raw RGB
    corrupt: list[tuple[Record, str]]


def _cache_key(records: list[Record], size: int) -> str:
    h = hashlib.sha256(f"{PREPROCESSING_NAME}:{size}".encode())
    for r in records:
        stat = r.path.stat()
        h.update(f"{r.image_id}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())  # not the path: relative or absolute, same cache
    return h.hexdigest()[:20]


def _decode(record: Record, size: int) -> np.ndarray | str:
    try:
        return preprocess(record.path, size)
    except ImageError as err:
        return str(err)


def decode_images(records: list[Record], size: int, cache_dir: Path | None, workers: int = 4) -> DecodedImages:
    """Decode every image once through the shared preprocessing, reusing a cache when possible.

    Raises:
        DataError: more than MAX_CORRUPT_SHARE of the images cannot be decoded.
    """
    cache = Path(cache_dir) / f"images-{size}-{_cache_key(records, size)}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            keep = set(stored["image_ids"].tolist())
            reasons = dict(zip(stored["corrupt_ids"].tolist(), stored["corrupt_reasons"].tolist(), strict=True))
            pixels = stored["pixels"]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda r: _decode(r, size), records))
        reasons = {r.image_id: res for r, res in zip(records, results, strict=True) if isinstance(res, str)}
        keep = {r.image_id for r in records} - set(reasons)
        good = [res for res in results if not isinstance(res, str)]
        pixels = np.stack(good) if good else np.zeros((0, size, size, 3), np.uint8)
        if cache is not None:
            _save_cache(cache, records, keep, reasons, pixels)
    corrupt = [(r, reasons[r.image_id]) for r in records if r.image_id in reasons]
    if len(corrupt) > MAX_CORRUPT_SHARE * len(records):
        raise DataError(f"{len(corrupt)} of {len(records)} images cannot be decoded (more than "
                        f"{MAX_CORRUPT_SHARE:.0%}); first: " + "; ".join(f"{r.image_id}: {why}" for r, why in corrupt[:3]))
    return DecodedImages([r for r in records if r.image_id in keep], pixels, corrupt)


def _save_cache(cache: Path, records, keep, reasons, pixels) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, pixels=pixels, image_ids=np.array([r.image_id for r in records if r.image_id in keep]),
             corrupt_ids=np.array(list(reasons), dtype=str), corrupt_reasons=np.array(list(reasons.values()), dtype=str))
    tmp.replace(cache)


def write_excluded(path: Path, corrupt: list[tuple[Record, str]]) -> None:
    """List the images excluded as unreadable, so a user can find and replace them."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "path", "reason"])
        writer.writerows([r.image_id, str(r.path), why] for r, why in corrupt)


def labels_of(records: list[Record]) -> np.ndarray:
    return np.array([CODES.index(r.dx) for r in records], dtype=np.int64)
