"""Prove each variant still answers like the float model, with the edge runtime itself.

Decisions are judged on the validation split: the accuracy gate and the agreement gate read
only validation figures. The test split and the non-lesion photos are measured and reported,
never used to decide (ARCHITECTURE.md, "Honest answers").
"""

from __future__ import annotations

import numpy as np

from edge.classifier import Classifier, top_k
from training.metrics import compute_metrics
from training.ood import auroc


def litert_outputs(bundle_dir, variant: str, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, 7) probabilities, each image's OOD score and status, exactly as edge.Classifier answers."""
    classifier = Classifier(bundle_dir, variant=variant, num_threads=2)
    probs, scores, statuses = [], [], []
    for image in pixels:
        p, f = classifier.run(image)
        answer = classifier.honesty.decide(image, p, f, top_k(p, classifier.labels), classifier.manifest.codes)
        probs.append(p)
        scores.append(answer.checks["ood_score"])
        statuses.append(answer.status)
    return np.array(probs).reshape(-1, len(classifier.labels)), np.array(scores), statuses


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


def ood_metrics(classifier_scores: tuple[np.ndarray, np.ndarray], statuses: tuple[list[str], list[str]],
                reference_statuses: tuple[list[str], list[str]] | None) -> dict:
    """AUROC of lesions against non-lesion photos, acceptance of each, agreement with float32."""
    lesion_scores, outside_scores = classifier_scores
    lesion_status, outside_status = statuses
    result = {"auroc": auroc(lesion_scores, outside_scores),
              "test_acceptance": float(np.mean([s == "ok" for s in lesion_status])),
              "nonlesion_acceptance": float(np.mean([s == "ok" for s in outside_status]))}
    if reference_statuses is not None:
        mine, theirs = lesion_status + outside_status, reference_statuses[0] + reference_statuses[1]
        result["decision_agreement_with_float32"] = float(np.mean([a == b for a, b in zip(mine, theirs, strict=True)]))
    return result


def failures(results: dict[str, dict], reference_balanced_accuracy: float, max_drop_points: float,
             min_agreement: float, float32_tolerance: float) -> list[str]:
    """What disqualifies the bundle (validation figures only): float32 off Keras, or a quantized
    variant too much worse than float32 (Keras when float32 was not exported), or too often of
    another opinion (top-1 agreement with the float model, and, when float32 was exported, the
    same honest answer: ok, unsure or retake)."""
    problems = []
    if "float32" in results and results["float32"]["max_probability_difference"] > float32_tolerance:
        problems.append(f"float32 differs from Keras by {results['float32']['max_probability_difference']:.2e} "
                        f"(> {float32_tolerance:g}): the conversion is broken")
    base = results["float32"]["balanced_accuracy"] if "float32" in results else reference_balanced_accuracy
    for name, r in results.items():
        if name == "float32":
            continue
        drop = 100 * (base - r["balanced_accuracy"])
        if drop > max_drop_points:
            problems.append(f"{name}: validation balanced accuracy {100 * r['balanced_accuracy']:.1f}% is {drop:.1f} "
                            f"points below float32 ({100 * base:.1f}%), more than --max-drop "
                            f"{max_drop_points:g}")
        if r["top1_agreement"] < min_agreement:
            problems.append(f"{name}: top-1 agreement with float32 on validation is {r['top1_agreement']:.1%}, "
                            f"below --min-agreement {min_agreement:.0%}")
        if r.get("decision_agreement", 1.0) < min_agreement:
            problems.append(f"{name}: gives float32's answer (ok, unsure or retake) for {r['decision_agreement']:.1%} "
                            f"of validation images, below --min-agreement {min_agreement:.0%}")
    return problems


def table(results: dict[str, dict], entries: dict) -> str:
    """The verification table, Markdown (test split figures; OOD per variant)."""
    head = ("| variant | size | vs float32 | accuracy | balanced acc. | melanoma recall | top-1 agreement "
            "| max abs. prob. diff | OOD AUROC | lesions ok | non-lesion ok | same decision as float32 |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    float_bytes = entries["float32"].bytes if "float32" in entries else None
    lines = [head]
    for name, e in entries.items():
        r, o = results[name], results[name]["ood"]
        ratio = f"{e.bytes / float_bytes:.0%}" if float_bytes else "-"
        agreement = o.get("decision_agreement_with_float32")
        lines.append(f"| {name} | {e.bytes / 1024:.0f} KiB | {ratio} | {r['accuracy']:.1%} | "
                     f"{r['balanced_accuracy']:.1%} | {r['melanoma_sensitivity']:.1%} | {r['top1_agreement']:.1%} "
                     f"| {r['max_probability_difference']:.2e} | {o['auroc']:.3f} | {o['test_acceptance']:.1%} "
                     f"| {o['nonlesion_acceptance']:.1%} | {'-' if agreement is None else f'{agreement:.1%}'} |")
    return "\n".join(lines)
