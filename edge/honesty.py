"""Honest answers: "retake" for an unusable photo, "unsure" for one unlike the training images,
"ok" otherwise, with the reasons a person needs (ARCHITECTURE.md, "Honest answers"). The answer's
shape and the reasons' texts are edge/answer.py's.

Everything decided here comes from the bundle (manifest "honesty" section plus honesty.bin), so
the Pi, the server and the phone decide identically. Probabilities arrive already calibrated:
the export folded the temperature into the model's last layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge import quality
from edge.answer import Answer, Reason
from edge.bundle import read_verified_file
from edge.errors import BundleError
from edge.labels import MALIGNANT, MELANOMA
from edge.manifest import HonestyInfo


def quality_reasons(measured: dict[str, float], info: HonestyInfo) -> list[Reason]:
    """too_dark (the highlights) / too_bright / blurry against the limits derived from the training images."""
    limits = info.quality
    reasons = []
    if measured["highlights"] < limits["highlights_min"]:
        reasons.append(Reason.of("too_dark"))
    if measured["brightness"] > limits["brightness_max"] or measured["clipped"] > limits["clipped_max"]:
        reasons.append(Reason.of("too_bright"))
    if measured["sharpness"] < limits["sharpness_min"]:
        reasons.append(Reason.of("blurry"))
    return reasons


# Which arrays of honesty.bin each score reads, and their shapes given the feature width D.
NEEDS = {"mahalanobis": {"whitening": lambda d, k: [d, d], "whitened_means": lambda d, k: [k, d]},
         "energy": {"dense_kernel": lambda d, k: [d, k], "dense_bias": lambda d, k: [k]},
         "msp": {}}


class Honesty:
    """The bundle's checks, ready to run: arrays loaded and verified once."""

    def __init__(self, bundle_dir: str | Path, info: HonestyInfo, feature_width: int, classes: int):
        """Raises BundleError: honesty.bin missing, changed, or not shaped for the model."""
        self.info = info
        content = read_verified_file(bundle_dir, info.file, info.sha256)
        self.arrays = info.unpack(content)
        for name, shape in NEEDS[info.ood_score].items():
            expected = shape(feature_width, classes)
            got = list(self.arrays[name].shape) if name in self.arrays else None
            if got != expected:
                raise BundleError(f"{info.file}: the {info.ood_score} score needs {name} of shape {expected}, "
                                  f"the bundle has {got or 'none'}")

    def ood_score(self, features: np.ndarray, probabilities: np.ndarray) -> float:
        """The bundle's score; higher means less like the training lesions (training/ood.py)."""
        kind = self.info.ood_score
        if kind == "msp":
            return float(1.0 - probabilities.max())
        f = features.astype(np.float64)
        if kind == "energy":
            logits = f @ self.arrays["dense_kernel"] + self.arrays["dense_bias"]
            top = logits.max()
            return float(-(top + np.log(np.exp(logits - top).sum())))
        whitened = f @ self.arrays["whitening"]
        return float(((whitened[np.newaxis, :] - self.arrays["whitened_means"]) ** 2).sum(axis=1).min())

    def decide(self, pixels: np.ndarray, probabilities: np.ndarray, features: np.ndarray,
               predictions: Sequence, codes: Sequence[str]) -> Answer:
        """The answer for one preprocessed image and the model's outputs for it."""
        measured = quality.measure(pixels)
        score = self.ood_score(features, probabilities)
        checks = {**measured, "ood_score": score, "ood_threshold": self.info.ood_threshold}
        photo = quality_reasons(measured, self.info)
        if photo:
            status = "retake"
        elif score > self.info.ood_threshold:
            status, photo = "unsure", [Reason.of("out_of_distribution")]
        else:
            status = "ok"
        reasons = photo + output_reasons(probabilities, codes, self.info)
        return Answer(status, tuple(reasons), tuple(predictions), checks)


def output_reasons(probabilities: np.ndarray, codes: Sequence[str], info: HonestyInfo) -> list[Reason]:
    """What the model's output obliges a person to be told, whatever the status: see a doctor when
    the top class can be a cancer (the first of equal tops, as top_k orders them) or when the
    melanoma probability reached the referral threshold; and a low top probability."""
    codes = list(codes)
    reasons = []
    if codes[int(np.argmax(probabilities))] in MALIGNANT:
        reasons.append(Reason.of("malignant_class"))
    if probabilities[codes.index(MELANOMA)] >= info.melanoma_threshold:
        reasons.append(Reason.of("melanoma_risk"))
    if probabilities.max() < info.low_confidence_below:
        reasons.append(Reason.of("low_confidence"))
    return reasons
