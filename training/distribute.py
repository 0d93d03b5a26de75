"""Distribution strategies, and which worker of a multi-worker cluster this process is.

`--strategy multiworker` is `tf.distribute.MultiWorkerMirroredStrategy`, configured the standard
way: every machine runs the same command with a TF_CONFIG environment variable naming the whole
cluster and its own place in it (docs/training.md, "Training on several machines"). Only the
chief writes the run folder; the other workers train in a temporary folder seeded with the
chief's resume state, as TensorFlow recommends: saving reads synchronized variables, which is a
collective operation, so every worker must save too, each to its own place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass

from training.config import ConfigError
from training.run import RunDir

STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass(frozen=True)
class Role:
    """This process's place in the cluster: worker `index` of `count`; the chief writes the run."""

    index: int = 0
    count: int = 1
    chief: bool = True

    @property
    def name(self) -> str:
        return "chief" if self.chief else f"worker {self.index}"


def role_from_tf_config(text: str | None) -> Role:
    """Parse TF_CONFIG: the chief is task `chief`, or worker 0 when the cluster names no chief.

    Raises:
        ConfigError: TF_CONFIG is missing, not JSON, or lacks the cluster or the task.
    """
    if not text:
        raise ConfigError('--strategy multiworker needs the TF_CONFIG environment variable, e.g. '
                          '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        kind, index = task["type"], int(task["index"])
        count = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"TF_CONFIG is not a cluster spec with a task ({type(err).__name__}: {err})") from None
    if kind not in ("chief", "worker") or count < 1:
        raise ConfigError(f"TF_CONFIG task type must be chief or worker, got {kind!r}")
    chief = kind == "chief" or ("chief" not in cluster and index == 0)
    position = index + (1 if kind == "worker" and "chief" in cluster else 0)
    return Role(position, count, chief)


def make_strategy(name: str, cpu_devices: int = 1):
    """`default`, `mirrored` (all GPUs; without GPUs, `cpu_devices` logical CPUs) or
    `multiworker` (TF_CONFIG's cluster). Call it before any other TensorFlow op: a multi-worker
    strategy sets up the runtime's collective communication when it is created.

    Raises:
        ConfigError: an unknown name, or TF_CONFIG missing or malformed for multiworker.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "multiworker":
        role_from_tf_config(os.environ.get("TF_CONFIG"))  # a clear message before TensorFlow's
        return _scalar_means_across_workers(tf.distribute.MultiWorkerMirroredStrategy())
    if name == "default":
        return tf.distribute.get_strategy()
    cpus = tf.config.list_physical_devices("CPU")
    if cpu_devices > 1:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def _scalar_means_across_workers(strategy):
    """Make `strategy.reduce("MEAN", scalar, axis=0)` mean `axis=None` on this strategy instance.

    Keras 3.15's fit averages each step's loss and metrics over replicas with
    `strategy.reduce("MEAN", value, axis=0)`; the values are scalars, and under
    MultiWorkerMirroredStrategy that fails ("Invalid reduction dimension 0 for input with 0
    dimensions"). For a scalar, the mean over replicas is what axis=None computes.
    """
    import tensorflow as tf

    original = strategy.reduce

    def reduce(reduce_op, value, axis=None):
        one = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
        if axis is not None and getattr(getattr(one, "shape", None), "rank", None) == 0:
            axis = None
        return original(reduce_op, value, axis)

    strategy.reduce = reduce
    return strategy


def role_of(name: str) -> Role:
    """This process's role for a strategy name (a single process is its own chief)."""
    return role_from_tf_config(os.environ.get("TF_CONFIG")) if name == "multiworker" else Role()


def worker_run(run: RunDir, role: Role, restart: bool) -> RunDir:
    """The folder this worker writes: the run itself for the chief, else a temporary copy of its
    resume state (none when restarting, or when the run has none yet: a fresh split is made
    from the same seed and comes out the same)."""
    if role.chief:
        return run
    local = RunDir(tempfile.mkdtemp(prefix=f"lesionlite-worker{role.index}-"))
    if not restart and run.path.is_dir() and run.has_training_state():
        run.copy_training_state(local)
    return local


def finish_worker_run(local: RunDir, run: RunDir) -> None:
    """Delete a non-chief worker's temporary folder."""
    if local.path != run.path:
        shutil.rmtree(local.path, ignore_errors=True)


def agree(strategy, value: int) -> list[int]:
    """Every replica's `value`, gathered across workers (a collective: all workers must call it)."""
    import tensorflow as tf

    per_replica = strategy.run(lambda: tf.constant([value], tf.int64))
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]


def build_from_local_batch(model, strategy) -> None:
    """Let Keras build `model` from this replica's first batch under a multi-replica strategy.

    Keras 3.15's fit and evaluate first build the model from one batch, averaging the
    distributed batch over replicas with `strategy.reduce("MEAN", batch)`. Under
    MultiWorkerMirroredStrategy that fails on the (x, y, weight) structure ("Attempt to convert
    a value (PerReplica...)"); under MirroredStrategy it fails when a partial batch splits
    unevenly (21 validation images as 11 + 10: "AddN must have the same size and shape"). The
    batch only gives shapes, so this instance builds from the local replica's tensors instead.
    """
    import tensorflow as tf
    from keras import tree

    original = model._maybe_symbolic_build

    def local(value):
        return strategy.experimental_local_results(value)[0] if isinstance(value, tf.distribute.DistributedValues) else value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        return original(data_batch=data_batch)

    model._maybe_symbolic_build = build
