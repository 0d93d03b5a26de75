"""Statistics that respect lesions: intervals by resampling lesions, exact intervals of
proportions, and subgroup tables.

Several test images can show one lesion (on the real split, 451 of 1,002 test images belong to
lesions with more than one test image); treating them as independent makes intervals too
narrow. The bootstrap here resamples lesions with replacement, keeping each lesion's images
together, and takes percentile intervals: right for balanced accuracy and AUC. A percentile
bootstrap of a proportion collapses at 0% and 100% (16 of 16 melanomas gives [1, 1]), so
proportions (sensitivity, acceptance) get exact Clopper-Pearson intervals from SciPy instead,
counted per lesion where lesions repeat (`lesion_proportion`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

BOOTSTRAP_RESAMPLES = 1000
AGE_BANDS = [0, 30, 45, 60, 75, 200]
AGE_LABELS = ["<30", "30-44", "45-59", "60-74", "75+"]


def lesion_bootstrap(table: pd.DataFrame, statistic: Callable[[pd.DataFrame], dict[str, float]],
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each named statistic, resampling TABLE's lesion_id groups."""
    groups = list(table.groupby("lesion_id", sort=False).indices.values())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        chosen = rng.integers(0, len(groups), len(groups))
        sample = table.iloc[np.concatenate([groups[i] for i in chosen])]
        for name, value in statistic(sample).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2 * 100
    return {name: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail)))
            for name, v in draws.items()}


def exact_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of successes/total (SciPy's binomtest, method "exact"); nan for 0 of 0."""
    if total == 0:
        return (float("nan"), float("nan"))
    interval = stats.binomtest(int(successes), int(total)).proportion_ci(confidence_level=confidence, method="exact")
    return (float(interval.low), float(interval.high))


def lesion_proportion(hit: pd.Series, lesion_id: pd.Series) -> dict[str, float | int | list[float]]:
    """A proportion per image and per lesion, each with its exact 95% interval.

    A lesion counts as a hit when at least half of its images are (a person photographing it is
    then at least as likely as not to get the answer), so each lesion counts once.
    """
    per_lesion = hit.astype(float).groupby(lesion_id.to_numpy(), sort=False).mean() >= 0.5
    images, lesions = int(hit.sum()), int(per_lesion.sum())
    return {"images": int(len(hit)), "image_hits": images, "image_rate": images / len(hit) if len(hit) else float("nan"),
            "image_ci95": list(exact_interval(images, len(hit))),
            "lesions": int(len(per_lesion)), "lesion_hits": lesions,
            "lesion_rate": lesions / len(per_lesion) if len(per_lesion) else float("nan"),
            "lesion_ci95": list(exact_interval(lesions, len(per_lesion)))}


def recall_of(table: pd.DataFrame, code: str) -> float:
    """Share of images of class CODE predicted as CODE (nan when there is none)."""
    of_class = table["dx"] == code
    return float((table.loc[of_class, "predicted"] == code).mean()) if of_class.any() else float("nan")


def balanced_accuracy(table: pd.DataFrame) -> float:
    """Mean recall over the classes present (scikit-learn's definition, without its warning when a
    small subgroup lacks a predicted class)."""
    present = table["dx"].unique()
    return float(np.mean([recall_of(table, code) for code in present])) if len(present) else float("nan")


def subgroups(table: pd.DataFrame, melanoma: str, referred: pd.Series) -> pd.DataFrame:
    """Balanced accuracy and melanoma sensitivity (referral) by sex, age band and body site."""
    columns = [c for c in ("sex", "age", "localization") if c in table and table[c].notna().any()]
    frame = table.assign(referred=referred.to_numpy())
    if "age" in columns:
        ages = pd.to_numeric(frame["age"], errors="coerce")
        bands = pd.cut(ages, AGE_BANDS, labels=AGE_LABELS, right=False)
        frame["age band"] = bands.cat.add_categories("unknown").fillna("unknown").astype(str)
        columns[columns.index("age")] = "age band"
    rows = []
    for column in columns:
        for value, group in frame.groupby(column, sort=True):
            mel = group["dx"] == melanoma
            rows.append({"attribute": column, "value": value, "images": len(group),
                         "lesions": group["lesion_id"].nunique(), "balanced_accuracy": balanced_accuracy(group),
                         "melanomas": int(mel.sum()),
                         "melanoma_sensitivity": float(group.loc[mel, "referred"].mean()) if mel.any() else float("nan")})
    return pd.DataFrame(rows)


def test_statistics(codes: list[str], melanoma: str, threshold: float) -> Callable[[pd.DataFrame], dict[str, float]]:
    """Per-class recall, balanced accuracy, melanoma sensitivity/specificity (top-1 and referral)."""

    def statistic(table: pd.DataFrame) -> dict[str, float]:
        mel, said_mel, referred = table["dx"] == melanoma, table["predicted"] == melanoma, table[melanoma] >= threshold
        values = {f"recall_{code}": recall_of(table, code) for code in codes}
        values["balanced_accuracy"] = float(np.nanmean([values[f"recall_{c}"] for c in codes]))
        values["melanoma_sensitivity"] = float(said_mel[mel].mean()) if mel.any() else float("nan")
        values["melanoma_specificity"] = float((~said_mel[~mel]).mean()) if (~mel).any() else float("nan")
        values["referral_sensitivity"] = float(referred[mel].mean()) if mel.any() else float("nan")
        values["referral_specificity"] = float((~referred[~mel]).mean()) if (~mel).any() else float("nan")
        return values

    return statistic
