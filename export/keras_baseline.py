"""The Keras float model as a baseline row for `python -m edge bench --keras-baseline`.

Example usage (edge/bench.py runs it as a separate program, so edge/ never imports TensorFlow):
    python -m export.keras_baseline JOB.json

JOB.json: {"model": ".../model.keras", "pixels": "one.npy", "data": "test.npy" or null,
"warmup": N, "runs": N}. Prints one JSON object, shaped like edge.bench's variant results.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edge.bench import peak_rss_mb, percentiles, rss_mb, time_ms


def measure(job: dict) -> dict:
    """Import, load and invoke times, peak RSS and top-1 of the Keras model, in this process."""
    rss_before = rss_mb()
    start = time.perf_counter()
    import keras

    import_ms = (time.perf_counter() - start) * 1000.0
    start = time.perf_counter()
    model = keras.saving.load_model(job["model"], compile=False)
    load_ms = (time.perf_counter() - start) * 1000.0
    batch = np.load(job["pixels"])[np.newaxis].astype(np.float32)
    for _ in range(job["warmup"] + 1):
        model(batch, training=False)
    result = {
        "variant": "keras",
        "file": "model.keras",
        "bytes": Path(job["model"]).stat().st_size,
        "import_ms": import_ms,
        "load_ms": load_ms,
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
    times = [time_ms(lambda: model(batch, training=False)) for _ in range(job["runs"])]
    result["threads"] = {"default": percentiles(times)}
    if job.get("data"):
        pixels = np.load(job["data"], mmap_mode="r")
        result["top1"] = model.predict(pixels, batch_size=32, verbose=0).argmax(axis=1).tolist()
    return result


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m export.keras_baseline JOB.json", file=sys.stderr)
        return 2
    print(json.dumps(measure(json.loads(Path(args[0]).read_text()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
