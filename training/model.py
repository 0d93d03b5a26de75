"""The MobileNet transfer-learning model: raw RGB 0-255 in, 7 class probabilities out."""

from __future__ import annotations

import keras
from keras import layers, ops

from edge.labels import CODES
from training.config import TrainConfig, WeightsError
from training.weights import Weights, resolve_weights

BASE_NAME = "mobilenet_base"
FROM_SCRATCH_BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="lesionlite")
class BalancedAccuracy(keras.metrics.Metric):
    """Mean per-class recall over a streaming confusion matrix (the ISIC 2018 metric).

    Classes absent from the labels seen so far are left out of the mean.
    """

    def __init__(self, num_classes: int = len(CODES), name: str = "balanced_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros",
                                           name="confusion", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        guess = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
        self.confusion.assign_add(ops.matmul(ops.transpose(truth), guess))

    def result(self):
        support = ops.sum(self.confusion, axis=1)
        recall = ops.divide_no_nan(ops.diagonal(self.confusion), support)
        present = ops.cast(support > 0, "float32")
        return ops.divide_no_nan(ops.sum(recall * present), ops.sum(present))

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


# keras.applications constructors by TrainConfig.arch.
APPLICATIONS = {"mobilenet": "MobileNet", "mobilenet_v2": "MobileNetV2"}


def _base(config: TrainConfig, weights: Weights) -> keras.Model:
    size = config.image_size
    application = getattr(keras.applications, APPLICATIONS[config.arch])
    try:
        base = application(input_shape=(size, size, 3), alpha=config.alpha, include_top=False, weights=weights.file)
    except ValueError as err:  # checked beforehand; Keras can still find a layer that does not fit
        raise WeightsError(f"cannot use weights {weights.source!r} for {config.arch} alpha {config.alpha:g} "
                           f"at {size} px: {err}") from None
    base.name = BASE_NAME
    if weights.file is None:
        # From scratch the BatchNorm statistics must catch up within a few hundred steps, not the
        # thousands that Keras's default momentum of 0.99 needs; validation is noise until then.
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = FROM_SCRATCH_BN_MOMENTUM
    return base


def build_model(config: TrainConfig, weights: Weights | None = None) -> keras.Model:
    """MobileNet base + pooling, dropout and a 7-way softmax, with the scaling to [-1, 1] inside.

    `weights` are the config's weights as resolve_weights found them (resolved here if None).

    Raises:
        ConfigError, WeightsError: the requested weights cannot be had or do not fit the architecture.
    """
    size = config.image_size
    weights = weights or resolve_weights(config)
    inputs = keras.Input((size, size, 3), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    base = _base(config, weights)
    # With pretrained weights BatchNorm stays in inference mode while fine-tuning (its
    # statistics are ImageNet's); from scratch it must learn them.
    x = base(x, training=False if config.pretrained else None)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    outputs = layers.Dense(len(CODES), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lesionlite_mobilenet")


def set_trainable(model: keras.Model, last_layers: int | None, freeze_batch_norm: bool = True) -> None:
    """Freeze the base (None), or unfreeze its last `last_layers` layers (0 = all).

    With FREEZE_BATCH_NORM (pretrained weights), every BatchNormalization layer stays frozen: a
    frozen BatchNormalization layer runs in inference mode. Calling the base with training=False
    is not enough: in Keras 3.15 `fit` still ran the unfrozen BatchNorm layers on batch statistics
    and overwrote ImageNet's moving averages (a test checks).
    """
    base = model.get_layer(BASE_NAME)
    base.trainable = last_layers is not None
    if last_layers:
        for layer in base.layers[:-last_layers]:
            layer.trainable = False
    if freeze_batch_norm:
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False


def compile_model(model: keras.Model, learning_rate: float, ema_momentum: float = 0.0) -> None:
    """Adam and the run's metrics; EMA_MOMENTUM > 0 keeps a moving average of the weights."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, use_ema=ema_momentum > 0, ema_momentum=ema_momentum or 0.99),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy",
                 keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2_accuracy"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3_accuracy"),
                 BalancedAccuracy()],
    )
