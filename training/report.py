"""The evaluation report: report.md, the confusion matrix and the training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from edge.labels import CODES, DISCLAIMER
from training.report_honest import _ci, _pct, honest_sections, threshold_text


def plot_confusion(matrix: list[list[int]], path: Path, title: str = "Test split") -> None:
    """Counts and row-normalized (recall) confusion matrices side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(matrix)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, values, kind, fmt in ((axes[0], counts, "counts", "d"), (axes[1], rows, "row-normalized (recall)", ".2f")):
        ax.imshow(values, cmap="Blues")
        ax.set(xticks=range(len(CODES)), yticks=range(len(CODES)), xticklabels=CODES, yticklabels=CODES,
               xlabel="predicted", ylabel="true (dermatologist / histology)", title=f"{title}: {kind}")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, format(v, fmt), ha="center", va="center",
                    color="white" if v > values.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: pd.DataFrame, path: Path) -> None:
    """Loss, accuracy, balanced accuracy and learning rate per epoch, train against validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = history["epoch"] + 1
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, key in zip(axes[:3], ("loss", "accuracy", "balanced_accuracy"), strict=True):
        ax.plot(epochs, history[key], label="train")
        ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set(title=key.replace("_", " "), xlabel="epoch")
        ax.legend()
    axes[3].semilogy(epochs, history["learning_rate"])
    axes[3].set(title="learning rate", xlabel="epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _main_table(m: dict) -> list[str]:
    return [
        "| metric | value | 95% CI (lesion bootstrap) |", "|---|---|---|",
        f"| balanced accuracy | {_pct(m['balanced_accuracy'])} | {_ci(m['balanced_accuracy_ci95'])} |",
        f"| accuracy | {_pct(m['accuracy'])} | |",
        f"| top-2 accuracy | {_pct(m['top2_accuracy'])} | |",
        f"| top-3 accuracy | {_pct(m['top3_accuracy'])} | |",
        f"| melanoma sensitivity (top-1) | {_pct(m['melanoma_sensitivity'])} | {_ci(m['melanoma_sensitivity_ci95'])} |",
        f"| melanoma specificity (top-1) | {_pct(m['melanoma_specificity'])} | {_ci(m['melanoma_specificity_ci95'])} |",
        f"| macro ROC-AUC (one-vs-rest) | {m['roc_auc_macro']:.3f} | |", "",
    ]


def report_markdown(run_name: str, m: dict, config, data_dir: Path, warnings: list[str] | None = None) -> str:
    """report.md: the figures a clinician-minded reader asks for, with their uncertainty."""
    lines = [f"# LesionLite evaluation: {run_name}", ""]
    lines += [f"> **Warning:** {w}" for w in warnings or []] + ([""] if warnings else [])
    lines += [
        f"> {DISCLAIMER}", "",
        f"Model: {config.arch} alpha {config.alpha:g} at {config.image_size} px, weights `{config.weights}`, "
        f"best checkpoint by `{config.monitor}`. Data: `{data_dir}`.", "",
        f"Test split: {m['n_test_images']} images whose lesions appear in no training or validation "
        "image (split by `lesion_id`). Balanced accuracy (mean per-class recall) is the ISIC 2018 "
        "challenge metric; plain accuracy is dominated by the common benign naevi. The test split is only "
        "reported: every threshold below was chosen on the training or validation split.", "",
        *_main_table(m),
        "## Per class", "",
        "| code | class | support | precision | recall (sensitivity) | recall 95% CI | F1 |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for code, c in m["per_class"].items():
        lines.append(f"| {code} | {c['name']} | {c['support']} | {_pct(c['precision'])} | {_pct(c['recall'])} "
                     f"| {_ci(c['recall_ci95'])} | {c['f1']:.3f} |")
    lines += ["", f"Intervals: {m['ci_method']}. Images of one lesion are resampled together, so a lesion "
              "photographed several times does not count as several independent cases.", "",
              *honest_sections(m), "![confusion matrix](confusion_matrix.png)", "",
              "![training curves](training_curves.png)", ""]
    return "\n".join(lines)


def summary(m: dict) -> str:
    """The lines `python -m training` and `make demo` print."""
    ood, ref, cal = m["ood"], m["referral"], m["calibration"]
    chosen = ood["compared"][ood["kept"]]
    return "\n".join([
        f"test split ({m['n_test_images']} images): balanced accuracy {_pct(m['balanced_accuracy'])} "
        f"(95% CI {_ci(m['balanced_accuracy_ci95'])}), accuracy {_pct(m['accuracy'])}, top-3 {_pct(m['top3_accuracy'])}, "
        f"macro ROC-AUC {m['roc_auc_macro']:.3f}",
        f"calibration: temperature {m['temperature']:.3f}; ECE {cal['before']['ece']:.3f} -> {cal['after']['ece']:.3f}, "
        f"NLL {cal['before']['nll']:.3f} -> {cal['after']['nll']:.3f}, Brier {cal['before']['brier']:.3f} -> "
        f"{cal['after']['brier']:.3f}",
        f"unsure (out of distribution): {ood['kept']} score, AUROC {chosen['test_auroc']:.3f} against non-lesion "
        f"photos; accepts {_pct(chosen['test_acceptance'])} of test lesions and {_pct(chosen['nonlesion_acceptance'])} "
        "of non-lesion photos",
        f"melanoma referral (any status): threshold {threshold_text(ref['threshold'])} (validation sensitivity "
        f"{_pct(ref['validation_sensitivity'])}); test sensitivity {_pct(ref['test_sensitivity'])} "
        f"(exact 95% CI {_ci(ref['test_sensitivity_exact']['image_ci95'])}; per lesion "
        f"{_pct(ref['test_sensitivity_exact']['lesion_rate'])}), specificity {_pct(ref['test_specificity'])}",
        f"photo quality: {_pct(m['quality']['training_pass_rate'])} of training images pass",
    ])
