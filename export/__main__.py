"""Quantize a trained run to TFLite and write one verified, self-describing bundle.

Example usage:
    python -m export runs/demo
    python -m export runs/ham --variants float32,int8 --calibration-images 500 --max-drop 2

Writes runs/NAME/bundle/ (float32, float16, dynamic_int8 and int8 .tflite files and manifest.json).
Every variant is run with LiteRT on the run's test split; the export fails, leaving any previous
bundle untouched, if float32 differs from Keras by more than 1e-4 or a quantized variant's
balanced accuracy falls more than --max-drop points below float32.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

from edge.errors import UsageError, run_cli
from export import VARIANTS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished training run folder, runs/NAME")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    parser.add_argument("--calibration-images", type=int, default=300,
                        help="training-split images for full-int8 calibration, stratified by class (default 300)")
    parser.add_argument("--max-drop", type=float, default=3.0,
                        help="largest allowed balanced-accuracy drop of a quantized variant, in points (default 3)")
    parser.add_argument("--data", type=Path, help="the run's dataset folder, if it moved since training")
    return parser.parse_args(argv)


class ExportError(UsageError):
    """The export cannot be made or a variant failed verification; the message says which."""


def chosen_variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise ExportError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}")
    return [v for v in VARIANTS if v in names]


def _load(run, data_dir: Path | None):
    """The run's model and splits, checked against the labels this version knows."""
    from edge.labels import CODES
    from training.data import DataError
    from training.dataset import load_run_splits
    from training.split import SplitError

    labels = run.label_codes()
    if labels != list(CODES):
        raise ExportError(f"{run.path / 'labels.json'} lists {labels}; this version expects {list(CODES)}")
    model = run.load_model()
    if model.output_shape[-1] != len(labels):
        raise ExportError(f"the model outputs {model.output_shape[-1]} classes but labels.json lists {len(labels)} labels")
    try:
        splits = load_run_splits(run, data_dir)
    except (DataError, SplitError) as err:
        raise ExportError(f"missing calibration and test images: {err} (pass --data DIR)") from None
    return model, splits


def _verify(model, splits, staging: Path, entries: dict, max_drop: float, batch_size: int) -> dict:
    """Each variant's metrics through the edge runtime; raises ExportError when one fails."""
    import numpy as np

    from export import build, verify

    test_pixels, test_labels = splits.pixels["test"], splits.labels["test"]
    keras_probs = model.predict(test_pixels.astype(np.float32), batch_size=batch_size, verbose=0)
    results = {v: verify.variant_metrics(test_labels, verify.litert_probabilities(staging, v, test_pixels), keras_probs)
               for v in entries}
    print(verify.table(results, entries))
    keras_balanced = verify.compute_metrics(test_labels, keras_probs)["balanced_accuracy"]
    problems = verify.failures(results, keras_balanced, max_drop, build.FLOAT32_TOLERANCE)
    if problems:
        raise ExportError("verification failed, previous bundle kept:\n  " + "\n  ".join(problems))
    return results


def export_run(run_dir: Path, variants: list[str], calibration_images: int, max_drop: float,
               data_dir: Path | None = None):
    """Convert, verify and publish runs/NAME/bundle; return the manifest.

    Raises:
        ExportError: unfinished run, label mismatch, missing calibration images, failed verification.
    """
    from training.run import RunDir

    run = RunDir(run_dir)
    run.check_finished()  # before TensorFlow loads: a wrong path answers at once
    from export import build

    model, splits = _load(run, data_dir)
    config = run.config()
    if "int8" in variants and len(splits.pixels["train"]) == 0:
        raise ExportError("missing calibration images: the training split is empty")
    calibration = build.choose_calibration(splits.pixels["train"], splits.labels["train"], calibration_images, config.seed)
    print(f"calibration: {len(calibration)} training images; verification: {len(splits.labels['test'])} test images")
    staging = build.staging_dir(run.path)
    try:
        entries = build.convert_all(model, variants, calibration, staging)
        build.manifest_for(run.name, config.image_size, entries, {}).write(staging)
        results = _verify(model, splits, staging, entries, max_drop, config.batch_size)
        verified = {v: dataclasses.replace(e, metrics=results[v]) for v, e in entries.items()}
        metrics = run.metrics()
        source = {"path": str(run.path), "config": dataclasses.asdict(config),
                  "metrics": {k: metrics[k] for k in build.RUN_METRIC_KEYS if k in metrics}}
        manifest = build.manifest_for(run.name, config.image_size, verified, source)
        manifest.write(staging)
        build.swap_into_place(staging, run.bundle)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.calibration_images < 1:
        raise ExportError(f"--calibration-images must be at least 1, got {args.calibration_images}")
    if args.max_drop < 0:
        raise ExportError(f"--max-drop must not be negative, got {args.max_drop}")
    variants = chosen_variants(args.variants)
    manifest = export_run(args.run, variants, args.calibration_images, args.max_drop, args.data)
    print(f"bundle: {args.run / 'bundle'} ({', '.join(variants)}; default {manifest.default_variant}; "
          "every variant verified)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m export"))
