"""Temperature scaling: probabilities that mean what they say.

A network trained with cross-entropy is usually over-confident: among answers given with 90%,
fewer than 90% are right. One scalar T, fitted on the validation split by minimising the negative
log-likelihood (Guo et al., 2017, "On Calibration of Modern Neural Networks"), fixes most of it
without changing any top-1 answer: calibrated = softmax(logits / T). The export folds 1/T into
the last Dense layer, so every variant, int8 included, outputs calibrated probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import optimize, special
from sklearn import metrics as skm

from edge.labels import CODES

ECE_BINS = 15
# T outside this range means the fit failed (or the model outputs one class for everything).
TEMPERATURE_BOUNDS = (0.05, 20.0)


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant, which softmax ignores."""
    return np.log(np.clip(probabilities, 1e-12, None))


def scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    return special.softmax(logits_of(probabilities) / temperature, axis=1)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(skm.log_loss(labels, np.clip(probabilities, 1e-12, 1.0), labels=list(range(len(CODES)))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the validation NLL of softmax(logits / T)."""
    result = optimize.minimize_scalar(lambda t: negative_log_likelihood(scaled(probabilities, t), labels),
                                      bounds=TEMPERATURE_BOUNDS, method="bounded")
    return float(result.x)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over equal-width confidence bins: sum over bins of |accuracy - confidence| x bin share."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def figures(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ECE (15 bins), multiclass Brier score (sum over classes, mean over images) and NLL."""
    return {
        "ece": expected_calibration_error(probabilities, labels),
        "brier": float(skm.brier_score_loss(labels, probabilities, labels=list(range(len(CODES))),
                                            scale_by_half=False)),
        "nll": negative_log_likelihood(probabilities, labels),
    }


def plot_reliability(before: np.ndarray, after: np.ndarray, labels: np.ndarray, path: Path,
                     bins: int = ECE_BINS) -> None:
    """Accuracy against confidence per bin, before and after temperature scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    edges = np.linspace(0, 1, bins + 1)
    for ax, probs, title in ((axes[0], before, "before"), (axes[1], after, "after temperature scaling")):
        confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
        which = np.minimum((confidence * bins).astype(int), bins - 1)
        accuracy = [correct[which == b].mean() if (which == b).any() else np.nan for b in range(bins)]
        ax.bar(edges[:-1], accuracy, width=1 / bins, align="edge", edgecolor="black", label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ece = expected_calibration_error(probs, labels, bins)
        ax.set(title=f"Test split, {title} (ECE {ece:.3f})", xlabel="confidence (top-1 probability)",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
