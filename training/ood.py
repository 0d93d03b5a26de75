"""Out of distribution: a score that tells photos like the training lesions from everything else.

Candidates, higher meaning "less like the training lesions":
- mahalanobis on a layer's (or two layers') globally averaged activations: the smallest distance
  to a class mean under one covariance shared by the classes, estimated with Ledoit-Wolf
  shrinkage (Lee et al., 2018), fitted on the training split only;
- msp: one minus the maximum (calibrated) softmax probability (Hendrycks & Gimpel, 2017);
- energy: minus the log-sum-exp of the calibrated logits (Liu et al., 2020).
The one that separates validation lesions from one set of non-lesion photos best (AUROC; ties go
to the fewer features) is kept; its threshold keeps a chosen share of validation lesions. The
test split and a second, independent set of non-lesion photos only report how well it worked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class Candidate:
    score: str  # mahalanobis | msp | energy
    layers: tuple[str, ...]  # the features it reads, concatenated in this order

    @property
    def name(self) -> str:
        return f"{self.score}({'+'.join(self.layers)})" if self.score == "mahalanobis" else self.score


def candidates(mid_layers: tuple[str, str]) -> tuple[Candidate, ...]:
    """Mahalanobis on each mid-level layer, on the pooled features and on the first with them; MSP; energy."""
    first, second = mid_layers
    return (
        Candidate("mahalanobis", (first,)),
        Candidate("mahalanobis", (second,)),
        Candidate("mahalanobis", ("pool",)),
        Candidate("mahalanobis", (first, "pool")),
        Candidate("msp", ("pool",)),
        Candidate("energy", ("pool",)),
    )


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


def score(kind: str, features: np.ndarray, probabilities: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """One score for a batch, exactly as edge/honesty.py computes it for one image."""
    if kind == "msp":
        return 1.0 - probabilities.max(axis=1)
    if kind == "energy":
        logits = features.astype(np.float64) @ arrays["dense_kernel"] + arrays["dense_bias"]
        return -special.logsumexp(logits, axis=1)
    whitened = features.astype(np.float64) @ arrays["whitening"]
    distances = ((whitened[:, np.newaxis, :] - arrays["whitened_means"][np.newaxis]) ** 2).sum(axis=2)
    return distances.min(axis=1)


def threshold_keeping(in_distribution: np.ndarray, keep: float) -> float:
    """The smallest threshold that accepts (score <= threshold) at least KEEP of these scores."""
    return float(np.quantile(in_distribution, keep, method="higher"))


def auroc(in_distribution: np.ndarray, outside: np.ndarray) -> float:
    """How well higher scores mark the non-lesion photos: 0.5 is chance, 1.0 perfect."""
    truth = np.r_[np.zeros(len(in_distribution)), np.ones(len(outside))]
    return float(roc_auc_score(truth, np.r_[in_distribution, outside]))
