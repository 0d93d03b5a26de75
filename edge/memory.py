"""Resident memory of a process, as the kernel counts it: now, its peak, and the peak of one block.

Example usage:
    from edge.memory import PeakMemory, peak_rss_mb
    with PeakMemory() as memory:
        convert()
    print(memory.peak_mb, memory.peak_mb - memory.start_mb)
    peak_rss_mb(server.pid)                 # another process's lifetime peak

The one place the project measures memory: the training phases, the export's conversions and
every benchmark use it. It lives in edge/, the bottom layer, so each of them may import it; it
imports nothing of the project and nothing outside the standard library, and classifying a photo
never loads it.

The peak is the kernel's high-water mark (VmHWM in /proc/PID/status). A block's own peak is had
by resetting that mark first (writing 5 to /proc/self/clear_refs, Linux 4.0 and later): exact,
where a thread sampling RSS every few milliseconds misses a short spike. Not getrusage either:
its ru_maxrss survives fork and exec, so a spawned child would report its parent's peak. Without
/proc every figure is None; where the reset is refused a block's peak is the process's so far,
and `PeakMemory.own` says so. The mark is per process: blocks must not nest.
"""

from __future__ import annotations

from pathlib import Path

MB = 2**20
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK = "5"  # clear_refs: reset the peak resident set size to the current one


def _status_mb(field: str, pid: int | str) -> float | None:
    """A kB line of /proc/PID/status (VmRSS, VmHWM) in MB, or None without /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith(field + ":")), None)
    return None if kib is None else int(kib) / 1024


def rss_mb(pid: int | str = "self") -> float | None:
    """A process's resident memory now, in MB."""
    return _status_mb("VmRSS", pid)


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """A process's resident-memory high-water mark in MB: its lifetime peak, or the peak since
    the last reset_peak()."""
    return _status_mb("VmHWM", pid)


def reset_peak() -> bool:
    """Lower this process's high-water mark to its resident memory now; False where refused."""
    try:
        CLEAR_REFS.write_text(RESET_PEAK)
    except OSError:
        return False
    return True


class PeakMemory:
    """`with PeakMemory() as memory:` then memory.start_mb (resident at the start), memory.peak_mb
    (the block's peak) and memory.own (False: the reset was refused, the peak is the process's so
    far). The figures are None without /proc."""

    def __enter__(self) -> PeakMemory:
        self.own = reset_peak()
        self.start_mb = rss_mb()
        self.peak_mb = None
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb = peak_rss_mb()
