"""Fit everything a runtime needs for honest answers, on the training and validation splits only.

- the temperature (validation NLL), so probabilities mean what they say;
- the out-of-distribution score and threshold (training features, validation threshold);
- the photo-quality limits (percentiles of the training images);
- the melanoma referral threshold (validation sensitivity target).
The test split and the report set of non-lesion photos are only measured, never used to choose.
The export copies the result into the bundle (manifest "honesty" section plus honesty.bin).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge import quality
from edge.labels import CODES, MELANOMA
from training import calibration, nonlesion, ood, referral
from training.config import TrainConfig
from training.dataset import Splits

# Non-lesion photos: one set chooses the OOD score, an independent one reports it.
SELECTION_SEED, REPORT_SEED = 101, 202
# A highlight covering this share of the frame does not by itself make a photo unusable; the
# training images' own clipped share is used when it is larger.
MIN_CLIPPED_ALLOWANCE = 0.02


@dataclass
class Fitted:
    """What the bundle stores (params, arrays) and what the report shows (figures)."""

    params: dict
    arrays: dict[str, np.ndarray]
    figures: dict


def outputs(model, pixels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities, pooled features) of the Keras model for a batch of uint8 images."""
    import keras

    both = keras.Model(model.input, [model.output, model.get_layer("pool").output])
    probs, features = [], []
    for start in range(0, len(pixels), 256):  # bounded memory on HAM10000-sized splits
        p, f = both.predict(np.asarray(pixels[start:start + 256], np.float32), batch_size=batch_size, verbose=0)
        probs.append(p)
        features.append(f)
    width = both.output[1].shape[-1]
    return (np.concatenate(probs) if probs else np.zeros((0, len(CODES))),
            np.concatenate(features) if features else np.zeros((0, width)))


def calibrated_dense(model, temperature: float) -> dict[str, np.ndarray]:
    """The last layer's kernel and bias divided by T: softmax(f W/T + b/T) is the calibrated output."""
    kernel, bias = model.get_layer("probabilities").get_weights()
    return {"dense_kernel": kernel / temperature, "dense_bias": bias / temperature}


def fit_quality(train_pixels: np.ndarray, tail: float) -> dict[str, float]:
    """Limits at the training images' TAIL and 1-TAIL percentiles, and the share they pass."""
    measured = {k: [] for k in quality.MEASURES}
    for start in range(0, len(train_pixels), 512):
        for k, v in quality.measure(np.asarray(train_pixels[start:start + 512])).items():
            measured[k].append(v)
    m = {k: np.concatenate(v) for k, v in measured.items()}
    limits = {"brightness_min": float(np.quantile(m["brightness"], tail)),
              "brightness_max": float(np.quantile(m["brightness"], 1 - tail)),
              "clipped_max": max(float(np.quantile(m["clipped"], 1 - tail)), MIN_CLIPPED_ALLOWANCE),
              "sharpness_min": float(np.quantile(m["sharpness"], tail))}
    passes = ((m["brightness"] >= limits["brightness_min"]) & (m["brightness"] <= limits["brightness_max"])
              & (m["clipped"] <= limits["clipped_max"]) & (m["sharpness"] >= limits["sharpness_min"]))
    return {**limits, "percentile_tail": tail, "training_pass_rate": float(passes.mean())}


def fit(model, splits: Splits, config: TrainConfig) -> Fitted:
    """Fit on train/val; measure on test and on non-lesion photos."""
    out = {s: outputs(model, splits.pixels[s], config.batch_size) for s in ("train", "val", "test")}
    labels = splits.labels
    temperature = calibration.fit_temperature(out["val"][0], labels["val"])
    calibrated = {s: calibration.scaled(p, temperature) for s, (p, _) in out.items()}
    arrays = {**ood.fit_mahalanobis(out["train"][1], labels["train"], len(CODES)),
              **calibrated_dense(model, temperature)}
    size = splits.pixels["train"].shape[1]
    scores = {s: ood.scores(out[s][1], calibrated[s], arrays) for s in ("val", "test")}
    outside = {}
    for name, seed in (("selection", SELECTION_SEED), ("report", REPORT_SEED)):
        pixels, _ = nonlesion.pixels(config.nonlesion_images, seed, size)
        p, f = outputs(model, pixels, config.batch_size)
        outside[name] = ood.scores(f, calibration.scaled(p, temperature), arrays)
    chosen = ood.report(ood.choose(scores["val"], outside["selection"], config.ood_keep), scores["test"],
                        outside["report"])
    mel = CODES.index(MELANOMA)
    threshold = referral.threshold_for_sensitivity(calibrated["val"][:, mel], labels["val"] == mel,
                                                   config.referral_sensitivity)
    val_sens, val_spec = referral.sensitivity_specificity(calibrated["val"][:, mel], labels["val"] == mel, threshold)
    params = {"temperature": temperature, "ood": chosen,
              "quality": fit_quality(splits.pixels["train"], config.quality_tail),
              "melanoma": {"threshold": threshold, "target_sensitivity": config.referral_sensitivity,
                           "validation_sensitivity": val_sens, "validation_specificity": val_spec},
              "low_confidence_below": config.low_confidence_below}
    figures = {"calibration": {"before": calibration.figures(out["test"][0], labels["test"]),
                               "after": calibration.figures(calibrated["test"], labels["test"])},
               "test_probabilities_before": out["test"][0], "test_probabilities": calibrated["test"]}
    return Fitted(params, arrays, figures)
