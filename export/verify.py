"""Prove each variant still answers like the float model, with the edge runtime itself.

Decisions are judged on the validation split: the accuracy gate and the agreement gate read
only validation figures. The test split and the non-lesion photos are measured and reported,
never used to decide (ARCHITECTURE.md, "Honest answers").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.classifier import Classifier, top_k
from training.calibration import expected_calibration_error
from training.metrics import compute_metrics
from training.ood import auroc


@dataclass(frozen=True)
class Outputs:
    """A variant's answers to a set of images, as edge.Classifier gives them."""

    probabilities: np.ndarray  # (N, 7)
    scores: np.ndarray  # each image's OOD score
    statuses: list[str]
    referred: np.ndarray  # the answer tells the person to see a doctor


def litert_outputs(bundle_dir, variant: str, pixels: np.ndarray) -> Outputs:
    """Every image's probabilities, OOD score, status and referral, exactly as edge.Classifier answers."""
    classifier = Classifier(bundle_dir, variant=variant, num_threads=2)
    probs, scores, statuses, referred = [], [], [], []
    for image in pixels:
        p, f = classifier.run(image)
        answer = classifier.honesty.decide(image, p, f, top_k(p, classifier.labels), classifier.manifest.codes)
        probs.append(p)
        scores.append(answer.checks["ood_score"])
        statuses.append(answer.status)
        referred.append(answer.refers())
    return Outputs(np.array(probs).reshape(-1, len(classifier.labels)), np.array(scores), statuses, np.array(referred))


def variant_metrics(labels: np.ndarray, probabilities: np.ndarray, reference: np.ndarray) -> dict:
    """The run's metric names, plus calibration and agreement with the float model on top-1."""
    m = compute_metrics(labels, probabilities)
    return {
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "top3_accuracy": m["top3_accuracy"],
        "melanoma_sensitivity": m["melanoma_sensitivity"],
        "per_class_recall": {code: c["recall"] for code, c in m["per_class"].items()},
        "ece": expected_calibration_error(probabilities, labels),
        "top1_agreement": float((probabilities.argmax(1) == reference.argmax(1)).mean()),
        "max_probability_difference": float(np.abs(probabilities - reference).max()),
    }


def _same(mine, theirs) -> float:
    return float(np.mean(np.asarray(mine) == np.asarray(theirs)))


def agreement(answers: dict[str, Outputs], float_answers: dict[str, Outputs]) -> dict[str, float]:
    """How often a variant answers as float32 does: the status on validation lesions and on the
    selection set of non-lesion photos, and the referral on validation lesions."""
    return {"decision_agreement": _same(answers["val"].statuses, float_answers["val"].statuses),
            "nonlesion_decision_agreement": _same(answers["selection"].statuses, float_answers["selection"].statuses),
            "referral_agreement": _same(answers["val"].referred, float_answers["val"].referred)}


def ood_metrics(lesions: Outputs, outside: Outputs, float_answers: dict[str, Outputs]) -> dict:
    """On the test split and the report set: AUROC of lesions against non-lesion photos, acceptance
    of each, and agreement with float32's statuses there."""
    result = {"auroc": auroc(lesions.scores, outside.scores),
              "test_acceptance": float(np.mean([s == "ok" for s in lesions.statuses])),
              "nonlesion_acceptance": float(np.mean([s == "ok" for s in outside.statuses]))}
    theirs = float_answers["test"].statuses + float_answers["report"].statuses
    result["decision_agreement_with_float32"] = _same(lesions.statuses + outside.statuses, theirs)
    return result


# The agreements a quantized variant must reach with float32 (when float32 was exported), and how
# the failure reads.
AGREEMENTS = {"decision_agreement": "gives float32's answer (ok, unsure or retake) for {:.1%} of validation images",
              "nonlesion_decision_agreement": "gives float32's answer for {:.1%} of the selection set's non-lesion photos",
              "referral_agreement": "refers to a doctor as float32 does for {:.1%} of validation images"}


def failures(results: dict[str, dict], reference_balanced_accuracy: float, max_drop_points: float,
             min_agreement: float, float32_tolerance: float, max_ece_rise: float = 0.02) -> list[str]:
    """What disqualifies the bundle (validation figures only): float32 off Keras, or a quantized
    variant too much worse than float32 (Keras when float32 was not exported), too often of
    another opinion (top-1, and, when float32 was exported, the honest answer on lesions and on
    non-lesion photos, and the referral), or less well calibrated (ECE) by more than MAX_ECE_RISE."""
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
        for key, text in AGREEMENTS.items():
            if r.get(key, 1.0) < min_agreement:
                problems.append(f"{name}: {text.format(r[key])}, below --min-agreement {min_agreement:.0%}")
        if "float32" in results and r["ece"] - results["float32"]["ece"] > max_ece_rise:
            problems.append(f"{name}: validation calibration error {r['ece']:.3f} is {r['ece'] - results['float32']['ece']:.3f} "
                            f"above float32's ({results['float32']['ece']:.3f}), more than --max-ece-rise {max_ece_rise:g}")
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
