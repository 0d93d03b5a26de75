"""The lesion-level split: no leakage, every class everywhere, proportions, determinism."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from edge.labels import CODES
from tests.conftest import run_module
from training.split import SplitError, make_split, read_split, write_split

HAM_CLASS_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}


@pytest.fixture(scope="module")
def ham_table() -> pd.DataFrame:
    """A HAM10000-shaped table: its class counts, and 26% of lesions with 2-6 images."""
    rng = np.random.default_rng(0)
    rows, lesion = [], 0
    for dx, count in HAM_CLASS_COUNTS.items():
        made = 0
        while made < count:
            lesion += 1
            n = 1 if rng.random() > 0.26 else int(rng.choice([2, 3, 4, 5, 6], p=[0.6, 0.22, 0.1, 0.05, 0.03]))
            for _ in range(min(n, count - made)):
                rows.append({"image_id": f"ISIC_{len(rows):07d}", "lesion_id": f"HAM_{lesion:07d}", "dx": dx})
                made += 1
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def split_1(ham_table) -> pd.Series:
    """The HAM10000-sized table split with seed 1 and the default fractions (0.1, 0.1): about 10 s
    of CPU (scikit-learn's StratifiedGroupKFold over 7,470 lesions), so made once."""
    return make_split(ham_table, seed=1)


# The tests that split the HAM10000-sized table are `slow` (each split is ~10 s of CPU): make test runs them.
@pytest.mark.slow
def test_no_lesion_is_in_two_splits(ham_table, split_1):
    split = split_1
    splits_per_lesion = ham_table.assign(split=split).groupby("lesion_id")["split"].nunique()
    assert splits_per_lesion.max() == 1


@pytest.mark.slow
def test_every_class_in_every_split_with_target_proportions(ham_table, split_1):
    split = np.array(split_1)
    dx = ham_table["dx"].to_numpy()
    for name, target in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        assert abs((split == name).mean() - target) < 0.01, name
        for code in CODES:
            share = (split[dx == code] == name).mean()
            assert abs(share - target) < 0.04, (name, code, share)


@pytest.mark.slow
def test_same_seed_same_split_other_seed_other_split(ham_table, split_1):
    assert make_split(ham_table, seed=1).equals(split_1)
    assert not make_split(ham_table, seed=6).equals(split_1)


@pytest.mark.slow
def test_configurable_fractions(ham_table):
    split = np.array(make_split(ham_table, val_fraction=0.15, test_fraction=0.2, seed=2))
    assert abs((split == "test").mean() - 0.2) < 0.015
    assert abs((split == "val").mean() - 0.15) < 0.015


def test_too_few_lesions_of_a_class_is_an_error(ham_table):
    rows = pd.concat([ham_table[ham_table["dx"] != "df"], pd.DataFrame(
        [{"image_id": "X1", "lesion_id": "L1", "dx": "df"}, {"image_id": "X2", "lesion_id": "L1", "dx": "df"}])])
    with pytest.raises(SplitError, match=r"at least 3 lesions.*df \(1\)"):
        make_split(rows)


def test_read_split_refuses_a_leaking_split(tmp_path, ham_table):
    rows = ham_table.head(50).assign(split="train")
    rows.loc[1, ["lesion_id", "split"]] = [rows.loc[0, "lesion_id"], "test"]
    write_split(tmp_path / "split.csv", rows)
    with pytest.raises(SplitError, match="puts 1 lesion"):
        read_split(tmp_path / "split.csv")


@pytest.mark.slow
def test_split_cli_from_metadata_alone(tmp_path, ham_table):
    meta = tmp_path / "HAM10000_metadata.csv"
    with meta.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writeheader()
        writer.writerows({**r, "dx_type": "histo", "age": "50.0", "sex": "male", "localization": "back"}
                         for r in ham_table.to_dict("records"))
    out = tmp_path / "split.csv"
    result = run_module("training.split", str(meta), "--out", str(out), "--seed", "3")
    with out.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == ["image_id", "lesion_id", "dx", "split"]
    assert len(written) == len(ham_table)
    counts = Counter((r["dx"], r["split"]) for r in written)
    mel_row = next(line for line in result.stdout.splitlines() if line.startswith("mel "))
    assert mel_row.split()[1] == str(counts[("mel", "train")])


def test_split_cli_missing_metadata(tmp_path):
    result = run_module("training.split", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "s.csv"), check=False)
    assert result.returncode == 2
    assert "metadata file" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
