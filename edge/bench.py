"""Example usage:
    python -m edge bench runs/demo/bundle --threads 1,2,4 --json bench/demo.json --png bench/demo.png
    python -m edge bench runs/demo/bundle --data ~/HAM10000 --keras-baseline

Benchmark every variant of a bundle on this machine. Per variant: file size, load time,
interpreter latency p50/p90/p99 and images/s per thread count (after warm-up, invoking on an
already preprocessed array), the Classifier's overhead over that bare invoke, end-to-end latency
(decode + preprocess + invoke) for a synthetic 600x450 JPEG and a 12 MP 4032x3024 JPEG, and peak
RSS. With --data, also accuracy, balanced accuracy, melanoma recall and top-1 agreement with
float32 on the test split.

Each variant is measured in a fresh spawned process, so its RSS is its own. Peak RSS is the
kernel's high-water mark (VmHWM, Linux) taken after the Classifier loaded and classified one
600x450 JPEG: the footprint of a process serving that variant, before the benchmark's own
extra interpreters and synthetic photos. The optional Keras row (--keras-baseline) is measured by a
separate program, `python -m export.keras_baseline`, so edge/ never imports TensorFlow itself.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from ai_edge_litert.interpreter import Interpreter
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from tqdm import tqdm

from edge import bundle
from edge.classifier import Classifier, quantize_input
from edge.labels import MELANOMA
from edge.preprocess import preprocess

# The targets this project holds itself to; printed as ratios, never asserted in tests.
TARGET_INT8_VS_FLOAT32 = 0.6
TARGET_CLASSIFIER_OVERHEAD = 0.10
TARGET_12MP_VS_INVOKE = 4.0
# Decoding dominates end-to-end time and varies little run to run; a few runs suffice.
E2E_MAX_RUNS = 20
SYNTHETIC_PHOTOS = {"600x450": (600, 450), "4032x3024": (4032, 3024)}
DATA_SUFFIXES = (".jpg", ".jpeg", ".png")


class BenchError(Exception):
    """The benchmark's data folder or options are unusable (message says why)."""


def thread_list(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,4, got {text!r}"
        ) from None
    if counts[0] < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle folder (runs/NAME/bundle)")
    parser.add_argument("--data", type=Path, default=None, help="HAM10000-layout folder for accuracy figures")
    parser.add_argument(
        "--split",
        type=Path,
        default=None,
        help="split CSV (image_id, split columns); DATA/split.csv when omitted and present",
    )
    parser.add_argument("--threads", type=thread_list, default=[1, 2, 4], help="thread counts, e.g. 1,2,4")
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per thread count")
    parser.add_argument("--warmup", type=int, default=10, help="untimed invokes before timing")
    parser.add_argument("--variants", nargs="+", default=None, help="variants to measure; all when omitted")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument(
        "--png", type=Path, default=None, help="write a latency chart here (needs matplotlib)"
    )
    parser.add_argument(
        "--keras-baseline",
        action="store_true",
        help="add a Keras row when TensorFlow and ../model.keras are available",
    )


# ---------------------------------------------------------------- synthetic photos and data


def synthetic_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A lesion-like JPEG with sensor-like noise, so decoding costs what a real photo costs."""
    rng = np.random.default_rng(seed)
    small = Image.new("RGB", (600, 450), (214, 170, 150))
    draw = ImageDraw.Draw(small)
    for _ in range(6):
        x, y, r = rng.integers(150, 450), rng.integers(110, 340), rng.integers(20, 110)
        draw.ellipse(
            (x - r, y - r * 0.8, x + r, y + r * 0.8), fill=tuple(int(c) for c in rng.integers(40, 160, 3))
        )
    base = small.filter(ImageFilter.GaussianBlur(6)).resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((width, height), 6).convert("RGB")
    photo = ImageChops.add(base, noise, offset=-128)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def read_csv(path: Path, columns: tuple[str, ...]) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchError(f"{path} lacks column(s) {', '.join(missing)}")
        return list(reader)


def index_images(data_dir: Path) -> dict[str, Path]:
    """image_id -> file, from DATA and its immediate subfolders (HAM10000_images_part_1/2 or one)."""
    folders = [data_dir, *sorted(p for p in data_dir.iterdir() if p.is_dir())]
    return {f.stem: f for folder in folders for f in folder.iterdir() if f.suffix.lower() in DATA_SUFFIXES}


def test_images(data_dir: Path, split_csv: Path | None) -> list[tuple[Path, str]]:
    """(image path, dx) of the test split; every image when there is no split file.

    Raises:
        BenchError: metadata or listed images missing, or an empty selection.
    """
    metadata = data_dir / "HAM10000_metadata.csv"
    if not metadata.is_file():
        raise BenchError(f"{metadata} is missing: --data must be a HAM10000-layout folder")
    rows = read_csv(metadata, ("image_id", "dx"))
    split_csv = split_csv or (data_dir / "split.csv" if (data_dir / "split.csv").is_file() else None)
    if split_csv is None:
        print(f"note: no split.csv in {data_dir}: using all {len(rows)} images", file=sys.stderr)
    else:
        test_ids = {r["image_id"] for r in read_csv(split_csv, ("image_id", "split")) if r["split"] == "test"}
        rows = [r for r in rows if r["image_id"] in test_ids]
    if not rows:
        raise BenchError(f"no test images selected from {metadata}")
    images = index_images(data_dir)
    missing = [r["image_id"] for r in rows if r["image_id"] not in images]
    if missing:
        raise BenchError(
            f"{len(missing)} of {len(rows)} images are missing under {data_dir}, e.g. {missing[0]}"
        )
    return [(images[r["image_id"]], r["dx"]) for r in rows]


def preprocess_to_file(items: list[tuple[Path, str]], size: int, path: Path) -> Path:
    """Preprocess once for all variants, into a memory-mapped file rather than RAM (Pi-sized)."""
    pixels = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(items), size, size, 3))
    for i, (image, _) in enumerate(tqdm(items, desc="preprocessing test images", unit="img")):
        pixels[i] = preprocess(image, size)
    pixels.flush()
    return path


# ---------------------------------------------------------------- measurement (child process)


def percentiles(times_ms: list[float]) -> dict:
    p50, p90, p99 = np.percentile(times_ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "images_per_s": 1000.0 / float(np.mean(times_ms)),
    }


def time_ms(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float | None:
    """This process's RSS high-water mark (VmHWM), or None off Linux.

    Not getrusage: its ru_maxrss survives fork and exec, so a spawned child would report the
    parent's peak (here, the parent that just built a 12 MP photo).
    """
    try:
        status = Path("/proc/self/status").read_text()
    except FileNotFoundError:
        return None
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def time_invoke(classifier: Classifier, model: bytes, threads: int, job: dict) -> dict:
    """Bare interpreter latency, with Classifier.classify_array interleaved run by run for a fair ratio."""
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
        classifier.classify_array(pixels)

    for _ in range(job["warmup"]):
        bare_call()
        classifier_call()
    bare_ms, classifier_ms = [], []
    for _ in range(job["runs"]):
        bare_ms.append(time_ms(bare_call))
        classifier_ms.append(time_ms(classifier_call))
    figures = percentiles(bare_ms)
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
        "file": classifier.variant_info["file"],
        "bytes": (Path(job["bundle"]) / classifier.variant_info["file"]).stat().st_size,
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
    if job["data"]:
        pixels = np.load(job["data"], mmap_mode="r")
        codes = [code for code, _ in classifier.labels]
        result["top1"] = [codes.index(classifier.classify_array(np.asarray(p))[0].code) for p in pixels]
    return result


def measure_keras(job: dict, workdir: Path) -> dict:
    """The optional Keras row, from `python -m export.keras_baseline` in its own process: edge/
    itself never imports TensorFlow or Keras, so it runs unchanged where they are absent."""
    np.save(workdir / "keras-pixels.npy", job["pixels"])
    spec = {"model": job["model"], "pixels": str(workdir / "keras-pixels.npy"), "data": job["data"],
            "warmup": job["warmup"], "runs": job["runs"]}
    (workdir / "keras-job.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "export.keras_baseline", str(workdir / "keras-job.json")],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"the Keras baseline failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def in_fresh_process(function, job: dict) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, (job,))


# ---------------------------------------------------------------- metrics and comparisons


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, codes: list[str]) -> dict:
    """Accuracy, balanced accuracy (mean recall over classes present) and per-class recall."""
    recall = {
        code: float(np.mean(y_pred[y_true == i] == i)) for i, code in enumerate(codes) if np.any(y_true == i)
    }
    return {
        "images": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)),
        "balanced_accuracy": float(np.mean(list(recall.values()))),
        "melanoma_recall": recall.get(MELANOMA),
        "per_class_recall": recall,
    }


def add_comparisons(results: list[dict], y_true: np.ndarray | None, codes: list[str]) -> None:
    """Ratios against float32 and the 12 MP budget; accuracy figures when there was data."""
    reference = next((r for r in results if r["variant"] == "float32"), None)
    for result in results:
        if reference and result["variant"] != "keras":
            result["p50_vs_float32"] = {
                t: f["p50_ms"] / reference["threads"][t]["p50_ms"] for t, f in result["threads"].items()
            }
        if "e2e_ms" in result:
            invoke = result["threads"][str(result["e2e_threads"])]["p50_ms"]
            result["e2e_12mp_vs_invoke"] = result["e2e_ms"]["4032x3024"] / invoke
    if y_true is None:
        return
    top1 = {r["variant"]: np.asarray(r.pop("top1")) for r in results}
    for result in results:
        result["metrics"] = classification_metrics(y_true, top1[result["variant"]], codes)
        if "float32" in top1:
            agreement = np.mean(top1[result["variant"]] == top1["float32"])
            result["metrics"]["top1_agreement_float32"] = float(agreement)


# ---------------------------------------------------------------- reporting


def fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def latency_table(results: list[dict]) -> list[str]:
    lines = [
        "| variant | threads | p50 ms | p90 ms | p99 ms | images/s | Classifier overhead | p50 vs float32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for t, f in r["threads"].items():
            lines.append(
                f"| {r['variant']} | {t} | {fmt(f['p50_ms'])} | {fmt(f['p90_ms'])} | {fmt(f['p99_ms'])} "
                f"| {fmt(f['images_per_s'], '.1f')} | {fmt(f.get('classifier_overhead'), '+.1%')} "
                f"| {fmt(r.get('p50_vs_float32', {}).get(t), '.2f')} |"
            )
    return lines


def summary_table(results: list[dict]) -> list[str]:
    lines = [
        "| variant | size KB | load ms | peak RSS MB | e2e 600x450 ms | e2e 12 MP ms | accuracy "
        "| balanced acc. | melanoma recall | top-1 agreement vs float32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        e2e, m = r.get("e2e_ms", {}), r.get("metrics", {})
        lines.append(
            f"| {r['variant']} | {r['bytes'] / 1024:.1f} | {fmt(r['load_ms'], '.1f')} "
            f"| {fmt(r['peak_rss_mb'], '.1f')} | {fmt(e2e.get('600x450'))} | {fmt(e2e.get('4032x3024'))} "
            f"| {fmt(m.get('accuracy'), '.3f')} | {fmt(m.get('balanced_accuracy'), '.3f')} "
            f"| {fmt(m.get('melanoma_recall'), '.3f')} | {fmt(m.get('top1_agreement_float32'), '.3f')} |"
        )
    return lines


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def target_lines(results: list[dict]) -> list[str]:
    by_name = {r["variant"]: r for r in results}
    int8 = by_name.get("int8")
    if int8 is None:
        return ["- targets need the full int8 variant: not measured"]
    lines = []
    for t, ratio in int8.get("p50_vs_float32", {}).items():
        lines.append(
            f"- full int8 p50 / float32 p50 at {t} thread(s): {ratio:.2f} "
            f"(target <= {TARGET_INT8_VS_FLOAT32}): {verdict(ratio <= TARGET_INT8_VS_FLOAT32)}"
        )
    t = str(int8["e2e_threads"])
    overhead = int8["threads"][t]["classifier_overhead"]
    lines.append(
        f"- Classifier overhead over bare invoke (int8, {t} thread(s)): {overhead:+.1%} "
        f"(target <= {TARGET_CLASSIFIER_OVERHEAD:.0%}): {verdict(overhead <= TARGET_CLASSIFIER_OVERHEAD)}"
    )
    ratio = int8["e2e_12mp_vs_invoke"]
    lines.append(
        f"- 12 MP end-to-end / int8 invoke ({t} thread(s)): {ratio:.2f}x "
        f"(target <= {TARGET_12MP_VS_INVOKE:g}x): {verdict(ratio <= TARGET_12MP_VS_INVOKE)}"
    )
    return lines


def markdown_report(results: list[dict]) -> str:
    sections = [
        "## Latency: bare interpreter invoke on a preprocessed array",
        *latency_table(results),
        "",
        "## Per variant",
        *summary_table(results),
        "",
        "## Targets",
        *target_lines(results),
    ]
    return "\n".join(sections)


def write_png(results: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print(f"note: matplotlib is not installed: skipping {path}", file=sys.stderr)
        return
    matplotlib.use("Agg")  # no display on a Pi or in CI
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    keys = sorted({t for r in results for t in r["threads"]}, key=str)
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        heights = [r["threads"].get(key, {}).get("p50_ms", 0.0) for r in results]
        axes.bar(np.arange(len(results)) + k * width, heights, width, label=f"{key} thread(s)")
    axes.set_xticks(np.arange(len(results)) + width * (len(keys) - 1) / 2, [r["variant"] for r in results])
    axes.set_ylabel("p50 latency, ms (lower is better)")
    axes.set_title("LesionLite: interpreter latency per variant")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


# ---------------------------------------------------------------- command


def keras_model_path(bundle_dir: Path) -> Path | None:
    """../model.keras when TensorFlow, Keras and export/ are installed; otherwise None, with a note why."""
    model = bundle_dir.resolve().parent / "model.keras"
    needed = ("tensorflow", "keras", "export.keras_baseline")
    if any(importlib.util.find_spec(name) is None for name in needed):
        print("note: TensorFlow/Keras or export/ not installed: no Keras baseline", file=sys.stderr)
        return None
    if not model.is_file():
        print(f"note: {model} not found: no Keras baseline", file=sys.stderr)
        return None
    return model


def run(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.warmup < 0:
        raise BenchError(f"--runs must be >= 1 and --warmup >= 0, got {args.runs} and {args.warmup}")
    manifest = bundle.load_manifest(args.bundle)
    variants = args.variants or list(manifest["variants"])
    for variant in variants:
        bundle.variant_info(manifest, variant)  # fail on a typo before minutes of measuring
    size, codes = manifest["input"]["size"], [code for code, _ in bundle.labels_of(manifest)]
    jpegs = {name: synthetic_jpeg(w, h) for name, (w, h) in SYNTHETIC_PHOTOS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        y_true, data = None, None
        if args.data:
            items = test_images(args.data, args.split)
            y_true = np.array([label_index(dx, codes) for _, dx in items])
            data = str(preprocess_to_file(items, size, Path(tmp) / "test.npy"))
        job = {
            "bundle": str(args.bundle),
            "threads": args.threads,
            "runs": args.runs,
            "warmup": args.warmup,
            "jpegs": jpegs,
            "data": data,
        }
        results = [
            in_fresh_process(measure_variant, {**job, "variant": v})
            for v in tqdm(variants, desc="benchmarking variants", unit="variant")
        ]
        model = keras_model_path(args.bundle) if args.keras_baseline else None
        if model:
            pixels = preprocess(jpegs["600x450"], size)
            results.append(measure_keras({**job, "model": str(model), "pixels": pixels}, Path(tmp)))
    add_comparisons(results, y_true, codes)
    print(markdown_report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    if args.png:
        write_png(results, args.png)
    return 0


def label_index(dx: str, codes: list[str]) -> int:
    if dx not in codes:
        raise BenchError(f"diagnosis {dx!r} in the data is not one of the bundle's labels {codes}")
    return codes.index(dx)
