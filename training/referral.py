"""The melanoma referral threshold: when the melanoma probability reaches it, the answer says
"show it to a doctor", even when melanoma is not the top class.

Chosen on the validation split for a target sensitivity (config `referral_sensitivity`, default
0.90): the highest threshold at which enough validation melanomas reach it, counted per image and
per lesion (a lesion is referred when at least half of its images are, training/lesionstats.py),
whichever is lower. "Enough" is a share whose one-sided exact (Clopper-Pearson) lower confidence
bound at `referral_confidence` (default 0.95) reaches the target: a threshold kept at exactly 90%
of 111 validation melanomas referred 79-80% of the melanomas of two test sets, the noise of a
small sample, so the validation share is raised until the target is what the sample shows with
that confidence (0 keeps the point estimate). The test split only reports the sensitivity and
specificity it then has.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from training.lesionstats import exact_interval

# Probabilities are clipped this far from 0 and 1 before taking log-odds (a float32 softmax saturates).
CLIP = 1e-6


def melanomas_to_keep(total: int, target: float, confidence: float = 0.0) -> int:
    """How many of TOTAL validation melanomas the threshold must keep: the fewest whose share has a
    one-sided exact lower bound at CONFIDENCE of at least TARGET (all of them when even that falls
    short); with CONFIDENCE 0, ceil(TARGET x TOTAL), the point estimate."""
    least = math.ceil(round(target * total, 9))
    if confidence == 0:
        return least
    two_sided = 2 * confidence - 1  # Clopper-Pearson is equal-tailed: its lower end is one-sided at CONFIDENCE
    return next((k for k in range(least, total + 1) if exact_interval(k, total, two_sided)[0] >= target), total)


def threshold_for_sensitivity(melanoma_probability: np.ndarray, is_melanoma: np.ndarray, target: float,
                              confidence: float = 0.0) -> float:
    """A threshold that enough of the melanomas reach (melanomas_to_keep): halfway, in log-odds,
    between the melanoma it must keep and the next lower probability of any validation image, so
    the validation figures are those of the highest such threshold while a quantized variant's
    rounding does not tip a kept melanoma below it.

    Raises:
        ValueError: no melanoma among the images, or a target or confidence outside their range.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    if confidence != 0 and not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be 0 or in (0.5, 1), got {confidence}")
    positives = np.sort(melanoma_probability[is_melanoma])[::-1]
    if len(positives) == 0:
        raise ValueError("no melanoma in the validation split: cannot choose a referral threshold")
    kept = positives[melanomas_to_keep(len(positives), target, confidence) - 1]
    below = melanoma_probability[melanoma_probability < kept]
    if len(below) == 0:
        return float(kept)
    logit = special.logit(np.clip([kept, below.max()], CLIP, 1 - CLIP))
    return float(special.expit(logit.mean()))


def lesion_scores(melanoma_probability: np.ndarray, lesion_id: np.ndarray) -> np.ndarray:
    """Per lesion, the highest threshold at which at least half of its images are referred: the
    ceil(n/2)-th largest melanoma probability among its n images."""
    ranked = pd.Series(melanoma_probability).groupby(np.asarray(lesion_id), sort=False)
    return ranked.apply(lambda p: np.sort(p.to_numpy())[::-1][math.ceil(len(p) / 2) - 1]).to_numpy()


def threshold_per_image_and_lesion(melanoma_probability: np.ndarray, is_melanoma: np.ndarray, lesion_id: np.ndarray,
                                   target: float, confidence: float = 0.0) -> dict[str, float]:
    """The image-level and lesion-level thresholds for TARGET sensitivity (at CONFIDENCE), and the
    one used (the lower).

    Raises:
        ValueError: as threshold_for_sensitivity.
    """
    per_image = threshold_for_sensitivity(melanoma_probability, is_melanoma, target, confidence)
    scores = lesion_scores(melanoma_probability[is_melanoma], lesion_id[is_melanoma])
    below_all = melanoma_probability[~is_melanoma]
    per_lesion = threshold_for_sensitivity(np.r_[scores, below_all], np.r_[np.ones(len(scores), bool),
                                                                           np.zeros(len(below_all), bool)], target,
                                         confidence)
    return {"image": per_image, "lesion": per_lesion, "threshold": min(per_image, per_lesion)}


def sensitivity_specificity(melanoma_probability: np.ndarray, is_melanoma: np.ndarray,
                            threshold: float) -> tuple[float, float]:
    referred = melanoma_probability >= threshold
    sensitivity = float(referred[is_melanoma].mean()) if is_melanoma.any() else float("nan")
    specificity = float((~referred[~is_melanoma]).mean()) if (~is_melanoma).any() else float("nan")
    return sensitivity, specificity
