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


# Bands of float32's margin between its two largest probabilities, in which a variant's top-1
# disagreements are counted: quantization flips the near-ties first (docs/export.md). The export
# prints them on validation, `bench edge --data` on any split.
MARGIN_BANDS = (0.05, 0.2)


def disagreements(probabilities: np.ndarray, reference: np.ndarray) -> dict:
    """Where a variant's top-1 differs from float32's (REFERENCE): per band of float32's top-2
    margin, the images and how many of them disagree; and how many images have the variant's two
    largest probabilities exactly equal (a uint8 output's step is 1/256, and a tie goes to the
    class listed first)."""
    top2 = np.sort(reference, axis=1)[:, -2:]
    band = np.digitize(top2[:, 1] - top2[:, 0], MARGIN_BANDS)
    differ = probabilities.argmax(1) != reference.argmax(1)
    ours = np.sort(probabilities, axis=1)
    edges = (0.0, *MARGIN_BANDS, 1.0)
    return {"bands": [{"margin": [edges[i], edges[i + 1]], "images": int((band == i).sum()),
                       "disagree": int(differ[band == i].sum())} for i in range(len(edges) - 1)],
            "ties": int((ours[:, -1] == ours[:, -2]).sum())}


def describe_disagreements(name: str, found: dict, images: str = "validation") -> str:
    """One line: where NAME's top-1 disagreements with float32 on IMAGES sit (disagreements())."""
    bands = "; ".join(f"{b['disagree']} of {b['images']} with a margin of {b['margin'][0]:g}-{b['margin'][1]:g}"
                      for b in found["bands"])
    return (f"{name}: top-1 disagreements with float32 on {images}, by float32's margin between its two "
            f"largest probabilities: {bands}; {found['ties']} images with {name}'s two largest probabilities equal")
