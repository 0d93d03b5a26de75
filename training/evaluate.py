"""Evaluate a run's best checkpoint on its lesion-disjoint test split and write the report.

Example usage:
    python -m training.evaluate runs/demo [--data DIR]

Writes metrics.json, report.md, confusion_matrix.png, training_curves.png and
test_predictions.csv into the run folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from edge.labels import CODES, DISCLAIMER, MELANOMA, NAMES

RUN_FILES = ("model.keras", "config.json", "split.csv", "run.json")


class RunError(ValueError):
    """The run folder is missing or unfinished; the message says what is absent."""


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; honest on small test counts."""
    if total == 0:
        return (float("nan"), float("nan"))
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


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


def plot_confusion(matrix: list[list[int]], path: Path) -> None:
    """Counts and row-normalized (recall) confusion matrices side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(matrix)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, values, title, fmt in ((axes[0], counts, "counts", "d"), (axes[1], rows, "row-normalized (recall)", ".2f")):
        ax.imshow(values, cmap="Blues")
        ax.set(xticks=range(len(CODES)), yticks=range(len(CODES)), xticklabels=CODES, yticklabels=CODES,
               xlabel="predicted", ylabel="true (dermatologist / histology)", title=f"Test split: {title}")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, format(v, fmt), ha="center", va="center",
                    color="white" if v > values.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history_csv: Path, path: Path) -> None:
    """Loss, accuracy, balanced accuracy and learning rate per epoch, train against validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with history_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, key in zip(axes[:3], ("loss", "accuracy", "balanced_accuracy"), strict=True):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="validation")
        ax.set(title=key.replace("_", " "), xlabel="epoch")
        ax.legend()
    axes[3].semilogy(epochs, [float(r["learning_rate"]) for r in rows])
    axes[3].set(title="learning rate", xlabel="epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def _ci(pair: list[float]) -> str:
    return f"{_pct(pair[0])}–{_pct(pair[1])}"


def write_report(run_dir: Path, m: dict, config, data_dir: Path) -> None:
    """report.md: the figures a clinician-minded reader asks for, with their uncertainty."""
    lines = [
        f"# LesionLite evaluation: {run_dir.name}", "",
        f"> {DISCLAIMER}", "",
        f"Model: MobileNet alpha {config.alpha:g} at {config.image_size} px, weights `{config.weights}`, "
        f"best checkpoint by `{config.monitor}`. Data: `{data_dir}`.", "",
        f"Test split: {m['n_test_images']} images whose lesions appear in no training or validation "
        "image (split by `lesion_id`). Balanced accuracy (mean per-class recall) is the ISIC 2018 "
        "challenge metric; plain accuracy is dominated by the common benign naevi.", "",
        "| metric | value |", "|---|---|",
        f"| balanced accuracy | {_pct(m['balanced_accuracy'])} |",
        f"| accuracy | {_pct(m['accuracy'])} |",
        f"| top-2 accuracy | {_pct(m['top2_accuracy'])} |",
        f"| top-3 accuracy | {_pct(m['top3_accuracy'])} |",
        f"| melanoma sensitivity | {_pct(m['melanoma_sensitivity'])} (95% CI {_ci(m['melanoma_sensitivity_ci95'])}) |",
        f"| melanoma specificity | {_pct(m['melanoma_specificity'])} (95% CI {_ci(m['melanoma_specificity_ci95'])}) |",
        f"| macro ROC-AUC (one-vs-rest) | {m['roc_auc_macro']:.3f} |", "",
        "## Per class", "",
        "| code | class | support | precision | recall (sensitivity) | recall 95% CI | F1 |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for code, c in m["per_class"].items():
        lines.append(f"| {code} | {c['name']} | {c['support']} | {_pct(c['precision'])} | {_pct(c['recall'])} "
                     f"| {_ci(c['recall_ci95'])} | {c['f1']:.3f} |")
    lines += ["", "Intervals are 95% Wilson score intervals: with few test images of a class, its "
              "recall is uncertain and the interval says by how much.", "",
              "![confusion matrix](confusion_matrix.png)", "", "![training curves](training_curves.png)", ""]
    (run_dir / "report.md").write_text("\n".join(lines))


def _write_predictions(path: Path, records, probabilities: np.ndarray) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "lesion_id", "dx", "predicted", *CODES])
        for r, p in zip(records, probabilities, strict=True):
            writer.writerow([r.image_id, r.lesion_id, r.dx, CODES[int(p.argmax())], *(f"{x:.6f}" for x in p)])


def check_run(run_dir: Path) -> None:
    """Raises RunError when the folder is not a finished training run."""
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist")
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise RunError(f"{run_dir} is not a finished run: {', '.join(missing)} missing "
                       f"(train it with python -m training --out {run_dir})")


def evaluate_run(run_dir: Path, splits=None, data_dir: Path | None = None) -> dict:
    """Predict the test split with the best checkpoint, write the metrics, report and plots."""
    import keras

    from training import config as config_mod
    from training.data import load_records
    from training.train import load_splits

    run_dir = Path(run_dir)
    check_run(run_dir)
    config = config_mod.load(run_dir / "config.json")
    info = json.loads((run_dir / "run.json").read_text())
    data_dir = Path(data_dir or info["data_dir"])
    if splits is None:
        cache = Path(info["cache_dir"]) if info.get("cache_dir") else None
        splits = load_splits(load_records(data_dir), config, run_dir, run_dir / "split.csv", cache)
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    probabilities = model.predict(splits.pixels["test"].astype(np.float32), batch_size=config.batch_size, verbose=0)
    m = compute_metrics(splits.labels["test"], probabilities)
    (run_dir / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    _write_predictions(run_dir / "test_predictions.csv", splits.records["test"], probabilities)
    plot_confusion(m["confusion_matrix"], run_dir / "confusion_matrix.png")
    if (run_dir / "history.csv").is_file():
        plot_curves(run_dir / "history.csv", run_dir / "training_curves.png")
    write_report(run_dir, m, config, data_dir)
    print(summary(m))
    return m


def summary(m: dict) -> str:
    return (f"test split ({m['n_test_images']} images): balanced accuracy {_pct(m['balanced_accuracy'])}, "
            f"accuracy {_pct(m['accuracy'])}, top-3 {_pct(m['top3_accuracy'])}, "
            f"melanoma sensitivity {_pct(m['melanoma_sensitivity'])} / specificity "
            f"{_pct(m['melanoma_specificity'])}, macro ROC-AUC {m['roc_auc_macro']:.3f}")


def main(argv: list[str] | None = None) -> int:
    from training.data import DataError
    from training.split import SplitError

    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (runs/NAME)")
    parser.add_argument("--data", type=Path, help="dataset folder, if it moved since training")
    args = parser.parse_args(argv)
    try:
        evaluate_run(args.run, data_dir=args.data)
    except (RunError, DataError, SplitError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.run / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
