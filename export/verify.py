"""Prove each variant still classifies like the Keras float model, with the edge runtime itself."""

from __future__ import annotations

import numpy as np

from edge.classifier import Classifier
from edge.labels import CODES
from training.metrics import compute_metrics


def litert_probabilities(bundle_dir, variant: str, pixels: np.ndarray) -> np.ndarray:
    """(N, 7) probabilities in label order from edge.Classifier, exactly as a device computes them."""
    classifier = Classifier(bundle_dir, variant=variant, num_threads=2)
    rows = np.zeros((len(pixels), len(CODES)))
    for i, image in enumerate(pixels):
        for p in classifier.classify_array(image):
            rows[i, CODES.index(p.code)] = p.probability
    return rows


def variant_metrics(labels: np.ndarray, probabilities: np.ndarray, reference: np.ndarray) -> dict:
    """The run's metric names, plus agreement with the float model on top-1."""
    m = compute_metrics(labels, probabilities)
    return {
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "top3_accuracy": m["top3_accuracy"],
        "melanoma_sensitivity": m["melanoma_sensitivity"],
        "per_class_recall": {code: c["recall"] for code, c in m["per_class"].items()},
        "top1_agreement": float((probabilities.argmax(1) == reference.argmax(1)).mean()),
        "max_probability_difference": float(np.abs(probabilities - reference).max()),
    }


def failures(results: dict[str, dict], reference_balanced_accuracy: float, max_drop_points: float,
             float32_tolerance: float) -> list[str]:
    """What disqualifies the bundle: float32 off Keras, or a quantized variant too much worse than float32.

    Quantized variants are compared with the float32 variant when it was exported, else with Keras.
    """
    problems = []
    if "float32" in results and results["float32"]["max_probability_difference"] > float32_tolerance:
        problems.append(f"float32 differs from Keras by {results['float32']['max_probability_difference']:.2e} "
                        f"(> {float32_tolerance:g}): the conversion is broken")
    base = results["float32"]["balanced_accuracy"] if "float32" in results else reference_balanced_accuracy
    for name, r in results.items():
        drop = 100 * (base - r["balanced_accuracy"])
        if name != "float32" and drop > max_drop_points:
            problems.append(f"{name}: balanced accuracy {100 * r['balanced_accuracy']:.1f}% is {drop:.1f} points "
                            f"below float32 ({100 * base:.1f}%), more than --max-drop {max_drop_points:g}")
    return problems


def table(results: dict[str, dict], entries: dict) -> str:
    """The verification table, Markdown."""
    head = ("| variant | size | vs float32 | accuracy | balanced acc. | melanoma recall | top-1 agreement "
            "| max abs. prob. diff |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    float_bytes = entries["float32"].bytes if "float32" in entries else None
    lines = [head]
    for name, e in entries.items():
        r = results[name]
        ratio = f"{e.bytes / float_bytes:.0%}" if float_bytes else "-"
        lines.append(f"| {name} | {e.bytes / 1024:.0f} KiB | {ratio} | {r['accuracy']:.1%} | "
                     f"{r['balanced_accuracy']:.1%} | {r['melanoma_sensitivity']:.1%} | {r['top1_agreement']:.1%} "
                     f"| {r['max_probability_difference']:.2e} |")
    return "\n".join(lines)
