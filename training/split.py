"""Split HAM10000 into train/val/test by lesion, stratified by diagnosis, from the metadata alone.

Example usage:
    python -m training.split HAM10000_metadata.csv --out split.csv --seed 42

No lesion has images in two splits (the seed article split by image and so leaked), every class
is in every split, and the same seed gives the same split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from edge.errors import UsageError, run_cli
from edge.labels import CODES

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["image_id", "lesion_id", "dx", "split"]


class SplitError(UsageError):
    """The split cannot be made or read; the message says why."""


def _hold_out(dx: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of one stratified, group-disjoint fold holding about `fraction` of the rows."""
    n_splits = max(2, round(1 / fraction))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(np.zeros(len(dx)), dx, groups))
    mask = np.zeros(len(dx), dtype=bool)
    mask[held] = True
    return mask


def make_split(rows: pd.DataFrame, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42) -> pd.Series:
    """'train', 'val' or 'test' for each row of a table with image_id, lesion_id and dx.

    Raises:
        SplitError: bad fractions, or a class with too few lesions to appear in every split.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise SplitError(f"fractions must be in (0, 1) and leave room for training: val {val_fraction}, test {test_fraction}")
    lesions = rows.groupby("dx")["lesion_id"].nunique()
    scarce = [f"{c} ({n})" for c, n in lesions.sort_index().items() if n < 3]
    if scarce:
        raise SplitError(f"each class needs at least 3 lesions to appear in train, val and test; too few: {', '.join(scarce)}")
    dx, groups = rows["dx"].to_numpy(), rows["lesion_id"].to_numpy()
    split = np.full(len(rows), "train", dtype=object)
    test = _hold_out(dx, groups, test_fraction, seed)
    split[test] = "test"
    rest = np.flatnonzero(~test)
    val = _hold_out(dx[rest], groups[rest], val_fraction / (1 - test_fraction), seed + 1)
    split[rest[val]] = "val"
    result = pd.Series(split, index=rows.index, name="split")
    _check_every_class(rows["dx"], result)
    return result


def _check_every_class(dx: pd.Series, split: pd.Series) -> None:
    for name in SPLITS:
        absent = sorted(set(dx) - set(dx[split == name]))
        if absent:
            raise SplitError(f"the {name} split has no images of {', '.join(absent)}; the dataset is too small")


def write_split(path: Path, table: pd.DataFrame) -> None:
    """Write the SPLIT_COLUMNS of a table that has them."""
    table[SPLIT_COLUMNS].to_csv(path, index=False)


def read_split(path: Path) -> pd.DataFrame:
    """A split.csv as a table with SPLIT_COLUMNS, checked.

    Raises:
        SplitError: missing file, wrong columns, unknown split names, or a lesion in two splits.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file {path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SplitError(f"{path} is not a readable CSV table: {err}") from None
    if table.empty or not {"image_id", "lesion_id", "split"} <= set(table.columns):
        raise SplitError(f"{path} needs the columns {', '.join(SPLIT_COLUMNS)}")
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad:
        raise SplitError(f"{path} has unknown split name(s) {', '.join(bad)}; expected train, val or test")
    per_lesion = table.groupby("lesion_id")["split"].nunique()
    leaking = per_lesion[per_lesion > 1].index.tolist()
    if leaking:
        raise SplitError(f"{path} puts {len(leaking)} lesion(s) in more than one split, e.g. {leaking[0]}")
    return table


def summary(table: pd.DataFrame) -> str:
    """A per-class table of image (and lesion) counts per split, from columns dx, lesion_id, split."""
    images = pd.crosstab(table["dx"], table["split"]).reindex(index=list(CODES), columns=list(SPLITS), fill_value=0)
    lesions = (table.groupby(["dx", "split"])["lesion_id"].nunique().unstack(fill_value=0)
               .reindex(index=list(CODES), columns=list(SPLITS), fill_value=0))
    images.loc["all"] = table["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    lesions.loc["all"] = table.groupby("split")["lesion_id"].nunique().reindex(list(SPLITS), fill_value=0)
    lines = [f"{'class':<7}" + "".join(f"{s:>16}" for s in SPLITS)]
    for code in images.index:
        cells = [f"{images.at[code, s]:>7} img {lesions.at[code, s]:>4} les" for s in SPLITS]
        lines.append(f"{code:<7}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from training.data import DataError, read_kaggle_metadata

    parser = argparse.ArgumentParser(prog="python -m training.split", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metadata", type=Path, help="HAM10000_metadata.csv")
    parser.add_argument("--out", type=Path, required=True, help="split CSV to write")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of images for validation")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of images for test")
    args = parser.parse_args(argv)
    if not args.metadata.is_file():
        raise DataError(f"metadata file {args.metadata} does not exist")
    rows = read_kaggle_metadata(args.metadata)
    unknown = sorted(set(rows["dx"]) - set(CODES))
    if unknown:
        raise DataError(f"unknown dx code(s) {', '.join(unknown)}; expected one of {', '.join(CODES)}")
    table = rows.assign(split=make_split(rows, args.val_fraction, args.test_fraction, args.seed))
    write_split(args.out, table)
    print(summary(table))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m training.split"))
