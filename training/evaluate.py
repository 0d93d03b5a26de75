"""Evaluate a run's best checkpoint on its lesion-disjoint test split and write the report.

Example usage:
    python -m training.evaluate runs/demo [--data DIR]

Writes metrics.json, report.md, confusion_matrix.png, training_curves.png and
test_predictions.csv into the run folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

from edge.errors import run_cli
from edge.labels import CODES, MELANOMA
from training import calibration, honesty, lesionstats
from training.dataset import Splits, load_run_splits
from training.metrics import compute_metrics
from training.phases import phase as measured_phase
from training.report import plot_confusion, plot_curves, report_markdown, summary
from training.run import RunDir, RunError


def predictions_table(records: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test image: ids, metadata, true and predicted class, every class's probability."""
    keep = [c for c in ("image_id", "lesion_id", "dx", "sex", "age", "localization") if c in records]
    table = records[keep].reset_index(drop=True)
    table["predicted"] = [CODES[i] for i in probabilities.argmax(axis=1)]
    return pd.concat([table, pd.DataFrame(probabilities, columns=list(CODES))], axis=1)


def lesion_level(table: pd.DataFrame, params: dict, seed: int) -> dict:
    """Lesion-bootstrap intervals, the referral threshold on test, and the subgroup table."""
    threshold = params["melanoma"]["threshold"]
    ci = lesionstats.lesion_bootstrap(table, lesionstats.test_statistics(list(CODES), MELANOMA, threshold), seed=seed)
    statistic = lesionstats.test_statistics(list(CODES), MELANOMA, threshold)(table)
    mel = table["dx"] == MELANOMA
    referred = table[MELANOMA] >= threshold
    referral = {**params["melanoma"],
                **{f"test_{k}": statistic[f"referral_{k}"] for k in ("sensitivity", "specificity")},
                "test_sensitivity_exact": lesionstats.lesion_proportion(referred[mel], table.loc[mel, "lesion_id"]),
                "test_specificity_exact": lesionstats.lesion_proportion(~referred[~mel], table.loc[~mel, "lesion_id"])}
    return {"ci": ci, "referral": referral,
            "subgroups": lesionstats.subgroups(table, MELANOMA, table[MELANOMA] >= threshold)}


def honest_metrics(m: dict, fitted, lesion: dict) -> dict:
    """metrics.json: the classification figures with lesion-level intervals, plus honesty figures."""
    for code, entry in m["per_class"].items():
        entry["recall_ci95"] = list(lesion["ci"][f"recall_{code}"])
    for key in ("balanced_accuracy", "melanoma_sensitivity", "melanoma_specificity"):
        m[f"{key}_ci95"] = list(lesion["ci"][key])
    calibration = fitted.figures["calibration"]
    return {**m, "ci_method": "95% percentile bootstrap over lesions (1,000 resamples)",
            "temperature": fitted.params["temperature"], "ece_before": calibration["before"]["ece"],
            "ece_after": calibration["after"]["ece"], "calibration": calibration,
            "ood": fitted.params["ood"], "quality": fitted.params["quality"], "referral": lesion["referral"],
            "subgroups": lesion["subgroups"].to_dict("records")}


# The first line of the report of a run trained with --allow-image-level-split.
LEAK_WARNING = ("this run was split by image, not by lesion (the dataset has no lesion groupings, and "
                "--allow-image-level-split was given): photographs of one lesion may sit in both training and "
                "test, so every test figure below may be inflated.")


def evaluate_run(run: RunDir, splits: Splits | None = None, data_dir: Path | None = None) -> dict:
    """Fit the honest-answer checks, predict the test split with the best checkpoint, write the
    metrics, report and plots.

    Raises:
        RunError, DataError, SplitError: the run or its data cannot be used.
    """
    run.check_finished()
    config = run.config()
    splits = splits or load_run_splits(run, data_dir)
    fitted = honesty.fit(run.load_model(), splits, config)
    run.write_honesty(fitted.params, fitted.arrays)
    probabilities = fitted.figures["test_probabilities"]
    table = predictions_table(splits.records["test"], probabilities)
    lesion = lesion_level(table, fitted.params, config.seed)
    m = honest_metrics(compute_metrics(splits.labels["test"], probabilities), fitted, lesion)
    run.write_metrics(m)
    run.write_predictions(table)
    run.write_subgroups(lesion["subgroups"])
    plot_confusion(m["confusion_matrix"], run.confusion_png)
    calibration.plot_reliability(fitted.figures["test_probabilities_before"], probabilities, splits.labels["test"],
                                 run.reliability_png)
    history = run.history()
    if len(history):
        plot_curves(history, run.curves_png)
    warnings = [LEAK_WARNING] if run.split_may_leak() else []
    run.write_report(report_markdown(run.name, m, config, run.data_dir(data_dir), warnings))
    print("\n".join([f"WARNING: {w}" for w in warnings] + [summary(m)]))
    return m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (runs/NAME)")
    parser.add_argument("--data", type=Path, help="dataset folder, if it moved since training")
    parser.add_argument("--summary", action="store_true",
                        help="print the summary of the run's last evaluation (metrics.json) and stop")
    args = parser.parse_args(argv)
    run = RunDir(args.run)
    run.check_finished()  # before TensorFlow loads: a wrong path answers at once
    if args.summary:
        metrics = run.metrics()
        if "ood" not in metrics:
            raise RunError(f"{run.path} has no evaluation with honest answers yet: run python -m training.evaluate {run.path}")
        print(summary(metrics))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with measured_phase("evaluate"):  # the line export.publish --training-log reads, as training prints it
        evaluate_run(run, data_dir=args.data)
    print(f"wrote {run.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m training.evaluate"))
