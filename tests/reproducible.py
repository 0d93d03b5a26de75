"""Run a project command with TensorFlow made deterministic, so a test fixture built from it is
the same on every fresh clone of this machine (the tiny trained run, the random bundle).

Example usage:
    python -m tests.reproducible training --data DATA --out RUN --config demo --seed 3
    python -m tests.reproducible export RUN

Seeds alone are not enough: TensorFlow may pick kernels and a tf.data order that differ from run
to run. enable_op_determinism() makes every op and tf.data deterministic (or raise where an op
has no deterministic kernel), and a fixed number of intra-op threads fixes how each sum is split
between threads whatever the machine's core count, so the outputs are bit-identical from run to
run on one machine. Another CPU may still round differently (other vector instructions); the
tests compare with tolerances for that, never bit for bit across machines.
"""

from __future__ import annotations

import os
import runpy
import sys

# Two: the cores of the machine the fixtures are built on in CI; one would be as deterministic and slower.
INTRA_OP_THREADS = 2


def make_deterministic(seed: int | None = None) -> None:
    """Deterministic TensorFlow for this process; also seeds Python, numpy and TF when `seed` is given."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
    if seed is not None:
        keras.utils.set_random_seed(seed)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m tests.reproducible MODULE [ARGS...]")
    make_deterministic()
    sys.argv = [argv[0], *argv[1:]]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
