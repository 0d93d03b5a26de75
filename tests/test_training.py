"""Training end to end on tiny configurations: accuracy, the run folder, resume, strategies."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from edge.labels import CODES
from edge.preprocess import preprocess
from tests.conftest import PYTHON, ROOT, run_module
from training.config import ConfigError, resolve


def test_tiny_model_beats_chance_by_far(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["balanced_accuracy"] >= 0.8, metrics["balanced_accuracy"]  # chance is 1/7 = 0.14
    assert set(metrics["per_class"]) == set(CODES)
    assert 0 <= metrics["melanoma_sensitivity"] <= 1 and 0 <= metrics["melanoma_specificity"] <= 1
    assert metrics["roc_auc_macro"] > 0.9


def test_run_folder_holds_every_artifact(tiny_run):
    for name in ("model.keras", "config.json", "labels.json", "split.csv", "history.csv", "metrics.json",
                 "report.md", "confusion_matrix.png", "training_curves.png", "test_predictions.csv"):
        assert (tiny_run / name).is_file(), name
    assert [c["code"] for c in json.loads((tiny_run / "labels.json").read_text())] == list(CODES)
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["image_size"] == 96 and config["alpha"] == 0.5 and config["weights"] == "none"
    report = (tiny_run / "report.md").read_text()
    assert "not a diagnosis" in report and "melanoma sensitivity" in report
    assert not (tiny_run / "backup").exists(), "a finished run leaves no resume state behind"


def test_saved_split_is_leak_free_with_every_class(tiny_run):
    with (tiny_run / "split.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    splits_of = {}
    for r in rows:
        splits_of.setdefault(r["lesion_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    for name in ("train", "val", "test"):
        assert {r["dx"] for r in rows if r["split"] == name} == set(CODES)


def test_training_pixels_are_byte_identical_to_the_edge_preprocessing(tiny_run, synthetic_data):
    from training.data import decode_images, load_records

    records = load_records(synthetic_data).head(40)
    decoded = decode_images(records, 96, cache_dir=None)
    edge_pixels = np.stack([preprocess(path, 96) for path in records["path"]])
    assert decoded.pixels.dtype == np.uint8 and np.array_equal(decoded.pixels, edge_pixels)


def test_evaluate_cli_rewrites_the_report(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()
    result = run_module("training.evaluate", str(run))
    assert "balanced accuracy" in result.stdout
    assert re.search(r"^phase evaluate: [\d.]+ s, peak RSS", result.stdout, re.MULTILINE)  # for export.publish
    assert json.loads((run / "metrics.json").read_text())["balanced_accuracy"] == pytest.approx(
        json.loads((tiny_run / "metrics.json").read_text())["balanced_accuracy"], abs=1e-6)


@pytest.mark.tf
def test_evaluate_cli_on_an_unfinished_run(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = run_module("training.evaluate", str(tmp_path), check=False)
    assert result.returncode == 2
    assert "is not a finished run: model.keras, split.csv, run.json missing" in result.stderr


def _epochs(run) -> list[int]:
    with (run / "history.csv").open(newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_killed_training_resumes_from_the_last_finished_epoch(tmp_path, small_data):
    data = small_data
    run = tmp_path / "run"
    args = ["-m", "training", "--data", str(data), "--out", str(run), "--config", "demo", "--image-size", "96",
            "--epochs", "6", "--cache-dir", str(tmp_path / "cache"), "--set", "early_stopping_patience=50"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([PYTHON, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "history.csv").is_file() and len(_epochs(run)) >= 3:  # head epoch + 2 fine-tuning epochs
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _epochs(run)
    assert len(before) >= 3 and before == list(range(len(before)))
    resumed = run_module(*args[1:])
    assert "head phase already finished" in resumed.stdout
    after = _epochs(run)
    assert len(after) == len(set(after)), f"an epoch ran twice: {after}"
    assert after[: len(before)] == before and after[-1] == 6  # 1 head + 6 fine-tuning epochs, numbered 0-6
    assert after[len(before)] > before[-1]
    assert (run / "metrics.json").is_file()


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, small_data):
    data = small_data
    result = run_module("training", "--data", str(data), "--out", str(tmp_path / "run"), "--config", "demo",
                        "--image-size", "96", "--epochs", "1", "--set", "head_epochs=0", "--strategy", "mirrored",
                        "--cpu-devices", "2", "--cache-dir", str(tmp_path / "cache"))
    assert "strategy: mirrored, 2 replica(s)" in result.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.slow
def test_imagenet_weights_unreachable_is_a_clear_error_before_decoding(tmp_path, small_data):
    result = run_module("training", "--data", str(small_data), "--out", str(tmp_path / "run"),
                        "--config", "demo", "--weights", "imagenet", "--image-size", "128",
                        "--cache-dir", str(tmp_path / "cache"), check=False, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot download the ImageNet weights" in result.stderr and "--weights none" in result.stderr
    assert "mobilenet_5_0_128_tf_no_top.h5" in result.stderr  # the file to fetch elsewhere, by name
    assert "Traceback" not in result.stderr
    assert "decoded" not in result.stdout and not (tmp_path / "cache").exists(), "failed before decoding"
    assert not (tmp_path / "run").exists(), "a failed download leaves no run folder to trip a rerun"


@pytest.mark.tf
def test_local_weights_file_is_loaded(tmp_path):
    import keras

    from training.model import BASE_NAME, build_model

    source = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, include_top=False, weights=None)
    path = tmp_path / "mobilenet_0.25_96_no_top.weights.h5"
    source.save_weights(path)
    model = build_model(resolve("demo", {"alpha": "0.25", "image_size": "96", "weights": str(path)}))
    loaded = model.get_layer(BASE_NAME).get_layer("conv1").get_weights()[0]
    assert np.array_equal(loaded, source.get_layer("conv1").get_weights()[0])


@pytest.mark.tf
@pytest.mark.parametrize(("arch", "application", "bn"), [("mobilenet", "MobileNet", "conv_pw_13_bn"),
                                                      ("mobilenet_v2", "MobileNetV2", "Conv_1_bn")])
def test_fine_tuning_pretrained_weights_keeps_batch_norm_statistics(tmp_path, arch, application, bn):
    """A training step with the top layers unfrozen leaves ImageNet's BatchNorm averages alone, and trains
    the unfrozen convolutions; from scratch BatchNorm learns its statistics."""
    import keras

    from tests.random_bundle import adapt_batch_norm
    from training.model import BASE_NAME, build_model, compile_model, set_trainable

    path = tmp_path / "pretrained.weights.h5"
    x = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3)).astype(np.float32)
    pretrained = getattr(keras.applications, application)(
        input_shape=(64, 64, 3), alpha=0.5 if arch == "mobilenet" else 0.35, include_top=False, weights=None)
    adapt_batch_norm(pretrained, x / 127.5 - 1)  # statistics that fit the images, as ImageNet's fit photos
    pretrained.save_weights(path)
    for weights, frozen in ((str(path), True), ("none", False)):
        config = resolve("demo", {"arch": arch, "alpha": "0.5" if arch == "mobilenet" else "0.35",
                                  "image_size": "64", "weights": weights})
        model = build_model(config)
        set_trainable(model, 10, freeze_batch_norm=config.pretrained)
        compile_model(model, 1e-2)
        base = model.get_layer(BASE_NAME)
        last_conv = base.get_layer(bn.removesuffix("_bn"))
        moving, kernel = base.get_layer(bn).moving_mean.numpy(), last_conv.kernel.numpy()
        model.train_on_batch(x, np.arange(8) % 7)
        assert np.array_equal(moving, base.get_layer(bn).moving_mean.numpy()) == frozen, weights
        assert not np.array_equal(kernel, last_conv.kernel.numpy()), weights


@pytest.mark.tf
def test_with_ema_the_checkpoint_holds_the_averaged_weights_not_the_last_steps(tmp_path):
    import keras

    from training.model import compile_model
    from training.run import RunDir
    from training.train import _callbacks

    config = resolve("demo", {"ema_momentum": "0.9"})
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(len(CODES), activation="softmax", name="probabilities")(inputs))
    compile_model(model, 0.05, config.ema_momentum)
    seen = []

    class Record(keras.callbacks.Callback):  # runs after the project's callbacks at each epoch's end
        def on_epoch_end(self, epoch, logs=None):
            seen.append({"model": [w.numpy() for w in model.trainable_weights],  # swapped in: the average
                         "raw": [v.numpy() for v in model.optimizer._model_variables_moving_average]})

    def same(a, b, atol=1e-6):
        return all(np.allclose(u, v, atol=atol) for u, v in zip(a, b, strict=True))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), np.arange(64) % len(CODES)
    model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0,
              callbacks=[*_callbacks(config, run, "fine_tune", ema=True), Record()])
    saved = keras.saving.load_model(run.model, compile=False).get_layer("probabilities").get_weights()
    assert any(same(saved, epoch["model"]) for epoch in seen), "the checkpoint is an epoch's averaged weights"
    assert not same(seen[0]["model"], seen[0]["raw"], atol=1e-3), \
        "eight steps at momentum 0.9 leave the average far from the last step's weights"
    assert same(model.trainable_weights, seen[-1]["model"]), "fit ends on the averaged weights"
    with pytest.raises(ConfigError, match=r"ema_momentum must be in \[0, 1\)"):
        resolve("demo", {"ema_momentum": "1"})


@pytest.mark.tf
def test_transposition_gives_all_eight_orientations():
    from training.pipeline import training_dataset

    pixels = np.zeros((64, 32, 32, 3), np.uint8)
    pixels[:, 0, 1, 0] = 255  # one marked pixel next to the top-left corner: each orientation moves it
    config = resolve("ham10000_cpu", {"weights": "none", "zoom_range": "0", "image_size": "32", "batch_size": "64"})
    x, _, _ = next(iter(training_dataset(pixels, np.arange(64) % 7, config)[0]))
    places = {tuple(int(i) for i in np.argwhere(image[..., 0] > 128)[0]) for image in x.numpy()}
    assert places == {(0, 1), (1, 0), (0, 30), (1, 31), (30, 0), (31, 1), (31, 30), (30, 31)}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"learning_rate": "1"}, "unknown config key(s) learning_rate"),
    ({"alpha": "wide"}, "alpha must be float, got 'wide'"),
    ({"imbalance": "smote"}, "imbalance must be class_weight, oversample or none"),
    ({"horizontal_flip": "maybe"}, "horizontal_flip must be true or false"),
])
def test_config_overrides_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve("demo", overrides)


def test_unknown_config_name_via_cli(tmp_path):
    result = run_module("training", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--config", "demo",
                        "--set", "nonsense=1", check=False)
    assert result.returncode == 2 and "unknown config key(s) nonsense" in result.stderr


@pytest.mark.tf
def test_oversampling_draws_classes_about_equally():
    from training.pipeline import training_dataset

    labels = np.array([5] * 300 + [0] * 20 + [1] * 20 + [2] * 20 + [3] * 20 + [4] * 20 + [6] * 20)
    pixels = np.zeros((len(labels), 8, 8, 3), np.uint8)
    config = resolve("demo", {"imbalance": "oversample", "image_size": "32", "batch_size": "70"})
    dataset, steps = training_dataset(pixels, labels, config)
    assert steps == 6  # an epoch still covers as many images as the training split has
    drawn = np.concatenate([y.numpy() for _, y in dataset.take(20)])
    shares = np.bincount(drawn, minlength=7) / len(drawn)
    assert shares.min() > 0.10 and shares.max() < 0.19, shares  # 1/7 = 0.143 each, not 300/420 naevi


@pytest.mark.tf
def test_balanced_class_weights_equalize_each_class_contribution():
    from training.pipeline import balanced_class_weights

    labels = np.array([0] * 10 + [1] * 30 + [5] * 60)
    weights = balanced_class_weights(labels)
    assert weights[0] == pytest.approx(100 / (3 * 10)) and weights[5] == pytest.approx(100 / (3 * 60))
    assert weights[2] == 0.0  # an absent class gets no weight rather than a division by zero
    contributions = {c: weights[c] * np.sum(labels == c) for c in (0, 1, 5)}
    assert max(contributions.values()) == pytest.approx(min(contributions.values()))


def test_reusing_a_run_folder_with_another_config_is_refused(tiny_run, synthetic_data, tmp_path):
    import shutil

    shutil.copytree(tiny_run, tmp_path / "run")
    result = run_module("training", "--data", str(synthetic_data), "--out", str(tmp_path / "run"), "--config", "demo",
                        "--image-size", "64", check=False)
    assert result.returncode == 2
    assert "holds a run with another config (image_size 96 -> 64; fine_tune_epochs 30 -> 40; seed 3 -> 42); " \
           "pass --restart to clear its training state" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_saved_config_is_recognised_by_name_whatever_its_weights_file():
    from dataclasses import asdict

    from training.config import named_as

    saved = asdict(resolve("ham10000_cpu_ema", {"weights": "/data/mobilenet_v2.weights.h5"}))
    assert named_as(saved) == "ham10000_cpu_ema"
    del saved["referral_confidence"]  # a run saved before the key existed
    assert named_as(saved) == "ham10000_cpu_ema"
    assert named_as({**saved, "fine_tune_learning_rate": 1e-5}) is None  # neither ham10000_cpu nor the EMA run


def test_run_files_are_replaced_whole_so_another_worker_never_reads_half_of_one(tmp_path, monkeypatch):
    from training.run import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run._write_json(run.path / "run.json", {"workers": 2})
    assert json.loads((run.path / "run.json").read_text()) == {"workers": 2}

    def interrupted(source, target):
        raise OSError("disk full")

    monkeypatch.setattr("training.run.os.replace", interrupted)
    with pytest.raises(OSError, match="disk full"):
        run._write_json(run.path / "run.json", {"workers": 3})
    assert json.loads((run.path / "run.json").read_text()) == {"workers": 2}  # never truncated
