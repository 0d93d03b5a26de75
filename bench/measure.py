"""Timing, measured one way for every benchmark.

- time_ms / percentiles: wall-clock milliseconds of one call; p50/p90/p99 and calls per second.
- in_fresh_process: what a benchmark measures runs in a newly spawned interpreter, so the
  lifetime peak memory of that process (edge/memory.py, the project's one memory measure) is the
  peak of what was measured.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import numpy as np


def time_ms(call: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Milliseconds one call of `call()` takes by `clock` (seconds; perf_counter unless a test
    passes its own)."""
    start = clock()
    call()
    return (clock() - start) * 1000.0


def percentiles(times_ms: list[float]) -> dict:
    """p50/p90/p99 of the timings (numpy's default linear interpolation) and calls per second
    at their mean."""
    p50, p90, p99 = np.percentile(times_ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "images_per_s": 1000.0 / float(np.mean(times_ms)),
    }


def in_fresh_process(function: Callable[[dict], dict], job: dict) -> dict:
    """function(job) in a newly spawned interpreter (not forked), so its memory is its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, (job,))

