"""Wall time and peak resident memory of each phase of a training run, printed as it ends.

The peak is the kernel's high-water mark (VmHWM in /proc/self/status), reset at the start of
each phase by writing 5 to /proc/self/clear_refs, so each line is that phase's own peak. Where
/proc is missing or the reset is refused, the line gives the peak so far, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_mb() -> float | None:
    """This process's resident-memory high-water mark in MB (None without /proc)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Print `phase NAME: S s, peak RSS M MB` when the block ends."""
    own = _reset_peak()
    started = time.perf_counter()
    yield
    peak = peak_rss_mb()
    memory = "peak RSS unknown" if peak is None else f"peak RSS {peak:,.0f} MB" + ("" if own else " (process so far)")
    print(f"phase {name}: {time.perf_counter() - started:.1f} s, {memory}", flush=True)
