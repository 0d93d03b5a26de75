"""The melanoma referral threshold: when the melanoma probability reaches it, the answer says
"show it to a doctor", even when melanoma is not the top class.

Chosen on the validation split for a target sensitivity (config `referral_sensitivity`, default
0.90): the highest threshold at which at least that share of validation melanomas reach it.
The test split only reports the sensitivity and specificity it then has.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

# Probabilities are clipped this far from 0 and 1 before taking log-odds (a float32 softmax saturates).
CLIP = 1e-6


def threshold_for_sensitivity(melanoma_probability: np.ndarray, is_melanoma: np.ndarray, target: float) -> float:
    """A threshold that at least TARGET of the melanomas reach: halfway, in log-odds, between the
    melanoma it must keep and the next lower probability of any validation image, so the
    validation figures are those of the highest such threshold while a quantized variant's
    rounding does not tip a kept melanoma below it.

    Raises:
        ValueError: no melanoma among the images, or a target outside (0, 1].
    """
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    positives = np.sort(melanoma_probability[is_melanoma])[::-1]
    if len(positives) == 0:
        raise ValueError("no melanoma in the validation split: cannot choose a referral threshold")
    kept = positives[math.ceil(target * len(positives)) - 1]
    below = melanoma_probability[melanoma_probability < kept]
    if len(below) == 0:
        return float(kept)
    logit = special.logit(np.clip([kept, below.max()], CLIP, 1 - CLIP))
    return float(special.expit(logit.mean()))


def sensitivity_specificity(melanoma_probability: np.ndarray, is_melanoma: np.ndarray,
                            threshold: float) -> tuple[float, float]:
    referred = melanoma_probability >= threshold
    sensitivity = float(referred[is_melanoma].mean()) if is_melanoma.any() else float("nan")
    specificity = float((~referred[~is_melanoma]).mean()) if (~is_melanoma).any() else float("nan")
    return sensitivity, specificity
