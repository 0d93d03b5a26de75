"""Build runs/NAME/bundle/: convert every variant, verify each with LiteRT, write the manifest.

The bundle is assembled in a temporary folder next to it and renamed into place only after every
variant passed verification, so a failed or interrupted export leaves the previous bundle as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge.bundle import sha256_hex
from edge.labels import CLASSES, CODES
from edge.manifest import HonestyInfo, Manifest, Quantization, Variant
from edge.memory import PeakMemory
from export.calibrated import save_for_conversion
from export.quantize import recipe

# float32 must reproduce Keras: anything above this is a conversion bug, not rounding.
FLOAT32_TOLERANCE = 1e-4
RUN_METRIC_KEYS = ("accuracy", "balanced_accuracy", "top2_accuracy", "top3_accuracy", "melanoma_sensitivity",
                   "melanoma_specificity", "roc_auc_macro", "n_test_images")


def choose_calibration(pixels: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n training images, as equal a number per class as the classes allow."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(len(CODES))]
    chosen: list[int] = []
    while len(chosen) < n and any(pools):
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return pixels[np.sort(chosen)]


def _io_details(path: Path) -> dict:
    """Input, probabilities and features dtypes and quantization parameters, as LiteRT reads them."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    outputs = {int(o["shape"][-1]): o for o in interpreter.get_output_details()}
    sides = {"input": interpreter.get_input_details()[0], "output": outputs.pop(len(CODES)),
             "features": next(iter(outputs.values()))}
    details = {}
    for side, tensor in sides.items():
        scale, zero_point = tensor["quantization"]
        details[f"{side}_dtype"] = np.dtype(tensor["dtype"]).name
        details[f"{side}_quantization"] = Quantization(float(scale), int(zero_point)) if scale else None
    return details


def variant_entry(path: Path, conversion: dict) -> Variant:
    content = path.read_bytes()
    return Variant(file=path.name, bytes=len(content), sha256=sha256_hex(content), **_io_details(path),
                   conversion=conversion)


# The variant a runtime runs unless asked: the smallest that answers as float32 does. Full int8 is
# the fastest on a Pi's CPU; float16 halves float32's download and runs at float32's speed.
DEFAULT_PREFERENCE = ("int8", "float16", "dynamic_int8", "float32")


def default_variant(variants: dict) -> str:
    """The first of DEFAULT_PREFERENCE that was exported (each was verified against float32)."""
    return next((name for name in DEFAULT_PREFERENCE if name in variants), next(iter(variants)))


def manifest_for(source_name: str, image_size: int, variants: dict[str, Variant], source_run: dict,
                 honesty: HonestyInfo, feature_width: int) -> Manifest:
    """The self-describing manifest (ARCHITECTURE.md, "The bundle")."""
    return Manifest(labels=tuple(CLASSES), input_size=image_size, variants=variants,
                    default_variant=default_variant(variants), honesty=honesty, feature_width=feature_width,
                    created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    source_run={"name": source_name, **source_run})


def conversion_figures(seconds: float, memory: PeakMemory) -> dict:
    """The manifest's record of one conversion; memory figures are None where /proc is missing."""
    figures = {"seconds": round(seconds, 2), "peak_rss_mb": None, "rss_increase_mb": None}
    if memory.peak_mb is not None:
        figures |= {"peak_rss_mb": round(memory.peak_mb), "rss_increase_mb": round(memory.peak_mb - memory.start_mb)}
    return figures


def convert_all(model, variants: list[str], calibration: np.ndarray, work: Path, log=print,
                makers: dict | None = None) -> dict[str, Variant]:
    """Write WORK/<variant>.tflite for each variant of the export model (export/calibrated.py);
    return manifest entries without metrics. MAKERS maps a variant to a function of WORK returning
    (content, what its conversion entry records) instead of the recipe (export/qat.py for int8)."""
    makers = makers or {}
    saved_model = work / "saved_model"
    save_for_conversion(model, saved_model, int(model.input.shape[1]))
    entries = {}
    for name in variants:
        with PeakMemory() as memory:
            started = time.perf_counter()
            if name in makers:
                content, method = makers[name](work)
            else:
                content, method = recipe(name, calibration).convert(saved_model), {}
            seconds = time.perf_counter() - started
        path = work / f"{name}.tflite"
        path.write_bytes(content)
        entries[name] = variant_entry(path, conversion_figures(seconds, memory) | method)
        log(f"converted {name}: {len(content) / 1024:.0f} KiB in {seconds:.1f} s")
    shutil.rmtree(saved_model)
    return entries


def swap_into_place(staging: Path, target: Path) -> None:
    """Replace TARGET by STAGING with two renames; the old bundle survives until the last one."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def staging_dir(run_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=".bundle-staging-", dir=run_dir))
