"""The training loop: data, split, two-phase fine-tuning with callbacks, then the evaluation."""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edge.labels import CLASSES
from training import data as data_mod
from training import split as split_mod
from training.config import ConfigError, TrainConfig
from training.model import build_model, compile_model, set_trainable
from training.pipeline import balanced_class_weights, eval_dataset, training_dataset

HEAD_DONE = "head_phase.weights.h5"


@dataclass
class Splits:
    """Pixels and labels of each split, plus the records they came from."""

    records: dict[str, list[data_mod.Record]]
    pixels: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


def make_strategy(name: str, cpu_devices: int = 1) -> tf.distribute.Strategy:
    """`default` or `mirrored` (all GPUs; without GPUs, `cpu_devices` logical CPUs)."""
    if name == "default":
        return tf.distribute.get_strategy()
    cpus = tf.config.list_physical_devices("CPU")
    if cpu_devices > 1:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def assign_split(records: list[data_mod.Record], config: TrainConfig, run_dir: Path,
                 split_file: Path | None) -> dict[str, str]:
    """Reuse the run's split, or a given one, or make one; always leave split.csv in the run."""
    saved = run_dir / "split.csv"
    source = split_file or (saved if saved.is_file() else None)
    if source is not None:
        where = split_mod.read_split(source)
        missing = [r.image_id for r in records if r.image_id not in where]
        if missing:
            raise split_mod.SplitError(f"{len(missing)} images are not in the split file {source} "
                                       f"(first: {', '.join(missing[:5])})")
    rows = [{"image_id": r.image_id, "lesion_id": r.lesion_id, "dx": r.dx} for r in records]
    if source is None:
        assigned = split_mod.make_split(rows, config.val_fraction, config.test_fraction, config.seed)
        where = dict(zip([r.image_id for r in records], assigned, strict=True))
    if source != saved:
        split_mod.write_split(saved, rows, [where[r.image_id] for r in records])
    return where


def load_splits(records: list[data_mod.Record], config: TrainConfig, run_dir: Path, split_file: Path | None,
                cache_dir: Path | None) -> Splits:
    """Decode each image once (cached) and divide the pixels by split."""
    started = time.perf_counter()
    decoded = data_mod.decode_images(records, config.image_size, cache_dir)
    print(f"decoded {len(decoded.records)} images at {config.image_size} px in {time.perf_counter() - started:.1f} s")
    if decoded.corrupt:
        data_mod.write_excluded(run_dir / "excluded_images.csv", decoded.corrupt)
        print(f"excluded {len(decoded.corrupt)} unreadable image(s): see {run_dir / 'excluded_images.csv'}")
    where = assign_split(records, config, run_dir, split_file)
    chosen = {s: np.array([where[r.image_id] == s for r in decoded.records]) for s in split_mod.SPLITS}
    labels = data_mod.labels_of(decoded.records)
    return Splits(
        records={s: [r for r, keep in zip(decoded.records, m, strict=True) if keep] for s, m in chosen.items()},
        pixels={s: decoded.pixels[m] for s, m in chosen.items()},
        labels={s: labels[m] for s, m in chosen.items()},
    )


def _history(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _callbacks(config: TrainConfig, run_dir: Path, phase: str) -> list[keras.callbacks.Callback]:
    """The seed's ReduceLROnPlateau and ModelCheckpoint, plus early stop, log and resume."""
    history = _history(run_dir)
    best = max((float(h[config.monitor]) for h in history if h.get(config.monitor)), default=None)
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup" / phase)),
        keras.callbacks.ModelCheckpoint(str(run_dir / "model.keras"), monitor=config.monitor, mode="max",
                                        save_best_only=True, initial_value_threshold=best, verbose=1),
        keras.callbacks.ReduceLROnPlateau(monitor=config.monitor, mode="max", factor=config.reduce_lr_factor,
                                          patience=config.reduce_lr_patience, min_lr=config.min_learning_rate,
                                          verbose=1),
        keras.callbacks.EarlyStopping(monitor=config.monitor, mode="max", patience=config.early_stopping_patience,
                                      restore_best_weights=False),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]


def _resume_learning_rate(run_dir: Path, phase_first_epoch: int, default: float) -> float:
    """The learning rate of the last finished epoch of this phase (ReduceLROnPlateau may have cut it)."""
    rows = [h for h in _history(run_dir) if int(h["epoch"]) >= phase_first_epoch and h.get("learning_rate")]
    return float(rows[-1]["learning_rate"]) if rows else default


def fit(config: TrainConfig, splits: Splits, run_dir: Path, strategy: tf.distribute.Strategy) -> keras.Model:
    """Phase 1 trains the head; phase 2 fine-tunes the top of the base. Resumable at each epoch."""
    train_ds, steps = training_dataset(splits.pixels["train"], splits.labels["train"], config)
    val_ds = eval_dataset(splits.pixels["val"], splits.labels["val"], config.batch_size)
    weights = balanced_class_weights(splits.labels["train"]) if config.imbalance == "class_weight" else None
    with strategy.scope():
        model = build_model(config)
    head_done = run_dir / "backup" / HEAD_DONE
    phases = [("head", None, config.head_learning_rate, 0, config.head_epochs),
              ("fine_tune", config.fine_tune_layers, config.fine_tune_learning_rate,
               config.head_epochs, config.head_epochs + config.fine_tune_epochs)]
    for phase, unfreeze, learning_rate, first, last in phases:
        if last <= first:
            continue
        if phase == "head" and head_done.is_file():
            model.load_weights(head_done)
            print("head phase already finished: resuming the fine-tuning phase")
            continue
        with strategy.scope():
            set_trainable(model, unfreeze)
            compile_model(model, _resume_learning_rate(run_dir, first, learning_rate))
        print(f"phase {phase}: epochs {first + 1}-{last}, {sum(np.prod(w.shape) for w in model.trainable_weights):,} "
              f"trainable parameters")
        model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds, epochs=last, initial_epoch=first,
                  class_weight=weights, shuffle=False, callbacks=_callbacks(config, run_dir, phase), verbose=2)
        if phase == "head":
            model.save_weights(head_done)
    return model


def train(config: TrainConfig, data_dir: Path, run_dir: Path, *, split_file: Path | None = None,
          strategy_name: str = "default", cpu_devices: int = 1, cache_dir: Path | None = None,
          records: list[data_mod.Record] | None = None) -> dict:
    """Train, keep the best checkpoint, evaluate it on the test split and write the run folder.

    `records` are DATA_DIR's validated records when the caller already read them.
    """
    from training.evaluate import evaluate_run

    strategy = make_strategy(strategy_name, cpu_devices)
    print(f"strategy: {strategy_name}, {strategy.num_replicas_in_sync} replica(s)")
    run_dir.mkdir(parents=True, exist_ok=True)
    _save_run_info(config, run_dir, data_dir, cache_dir)
    keras.utils.set_random_seed(config.seed)
    records = records if records is not None else data_mod.load_records(data_dir)
    splits = load_splits(records, config, run_dir, split_file, cache_dir)
    print(split_mod.summary(
        [{"dx": r.dx, "lesion_id": r.lesion_id} for s in split_mod.SPLITS for r in splits.records[s]],
        [s for s in split_mod.SPLITS for _ in splits.records[s]]))
    if (run_dir / "metrics.json").is_file() and not (run_dir / "backup").exists():
        print(f"{run_dir} has finished training; re-evaluating its best checkpoint")
    else:
        started = time.perf_counter()
        fit(config, splits, run_dir, strategy)
        print(f"training took {time.perf_counter() - started:.0f} s")
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return evaluate_run(run_dir, splits=splits)


def _save_run_info(config: TrainConfig, run_dir: Path, data_dir: Path, cache_dir: Path | None) -> None:
    saved = run_dir / "config.json"
    if saved.is_file() and json.loads(saved.read_text()) != json.loads(config.to_json()):
        raise ConfigError(f"{run_dir} holds a run with another config; choose a new --out or delete it")
    saved.write_text(config.to_json() + "\n")
    (run_dir / "labels.json").write_text(json.dumps([{"code": c, "name": n} for c, n in CLASSES], indent=2) + "\n")
    info = {"data_dir": str(Path(data_dir).resolve()), "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None}
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")

