"""The melanoma referral threshold: when the melanoma probability reaches it, the answer says
"show it to a doctor", even when melanoma is not the top class.

Chosen on the validation split for a target sensitivity (config `referral_sensitivity`, default
0.90): the highest threshold at which at least that share of validation melanomas reach it.
The test split only reports the sensitivity and specificity it then has.
"""

from __future__ import annotations

import math

import numpy as np


def threshold_for_sensitivity(melanoma_probability: np.ndarray, is_melanoma: np.ndarray, target: float) -> float:
    """The highest t such that at least TARGET of the melanomas have probability >= t.

    Raises:
        ValueError: no melanoma among the images, or a target outside (0, 1].
    """
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    positives = np.sort(melanoma_probability[is_melanoma])[::-1]
    if len(positives) == 0:
        raise ValueError("no melanoma in the validation split: cannot choose a referral threshold")
    return float(positives[math.ceil(target * len(positives)) - 1])


def sensitivity_specificity(melanoma_probability: np.ndarray, is_melanoma: np.ndarray,
                            threshold: float) -> tuple[float, float]:
    referred = melanoma_probability >= threshold
    sensitivity = float(referred[is_melanoma].mean()) if is_melanoma.any() else float("nan")
    specificity = float((~referred[~is_melanoma]).mean()) if (~is_melanoma).any() else float("nan")
    return sensitivity, specificity
