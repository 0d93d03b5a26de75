"""Split HAM10000 into train/val/test by lesion, stratified by diagnosis, from the metadata alone.

Example usage:
    python -m training.split HAM10000_metadata.csv --out split.csv --seed 42

No lesion has images in two splits (the seed article split by image and so leaked), every class
is in every split, and the same seed gives the same split.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from edge.labels import CODES

SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    """The split cannot be made or read; the message says why."""


def _hold_out(dx: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of one stratified, group-disjoint fold holding about `fraction` of the rows."""
    n_splits = max(2, round(1 / fraction))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(folds.split(np.zeros(len(dx)), dx, groups))
    mask = np.zeros(len(dx), dtype=bool)
    mask[held] = True
    return mask


def make_split(rows: list[dict], val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42) -> list[str]:
    """Assign 'train', 'val' or 'test' to each row (dicts with image_id, lesion_id, dx).

    Raises:
        SplitError: bad fractions, or a class with too few lesions to appear in every split.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise SplitError(f"fractions must be in (0, 1) and leave room for training: val {val_fraction}, test {test_fraction}")
    dx = np.array([r["dx"] for r in rows])
    groups = np.array([r["lesion_id"] for r in rows])
    lesions = Counter({code: len({g for g, d in zip(groups, dx, strict=True) if d == code}) for code in set(dx)})
    scarce = [f"{c} ({n})" for c, n in sorted(lesions.items()) if n < 3]
    if scarce:
        raise SplitError(f"each class needs at least 3 lesions to appear in train, val and test; too few: {', '.join(scarce)}")
    split = np.full(len(rows), "train", dtype=object)
    test = _hold_out(dx, groups, test_fraction, seed)
    split[test] = "test"
    rest = np.flatnonzero(~test)
    val = _hold_out(dx[rest], groups[rest], val_fraction / (1 - test_fraction), seed + 1)
    split[rest[val]] = "val"
    _check_every_class(dx, split)
    return split.tolist()


def _check_every_class(dx: np.ndarray, split: np.ndarray) -> None:
    for name in SPLITS:
        absent = sorted(set(dx) - set(dx[split == name]))
        if absent:
            raise SplitError(f"the {name} split has no images of {', '.join(absent)}; the dataset is too small")


def write_split(path: Path, rows: list[dict], split: list[str]) -> None:
    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "lesion_id", "dx", "split"])
        writer.writerows([r["image_id"], r["lesion_id"], r["dx"], s] for r, s in zip(rows, split, strict=True))


def read_split(path: Path) -> dict[str, str]:
    """image_id -> split from a split.csv.

    Raises:
        SplitError: missing file, wrong columns, unknown split names, or a lesion in two splits.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file {path} does not exist")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"image_id", "lesion_id", "split"} <= set(rows[0]):
        raise SplitError(f"{path} needs the columns image_id, lesion_id, dx, split")
    bad = sorted({r["split"] for r in rows} - set(SPLITS))
    if bad:
        raise SplitError(f"{path} has unknown split name(s) {', '.join(bad)}; expected train, val or test")
    where: dict[str, set[str]] = {}
    for r in rows:
        where.setdefault(r["lesion_id"], set()).add(r["split"])
    leaking = [lesion for lesion, s in where.items() if len(s) > 1]
    if leaking:
        raise SplitError(f"{path} puts {len(leaking)} lesion(s) in more than one split, e.g. {leaking[0]}")
    return {r["image_id"]: r["split"] for r in rows}


def summary(rows: list[dict], split: list[str]) -> str:
    """A per-class table of image (and lesion) counts per split."""
    lines = [f"{'class':<7}" + "".join(f"{s:>16}" for s in SPLITS)]
    for code in CODES + ("all",):
        cells = []
        for s in SPLITS:
            chosen = [r for r, x in zip(rows, split, strict=True) if x == s and code in (r["dx"], "all")]
            cells.append(f"{len(chosen):>7} img {len({r['lesion_id'] for r in chosen}):>4} les")
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
    try:
        if not args.metadata.is_file():
            raise DataError(f"metadata file {args.metadata} does not exist")
        rows = read_kaggle_metadata(args.metadata)
        unknown = sorted({r["dx"] for r in rows} - set(CODES))
        if unknown:
            raise DataError(f"unknown dx code(s) {', '.join(unknown)}; expected one of {', '.join(CODES)}")
        split = make_split(rows, args.val_fraction, args.test_fraction, args.seed)
    except (DataError, SplitError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_split(args.out, rows, split)
    print(summary(rows, split))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
