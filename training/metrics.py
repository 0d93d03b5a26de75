"""The evaluation's figures: what a clinician-minded reader asks of a classifier, with uncertainty."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from edge.labels import CODES, MELANOMA, NAMES


def wilson(successes: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; honest on small test counts."""
    if total == 0:
        return (float("nan"), float("nan"))
    interval = stats.binomtest(successes, total).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(interval.low), float(interval.high))


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """The report's figures, named as metrics.json names them."""
    classes = list(range(len(CODES)))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    per_class = {
        code: {"name": NAMES[code], "precision": float(precision[i]), "recall": float(recall[i]),
               "recall_ci95": list(wilson(int(round(recall[i] * support[i])), int(support[i]))),
               "f1": float(f1[i]), "support": int(support[i])}
        for i, code in enumerate(CODES)
    }
    mel = CODES.index(MELANOMA)
    is_mel, said_mel = labels == mel, predicted == mel
    tp, fn = int((is_mel & said_mel).sum()), int((is_mel & ~said_mel).sum())
    tn, fp = int((~is_mel & ~said_mel).sum()), int((~is_mel & said_mel).sum())
    present = sorted(set(labels.tolist()))
    auc = (skm.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=classes)
           if len(present) == len(classes) else float("nan"))
    return {
        "n_test_images": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(labels, predicted)),
        "top2_accuracy": float(skm.top_k_accuracy_score(labels, probabilities, k=2, labels=classes)),
        "top3_accuracy": float(skm.top_k_accuracy_score(labels, probabilities, k=3, labels=classes)),
        "per_class": per_class,
        "melanoma_sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "melanoma_sensitivity_ci95": list(wilson(tp, tp + fn)),
        "melanoma_specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "melanoma_specificity_ci95": list(wilson(tn, tn + fp)),
        "roc_auc_macro": float(auc),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=classes).tolist(),
    }


