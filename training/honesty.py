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
import pandas as pd

from edge import quality
from edge.labels import CODES, MELANOMA
from training import calibration, features, lesionstats, nonlesion, ood, referral
from training.config import TrainConfig
from training.dataset import Splits

# A highlight covering this share of the frame does not by itself make a photo unusable; the
# training images' own clipped share is used when it is larger.
MIN_CLIPPED_ALLOWANCE = 0.02
# Too dark: the highlights may sit this many stops (halvings of linear light) below the darkest
# training images' before a photo is refused. HAM10000 is mostly fair skin; the darkest skin
# reflects about a quarter of the light fair skin does (two stops), and one more stop is
# exposure latitude. In sRGB values, N stops down is a factor of about (2 ** -N) ** (1 / 2.4).
DARK_SKIN_STOPS = 3
DARK_SKIN_FACTOR = (2.0 ** -DARK_SKIN_STOPS) ** (1 / 2.4)


@dataclass
class Fitted:
    """What the bundle stores (params, arrays) and what the report shows (figures)."""

    params: dict
    arrays: dict[str, np.ndarray]
    figures: dict


def outputs(model, pixels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities, final pooled features) of the Keras model for uint8 images."""
    probabilities, feats = features.extract(model, pixels, ("pool",), batch_size)
    return probabilities, feats["pool"]


def calibrated_dense(model, temperature: float) -> dict[str, np.ndarray]:
    """The last layer's kernel and bias divided by T: softmax(f W/T + b/T) is the calibrated output."""
    kernel, bias = model.get_layer("probabilities").get_weights()
    return {"dense_kernel": kernel / temperature, "dense_bias": bias / temperature}


def fit_quality(train_pixels: np.ndarray, tail: float) -> dict[str, float]:
    """Limits at the training images' TAIL and 1-TAIL percentiles, and the share they pass.

    Too dark is judged on the highlights, with DARK_SKIN_STOPS of room below the training images'
    tail (ARCHITECTURE.md, "Honest answers"); the mean brightness at the tail is kept for the
    report (brightness_at_tail), not used.
    """
    measured = {k: [] for k in quality.MEASURES}
    for start in range(0, len(train_pixels), 512):
        for k, v in quality.measure(np.asarray(train_pixels[start:start + 512])).items():
            measured[k].append(v)
    m = {k: np.concatenate(v) for k, v in measured.items()}
    limits = {"highlights_min": float(np.quantile(m["highlights"], tail)) * DARK_SKIN_FACTOR,
              "brightness_max": float(np.quantile(m["brightness"], 1 - tail)),
              "clipped_max": max(float(np.quantile(m["clipped"], 1 - tail)), MIN_CLIPPED_ALLOWANCE),
              "sharpness_min": float(np.quantile(m["sharpness"], tail))}
    passes = ((m["highlights"] >= limits["highlights_min"]) & (m["brightness"] <= limits["brightness_max"])
              & (m["clipped"] <= limits["clipped_max"]) & (m["sharpness"] >= limits["sharpness_min"]))
    return {**limits, "percentile_tail": tail, "training_pass_rate": float(passes.mean()),
            "brightness_at_tail": float(np.quantile(m["brightness"], tail)), "dark_skin_stops": DARK_SKIN_STOPS}


def _candidate(candidate: ood.Candidate, feats: dict, probs: dict, labels: np.ndarray, dense: dict,
               keep: float) -> tuple[dict, dict[str, np.ndarray]]:
    """One OOD candidate: fitted on train, threshold on val; AUROC on both non-lesion sets."""
    def joined(name):
        return np.concatenate([feats[name][layer] for layer in candidate.layers], axis=1)

    arrays = {"mahalanobis": lambda: ood.fit_mahalanobis(joined("train"), labels, len(CODES)),
              "energy": lambda: dense, "msp": dict}[candidate.score]()
    scores = {name: ood.score(candidate.score, joined(name), probs[name], arrays)
              for name in ("val", "selection", "test", "report")}
    threshold = ood.threshold_keeping(scores["val"], keep)
    figures = {"score": candidate.score, "layers": list(candidate.layers), "threshold": threshold,
               "feature_width": int(joined("val").shape[1]),
               "selection_auroc": ood.auroc(scores["val"], scores["selection"]),
               "test_auroc": ood.auroc(scores["test"], scores["report"]),
               "test_acceptance": float((scores["test"] <= threshold).mean()),
               "nonlesion_acceptance": float((scores["report"] <= threshold).mean())}
    return figures, arrays


def choose_ood(feats: dict, probs: dict, labels: np.ndarray, dense: dict, keep: float,
               arch: str) -> tuple[dict, dict]:
    """Every candidate's figures and the kept one (best selection AUROC, then fewest features)."""
    results = {c.name: _candidate(c, feats, probs, labels, dense, keep)
               for c in ood.candidates(features.MID_LAYERS[arch])}
    best = max(results, key=lambda n: (round(results[n][0]["selection_auroc"], 3), -results[n][0]["feature_width"]))
    figures, arrays = results[best]
    summary = {"score": figures["score"], "layers": figures["layers"], "threshold": figures["threshold"],
               "keep_target": keep, "kept": best, "compared": {n: f for n, (f, _) in results.items()},
               "nonlesion_sources": dict(nonlesion.SOURCES)}
    return summary, arrays


def fit_referral(probabilities: np.ndarray, labels: np.ndarray, lesion_id: np.ndarray, target: float,
                 confidence: float = 0.0) -> dict:
    """The melanoma referral threshold (per image and per lesion, the lower) and its validation
    figures, with the one-sided lower bound at CONFIDENCE of the validation sensitivity."""
    mel = CODES.index(MELANOMA)
    p, is_mel = probabilities[:, mel], labels == mel
    chosen = referral.threshold_per_image_and_lesion(p, is_mel, lesion_id, target, confidence)
    sensitivity, specificity = referral.sensitivity_specificity(p, is_mel, chosen["threshold"])
    referred = p[is_mel] >= chosen["threshold"]
    lesions = lesionstats.lesion_proportion(pd.Series(referred), pd.Series(lesion_id[is_mel]))
    bound = lesionstats.exact_interval(int(referred.sum()), len(referred), 2 * confidence - 1)[0] if confidence else None
    return {"threshold": chosen["threshold"], "image_threshold": chosen["image"], "lesion_threshold": chosen["lesion"],
            "target_sensitivity": target, "confidence": confidence, "validation_sensitivity": sensitivity,
            "validation_sensitivity_lower_bound": bound, "validation_specificity": specificity,
            "validation_lesion_sensitivity": lesions["lesion_rate"]}


def fit(model, splits: Splits, config: TrainConfig) -> Fitted:
    """Fit on train/val; measure on test and on non-lesion photos."""
    layers = features.candidate_layers(config.arch)
    size = splits.pixels["train"].shape[1]
    images = {s: splits.pixels[s] for s in ("train", "val", "test")}
    for name in nonlesion.SETS:  # from different sources: one chooses the OOD score, one reports it
        images[name] = nonlesion.pixels(config.nonlesion_images, name, size)[0]
    built = features.model_for(model, layers)
    extracted = {name: features.extract(model, pixels, layers, config.batch_size, built)
                 for name, pixels in images.items()}
    raw = {name: p for name, (p, _) in extracted.items()}
    feats = {name: f for name, (_, f) in extracted.items()}
    labels = splits.labels
    temperature = calibration.fit_temperature(raw["val"], labels["val"])
    calibrated = {name: calibration.scaled(p, temperature) for name, p in raw.items()}
    chosen, arrays = choose_ood(feats, calibrated, labels["train"], calibrated_dense(model, temperature),
                                config.ood_keep, config.arch)
    params = {"temperature": temperature, "ood": chosen,
              "quality": fit_quality(splits.pixels["train"], config.quality_tail),
              "melanoma": fit_referral(calibrated["val"], labels["val"], splits.records["val"]["lesion_id"].to_numpy(),
                                       config.referral_sensitivity, config.referral_confidence),
              "low_confidence_below": config.low_confidence_below}
    figures = {"calibration": {"before": calibration.figures(raw["test"], labels["test"]),
                               "after": calibration.figures(calibrated["test"], labels["test"])},
               "test_probabilities_before": raw["test"], "test_probabilities": calibrated["test"]}
    return Fitted(params, arrays, figures)
