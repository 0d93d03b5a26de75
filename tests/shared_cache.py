"""Where the tests keep what takes minutes to build: one folder shared by every clone on the machine.

``$LESIONLITE_CACHE``, else ``$XDG_CACHE_HOME/lesionlite``, else ``~/.cache/lesionlite``: the test
fixtures (``test-artifacts/``), the Raspberry Pi sysroot and qemu (``pi/``), and the Makefile keeps
the built on-device runtime there (``web/``). Like pip's and npm's
caches, it outlives a clone, so a fresh clone on a machine that has run the tests before builds
only what its code changed. Nothing in it is reused by name alone: a fixture's folder is named by a
hash of everything that shapes it (tests/conftest.py), the sysroot carries a marker with the hash
of its recipe (tests/pi_emulation.py), and every build goes under a file lock into a temporary
folder renamed at the end, so clones running at once share it safely. ``rm -rf`` it to start cold.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("LESIONLITE_CACHE"):
        return Path(os.environ["LESIONLITE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lesionlite"


CACHE_ROOT = cache_root()
