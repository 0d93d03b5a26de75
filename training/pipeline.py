"""tf.data input pipelines over the decoded-once image cache, with the seed's augmentation."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from edge.labels import CODES
from training.config import TrainConfig


def augmenter(config: TrainConfig) -> keras.Sequential | None:
    """The seed's ImageDataGenerator parameters as Keras random layers (run in tf.data only)."""
    steps = []
    flip = {(True, True): "horizontal_and_vertical", (True, False): "horizontal", (False, True): "vertical"}
    mode = flip.get((config.horizontal_flip, config.vertical_flip))
    seed = config.seed
    if mode:
        steps.append(layers.RandomFlip(mode, seed=seed))
    if config.rotation_range:
        steps.append(layers.RandomRotation(config.rotation_range / 360, fill_mode=config.fill_mode, seed=seed + 1))
    if config.width_shift_range or config.height_shift_range:
        steps.append(layers.RandomTranslation(config.height_shift_range, config.width_shift_range,
                                              fill_mode=config.fill_mode, seed=seed + 2))
    if config.zoom_range:
        steps.append(layers.RandomZoom(config.zoom_range, fill_mode=config.fill_mode, seed=seed + 3))
    return keras.Sequential(steps, name="augmentation") if steps else None


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    """n / (k * count_c): every class contributes equally to the loss."""
    counts = np.bincount(labels, minlength=len(CODES))
    present = counts > 0
    return {c: float(len(labels) / (present.sum() * counts[c])) if counts[c] else 0.0 for c in range(len(CODES))}


def training_dataset(pixels: np.ndarray, labels: np.ndarray, config: TrainConfig) -> tuple[tf.data.Dataset, int]:
    """Shuffled, augmented batches and the number of steps per epoch."""
    if config.imbalance == "oversample":
        per_class = [tf.data.Dataset.from_tensor_slices((pixels[labels == c], labels[labels == c]))
                     .shuffle(4096, seed=config.seed).repeat() for c in np.unique(labels)]
        ds = tf.data.Dataset.sample_from_datasets(per_class, seed=config.seed)
    else:
        ds = (tf.data.Dataset.from_tensor_slices((pixels, labels))
              .shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True).repeat())
    steps = max(1, int(np.ceil(len(labels) / config.batch_size)))
    ds = ds.batch(config.batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y),
                                         num_parallel_calls=tf.data.AUTOTUNE)
    augment = augmenter(config)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def eval_dataset(pixels: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return (tf.data.Dataset.from_tensor_slices((pixels, labels)).batch(batch_size)
            .map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(tf.data.AUTOTUNE))
