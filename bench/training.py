"""Benchmark the training input pipeline and the training step on this machine.

Example usage:
    python -m bench training --data demo-data --config demo

Measures images/s of (a) decoding every JPEG through the shared preprocessing, as a pipeline
without the cache would do every epoch, (b) the cached tf.data pipeline with the seed's
augmentation, and (c) the time of one training step (forward + backward, all layers trainable).
TensorFlow and training/ are imported inside the functions, so `python -m bench edge` and
`python -m bench serving` never load them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from bench import BenchError, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset folder in either HAM10000 layout")
    parser.add_argument("--config", default="demo", help="named config (its image size, alpha, batch size)")
    parser.add_argument("--images", type=positive_int, default=400, help="images to decode for (a)")
    parser.add_argument("--batches", type=positive_int, default=30, help="batches to draw for (b)")
    parser.add_argument("--steps", type=positive_int, default=10, help="training steps to time for (c)")


def images_per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_decode(records, size: int, limit: int) -> float:
    """Images/s of JPEG decode + preprocess, one thread: the per-epoch cost without a cache."""
    from edge.preprocess import preprocess

    chosen = records[:limit]
    started = time.perf_counter()
    for r in chosen:
        preprocess(r.path, size)
    return images_per_second(len(chosen), time.perf_counter() - started)


def bench_pipeline(pixels: np.ndarray, labels: np.ndarray, config, batches: int) -> float:
    """Images/s of the cached, shuffled, augmented tf.data pipeline (what training consumes)."""
    from training.pipeline import training_dataset

    dataset, _ = training_dataset(pixels, labels, config)
    iterator = iter(dataset)
    next(iterator)  # build the graph before timing
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return images_per_second(batches * config.batch_size, time.perf_counter() - started)


def bench_step(pixels: np.ndarray, labels: np.ndarray, config, steps: int) -> float:
    """Milliseconds per training step with every layer trainable."""
    from training.model import build_model, compile_model, set_trainable

    model = build_model(config)
    set_trainable(model, 0, freeze_batch_norm=config.pretrained)
    compile_model(model, 1e-3)
    x = pixels[: config.batch_size * (steps + 1)].astype(np.float32)
    y = labels[: len(x)]
    model.fit(x[: config.batch_size], y[: config.batch_size], batch_size=config.batch_size, verbose=0)
    n = len(x) - config.batch_size
    started = time.perf_counter()
    model.fit(x[config.batch_size:], y[config.batch_size:], batch_size=config.batch_size, verbose=0)
    return 1000 * (time.perf_counter() - started) / max(1, n // config.batch_size)


def load(args: argparse.Namespace):
    """The named config, the folder's records and their decoded pixels; errors as BenchErrors."""
    from training.config import ConfigError, resolve
    from training.data import DataError, decode_images, load_records

    try:
        config = resolve(args.config, {})
        records = load_records(args.data)
        return config, records, decode_images(records, config.image_size, cache_dir=None)
    except (ConfigError, DataError) as err:
        raise BenchError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.data import labels_of

    config, records, decoded = load(args)
    labels = labels_of(decoded.records)
    decode_rate = bench_decode(records, config.image_size, args.images)
    pipeline_rate = bench_pipeline(decoded.pixels, labels, config, args.batches)
    step_ms = bench_step(decoded.pixels, labels, config, args.steps)
    print(f"| measure ({config.image_size} px, alpha {config.alpha:g}, batch {config.batch_size}) | value |")
    print("|---|---:|")
    print(f"| decode + preprocess every epoch (no cache), 1 thread | {decode_rate:.0f} images/s |")
    print(f"| cached tf.data pipeline with augmentation | {pipeline_rate:.0f} images/s |")
    print(f"| cache speed-up | {pipeline_rate / decode_rate:.1f}x |")
    print(f"| training step (all layers trainable) | {step_ms:.0f} ms = {1000 * config.batch_size / step_ms:.0f} images/s |")
    return 0
