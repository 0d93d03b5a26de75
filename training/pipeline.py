"""tf.data input pipelines over the decoded-once image cache, with the seed's augmentation.

Memory stays bounded whatever the dataset's size: what is shuffled is the split's row numbers
(8 bytes an image, so the buffer can hold the whole split and the shuffle is uniform), and the
pixels of a batch are read from the cache only once its rows are drawn. At most
READ_PARALLELISM + PREFETCH_BATCHES batches of pixels are in flight.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from edge.labels import CODES
from training.cache import Pixels
from training.config import TrainConfig

# A split's pixels: the lazy cache view, or an ndarray (tests, benchmarks).
PixelSource = Pixels | np.ndarray
# Batches read (and augmented) at once, and batches kept ready ahead of the training step.
READ_PARALLELISM = 2
PREFETCH_BATCHES = 2


def augmenter(config: TrainConfig) -> keras.Sequential | None:
    """The config's augmentation as Keras random layers (run in tf.data only)."""
    steps = []
    seed = config.seed
    # Two layers, not RandomFlip("horizontal_and_vertical"): in Keras 3.15 that mode flips both
    # axes on one coin, a 180-degree turn or nothing, never one flip alone.
    if config.horizontal_flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if config.vertical_flip:
        steps.append(layers.RandomFlip("vertical", seed=seed + 5))
    if config.rotation_range:
        steps.append(layers.RandomRotation(config.rotation_range / 360, fill_mode=config.fill_mode, seed=seed + 1))
    if config.width_shift_range or config.height_shift_range:
        steps.append(layers.RandomTranslation(config.height_shift_range, config.width_shift_range,
                                              fill_mode=config.fill_mode, seed=seed + 2))
    if config.zoom_range:
        steps.append(layers.RandomZoom(config.zoom_range, fill_mode=config.fill_mode, seed=seed + 3))
    return keras.Sequential(steps, name="augmentation") if steps else None


def random_transpose(images: tf.Tensor, seed: int) -> tf.Tensor:
    """Each square image of a batch transposed (rows for columns) with probability one half."""
    chosen = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed + 4) < 0.5
    return tf.where(chosen, tf.transpose(images, [0, 2, 1, 3]), images)


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    """n / (k * count_c): every class contributes equally to the loss."""
    counts = np.bincount(labels, minlength=len(CODES))
    present = counts > 0
    return {c: float(len(labels) / (present.sum() * counts[c])) if counts[c] else 0.0 for c in range(len(CODES))}


def _read_pixels(pixels: PixelSource, rows: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The float32 pixels of a batch of rows (read from the cache in Python), with their labels."""
    images = tf.py_function(lambda r: pixels[r.numpy()], [rows], tf.uint8)
    images.set_shape([None, *pixels.shape[1:]])
    return tf.cast(images, tf.float32), labels


def _rows(labels: np.ndarray, config: TrainConfig) -> tf.data.Dataset:
    """An endless stream of (row, label), shuffled; equal classes when oversampling."""
    rows = np.arange(len(labels), dtype=np.int64)
    if config.imbalance == "oversample":
        per_class = [tf.data.Dataset.from_tensor_slices((rows[labels == c], labels[labels == c]))
                     .shuffle(int(np.sum(labels == c)), seed=config.seed, reshuffle_each_iteration=True).repeat()
                     for c in np.unique(labels)]
        return tf.data.Dataset.sample_from_datasets(per_class, seed=config.seed)
    return (tf.data.Dataset.from_tensor_slices((rows, labels))
            .shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True).repeat())


def steps_per_epoch(n_images: int, global_batch_size: int) -> int:
    return max(1, int(np.ceil(n_images / global_batch_size)))


def training_dataset(pixels: PixelSource, labels: np.ndarray, config: TrainConfig, *, batch_size: int | None = None,
                     shard: tuple[int, int] = (1, 0)) -> tuple[tf.data.Dataset, int]:
    """Shuffled, augmented batches and the number of steps per epoch.

    `batch_size` is what this pipeline yields (the per-replica batch under a multi-worker
    strategy; config.batch_size, the global batch, otherwise); `shard` = (number of input
    pipelines, this one's index) gives each worker its own part of every epoch. With class
    weights, each element is (x, y, weight), the same weights Keras's class_weight would give.
    """
    ds = _rows(labels, config)
    if shard[0] > 1:
        ds = ds.shard(*shard)  # every worker shuffles alike (same seed), then takes its share
    ds = ds.batch(batch_size or config.batch_size)
    ds = ds.map(lambda r, y: _read_pixels(pixels, r, y), num_parallel_calls=READ_PARALLELISM)
    augment = augmenter(config)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=READ_PARALLELISM)
    if config.transpose:
        ds = ds.map(lambda x, y: (random_transpose(x, config.seed), y), num_parallel_calls=READ_PARALLELISM)
    if config.imbalance == "class_weight":
        weights = tf.constant([balanced_class_weights(labels)[c] for c in range(len(CODES))], tf.float32)
        ds = ds.map(lambda x, y: (x, y, tf.gather(weights, y)))
    return ds.prefetch(PREFETCH_BATCHES), steps_per_epoch(len(labels), config.batch_size)


def eval_dataset(pixels: PixelSource, labels: np.ndarray, batch_size: int,
                 shard: tuple[int, int] = (1, 0)) -> tf.data.Dataset:
    """Batches in order, unaugmented; `shard` as in training_dataset."""
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(labels), dtype=np.int64), labels))
    if shard[0] > 1:
        ds = ds.shard(*shard)
    return (ds.batch(batch_size).map(lambda r, y: _read_pixels(pixels, r, y), num_parallel_calls=READ_PARALLELISM)
            .prefetch(PREFETCH_BATCHES))
