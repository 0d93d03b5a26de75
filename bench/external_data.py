"""The labelled images `python -m bench external` scores: ISIC 2018 Task 3 layout or a HAM10000 test split.

Both are read with training/data.py's readers (pandas), so the layouts are understood in one
place; they are imported here, not at module level, so the rest of bench/ runs without them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import BenchError

# The challenge's one-hot column order (its ground truth and its submissions).
CHALLENGE_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
METADATA = ("sex", "age", "localization")


def _training_data():
    try:
        from training import data, split
    except ImportError as err:
        raise BenchError(f"reading a labelled set needs pandas and scikit-learn: {err}") from None
    return data, split


def find_truth(data_dir: Path) -> Path:
    """The one ground-truth CSV of an ISIC 2018 folder.

    Raises:
        BenchError: none, or several to choose from.
    """
    found = sorted(p for p in data_dir.rglob("*GroundTruth*.csv") if p.is_file())
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise BenchError(f"expected one *GroundTruth*.csv in {data_dir}, found {listed}; pass --truth FILE")
    return found[0]


def _from_truth(data_dir: Path, truth: Path) -> pd.DataFrame:
    data, _ = _training_data()
    try:
        rows = data.read_isic_ground_truth(truth, None)
    except data.DataError as err:
        raise BenchError(str(err)) from None
    bad = rows.loc[rows["dx"].str.startswith("<"), "image_id"].tolist()
    if bad:
        raise BenchError(f"{truth}: {len(bad)} row(s) do not mark exactly one class (first: {', '.join(bad[:5])})")
    try:
        return data.validate(rows, data.index_images(data_dir), data_dir)
    except data.DataError as err:
        raise BenchError(str(err)) from None


def _from_ham_split(data_dir: Path, split_csv: Path) -> pd.DataFrame:
    data, split = _training_data()
    try:
        records = data.load_records(data_dir)
        table = split.read_split(split_csv)
    except (data.DataError, split.SplitError) as err:
        raise BenchError(str(err)) from None
    test = set(table.loc[table["split"] == "test", "image_id"])
    chosen = records[records["image_id"].isin(test)].reset_index(drop=True)
    if chosen.empty:
        raise BenchError(f"none of the images in {data_dir} is in the test split of {split_csv}")
    return chosen


def load(data_dir: Path, truth: Path | None, split_csv: Path | None, codes: list[str]) -> tuple[pd.DataFrame, str]:
    """(records: image_id, path, dx, lesion_id or None, and any of sex/age/localization; a description).

    Raises:
        BenchError: the folder, the ground truth or the split cannot be used, or a class the
            bundle does not know.
    """
    if not data_dir.is_dir():
        raise BenchError(f"data folder {data_dir} does not exist")
    if split_csv is not None:
        records, described = _from_ham_split(data_dir, split_csv), f"test split of {split_csv}, lesion ids known"
    else:
        truth = truth or find_truth(data_dir)
        records = _from_truth(data_dir, truth).assign(lesion_id=None)
        described = f"{truth.name} ({data_dir}), lesion ids unknown"
    unknown = sorted(set(records["dx"]) - set(codes))
    if unknown:
        raise BenchError(f"classes {', '.join(unknown)} in the data are not among the bundle's {', '.join(codes)}")
    keep = ["image_id", "path", "dx", "lesion_id", *[c for c in METADATA if c in records]]
    return records[keep], described
