"""The Keras float model as a baseline row for `python -m bench edge --keras-baseline`.

Example usage (bench/edge.py runs it as a separate program, so the edge benchmark never imports
TensorFlow):
    python -m bench keras-baseline JOB.json

JOB.json: {"model": "runs/NAME/model.keras", "pixels": "one.npy", "data": "test.npy" or null,
"warmup": N, "runs": N}. Prints one JSON object, shaped like bench.edge's variant results.
Keras is imported inside measure(), since its import time is one of the figures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from bench import BenchError
from bench.measure import percentiles, time_ms
from edge.memory import peak_rss_mb, rss_mb


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
        result["probabilities"] = model.predict(pixels, batch_size=32, verbose=0).tolist()
    return result


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        job = json.loads(Path(args.job).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BenchError(f"cannot read the job file {args.job}: {err}") from None
    print(json.dumps(measure(job)))
    return 0
