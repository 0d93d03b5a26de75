"""edge/memory.py, the project's one memory measure: read from the kernel, checked against
psutil (a second reader of the same counters) and against blocks of a known size."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from edge import memory

MB = 2**20


def test_rss_is_what_psutil_reads():
    assert memory.rss_mb() == pytest.approx(psutil.Process().memory_info().rss / MB, abs=4)  # allocations in between


def test_a_blocks_peak_sees_64_mb_touched_and_freed_inside_it(repo_root):
    """In a fresh process: a test worker that loaded TensorFlow before may keep a freed block mapped
    (its RSS stayed at the peak in one `make test`), which is the allocator's state, not the measure's."""
    code = ("import numpy as np; from edge import memory\n"
            "with memory.PeakMemory() as measured:\n"
            "    block = np.ones(64 * 2**20, dtype=np.uint8)  # ones, not zeros: every page is touched\n"
            "    del block\n"
            "print(measured.own, measured.peak_mb - measured.start_mb, measured.peak_mb - memory.rss_mb())")
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300)
    own, grew, above_now = result.stdout.split()
    assert own == "True"  # the reset works here, so the peak is the block's own
    assert float(grew) >= 63
    assert float(above_now) >= 60  # the block is gone, its peak stays


def test_a_process_peak_is_its_high_water_mark(repo_root):
    """100 MB touched then freed in a fresh process: its RSS falls back, its high-water mark stays."""
    code = ("import numpy as np; from edge.memory import peak_rss_mb, rss_mb\n"
            "before = peak_rss_mb(); block = np.ones(100 * 2**20, np.uint8); del block\n"
            "print(peak_rss_mb() - before, peak_rss_mb() - rss_mb())")
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300)
    grew, above_now = map(float, result.stdout.split())
    assert grew >= 95 and above_now >= 90


def test_another_process_is_read_by_its_pid_and_a_gone_one_is_none(repo_root):
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"  # a running interpreter, not a process still starting
        assert memory.peak_rss_mb(child.pid) >= memory.rss_mb(child.pid) > 1
    finally:
        child.communicate(b"")
    assert memory.peak_rss_mb(child.pid) is None  # reaped: no /proc entry left


def test_without_the_reset_a_block_says_its_peak_is_the_process_so_far(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    with memory.PeakMemory() as measured:
        pass
    assert not measured.own
    assert measured.peak_mb == pytest.approx(memory.peak_rss_mb(), abs=1)
