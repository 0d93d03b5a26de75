"""The training loop: data, split, two-phase fine-tuning with callbacks, then the evaluation."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from training import split as split_mod
from training.config import TrainConfig
from training.data import load_records
from training.dataset import Splits, load_splits
from training.evaluate import evaluate_run
from training.model import build_model, compile_model, set_trainable
from training.pipeline import balanced_class_weights, eval_dataset, training_dataset
from training.run import RunDir

HEAD_DONE = "head_phase.weights.h5"


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


def _callbacks(config: TrainConfig, run: RunDir, phase: str) -> list[keras.callbacks.Callback]:
    """The seed's ReduceLROnPlateau and ModelCheckpoint, plus early stop, log and resume."""
    history = run.history()
    best = float(history[config.monitor].max()) if config.monitor in history else None
    return [
        keras.callbacks.BackupAndRestore(str(run.backup / phase)),
        keras.callbacks.ModelCheckpoint(str(run.model), monitor=config.monitor, mode="max",
                                        save_best_only=True, initial_value_threshold=best, verbose=1),
        keras.callbacks.ReduceLROnPlateau(monitor=config.monitor, mode="max", factor=config.reduce_lr_factor,
                                          patience=config.reduce_lr_patience, min_lr=config.min_learning_rate,
                                          verbose=1),
        keras.callbacks.EarlyStopping(monitor=config.monitor, mode="max", patience=config.early_stopping_patience,
                                      restore_best_weights=False),
        keras.callbacks.CSVLogger(str(run.history_csv), append=True),
    ]


def _resume_learning_rate(run: RunDir, phase_first_epoch: int, default: float) -> float:
    """The learning rate of the last finished epoch of this phase (ReduceLROnPlateau may have cut it)."""
    history = run.history()
    if "learning_rate" not in history:
        return default
    rows = history[history["epoch"] >= phase_first_epoch]["learning_rate"].dropna()
    return float(rows.iloc[-1]) if len(rows) else default


def fit(config: TrainConfig, splits: Splits, run: RunDir, strategy: tf.distribute.Strategy) -> keras.Model:
    """Phase 1 trains the head; phase 2 fine-tunes the top of the base. Resumable at each epoch."""
    train_ds, steps = training_dataset(splits.pixels["train"], splits.labels["train"], config)
    val_ds = eval_dataset(splits.pixels["val"], splits.labels["val"], config.batch_size)
    weights = balanced_class_weights(splits.labels["train"]) if config.imbalance == "class_weight" else None
    with strategy.scope():
        model = build_model(config)
    head_done = run.backup / HEAD_DONE
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
            compile_model(model, _resume_learning_rate(run, first, learning_rate))
        print(f"phase {phase}: epochs {first + 1}-{last}, {sum(np.prod(w.shape) for w in model.trainable_weights):,} "
              f"trainable parameters")
        model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds, epochs=last, initial_epoch=first,
                  class_weight=weights, shuffle=False, callbacks=_callbacks(config, run, phase), verbose=2)
        if phase == "head":
            model.save_weights(head_done)
    return model


def train(config: TrainConfig, data_dir: Path, run_dir: Path, *, split_file: Path | None = None,
          strategy_name: str = "default", cpu_devices: int = 1, cache_dir: Path | None = None,
          records: pd.DataFrame | None = None) -> dict:
    """Train, keep the best checkpoint, evaluate it on the test split and write the run folder.

    `records` are DATA_DIR's validated records when the caller already read them.
    """
    strategy = make_strategy(strategy_name, cpu_devices)
    print(f"strategy: {strategy_name}, {strategy.num_replicas_in_sync} replica(s)")
    run = RunDir(run_dir)
    run.start(config, data_dir, cache_dir)
    keras.utils.set_random_seed(config.seed)
    records = records if records is not None else load_records(data_dir)
    splits = load_splits(records, config, run, split_file, cache_dir)
    print(split_mod.summary(splits.table()))
    if run.training_finished:
        print(f"{run} has finished training; re-evaluating its best checkpoint")
    else:
        started = time.perf_counter()
        fit(config, splits, run, strategy)
        print(f"training took {time.perf_counter() - started:.0f} s")
    shutil.rmtree(run.backup, ignore_errors=True)
    return evaluate_run(run, splits=splits)
