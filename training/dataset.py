"""A run's images, decoded once and divided into its train / val / test splits.

Training, evaluation and export all start here, so all three see the same pixels in the same
split; the split itself is made once (training/split.py) and kept in the run folder. The pixels
of each split are a lazy view on the decoded-image cache (training/cache.py): an index array,
read a batch at a time, never a copy of the split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training import data as data_mod
from training.cache import Pixels
from training.config import TrainConfig
from training.run import RunDir
from training.split import SPLITS, SplitError, make_split, read_split


@dataclass
class Splits:
    """Pixels and labels of each split, plus the records table rows they came from.

    `pixels[s]` is array-like (len, shape, int/slice/array indexing, np.asarray, astype,
    iteration, `batches(n)`), read from the cache when indexed.
    """

    records: dict[str, pd.DataFrame]
    pixels: dict[str, Pixels]
    labels: dict[str, np.ndarray]

    def table(self) -> pd.DataFrame:
        """Every decoded record with its split, in split order."""
        return pd.concat([self.records[s].assign(split=s) for s in SPLITS], ignore_index=True)


def assign_split(records: pd.DataFrame, config: TrainConfig, run: RunDir, split_file: Path | None) -> pd.Series:
    """Reuse the run's split, or a given one, or make one; always leave split.csv in the run.

    Raises:
        SplitError: the given or saved split does not cover every image.
    """
    saved = run.split_csv
    source = split_file or (saved if saved.is_file() else None)
    if source is None:
        where = make_split(records, config.val_fraction, config.test_fraction, config.seed)
    else:
        by_id = read_split(source).set_index("image_id")["split"]
        where = records["image_id"].map(by_id)
        missing = records.loc[where.isna(), "image_id"].tolist()
        if missing:
            raise SplitError(f"{len(missing)} images are not in the split file {source} "
                             f"(first: {', '.join(missing[:5])})")
    if source is None or Path(source).resolve() != saved.resolve():
        run.write_split(records.assign(split=where))
    return where.rename("split")


def load_splits(records: pd.DataFrame, config: TrainConfig, run: RunDir, split_file: Path | None,
                cache_dir: Path | None) -> Splits:
    """Decode each image once (cached) and divide the pixels by split."""
    started = time.perf_counter()
    decoded = data_mod.decode_images(records, config.image_size, cache_dir)
    print(f"decoded {len(decoded.records)} images at {config.image_size} px in {time.perf_counter() - started:.1f} s")
    if len(decoded.corrupt):
        where = run.write_excluded(decoded.corrupt)
        print(f"excluded {len(decoded.corrupt)} unreadable image(s): see {where}")
    where = assign_split(records, config, run, split_file)
    split_of = decoded.records["image_id"].map(dict(zip(records["image_id"], where, strict=True))).to_numpy()
    labels = data_mod.labels_of(decoded.records)
    return Splits(
        records={s: decoded.records[split_of == s].reset_index(drop=True) for s in SPLITS},
        pixels={s: decoded.pixels.subset(split_of == s) for s in SPLITS},
        labels={s: labels[split_of == s] for s in SPLITS},
    )


def load_run_splits(run: RunDir, data_dir: Path | None = None) -> Splits:
    """The splits of a finished run, from its dataset folder (or DATA_DIR if it moved).

    Raises:
        DataError, SplitError: the dataset folder or the split file cannot be used.
    """
    records = data_mod.load_records(run.data_dir(data_dir))
    return load_splits(records, run.config(), run, run.split_csv, run.cache_dir())
