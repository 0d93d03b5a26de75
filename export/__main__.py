"""Quantize a trained run to TFLite and write one verified, self-describing bundle.

Example usage:
    python -m export runs/demo
    python -m export runs/ham --variants float32,int8 --calibration-images 500 --max-drop 2
    python -m export runs/ham --qat-epochs 1

Writes runs/NAME/bundle/ (float32, float16, dynamic_int8 and int8 .tflite files, honesty.bin and
manifest.json). Every variant outputs temperature-calibrated probabilities and the pooled features,
and is run with the edge runtime on the validation split, which decides: the export fails, leaving
any previous bundle untouched, if float32 differs from Keras by more than 1e-4, or a quantized
variant's balanced accuracy falls more than --max-drop points below float32, or its agreement
with float32 (top-1, the status ok / unsure / retake on validation lesions and on the selection
set of non-lesion photos, and whether the answer refers to a doctor) is below --min-agreement, or
its calibration error rises more than --max-ece-rise over float32's. Each quantized variant's
out-of-distribution statistics and thresholds are fitted on its own outputs first. The test
split and the report set of non-lesion photos are measured and reported (manifest and
report.md), never used to decide.

Full int8 is post-training quantized with the calibration images, or with --qat-epochs N made by
quantization-aware training: N epochs over the training split, distilled from float32's own
probabilities (export/qat.py); it then meets the same gate.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

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
    parser.add_argument("--qat-epochs", type=int, default=0,
                        help="make full int8 by quantization-aware training for this many epochs over the training "
                             "split, distilled from float32 (default 0: post-training quantization)")
    parser.add_argument("--qat-learning-rate", type=float, default=1e-5,
                        help="Adam's starting learning rate for quantization-aware training, falling along a cosine "
                             "to zero by the last epoch (default 1e-5)")
    parser.add_argument("--max-drop", type=float, default=3.0,
                        help="largest allowed balanced-accuracy drop of a quantized variant, in points (default 3)")
    parser.add_argument("--min-agreement", type=float, default=0.95,
                        help="smallest allowed agreement of a quantized variant with float32 on validation, on top-1 "
                             "and on the answer ok / unsure / retake (default 0.95)")
    parser.add_argument("--max-ece-rise", type=float, default=0.02,
                        help="largest allowed rise of a quantized variant's expected calibration error over float32's "
                             "on validation (default 0.02)")
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


def _measure(export, splits, staging: Path, variants: list[str],
             nonlesion: dict[str, np.ndarray]) -> tuple[dict[str, dict], float]:
    """Per variant: validation figures and agreement with float32 on validation lesions and on the
    selection set of non-lesion photos (for the gates), test figures and OOD figures on the report
    set (reported); and under "keras", the float model's validation balanced accuracy."""
    from export import calibrated, verify
    from training.metrics import compute_metrics, describe_disagreements, disagreements

    reference = {s: calibrated.probabilities(export, splits.pixels[s]) for s in ("val", "test")}
    results, float_answers = {}, None
    for name in variants:  # float32 first (VARIANTS order), so the others compare with it
        answers = {part: verify.litert_outputs(staging, name, pixels) for part, pixels in
                   (("val", splits.pixels["val"]), ("test", splits.pixels["test"]), *nonlesion.items())}
        validation = verify.variant_metrics(splits.labels["val"], answers["val"].probabilities, reference["val"])
        if float_answers is not None:
            validation.update(verify.agreement(answers, float_answers))
            print(describe_disagreements(name, disagreements(answers["val"].probabilities, reference["val"])))
        else:
            float_answers = answers
        ood = verify.ood_metrics(answers["test"], answers["report"], float_answers)
        results[name] = {"validation": validation, "ood": ood,
                         **verify.variant_metrics(splits.labels["test"], answers["test"].probabilities, reference["test"])}
    keras_balanced = compute_metrics(splits.labels["val"], reference["val"])["balanced_accuracy"]
    return results, keras_balanced


def _gate(results: dict[str, dict], keras_balanced: float, max_drop: float, min_agreement: float,
          max_ece_rise: float) -> None:
    from export import build, verify

    problems = verify.failures({v: r["validation"] for v, r in results.items()}, keras_balanced, max_drop,
                               min_agreement, build.FLOAT32_TOLERANCE, max_ece_rise)
    if problems:
        failed = {v for v in results if any(p.startswith((f"{v}:", f"{v} ")) for p in problems)}
        passing = [v for v in results if v not in failed]
        hint = (f"\n  to publish the variants that passed: --variants {','.join(passing)}"
                if passing and "float32" not in failed else "")
        raise ExportError("verification failed, previous bundle kept:\n  " + "\n  ".join(problems) + hint)


def _own_honesty(staging: Path, entries: dict, splits, params: dict, arrays: dict, keep: float) -> dict:
    """Every quantized variant's honest-answer settings fitted on its own outputs (export/variant_honesty.py)."""
    from export import variant_honesty

    fitted = {}
    for name, entry in entries.items():
        if name in variant_honesty.SHARES_FLOAT_SETTINGS:
            fitted[name] = entry
            continue
        override, content = variant_honesty.fit(staging, name, splits, params, arrays, keep)
        (staging / override["file"]).write_bytes(content)
        print(f"{name}: own OOD threshold {override['ood']['threshold']:.6g}, referral threshold "
              f"{override['melanoma']['threshold']:.6g} (float32: {params['ood']['threshold']:.6g}, "
              f"{params['melanoma']['threshold']:.6g})")
        fitted[name] = dataclasses.replace(entry, honesty=override)
    return fitted


def _qat_maker(export, config, ood_layers: list[str], calibration, splits, options: argparse.Namespace):
    """The int8 variant's maker when it is made by quantization-aware training (export/qat.py)."""

    def make(work: Path):
        try:
            from export import qat
        except ImportError as err:
            raise ExportError(f"quantization-aware training needs tf-keras and tensorflow-model-optimization ({err}): "
                              "make setup installs them (pip install --no-deps -r requirements/qat.txt)") from None

        settings = qat.QatSettings(epochs=options.qat_epochs, learning_rate=options.qat_learning_rate, seed=config.seed)
        print(f"int8 by quantization-aware training: {settings.epochs} epoch(s) over {len(splits.pixels['train'])} "
              f"training images, learning rate {settings.learning_rate:g} falling to 0, keeping the epoch that agrees best with "
              f"float32 on the {len(splits.pixels['val'])} validation images")
        try:
            return qat.int8_by_qat(export, config.arch, config.alpha, ood_layers, calibration, splits.pixels["train"],
                                   settings, work, splits.pixels["val"])
        except qat.QatError as err:
            raise ExportError(f"quantization-aware training: {err}") from None

    return make


def _build(run, options: argparse.Namespace, variants: list[str], staging: Path):
    """Convert, write honesty.bin and the manifest, measure and gate; return the final manifest."""
    from export import build, calibrated, verify
    from training.nonlesion import pixels as nonlesion_pixels

    model, splits = _load(run, options.data)
    config = run.config()
    if "int8" in variants and len(splits.pixels["train"]) == 0:
        raise ExportError("missing calibration images: the training split is empty")
    params, arrays = run.honesty()
    export = calibrated.export_model(model, params["temperature"], params["ood"]["layers"])
    calibration = build.choose_calibration(splits.pixels["train"], splits.labels["train"],
                                           options.calibration_images, config.seed)
    print(f"calibration: {len(calibration)} training images; gate: {len(splits.labels['val'])} validation images; "
          f"reported: {len(splits.labels['test'])} test images")
    makers = {"int8": _qat_maker(export, config, params["ood"]["layers"], calibration, splits, options)
              } if options.qat_epochs else {}
    entries = build.convert_all(export, variants, calibration, staging, makers=makers)
    content, layout = calibrated.honesty_bytes(arrays)
    (staging / calibrated.HONESTY_FILE).write_bytes(content)
    honesty = calibrated.honesty_info(params, content, layout, build.sha256_hex(content))
    width = int(export.output[1].shape[-1])
    build.manifest_for(run.name, config.image_size, entries, {}, honesty, width).write(staging)
    entries = _own_honesty(staging, entries, splits, params, arrays, config.ood_keep)
    build.manifest_for(run.name, config.image_size, entries, {}, honesty, width).write(staging)
    nonlesion = {name: nonlesion_pixels(config.nonlesion_images, name, config.image_size)[0] for name in ("selection", "report")}
    results, keras_balanced = _measure(export, splits, staging, variants, nonlesion)
    table = verify.table(results, entries)
    print(table)
    _gate(results, keras_balanced, options.max_drop, options.min_agreement, options.max_ece_rise)
    metrics = run.metrics()
    source = {"path": str(run.path), "config": dataclasses.asdict(config),
              "metrics": {k: metrics[k] for k in build.RUN_METRIC_KEYS if k in metrics}}
    verified = {v: dataclasses.replace(e, metrics=results[v]) for v, e in entries.items()}
    run.write_report_section("Exported variants", [
        "Every variant run with the edge runtime on the test split and on independent non-lesion photos "
        "(reported only; the export's gates read the validation split).", "", table, ""])
    return build.manifest_for(run.name, config.image_size, verified, source, honesty, width)


def export_run(run_dir: Path, variants: list[str], options: argparse.Namespace):
    """Convert, verify and publish runs/NAME/bundle; return the manifest.

    Raises:
        ExportError: unfinished run, label mismatch, missing calibration images, failed verification.
        RunError: the run has no honesty statistics (evaluated by an older version).
    """
    from training.run import RunDir

    run = RunDir(run_dir)
    run.check_finished()  # before TensorFlow loads: a wrong path answers at once
    run.honesty()
    from export import build

    staging = build.staging_dir(run.path)
    try:
        manifest = _build(run, options, variants, staging)
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
    if args.max_ece_rise < 0:
        raise ExportError(f"--max-ece-rise must not be negative, got {args.max_ece_rise}")
    if not 0 < args.min_agreement <= 1:
        raise ExportError(f"--min-agreement must be in (0, 1], got {args.min_agreement}")
    if args.qat_epochs < 0:
        raise ExportError(f"--qat-epochs must not be negative, got {args.qat_epochs}")
    if not 0 < args.qat_learning_rate < 1:
        raise ExportError(f"--qat-learning-rate must be in (0, 1), got {args.qat_learning_rate}")
    variants = chosen_variants(args.variants)
    if args.qat_epochs and "int8" not in variants:
        raise ExportError("--qat-epochs makes the int8 variant, which --variants leaves out")
    manifest = export_run(args.run, variants, args)
    print(f"bundle: {args.run / 'bundle'} ({', '.join(variants)}; default {manifest.default_variant}; "
          "every variant verified)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m export"))
