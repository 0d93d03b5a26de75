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
from edge.labels import CODES
from training.dataset import Splits, load_run_splits
from training.metrics import compute_metrics
from training.report import plot_confusion, plot_curves, report_markdown, summary
from training.run import RunDir


def predictions_table(records: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test image: ids, true and predicted class, and every class's probability."""
    table = records[["image_id", "lesion_id", "dx"]].reset_index(drop=True)
    table["predicted"] = [CODES[i] for i in probabilities.argmax(axis=1)]
    return pd.concat([table, pd.DataFrame(probabilities, columns=list(CODES))], axis=1)


def evaluate_run(run: RunDir, splits: Splits | None = None, data_dir: Path | None = None) -> dict:
    """Predict the test split with the best checkpoint, write the metrics, report and plots.

    Raises:
        RunError, DataError, SplitError: the run or its data cannot be used.
    """
    run.check_finished()
    config = run.config()
    splits = splits or load_run_splits(run, data_dir)
    model = run.load_model()
    probabilities = model.predict(splits.pixels["test"].astype(np.float32), batch_size=config.batch_size, verbose=0)
    m = compute_metrics(splits.labels["test"], probabilities)
    run.write_metrics(m)
    run.write_predictions(predictions_table(splits.records["test"], probabilities))
    plot_confusion(m["confusion_matrix"], run.confusion_png)
    history = run.history()
    if len(history):
        plot_curves(history, run.curves_png)
    run.write_report(report_markdown(run.name, m, config, run.data_dir(data_dir)))
    print(summary(m))
    return m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (runs/NAME)")
    parser.add_argument("--data", type=Path, help="dataset folder, if it moved since training")
    args = parser.parse_args(argv)
    run = RunDir(args.run)
    run.check_finished()  # before TensorFlow loads: a wrong path answers at once
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    evaluate_run(run, data_dir=args.data)
    print(f"wrote {run.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m training.evaluate"))
