"""Every training hyper-parameter in one place, with named configurations.

`demo` trains in a few minutes on 2 CPU cores on the synthetic data; `ham10000` is the seed
article's MobileNet v1 1.0 at 224 px, fine-tuned from ImageNet weights; `ham10000_cpu_v1` is the
real run that made the shipped model (MobileNet v1 0.75 at 192 px, about 50 minutes on 2 CPU
cores), `ham10000_cpu_ema` and `ham10000_cpu` the MobileNetV2 runs before it (docs/training.md
has the configurations compared).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path

from edge.errors import UsageError


class ConfigError(UsageError):
    """An unknown configuration name or key, or a value of the wrong kind."""


class WeightsError(ConfigError):
    """The requested pretrained weights cannot be had; the message says what to pass instead."""


# The MobileNet generations a run can train (keras.applications names them MobileNet, MobileNetV2).
ARCHITECTURES = ("mobilenet", "mobilenet_v2")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run; the resolved config is saved as config.json in the run folder."""

    # "mobilenet" (v1, the seed's) or "mobilenet_v2" (inverted residuals: lighter than v1 at the
    # same ImageNet accuracy; fine-tuned here, its int8 lost far more than v1's, docs/export.md).
    arch: str = "mobilenet"
    # MobileNet width multiplier: 1.0 is the seed's model; 0.25 is 16x fewer multiply-adds.
    alpha: float = 1.0
    # Square input side in pixels. ImageNet weights exist for 128, 160, 192 and 224.
    image_size: int = 224
    # "imagenet", "none" (random init: then every layer trains and BatchNorm learns its
    # statistics, since there are none to protect), or a path to a MobileNet no-top .h5 file.
    weights: str = "imagenet"
    # Dropout before the 7-way softmax (the seed used 0.25).
    dropout: float = 0.25
    batch_size: int = 32
    # Phase 1: only the new head trains, the base is frozen.
    head_epochs: int = 3
    head_learning_rate: float = 1e-3
    # Phase 2: the last `fine_tune_layers` layers of the base train too (0 = all of them),
    # BatchNorm kept in inference mode when the weights are pretrained.
    fine_tune_epochs: int = 30
    fine_tune_layers: int = 23
    fine_tune_learning_rate: float = 1e-4
    # Polyak averaging of the fine-tuning weights (Keras's optimizer EMA, 0 = off): validation,
    # the best-epoch checkpoint and the final model use the exponential moving average of the
    # weights with this momentum per step, which smooths the epoch-to-epoch noise of a small,
    # imbalanced validation split. 0.998 averages over about 500 steps (two epochs of HAM10000).
    ema_momentum: float = 0.0
    # Augmentation in tf.data only (never in the exported model), the seed's ImageDataGenerator
    # parameters: rotation in degrees, shifts and zoom as fractions, flips, fill mode.
    rotation_range: float = 180.0
    width_shift_range: float = 0.1
    height_shift_range: float = 0.1
    zoom_range: float = 0.1
    horizontal_flip: bool = True
    vertical_flip: bool = True
    # A random transposition of each (square) image: with both flips, every one of the eight
    # rotations by 90 degrees and reflections, none of which invents pixels.
    transpose: bool = False
    fill_mode: str = "nearest"
    # Class imbalance: "class_weight" (balanced weights in the loss), "oversample" (equal
    # class sampling) or "none".
    imbalance: str = "class_weight"
    # ReduceLROnPlateau, EarlyStopping and ModelCheckpoint all watch this validation metric.
    monitor: str = "val_balanced_accuracy"
    reduce_lr_factor: float = 0.5
    reduce_lr_patience: int = 2
    min_learning_rate: float = 1e-6
    early_stopping_patience: int = 6
    # The split: fractions of images (by lesion), and the seed for the split and shuffling.
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 42
    # Honest answers, all chosen on the training or validation split (training/honesty.py).
    # The melanoma referral threshold keeps enough validation melanomas for this sensitivity to be
    # the one-sided exact lower bound, at referral_confidence, of the share it keeps (0 = the
    # point estimate: exactly this share; training/referral.py).
    referral_sensitivity: float = 0.90
    referral_confidence: float = 0.95
    # The out-of-distribution threshold accepts at least this share of validation lesions.
    ood_keep: float = 0.95
    # Photo-quality limits sit at this lower / upper percentile of the training images.
    quality_tail: float = 0.0025
    # An "ok" answer whose top probability is below this carries the reason low_confidence.
    low_confidence_below: float = 0.5
    # Non-lesion photos generated for each of the two OOD sets (score selection, report).
    nonlesion_images: int = 200

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    def validate(self) -> TrainConfig:
        """Raises ConfigError on values that cannot work."""
        checks = [
            (self.arch in ARCHITECTURES, f"arch must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}"),
            (0 < self.alpha <= 1.0, f"alpha must be in (0, 1], got {self.alpha}"),
            (self.image_size >= 32, f"image_size must be at least 32, got {self.image_size}"),
            (self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}"),
            (self.head_epochs >= 0 and self.fine_tune_epochs >= 0, "epochs must not be negative"),
            (self.head_epochs + self.fine_tune_epochs > 0, "at least one epoch must train"),
            (self.imbalance in ("class_weight", "oversample", "none"),
             f"imbalance must be class_weight, oversample or none, got {self.imbalance!r}"),
            (self.fill_mode in ("nearest", "reflect", "wrap", "constant"), f"unknown fill_mode {self.fill_mode!r}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (0 <= self.ema_momentum < 1, f"ema_momentum must be in [0, 1), got {self.ema_momentum}"),
            (0 < self.referral_sensitivity <= 1, f"referral_sensitivity must be in (0, 1], got {self.referral_sensitivity}"),
            (self.referral_confidence == 0 or 0.5 < self.referral_confidence < 1,
             f"referral_confidence must be 0 or in (0.5, 1), got {self.referral_confidence}"),
            (0.5 <= self.ood_keep < 1, f"ood_keep must be in [0.5, 1), got {self.ood_keep}"),
            (0 <= self.quality_tail < 0.1, f"quality_tail must be in [0, 0.1), got {self.quality_tail}"),
            (0 <= self.low_confidence_below < 1, f"low_confidence_below must be in [0, 1), got {self.low_confidence_below}"),
            (self.nonlesion_images >= 10, f"nonlesion_images must be at least 10, got {self.nonlesion_images}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


NAMED: dict[str, TrainConfig] = {
    "ham10000": TrainConfig(),
    # The run shipped until 7 Dec 2026: MobileNetV2 1.0 at 224 px from ImageNet weights, three head epochs,
    # then its last 56 layers (blocks 11-16 and the last convolution) fine-tuned with BatchNorm in
    # inference mode; about 90 minutes on 2 CPU cores. Fine-tuning every layer costs 4.3-5.3 s a
    # step of 32 here (the depthwise convolutions' gradients at 112 and 56 px), the last 56 layers
    # about 1.4 s. Augmentation without invented pixels (flips, transposition, a 10% zoom with
    # reflected borders): with the seed's 180-degree rotations and shifts filled by the nearest
    # pixel, fine-tuning fell below the head's validation score (docs/training.md).
    "ham10000_cpu": TrainConfig(arch="mobilenet_v2", head_epochs=3, fine_tune_epochs=10, fine_tune_layers=56,
                                fine_tune_learning_rate=1e-5, early_stopping_patience=5, rotation_range=0.0,
                                width_shift_range=0.0, height_shift_range=0.0, transpose=True, fill_mode="reflect"),
    # The run shipped until 7 Dec 2026 (its int8 never passed the gate): ham10000_cpu with the
    # fine-tuning weights averaged (EMA 0.998), so the learning rate can be three times higher (3e-5)
    # within the same ten epochs, and two head epochs instead of three (the head's best validation
    # epoch was its second). Validation balanced accuracy 0.689 against 0.661, rising smoothly
    # instead of 0.60-0.66 from epoch to epoch.
    "ham10000_cpu_ema": TrainConfig(arch="mobilenet_v2", head_epochs=2, fine_tune_epochs=10, fine_tune_layers=56,
                                    fine_tune_learning_rate=3e-5, ema_momentum=0.998, early_stopping_patience=5,
                                    rotation_range=0.0, width_shift_range=0.0, height_shift_range=0.0, transpose=True,
                                    fill_mode="reflect"),
    # The shipped model's run since 7 Dec 2026: the same recipe on MobileNet v1 alpha 0.75 at 192 px,
    # whose ImageNet weights here come from Google's int8 classifier (docs/training.md), its last 50
    # layers (blocks 6-13, at 12 and 6 px) fine-tuned. v1 has no linear bottlenecks: its
    # activations are all ReLU6, in [0, 6], which per-tensor int8 keeps; MobileNetV2's
    # unbounded block outputs (about +-20 to +-35) are where its int8 lost most. Validation balanced
    # accuracy 0.693 (MobileNetV2: 0.689), post-training int8 top-1 agreement 93.8% (81.0%), 48 min.
    "ham10000_cpu_v1": TrainConfig(arch="mobilenet", alpha=0.75, image_size=192, head_epochs=2, fine_tune_epochs=10,
                                   fine_tune_layers=50, fine_tune_learning_rate=3e-5, ema_momentum=0.998,
                                   early_stopping_patience=5, rotation_range=0.0, width_shift_range=0.0,
                                   height_shift_range=0.0, transpose=True, fill_mode="reflect"),
    "demo": TrainConfig(alpha=0.5, image_size=128, weights="none", batch_size=32, head_epochs=1,
                        fine_tune_epochs=40, fine_tune_layers=0, fine_tune_learning_rate=2e-3,
                        early_stopping_patience=8, reduce_lr_patience=3),
}


def named_as(values: dict) -> str | None:
    """The name of the configuration a run's saved config is (its weights source aside, since a
    run names a file where the configuration says imagenet; keys it lacks, added since, ignored)."""
    for name, config in NAMED.items():
        named = dataclasses.asdict(config)
        if all(named[k] == v for k, v in values.items() if k in named and k != "weights"):
            return name
    return None


def _coerce(name: str, kind: type, text: str):
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name} must be {kind.__name__}, got {text!r}") from None


def resolve(name: str, overrides: dict[str, str]) -> TrainConfig:
    """The named config with string overrides applied, checked.

    Raises:
        ConfigError: unknown name, unknown key or a badly typed value.
    """
    if name not in NAMED:
        raise ConfigError(f"unknown config {name!r}; choose one of {', '.join(NAMED)}")
    kinds = {f.name: type(getattr(NAMED[name], f.name)) for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - set(kinds))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(kinds)}")
    values = {k: _coerce(k, kinds[k], v) for k, v in overrides.items()}
    return dataclasses.replace(NAMED[name], **values).validate()


def load(path: Path) -> TrainConfig:
    """The config saved in a run folder."""
    data = json.loads(Path(path).read_text())
    data.setdefault("arch", "mobilenet")  # runs saved before there was a choice
    unknown = sorted(set(data) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"{path} has unknown key(s) {', '.join(unknown)}")
    return TrainConfig(**data)
