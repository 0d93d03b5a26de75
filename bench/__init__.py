"""LesionLite's benchmarks, one package, one entry point (`python -m bench SUBCOMMAND`):

    edge       every variant of a bundle with the LiteRT interpreter  (bench/edge.py)
    serving    the real PWA server under concurrent clients           (bench/serving.py)
    camera     the server camera: capture latency, preview rate, CPU  (bench/camera.py)
    hostile    the server under bombs, slow clients and a hostile mix (bench/hostile.py)
    training   the training input pipeline and one training step      (bench/training.py)

Shared: timing (bench/measure.py; memory is measured by edge/memory.py, which the export and
training use too), synthetic photos (bench/photos.py), reading a dataset folder (bench/data.py).
`bench edge` and `bench serving` run where TensorFlow is absent (a Raspberry Pi); TensorFlow is
imported only inside `bench training` and the Keras baseline.

This module holds what every subcommand shares: the error class and the option types.
"""

from __future__ import annotations

import argparse

from edge.errors import UsageError


class BenchError(UsageError):
    """A benchmark option or data folder is unusable, or a measured program failed (message says why)."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are BenchErrors, so run_cli prints one line and exits 2."""

    def error(self, message: str):  # argparse's hook; its default prints the usage and exits
        raise BenchError(message)


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def thread_list(text: str) -> list[int]:
    """'4,1,2' -> [1, 2, 4]: distinct thread counts, ascending, each >= 1."""
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,4, got {text!r}"
        ) from None
    if counts[0] < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return counts
