"""Wall time and peak resident memory of each phase of a training run, printed as it ends.

Each phase's peak is its own: edge/memory.py's PeakMemory resets the kernel's high-water mark at
the start of the phase. Where /proc is missing the line says the peak is unknown; where the reset
is refused it gives the peak so far, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from edge.memory import PeakMemory


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Print `phase NAME: S s, peak RSS M MB` when the block ends."""
    started = time.perf_counter()
    with PeakMemory() as memory:
        yield
    peak = memory.peak_mb
    memory_text = "peak RSS unknown" if peak is None else f"peak RSS {peak:,.0f} MB" + ("" if memory.own else " (process so far)")
    print(f"phase {name}: {time.perf_counter() - started:.1f} s, {memory_text}", flush=True)
