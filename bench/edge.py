"""Example usage:
    python -m bench edge runs/demo/bundle --threads 1,2,4 --json runs/demo/bench/edge.json --png runs/demo/bench/edge.png
    python -m bench edge runs/demo/bundle --data ~/HAM10000 --split runs/demo/split.csv --keras-baseline
    python -m bench edge models/ham10000 --data ~/HAM10000 --split split.csv --subset train --every 3 --threads 2

Benchmark every variant of a bundle on this machine. Per variant: file size, load time,
interpreter latency p50/p90/p99 and images/s per thread count (after warm-up, invoking on an
already preprocessed array), the Classifier's overhead over that bare invoke, end-to-end latency
(decode + preprocess + invoke) for a synthetic 600x450 JPEG and a 12 MP 4032x3024 JPEG, the
600x450 one's decoding and preprocessing alone, and peak RSS. With --data (either HAM10000
layout, read as training reads it), also accuracy, balanced accuracy, melanoma recall and top-1
agreement with float32 on the test split (or --subset train / val, every --every-th image), and
where each variant's top-1 disagreements with float32 sit by float32's margin between its two
largest probabilities (the export prints the same on validation).

Each variant is measured in a fresh spawned process, so its RSS is its own. Peak RSS is the
kernel's high-water mark (VmHWM, Linux) taken after the Classifier loaded and classified one
600x450 JPEG: the footprint of a process serving that variant, before the benchmark's own
extra interpreters and synthetic photos. The optional Keras row (--keras-baseline) is measured by
a separate program, `python -m bench keras-baseline`, so this one never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from tqdm import tqdm

from bench import BenchError, non_negative_int, positive_int, report, thread_list
from bench.data import SUBSETS
from bench.measure import in_fresh_process, percentiles, time_ms
from bench.photos import HAM10000_SIZE, PHONE_12MP_SIZE, synthetic_jpeg
from edge import bundle
from edge.classifier import Classifier, quantize_input
from edge.manifest import Manifest
from edge.memory import peak_rss_mb, rss_mb
from edge.preprocess import preprocess

# Decoding dominates end-to-end time and varies little run to run; a few runs suffice.
E2E_MAX_RUNS = 20
SYNTHETIC_PHOTOS = {"600x450": HAM10000_SIZE, "4032x3024": PHONE_12MP_SIZE}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle folder (runs/NAME/bundle)")
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder in either HAM10000 layout, for accuracy figures")
    parser.add_argument("--split", type=Path, default=None,
                        help="the run's split.csv; DATA/split.csv when omitted and present, else every image")
    parser.add_argument("--subset", choices=SUBSETS, default="test",
                        help="which split of the split file the accuracy figures are measured on")
    parser.add_argument("--every", type=positive_int, default=1,
                        help="measure every N-th image of that split (in metadata order)")
    parser.add_argument("--threads", type=thread_list, default=[1, 2, 4], help="thread counts, e.g. 1,2,4")
    parser.add_argument("--runs", type=positive_int, default=100, help="timed invokes per thread count")
    parser.add_argument("--warmup", type=non_negative_int, default=10, help="untimed invokes before timing")
    parser.add_argument("--variants", nargs="+", default=None, help="variants to measure; all when omitted")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--png", type=Path, default=None, help="write a latency chart here (needs matplotlib)")
    parser.add_argument("--keras-baseline", action="store_true",
                        help="add a Keras row when TensorFlow and the run's model.keras (beside the bundle) are available")


# ---------------------------------------------------------------- measurement (child process)


def time_invoke(classifier: Classifier, model: bytes, threads: int, job: dict) -> dict:
    """Bare interpreter latency, with Classifier.predict_array interleaved run by run for a fair ratio,
    and the honest-answer checks (quality, OOD score, referral) timed on their own."""
    bare = Interpreter(model_content=model, num_threads=threads)
    bare.allocate_tensors()
    inp, out = bare.get_input_details()[0], bare.get_output_details()[0]
    pixels = job["pixels"]
    batch = quantize_input(pixels, inp["dtype"], *inp["quantization"])[np.newaxis]

    def bare_call():
        bare.set_tensor(inp["index"], batch)
        bare.invoke()
        bare.get_tensor(out["index"])

    def classifier_call():
        classifier.predict_array(pixels)

    probabilities, features = classifier.run(pixels)
    predictions = classifier.predict_array(pixels)

    def checks_call():
        classifier.honesty.decide(pixels, probabilities, features, predictions, classifier.manifest.codes)

    for _ in range(job["warmup"]):
        bare_call()
        classifier_call()
    bare_ms, classifier_ms, checks_ms = [], [], []
    for _ in range(job["runs"]):
        bare_ms.append(time_ms(bare_call))
        classifier_ms.append(time_ms(classifier_call))
        checks_ms.append(time_ms(checks_call))
    figures = percentiles(bare_ms)
    figures["checks_p50_ms"] = float(np.median(checks_ms))
    figures["classifier_p50_ms"] = float(np.median(classifier_ms))
    figures["classifier_overhead"] = figures["classifier_p50_ms"] / figures["p50_ms"] - 1
    return figures


def measure_variant(job: dict) -> dict:
    """Everything about one variant; runs in a fresh process (see the module docstring)."""
    rss_before = rss_mb()
    start = time.perf_counter()
    classifier = Classifier(job["bundle"], job["variant"], num_threads=job["threads"][0])
    load_ms = (time.perf_counter() - start) * 1000.0
    classifier.classify(job["jpegs"]["600x450"])
    result = {
        "variant": job["variant"],
        "file": classifier.variant_info.file,
        "bytes": (Path(job["bundle"]) / classifier.variant_info.file).stat().st_size,
        "load_ms": load_ms,
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
    model = bundle.read_verified_model(job["bundle"], classifier.variant_info)
    job["pixels"] = classifier.preprocess(job["jpegs"]["600x450"])
    result["threads"] = {}
    for threads in job["threads"]:
        if threads != job["threads"][0]:
            classifier = Classifier(job["bundle"], job["variant"], num_threads=threads)
        result["threads"][str(threads)] = time_invoke(classifier, model, threads, job)
    # End to end with the last (largest) thread count, the one a device would deploy.
    result["e2e_threads"] = job["threads"][-1]
    e2e_runs = min(job["runs"], E2E_MAX_RUNS)
    result["e2e_ms"] = {
        name: float(np.median([time_ms(lambda d=data: classifier.classify(d)) for _ in range(e2e_runs)]))
        for name, data in job["jpegs"].items()
    }
    # Of that, decoding and preprocessing alone (the part no model or check makes faster).
    photo = job["jpegs"]["600x450"]
    result["preprocess_600x450_ms"] = float(np.median([time_ms(lambda: classifier.preprocess(photo))
                                                       for _ in range(e2e_runs)]))
    if job["data"]:
        pixels = np.load(job["data"], mmap_mode="r")
        result["probabilities"] = [classifier.run(np.asarray(p))[0].tolist() for p in pixels]
    return result


# ---------------------------------------------------------------- the Keras row (another program)


def keras_model_path(bundle_dir: Path) -> Path | None:
    """The run's model.keras, beside the bundle folder, when TensorFlow and Keras are installed;
    otherwise None, with a note why."""
    model = bundle_dir.resolve().parent / "model.keras"
    if any(importlib.util.find_spec(name) is None for name in ("tensorflow", "keras")):
        print("note: TensorFlow/Keras not installed: no Keras baseline", file=sys.stderr)
        return None
    if not model.is_file():
        print(f"note: {model} not found: no Keras baseline", file=sys.stderr)
        return None
    return model


def measure_keras(job: dict, workdir: Path) -> dict:
    """The optional Keras row, from `python -m bench keras-baseline` in its own process."""
    np.save(workdir / "keras-pixels.npy", job["pixels"])
    spec = {"model": job["model"], "pixels": str(workdir / "keras-pixels.npy"), "data": job["data"],
            "warmup": job["warmup"], "runs": job["runs"]}
    (workdir / "keras-job.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "bench", "keras-baseline", str(workdir / "keras-job.json")],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"the Keras baseline failed: {last}")
    return json.loads(done.stdout)


# ---------------------------------------------------------------- command


def checked_variants(args: argparse.Namespace, manifest: Manifest) -> list[str]:
    """The variants to measure; an unknown name fails here, before minutes of measuring."""
    variants = args.variants or list(manifest.variants)
    for variant in variants:
        manifest.variant(variant)
    return variants


def accuracy_data(args: argparse.Namespace, size: int, codes: list[str], workdir: Path):
    """(true label indices, preprocessed test images file) with --data; (None, None) without."""
    if not args.data:
        return None, None
    from bench.data import images_for_accuracy, label_index, preprocess_to_file

    items = images_for_accuracy(args.data, args.split, args.subset, args.every)
    y_true = np.array([label_index(dx, codes) for _, dx in items])
    return y_true, str(preprocess_to_file(items, size, workdir / "test.npy"))


def run(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.bundle)
    variants = checked_variants(args, manifest)
    size, codes = manifest.input_size, list(manifest.codes)
    jpegs = {name: synthetic_jpeg(w, h) for name, (w, h) in SYNTHETIC_PHOTOS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        y_true, data = accuracy_data(args, size, codes, Path(tmp))
        job = {"bundle": str(args.bundle), "threads": args.threads, "runs": args.runs,
               "warmup": args.warmup, "jpegs": jpegs, "data": data}
        results = [in_fresh_process(measure_variant, {**job, "variant": v})
                   for v in tqdm(variants, desc="benchmarking variants", unit="variant")]
        model = keras_model_path(args.bundle) if args.keras_baseline else None
        if model:
            pixels = preprocess(jpegs["600x450"], size)
            results.append(measure_keras({**job, "model": str(model), "pixels": pixels}, Path(tmp)))
    report.add_comparisons(results, y_true, codes, images=f"{len(y_true)} {args.subset} images" if args.data else "")
    print(report.markdown_report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    if args.png:
        report.write_png(results, args.png)
    return 0
