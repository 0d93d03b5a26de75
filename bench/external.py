"""Example usage:
    python -m bench external models/ham10000 --data ~/ISIC2018_Task3_Test --out results/isic2018
    python -m bench external runs/ham/bundle --data ~/HAM10000 --split runs/ham/split.csv --out results/ham-test

Score a bundle, every variant through the edge runtime (no TensorFlow: a Raspberry Pi can run
it), on a labelled set it never chose anything by. The set is either the ISIC 2018 Task 3 layout
(a folder of JPEGs and a ground-truth CSV in the challenge's one-hot format: image, MEL, NV, BCC,
AKIEC, BKL, DF, VASC) or a HAM10000 folder with --split (its test split; lesion ids known).

Per variant: balanced accuracy as the ISIC 2018 challenge defines it (mean per-class recall of
the top class), per-class recall and precision, macro ROC-AUC, melanoma sensitivity and
specificity, the answers a person gets (ok / unsure / retake per class), melanoma referral
counted end to end (a melanoma is referred only when the answer itself tells the person to see
a doctor), expected calibration error, and latency. Intervals: bootstrap over lesions (over
images when lesion ids are unknown) for balanced accuracy and AUC, exact Clopper-Pearson for
proportions. Writes OUT/VARIANT/ (predictions in the challenge's submission format, metrics.json,
confusion_matrix.png, answers.csv), OUT/truth.csv (the scored images' ground truth) and
OUT/report.md with one table per variant, and OUT/metrics.json with every variant's figures (what
`python -m export.publish` reads).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import BenchError, external_data, external_report, positive_int
from bench.photos import darker_skin
from edge.classifier import Classifier
from edge.manifest import Manifest
from edge.preprocess import open_image, preprocess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle folder (models/NAME or runs/NAME/bundle)")
    parser.add_argument("--data", type=Path, required=True,
                        help="labelled images: ISIC 2018 Task 3 layout (JPEGs + one-hot ground truth CSV) or HAM10000")
    parser.add_argument("--truth", type=Path, default=None,
                        help="the one-hot ground-truth CSV; the one *GroundTruth*.csv in --data when omitted")
    parser.add_argument("--split", type=Path, default=None,
                        help="with a HAM10000 folder: the run's split.csv, whose test split is scored")
    parser.add_argument("--variants", nargs="+", default=None, help="variants to score; all when omitted")
    parser.add_argument("--threads", type=positive_int, default=2, help="interpreter threads")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="score only the first N images (a quick look; the figures then mean little)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--transform", choices=["none", "darker-skin"], default="none",
                        help="darker-skin: score the photos as they would look on darker skin under the same light "
                        "(bench/photos.py darker_skin), to check that the quality check does not refuse skin tone")
    parser.add_argument("--out", type=Path, required=True, help="folder for the report, predictions and plots")


def _preprocessed(records, size: int, folder: Path, transform: str) -> tuple[np.memmap, np.ndarray]:
    """Every image preprocessed once for all variants (a file, not RAM), and each one's milliseconds."""
    pixels = np.lib.format.open_memmap(folder / "pixels.npy", mode="w+", dtype=np.uint8,
                                       shape=(len(records), size, size, 3))
    millis = np.zeros(len(records))
    for i, path in enumerate(tqdm(records["path"], desc="decoding and preprocessing", unit="img")):
        started = time.perf_counter()
        pixels[i] = preprocess(path if transform == "none" else darker_skin(open_image(path)), size)
        millis[i] = (time.perf_counter() - started) * 1000
    return pixels, millis


def _answers(classifier: Classifier, pixels: np.ndarray) -> dict:
    """Probabilities, status, reason codes and milliseconds (invoke + checks) of every image."""
    probabilities, statuses, reasons, millis = [], [], [], []
    for image in tqdm(pixels, desc=f"classifying with {classifier.variant}", unit="img"):
        started = time.perf_counter()
        answer = classifier.classify_array(np.asarray(image))
        millis.append((time.perf_counter() - started) * 1000)
        by_code = {p.code: p.probability for p in answer.predictions}
        probabilities.append([by_code[code] for code in classifier.manifest.codes])
        statuses.append(answer.status)
        reasons.append([r.code for r in answer.reasons])
    return {"probabilities": np.array(probabilities), "statuses": statuses, "reasons": reasons,
            "millis": np.array(millis)}


def _variants(bundle: Path, wanted: list[str] | None) -> tuple[Manifest, list[str]]:
    manifest = Manifest.load(bundle)
    names = list(manifest.variants)
    unknown = sorted(set(wanted or []) - set(names))
    if unknown:
        raise BenchError(f"{bundle} has no variant(s) {', '.join(unknown)}; it has {', '.join(names)}")
    return manifest, [n for n in names if not wanted or n in wanted]


def run(args: argparse.Namespace) -> int:
    manifest, variants = _variants(args.bundle, args.variants)
    codes = list(manifest.codes)
    records, described = external_data.load(args.data, args.truth, args.split, codes)
    if args.limit:
        records = records.head(args.limit).reset_index(drop=True)
    if args.transform != "none":
        described += f", transformed: {args.transform}"
    print(f"scoring {', '.join(variants)} of {args.bundle} on {len(records)} images ({described})")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="lesionlite-external-") as folder:
        pixels, decode_ms = _preprocessed(records, manifest.input_size, Path(folder), args.transform)
        truth = external_report.write_truth(records, codes, args.out / "truth.csv")
        for name in variants:
            answers = _answers(Classifier(args.bundle, name, num_threads=args.threads), pixels)
            predictions = external_report.write_predictions(args.out / name, records, answers, codes)
            challenge = external_report.challenge_scores(truth, predictions)
            results[name] = external_report.figures(records, answers, challenge, decode_ms, codes, args.seed)
            external_report.write_variant(args.out / name, records, answers, results[name], codes)
        del pixels
    summary = {"bundle": str(args.bundle), "data": described, "transform": args.transform, "images": len(records),
               "threads": args.threads, "variants": results}
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    report = external_report.markdown(summary, codes)
    (args.out / "report.md").write_text(report)
    print(report)
    return 0
