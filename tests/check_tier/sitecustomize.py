"""Makes TensorFlow, Keras and Playwright fail to import, loudly, in this process and in every
Python process started with this folder on PYTHONPATH (Python imports sitecustomize at start-up).

tests/conftest.py installs it for the check tier (`pytest -m check`, `make check`), so a test
that needs TensorFlow or a browser but is not marked for it fails there instead of making the
one-minute tier slow; tests/test_layering.py uses it to prove edge/, pwa/ and the edge and
serving benchmarks run where TensorFlow is absent, as on a Raspberry Pi.
"""

import importlib.abc
import sys

# Top-level package -> the marker a test needing it carries (pyproject.toml lists the markers).
BLOCKED = {"tensorflow": "tf", "keras": "tf", "tf_keras": "tf", "playwright": "browser"}


class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED:
            raise ImportError(f"{name} is blocked: the check tier (pytest -m check) and edge/ and pwa/ run without it; "
                              f"a test that needs it is marked {BLOCKED[top]!r} (pyproject.toml)")
        return None


if not any(isinstance(finder, Blocked) for finder in sys.meta_path):
    sys.meta_path.insert(0, Blocked())
