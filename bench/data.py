"""The images of one split of a dataset folder (the test split unless asked), read by the same code
training reads it with.

training.data.load_records reads both HAM10000 layouts (Kaggle / Dataverse and ISIC 2018 Task 3)
and training.split.read_split reads split.csv. Both are imported only when --data is given, so
`python -m bench edge` without --data needs nothing from training/ (a Raspberry Pi install).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import BenchError
from edge.preprocess import preprocess


def _import_training():
    """Import training's readers (not at module level: a Pi has no training/ dependencies)."""
    try:
        import training.data
        import training.split
    except ImportError as err:
        raise BenchError(f"--data needs training/ and its dependencies (pandas, scikit-learn, scipy): {err}") from None
    return training.data, training.split


SUBSETS = ("train", "val", "test")


def ids_in_split(split_csv: Path, subset: str = "test") -> set[str]:
    """Image ids of one split (train, val or test) of a split.csv."""
    from training.split import read_split

    table = read_split(split_csv)
    return set(table.loc[table["split"] == subset, "image_id"])


def images_for_accuracy(data_dir: Path, split_csv: Path | None, subset: str = "test",
                        every: int = 1) -> list[tuple[Path, str]]:
    """(image path, dx) of the SUBSET split, in metadata order, every EVERY-th of them; every image
    when there is no split file (SPLIT_CSV, else DATA_DIR/split.csv).

    Raises:
        BenchError: the folder or the split file is unusable (with training's message), or no
            image of the folder is in the split.
    """
    data, split = _import_training()
    if split_csv is None and (data_dir / "split.csv").is_file():
        split_csv = data_dir / "split.csv"
    try:
        records = data.load_records(data_dir)
        chosen = ids_in_split(split_csv, subset) if split_csv is not None else None
    except (data.DataError, split.SplitError) as err:
        raise BenchError(str(err)) from None
    if chosen is None:
        print(f"note: no split file given and no split.csv in {data_dir}: using all {len(records)} images",
              file=sys.stderr)
    else:
        records = records[records["image_id"].isin(chosen)]
    if records.empty:
        raise BenchError(f"none of the images in {data_dir} is in the {subset} split of {split_csv}")
    records = records.iloc[::every]
    return list(zip(records["path"], records["dx"], strict=True))


def label_index(dx: str, codes: list[str]) -> int:
    if dx not in codes:
        raise BenchError(f"diagnosis {dx!r} in the data is not one of the bundle's labels {codes}")
    return codes.index(dx)


def preprocess_to_file(items: list[tuple[Path, str]], size: int, path: Path) -> Path:
    """Preprocess once for all variants, into a memory-mapped file rather than RAM (Pi-sized)."""
    pixels = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(items), size, size, 3))
    for i, (image, _) in enumerate(tqdm(items, desc="preprocessing the images", unit="img")):
        pixels[i] = preprocess(image, size)
    pixels.flush()
    return path
