"""Timing and memory, measured one way for every benchmark (and for the export's conversions).

- time_ms / percentiles: wall-clock milliseconds of one call; p50/p90/p99 and calls per second.
- peak_rss_mb: the kernel's resident-memory high-water mark (VmHWM) of a process. Benchmarks run
  what they measure in a fresh process (in_fresh_process, or a server subprocess), so the
  lifetime peak of that process is the peak of what was measured.
- PeakMemory: the peak resident memory of this process while a block runs, sampled every 10 ms,
  for a step inside a longer-lived process (one TFLite conversion during an export).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

MB = 2**20


def time_ms(call: Callable[[], object]) -> float:
    """Milliseconds one call of `call()` takes (perf_counter)."""
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


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


def rss_mb() -> float:
    """This process's resident memory now."""
    return psutil.Process().memory_info().rss / MB


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """A process's RSS high-water mark (VmHWM from /proc), or None off Linux.

    Not getrusage: its ru_maxrss survives fork and exec, so a spawned child would report the
    parent's peak (for the edge benchmark, the parent that just built a 12 MP photo).
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return None if kib is None else int(kib) / 1024


def in_fresh_process(function: Callable[[dict], dict], job: dict) -> dict:
    """function(job) in a newly spawned interpreter (not forked), so its memory is its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, (job,))


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 10 ms), in bytes:
    `with PeakMemory() as memory: ...`, then memory.start and memory.peak."""

    def __enter__(self) -> PeakMemory:
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
