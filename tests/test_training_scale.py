"""Training at HAM10000 scale: the on-disk image cache, bounded input pipelines, weights resolved
before decoding, --restart, the image-level split acknowledgement, the parallel synthetic
generator, and MultiWorkerMirroredStrategy on two local worker processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edge.memory import PeakMemory
from tests.conftest import PYTHON, ROOT, run_module
from training.cache import ArrayRows, Pixels
from training.config import ConfigError, WeightsError, resolve
from training.data import decode_images, load_records
from training.run import RunDir

# A short training that still runs every code path: alpha 0.25 at 64 px, one fine-tuning epoch.
SHORT_ARGS = ["--config", "demo", "--alpha", "0.25", "--image-size", "64", "--epochs", "1", "--set", "head_epochs=0",
              "--set", "nonlesion_images=20"]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_synthetic_data_is_the_same_bytes_for_any_number_of_workers(tmp_path):
    from training.synthetic import generate

    rows = generate(tmp_path / "one", 30, seed=5, workers=1)  # 30: ten images per worker of three
    generate(tmp_path / "three", 30, seed=5, workers=3)
    assert len(rows) == 30 and len(list((tmp_path / "one").rglob("*.jpg"))) == 30
    assert _digest(tmp_path / "one") == _digest(tmp_path / "three")
    generate(tmp_path / "other", 30, seed=6, workers=2)
    assert _digest(tmp_path / "other") != _digest(tmp_path / "one")


def test_cache_is_replaced_when_the_data_changes(small_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    cache = tmp_path / "cache"
    (cache / "images-64-0123456789abcdef0123.npz").parent.mkdir()
    (cache / "images-64-0123456789abcdef0123.npz").write_bytes(b"former format")
    first = decode_images(load_records(data), 64, cache)
    files = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npy"), files
    image = next(data.glob("*/*.jpg"))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    second = decode_images(load_records(data), 64, cache)
    now = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert len(now) == 2 and now != files, "the stale cache is deleted, not kept beside the new one"
    assert np.array_equal(np.asarray(first.pixels), np.asarray(second.pixels))


def test_pixels_view_reads_only_the_rows_asked_for(small_data, tmp_path):
    records = load_records(small_data)
    decoded = decode_images(records, 64, tmp_path)
    held = decode_images(records, 64, None)
    view = decoded.pixels.subset(np.arange(200) % 3 == 0)
    assert view.shape == (67, 64, 64, 3) and len(view) == 67 and view.dtype == np.uint8
    expected = np.asarray(held.pixels)[::3]
    assert np.array_equal(view[5], expected[5]) and np.array_equal(view[[4, 0]], expected[[4, 0]])
    assert np.array_equal(view[60:], expected[60:]) and np.array_equal(np.asarray(view), expected)
    assert view.astype(np.float32).dtype == np.float32
    assert np.array_equal(np.stack(list(view)), expected)
    assert [len(b) for b in view.batches(32)] == [32, 32, 3]


def test_decoding_holds_a_few_images_not_the_dataset(small_data, tmp_path):
    records = load_records(small_data)
    decode_images(records.head(8), 224, tmp_path / "warm")  # threads, Pillow and numpy loaded first
    with PeakMemory() as memory:
        decoded = decode_images(records, 224, tmp_path / "cache")
    assert memory.own
    grew = memory.peak_mb - memory.start_mb
    assert len(decoded.pixels) == 200
    assert grew < 15, f"decoding 200 images of 147 KB ({200 * 224 * 224 * 3 / 2**20:.0f} MB) grew RSS by {grew:.0f} MB"


@pytest.mark.tf
def test_training_batches_read_the_rows_they_label():
    from training.pipeline import eval_dataset, training_dataset

    labels = np.arange(70) % 7
    rows = np.arange(70, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    pixels = Pixels(ArrayRows(rows), np.arange(70))
    config = resolve("demo", {"image_size": "32", "batch_size": "10", "rotation_range": "0", "width_shift_range": "0",
                              "height_shift_range": "0", "zoom_range": "0", "horizontal_flip": "false",
                              "vertical_flip": "false"})
    dataset, steps = training_dataset(pixels, labels, config)
    assert steps == 7
    x, y, w = next(iter(dataset))
    assert np.array_equal(x.numpy()[:, 0, 0, 0].astype(int) % 7, y.numpy()), "pixels and labels stay paired"
    assert np.allclose(w.numpy(), 1.0), "balanced classes weigh 1"
    shards = [np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in eval_dataset(pixels, labels, 4, shard=(2, i))])
              for i in (0, 1)]
    assert sorted(np.concatenate(shards).astype(int)) == list(range(70)) and len(shards[0]) == 35


def _mobilenet_file(path: Path, alpha: float, application: str = "MobileNet") -> Path:
    import keras

    getattr(keras.applications, application)(input_shape=(64, 64, 3), alpha=alpha, include_top=False,
                                             weights=None).save_weights(path)
    return path


def _keras_download(path: Path, alpha: float) -> Path:
    """A no-top MobileNet file in the legacy HDF5 layout of Keras's own downloads (by layer name)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=alpha, include_top=False, weights=None)
    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, model)
    return path


@pytest.mark.tf
@pytest.mark.parametrize(("name", "alpha", "application", "overrides", "message"), [
    ("w.weights.h5", 0.5, "MobileNet", {}, r"is mobilenet alpha 0.5 \(16 first filters\) but the config trains alpha 0.25"),
    ("mobilenet_2_5_128_tf_no_top.h5", 0.25, "MobileNet", {},
     r"was trained at 128 px but the config trains at 64 px; pass --image-size 128"),
    ("v2.weights.h5", 0.35, "MobileNetV2", {},
     r"holds 52 convolutions, not the 27 of mobilenet: it is mobilenet_v2; pass --set arch=mobilenet_v2"),
    ("v1.weights.h5", 0.25, "MobileNet", {"arch": "mobilenet_v2", "alpha": "0.35"},
     r"holds 27 convolutions, not the 52 of mobilenet_v2: it is mobilenet; pass --set arch=mobilenet"),
    ("v2.weights.h5", 1.0, "MobileNetV2", {"arch": "mobilenet_v2", "alpha": "0.5"},
     r"is mobilenet_v2 alpha 1 \(32 first filters\) but the config trains alpha 0.5; pass --alpha 1"),
    ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5", 0.35, "MobileNetV2",
     {"arch": "mobilenet_v2", "alpha": "0.35"},
     r"was trained at 96 px but the config trains at 64 px; pass --image-size 96 or "
     r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_64_no_top.h5"),
])
def test_weights_file_must_fit_the_config(tmp_path, name, alpha, application, overrides, message):
    from training.weights import resolve_weights

    path = _mobilenet_file(tmp_path / "source.weights.h5", alpha, application)
    path = path.rename(tmp_path / name)
    config = resolve("demo", {"alpha": "0.25", "image_size": "64", "weights": str(path), **overrides})
    with pytest.raises(WeightsError, match=message):
        resolve_weights(config)


@pytest.mark.tf
def test_imagenet_download_is_checked_against_its_known_hash(tmp_path, monkeypatch, capsys):
    """The real Keras download path (get_file, here from a file:// mirror), the real md5 check."""
    from training import weights as weights_mod

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = "mobilenet_2_5_128_tf_no_top.h5"
    source = _keras_download(mirror / name, 0.25)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    monkeypatch.setenv(weights_mod.MIRROR_ENV, mirror.as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    config = resolve("demo", {"alpha": "0.25", "image_size": "128", "weights": "imagenet"})

    monkeypatch.setattr(weights_mod, "KNOWN_MD5", {name: "0" * 32})
    with pytest.raises(WeightsError, match=rf"{name} from file://.* is not the known file \(md5 0{{32}} expected, "
                                           rf"{md5} received\).*set aside as .*{name}.rejected.*--weights PATH/TO/{name}"):
        weights_mod.resolve_weights(config)
    assert not (tmp_path / "keras" / "models" / name).exists(), "a file that failed its check is never used"

    monkeypatch.setattr(weights_mod, "KNOWN_MD5", {name: md5})
    got = weights_mod.resolve_weights(config)
    assert got.file == str((tmp_path / "keras" / "models" / name).resolve())
    assert got.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert "no known hash" not in capsys.readouterr().out

    (tmp_path / "keras" / "models" / name).write_bytes(b"altered in the cache")  # checked again on every run
    assert weights_mod.resolve_weights(config).sha256 == got.sha256, "Keras fetched the file again"

    monkeypatch.setattr(weights_mod, "KNOWN_MD5", {})
    weights_mod.resolve_weights(config)
    assert f"no known hash for {name}" in capsys.readouterr().out


@pytest.mark.tf
@pytest.mark.parametrize(("config", "name"), [
    ("ham10000", "mobilenet_1_0_224_tf_no_top.h5"),
    ("ham10000_cpu", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
])
def test_a_failed_download_names_the_file_and_the_way_round(tmp_path, monkeypatch, config, name):
    from training import weights as weights_mod

    monkeypatch.setenv(weights_mod.MIRROR_ENV, (tmp_path / "empty").as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError, match=rf"cannot download the ImageNet weights from file://.*{name}"
                                           rf".*pass --weights PATH/TO/{name}"):
        weights_mod.resolve_weights(resolve(config, {}))


@pytest.mark.tf
def test_weights_that_are_not_hdf5_or_have_no_imagenet_version(tmp_path):
    from training.weights import resolve_weights

    (tmp_path / "notes.h5").write_text("not weights")
    with pytest.raises(WeightsError, match=r"notes.h5 is not an HDF5 \(.h5\) file"):
        resolve_weights(resolve("demo", {"weights": str(tmp_path / "notes.h5")}))
    with pytest.raises(ConfigError, match="ImageNet weights for mobilenet exist for alpha 0.25, 0.5, 0.75, 1 at "
                                          "128, 160, 192, 224 px"):
        resolve_weights(resolve("demo", {"weights": "imagenet", "image_size": "96"}))
    with pytest.raises(ConfigError, match="ImageNet weights for mobilenet_v2 exist for alpha 0.35, 0.5, 0.75, 1 at "
                                          "96, 128, 160, 192, 224 px, not alpha 0.25"):
        resolve_weights(resolve("demo", {"weights": "imagenet", "arch": "mobilenet_v2", "alpha": "0.25"}))


def test_another_config_is_refused_naming_restart_and_restart_clears(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start(resolve("demo", {}), tmp_path, None)
    run.history_csv.write_text("epoch,loss\n0,1.0\n")
    (run.backup / "phase").mkdir(parents=True)
    (run.path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"another config \(weights 'none' -> 'x.h5'\); pass --restart"):
        run.start(resolve("demo", {"weights": "x.h5"}), tmp_path, None)
    run.start(resolve("demo", {"weights": "x.h5"}), tmp_path, None, restart=True,
              facts={"split_may_leak": True, "weights": {"sha256": "ab"}})
    assert not run.history_csv.exists() and not run.backup.exists()
    assert (run.path / "notes.txt").read_text() == "mine", "files RunDir does not name are kept"
    assert run.config().weights == "x.h5" and run.split_may_leak() and run.weights() == {"sha256": "ab"}


@pytest.mark.slow
def test_a_failed_download_stops_before_decoding_and_its_advice_works_as_written(small_data, tmp_path):
    from training.weights import MIRROR_ENV

    name = "mobilenet_2_5_128_tf_no_top.h5"
    base = ["training", "--data", str(small_data), "--out", str(tmp_path / "run"), "--cache-dir",
            str(tmp_path / "cache"), *SHORT_ARGS, "--image-size", "128"]
    offline = {MIRROR_ENV: (tmp_path / "unreachable").as_uri(), "KERAS_HOME": str(tmp_path / "keras")}
    failed = run_module(*base, "--weights", "imagenet", check=False, env=offline)
    assert failed.returncode == 2 and f"pass --weights PATH/TO/{name}" in failed.stderr, failed.stderr[-2000:]
    assert "decoded" not in failed.stdout and not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()

    weights = _keras_download(tmp_path / name, 0.25)  # fetched "elsewhere"
    run_module(*base, "--weights", str(weights), timeout=600)  # as the advice says, into the same --out
    run = RunDir(tmp_path / "run")
    assert run.weights()["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert len(run.history()) == 1 and not run.split_may_leak()

    refused = run_module(*base, "--weights", "none", check=False)
    assert refused.returncode == 2 and "pass --restart" in refused.stderr and "decoded" not in refused.stdout
    restarted = run_module(*base, "--weights", "none", "--restart", timeout=600)
    assert "phase train:" in restarted.stdout and "peak RSS" in restarted.stdout
    assert run.weights() == {"source": "none", "file": None, "sha256": None} and len(run.history()) == 1


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Two workers on this machine, each a fresh Python process: the demo config at 64 px with a
# doubled learning rate passes the tiny bar after 8-10 fine-tuning epochs; 14 leave a margin for
# the epoch redone after the kill (2.5 to 4.5 minutes here, with the load).
MULTIWORKER_OVERRIDES = {"image_size": "64", "fine_tune_epochs": "14", "seed": "3", "fine_tune_learning_rate": "0.004",
                         "early_stopping_patience": "50"}
MULTIWORKER_ARGS = ["--config", "demo", *[a for k, v in MULTIWORKER_OVERRIDES.items() for a in ("--set", f"{k}={v}")]]


def _start_workers(data: Path, out: Path, cache: Path, tmp: Path) -> list[subprocess.Popen]:
    """Two `python -m training --strategy multiworker` processes on free loopback ports."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for index in (0, 1):
        (tmp / f"tmp{index}").mkdir(parents=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp / f"tmp{index}"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [PYTHON, "-m", "training", "--data", str(data), "--out", str(out), "--cache-dir", str(cache),
             "--strategy", "multiworker", *MULTIWORKER_ARGS], cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return procs


def _history_rows(out: Path) -> list[int]:
    history = out / "history.csv"
    return [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]] if history.is_file() else []


@pytest.mark.slow
def test_two_workers_train_resume_and_reach_the_single_worker_bar(synthetic_data, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = _start_workers(synthetic_data, out, cache, tmp_path / "first")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and all(p.poll() is None for p in first) and len(_history_rows(out)) < 3:
        time.sleep(0.2)
    for proc in first:  # both killed after the head epoch and two fine-tuning epochs
        proc.kill()
        proc.communicate()
    before = _history_rows(out)
    assert len(before) >= 3, "the chief writes history.csv in --out"
    procs = _start_workers(synthetic_data, out, cache, tmp_path / "second")
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert "2 replica(s) on 2 workers; this is the chief" in logs[0]
    assert "head phase already finished" in logs[0] and "head phase already finished" in logs[1]
    assert "worker 1 finished; the chief writes" in logs[1]
    after = _history_rows(out)
    assert after[: len(before)] == before and after == list(range(15)), after  # 1 head + 14 epochs, none twice
    single = resolve("demo", MULTIWORKER_OVERRIDES)  # what a single-worker run of these flags resolves to
    assert json.loads((out / "config.json").read_text()) == json.loads(single.to_json())
    info = json.loads((out / "run.json").read_text())
    assert info["strategy"] == "multiworker" and info["workers"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["balanced_accuracy"] >= 0.8, metrics["balanced_accuracy"]  # the single-worker bar
    assert not list((tmp_path / "second" / "tmp1").iterdir()), "the non-chief removed its temporary folder"
    assert len(list(cache.glob("*.npy"))) == 1, "the two workers decoded once, into one cache"
