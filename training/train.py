"""The training loop: data, split, two-phase fine-tuning with callbacks, then the evaluation.

Order matters: the strategy first (a multi-worker strategy must exist before any other
TensorFlow op), then the weights (a missing download or a wrong file answers in seconds,
before anything is decoded or written), then the run folder, the data and the training.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from training import distribute
from training import split as split_mod
from training.config import ConfigError, TrainConfig
from training.data import check_lesion_ids, load_records
from training.dataset import Splits, load_splits
from training.evaluate import evaluate_run
from training.model import build_model, compile_model, set_trainable
from training.phases import phase as measured_phase
from training.pipeline import eval_dataset, steps_per_epoch, training_dataset
from training.run import RunDir
from training.weights import Weights, resolve_weights

HEAD_DONE = "head_phase.weights.h5"


def _callbacks(config: TrainConfig, run: RunDir, phase: str, ema: bool = False) -> list[keras.callbacks.Callback]:
    """The seed's ReduceLROnPlateau and ModelCheckpoint, plus early stop, log and resume.

    With EMA, validation and the checkpoint see the averaged weights (SwapEMAWeights swaps them in
    at each epoch's end, after BackupAndRestore has saved the raw ones it resumes from).
    """
    history = run.history()
    best = float(history[config.monitor].max()) if config.monitor in history else None
    return [
        keras.callbacks.BackupAndRestore(str(run.backup / phase)),
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema else []),
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


def _datasets(config: TrainConfig, splits: Splits, strategy, role: distribute.Role):
    """(training batches, validation batches, steps per epoch); per-worker pipelines across workers.

    Raises:
        ConfigError: the global batch size does not divide among the replicas.
    """
    train_px, train_y = splits.pixels["train"], splits.labels["train"]
    val_px, val_y = splits.pixels["val"], splits.labels["val"]
    steps = steps_per_epoch(len(train_y), config.batch_size)
    if role.count == 1:
        return training_dataset(train_px, train_y, config)[0], eval_dataset(val_px, val_y, config.batch_size), steps
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch_size {config.batch_size} must be a multiple of the {replicas} replicas across workers")

    def train_fn(ctx):
        return training_dataset(train_px, train_y, config, batch_size=ctx.get_per_replica_batch_size(config.batch_size),
                                shard=(ctx.num_input_pipelines, ctx.input_pipeline_id))[0]

    def val_fn(ctx):
        return eval_dataset(val_px, val_y, ctx.get_per_replica_batch_size(config.batch_size),
                            shard=(ctx.num_input_pipelines, ctx.input_pipeline_id))

    return (strategy.distribute_datasets_from_function(train_fn),
            strategy.distribute_datasets_from_function(val_fn), steps)


def _resume_point(run: RunDir, finished: bool) -> int:
    """One number for where training stands: epochs done, head phase done, training finished."""
    return 4 * len(run.history()) + 2 * int((run.backup / HEAD_DONE).is_file()) + int(finished)


def _check_workers_agree(strategy, role: distribute.Role, run: RunDir, finished: bool) -> None:
    """Raises ConfigError when the workers would resume from different points (and so hang)."""
    if role.count == 1:
        return
    points = distribute.agree(strategy, _resume_point(run, finished))
    if len(set(points)) > 1:
        raise ConfigError(f"the workers see different training states in --out ({points}, 4 x epochs + 2 x head "
                          "done + finished, per replica): resuming across machines needs --out on a folder every "
                          "worker can read (a shared file system), or --restart on every worker")


def fit(config: TrainConfig, splits: Splits, run: RunDir, strategy, role: distribute.Role | None = None,
        weights: Weights | None = None) -> keras.Model:
    """Phase 1 trains the head; phase 2 fine-tunes the top of the base. Resumable at each epoch."""
    role = role or distribute.Role()
    train_ds, val_ds, steps = _datasets(config, splits, strategy, role)
    with strategy.scope():
        model = build_model(config, weights)
    if strategy.num_replicas_in_sync > 1:
        distribute.build_from_local_batch(model, strategy)
    head_done = run.backup / HEAD_DONE
    phases = [("head", None, config.head_learning_rate, 0.0, 0, config.head_epochs),
              ("fine_tune", config.fine_tune_layers, config.fine_tune_learning_rate, config.ema_momentum,
               config.head_epochs, config.head_epochs + config.fine_tune_epochs)]
    for phase, unfreeze, learning_rate, ema, first, last in phases:
        if last <= first:
            continue
        if phase == "head" and head_done.is_file():
            model.load_weights(head_done)
            print("head phase already finished: resuming the fine-tuning phase")
            continue
        with strategy.scope():
            set_trainable(model, unfreeze, freeze_batch_norm=config.pretrained)
            compile_model(model, _resume_learning_rate(run, first, learning_rate), ema)
        print(f"phase {phase}: epochs {first + 1}-{last}, {sum(np.prod(w.shape) for w in model.trainable_weights):,} "
              f"trainable parameters")
        model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds, epochs=last, initial_epoch=first,
                  shuffle=False, callbacks=_callbacks(config, run, phase, ema > 0), verbose=2)
        if phase == "head":
            # Fine-tuning starts from the head's best epoch (the checkpoint), not its last one.
            if run.model.is_file():
                model.load_weights(run.model)
            model.save_weights(head_done)
    return model


def _open_run(config: TrainConfig, data_dir: Path, run: RunDir, cache_dir: Path | None, strategy_name: str,
              role: distribute.Role, restart: bool, allow_image_level_split: bool) -> tuple[Weights, RunDir]:
    """Resolve the weights, then open the folder this worker writes (the run itself for the chief).

    Raises:
        ConfigError, WeightsError, DataError: before anything is decoded or written.
    """
    weights = resolve_weights(config)
    if weights.sha256:
        print(f"weights: {weights.file} (sha256 {weights.sha256})")
    may_leak = check_lesion_ids(data_dir, allow_image_level_split)
    if may_leak:
        print("warning: no lesion groupings: splitting by image as --allow-image-level-split asks; the split may "
              "leak, and the run records it (run.json: split_may_leak)")
    facts = {"weights": weights.as_dict(), "split_may_leak": may_leak, "strategy": strategy_name, "workers": role.count}
    if role.chief:
        run.start(config, data_dir, cache_dir, restart=restart, facts=facts)
    elif not restart and run.path.is_dir():
        run.check_config(config)
    local = distribute.worker_run(run, role, restart)
    if not role.chief:
        local.start(config, data_dir, cache_dir, facts=facts)
    return weights, local


def train(config: TrainConfig, data_dir: Path, run_dir: Path, *, split_file: Path | None = None,
          strategy_name: str = "default", cpu_devices: int = 1, cache_dir: Path | None = None,
          records: pd.DataFrame | None = None, restart: bool = False,
          allow_image_level_split: bool = False) -> dict:
    """Train, keep the best checkpoint, evaluate it on the test split and write the run folder.

    `records` are DATA_DIR's validated records when the caller already read them. A non-chief
    worker of a multi-worker run trains in a temporary folder and returns {}.

    Raises:
        ConfigError, WeightsError, DataError, SplitError: as their messages say, before training.
    """
    strategy = distribute.make_strategy(strategy_name, cpu_devices)
    role = distribute.role_of(strategy_name)
    print(f"strategy: {strategy_name}, {strategy.num_replicas_in_sync} replica(s)"
          + (f" on {role.count} workers; this is the {role.name}" if role.count > 1 else ""))
    run = RunDir(run_dir)
    weights, local = _open_run(config, data_dir, run, cache_dir, strategy_name, role, restart, allow_image_level_split)
    keras.utils.set_random_seed(config.seed)
    records = records if records is not None else load_records(data_dir)
    with measured_phase("decode"):
        splits = load_splits(records, config, local, split_file, cache_dir)
    print(split_mod.summary(splits.table()))
    finished = run.training_finished
    _check_workers_agree(strategy, role, local, finished)
    if finished:
        print(f"{run} has finished training; re-evaluating its best checkpoint")
    else:
        started = time.perf_counter()
        with measured_phase("train"):
            fit(config, splits, local, strategy, role, weights)
        print(f"training took {time.perf_counter() - started:.0f} s")
    shutil.rmtree(local.backup, ignore_errors=True)
    if not role.chief:
        distribute.finish_worker_run(local, run)
        print(f"{role.name} finished; the chief writes {run}")
        return {}
    with measured_phase("evaluate"):
        return evaluate_run(run, splits=splits)
