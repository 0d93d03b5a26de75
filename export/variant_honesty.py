"""Each quantized variant's own honest-answer settings, fitted on its own outputs.

The evaluation fits the out-of-distribution statistics and the referral threshold on the float
model. A quantized variant does not output float32's numbers: full int8's features are uint8
steps that saturate, and its probabilities move in steps of 1/256, so a referral threshold of
0.9989 fitted on float32 sits between two of its output levels and an OOD threshold fitted on
float features rejects lesions it should keep. So for every quantized variant the export runs
the variant itself (LiteRT, the very file that ships) on the training split to fit the same
score's statistics, and on the validation split to place its thresholds, exactly as the
evaluation did for the float model (training/honesty.py), and writes them as the variant's
override in the manifest with its own statistics file. The photo-quality limits depend on
pixels only and stay shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.bundle import sha256_hex
from edge.classifier import Classifier
from export.calibrated import honesty_bytes
from training import ood
from training.honesty import fit_referral

# Variants that take the float model's settings: float32 equals Keras within the export's 1e-4 gate.
SHARES_FLOAT_SETTINGS = ("float32",)


def outputs(bundle: Path, variant: str, pixels) -> tuple[np.ndarray, np.ndarray]:
    """(N, 7) probabilities and (N, width) OOD features of VARIANT, as the runtime computes them."""
    classifier = Classifier(bundle, variant=variant, num_threads=2)
    probabilities, features = [], []
    for start in range(0, len(pixels), 256):
        for image in np.asarray(pixels[start:start + 256]):
            p, f = classifier.run(image)
            probabilities.append(p)
            features.append(f)
    return np.array(probabilities), np.array(features)


def fit(bundle: Path, variant: str, splits, params: dict, float_arrays: dict, keep: float) -> tuple[dict, bytes]:
    """The manifest override for VARIANT and its statistics file's content.

    PARAMS are the evaluation's honesty settings (honesty.json): the variant keeps their score and
    features, and gets its own statistics, OOD threshold (keeping KEEP of validation lesions) and
    referral threshold (the same target sensitivity and confidence, per image and per lesion).
    """
    kind = params["ood"]["score"]
    train_p, train_f = outputs(bundle, variant, splits.pixels["train"])
    val_p, val_f = outputs(bundle, variant, splits.pixels["val"])
    arrays = (ood.fit_mahalanobis(train_f, splits.labels["train"], train_p.shape[1]) if kind == "mahalanobis"
              else {k: v for k, v in float_arrays.items() if k.startswith("dense_")})
    threshold = ood.threshold_keeping(ood.score(kind, val_f, val_p, arrays), keep)
    melanoma = fit_referral(val_p, splits.labels["val"], splits.records["val"]["lesion_id"].to_numpy(),
                            params["melanoma"]["target_sensitivity"], params["melanoma"].get("confidence", 0.0))
    content, layout = honesty_bytes(arrays)
    override = {"file": f"honesty-{variant}.bin", "bytes": len(content), "sha256": sha256_hex(content),
                "arrays": layout, "ood": {**params["ood"], "threshold": threshold, "fitted_on": variant},
                "melanoma": {**melanoma, "fitted_on": variant}}
    return override, content
