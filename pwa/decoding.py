"""Photos decoded at most as many at once as the machine has cores; the others wait, then are told when to come back.

A decode holds a core and memory: up to about 64 MB for the largest photos the limits allow
(edge/photo_limits.py), a few MB for a phone's JPEG decoded at its draft scale. More decodes at
once than cores would not finish sooner, only hold more memory while they share the cores, so
each takes a slot; a request that finds none free within DECODE_WAIT_S gets a JSON 503 with a
Retry-After header (pwa/errors.py). Light decodes (at most LIGHT_BYTES, which every phone JPEG is)
and heavy ones have slots of their own, one per core each: a heavy photo never makes a phone's
photo wait behind it, and memory stays bounded by cores x (64 MB + LIGHT_BYTES). Both listeners
of one server share the slots.

Decoded images are large blocks, and glibc's malloc would keep them once freed (below): the
process also asks it to hand them back, so what one photo took is free again for the next.

Example usage:
    slots = DecodeSlots(2, wait_s=10)
    with slots.slot(cost_bytes):
        pixels = decode_for_model(image, 224, "The photo")
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

from flask import Flask, current_app

SLOTS_KEY = "lesionlite.decode_slots"
DEFAULT_WAIT_S = 10.0  # a photo queues this long behind others before it is told to come back
RETRY_AFTER_S = 5  # what the 503 asks the client to wait: a decode takes well under a second
LIGHT_BYTES = 16 * 1024 * 1024  # a 12 MP phone JPEG, decoded at a quarter of each side, holds ~7 MB
BUSY = "The server is busy with other photos ({slots} at a time): try again in {retry} s."
# glibc's malloc gives a freed block of over 128 KB back to the system, but then raises that
# threshold to the largest block freed (up to 32 MB): after the first photo, decoded images stay
# in the arena of the thread that decoded them, and eight threads that each decoded once hold
# eight decodes' memory however few run at once (measured: eight 1732x1732 WebPs, two at a time,
# left the server at 366 MB; 164 MB with the threshold fixed). mallopt(M_MMAP_THRESHOLD) fixes it.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024


class BusyError(Exception):
    """No decode slot came free in time: the 503's message, and the seconds to wait before retrying."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or taskset narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class DecodeSlots:
    """A bounded number of light and of heavy decodes at once, with a bounded wait for a slot."""

    def __init__(self, slots: int, wait_s: float = DEFAULT_WAIT_S):
        if slots < 1 or wait_s < 0:
            raise ValueError(f"need at least one slot and a wait >= 0 s, got {slots} and {wait_s}")
        self.slots = slots
        self.wait_s = wait_s
        self._free = {True: threading.BoundedSemaphore(slots), False: threading.BoundedSemaphore(slots)}

    @contextlib.contextmanager
    def slot(self, cost_bytes: int = 0) -> Iterator[None]:
        """Hold a slot for a decode of at most `cost_bytes` for the block: a light one, or a heavy one.

        Raises:
            BusyError: none came free within wait_s seconds.
        """
        free = self._free[cost_bytes <= LIGHT_BYTES]
        if not free.acquire(timeout=self.wait_s):
            raise BusyError(BUSY.format(slots=self.slots, retry=RETRY_AFTER_S), RETRY_AFTER_S)
        try:
            yield
        finally:
            free.release()


def return_freed_memory() -> bool:
    """Have glibc's malloc give large freed blocks back to the system at once (for the whole
    process). False without glibc, where the allocator keeps its own policy."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # no C library by that name, or no mallopt in it
        return False


def init_app(app: Flask, slots: DecodeSlots | None = None) -> None:
    """Give the app its decode slots: DECODE_SLOTS (default: the cores) waiting DECODE_WAIT_S, or
    `slots` shared with another app of the same server; and have freed decodes returned."""
    return_freed_memory()
    app.config.setdefault("DECODE_SLOTS", cores())
    app.config.setdefault("DECODE_WAIT_S", DEFAULT_WAIT_S)
    app.extensions[SLOTS_KEY] = slots or DecodeSlots(app.config["DECODE_SLOTS"], app.config["DECODE_WAIT_S"])


def slots_of(app: Flask) -> DecodeSlots:
    return app.extensions[SLOTS_KEY]


def decode_slot(cost_bytes: int = 0):
    """The current app's slot for a decode of at most `cost_bytes`, for `with decode_slot(n): ...`
    (edge.preprocess.preprocess's around_decode)."""
    return slots_of(current_app).slot(cost_bytes)
