"""Out of distribution: a score that tells photos like the training lesions from everything else.

Three scores are computed, higher meaning "less like the training lesions":
- mahalanobis: the smallest distance from the pooled features to a class mean, under one
  covariance shared by the classes and estimated with Ledoit-Wolf shrinkage (Lee et al., 2018),
  fitted on the training split only;
- msp: one minus the maximum (calibrated) softmax probability (Hendrycks & Gimpel, 2017);
- energy: minus the log-sum-exp of the calibrated logits (Liu et al., 2020).
The one that separates validation lesions from one set of non-lesion photos best (AUROC) is
kept; its threshold keeps a chosen share of validation lesions. The test split and a second,
independent set of non-lesion photos only report how well it worked.
"""

from __future__ import annotations

import numpy as np
from scipy import special
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

SCORES = ("mahalanobis", "msp", "energy")


def fit_mahalanobis(features: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, np.ndarray]:
    """Whitening matrix L (precision = L L^T) and the class means times L: distance = |f L - m L|^2."""
    means = np.stack([features[labels == c].mean(axis=0) if (labels == c).any() else features.mean(axis=0)
                      for c in range(classes)])
    centred = features - means[labels]
    covariance = LedoitWolf().fit(centred).covariance_
    # Shrinkage already keeps this invertible unless every feature is constant; the floor (a
    # millionth of the mean variance) only guards that degenerate case.
    covariance += np.eye(len(covariance)) * max(1e-6 * np.trace(covariance) / len(covariance), 1e-12)
    precision = np.linalg.inv(covariance)
    whitening = np.linalg.cholesky((precision + precision.T) / 2)
    return {"whitening": whitening, "whitened_means": means @ whitening}


def scores(features: np.ndarray, probabilities: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every score for a batch, exactly as edge/honesty.py computes them for one image."""
    whitened = features.astype(np.float64) @ arrays["whitening"]
    distances = ((whitened[:, np.newaxis, :] - arrays["whitened_means"][np.newaxis]) ** 2).sum(axis=2)
    logits = features.astype(np.float64) @ arrays["dense_kernel"] + arrays["dense_bias"]
    return {"mahalanobis": distances.min(axis=1), "msp": 1.0 - probabilities.max(axis=1),
            "energy": -special.logsumexp(logits, axis=1)}


def threshold_keeping(in_distribution: np.ndarray, keep: float) -> float:
    """The smallest threshold that accepts (score <= threshold) at least KEEP of these scores."""
    return float(np.quantile(in_distribution, keep, method="higher"))


def auroc(in_distribution: np.ndarray, outside: np.ndarray) -> float:
    """How well higher scores mark the non-lesion photos: 0.5 is chance, 1.0 perfect."""
    truth = np.r_[np.zeros(len(in_distribution)), np.ones(len(outside))]
    return float(roc_auc_score(truth, np.r_[in_distribution, outside]))


def choose(val_scores: dict[str, np.ndarray], selection_scores: dict[str, np.ndarray], keep: float) -> dict:
    """Per score: its selection AUROC and threshold; and the chosen score (best AUROC)."""
    compared = {name: {"selection_auroc": auroc(val_scores[name], selection_scores[name]),
                       "threshold": threshold_keeping(val_scores[name], keep)} for name in SCORES}
    best = max(SCORES, key=lambda name: compared[name]["selection_auroc"])
    return {"score": best, "threshold": compared[best]["threshold"], "keep_target": keep, "compared": compared}


def report(chosen: dict, test_scores: dict[str, np.ndarray], outside_scores: dict[str, np.ndarray]) -> dict:
    """Test-split figures for every score: AUROC against the report set, acceptance of each side."""
    for name, entry in chosen["compared"].items():
        t = entry["threshold"]
        entry.update(test_auroc=auroc(test_scores[name], outside_scores[name]),
                     test_acceptance=float((test_scores[name] <= t).mean()),
                     nonlesion_acceptance=float((outside_scores[name] <= t).mean()))
    return chosen
