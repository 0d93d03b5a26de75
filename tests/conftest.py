"""Shared fixtures: a tiny synthetic dataset, a tiny trained run and its exported bundle.

Training and export take a few minutes, so their results are built once and cached under
.cache/test-artifacts/<hash of the code and settings that made them>; a fresh clone (CI)
builds them once per session, an unchanged checkout reuses them.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".cache" / "test-artifacts"
PYTHON = sys.executable
# A tiny configuration (the demo config: alpha 0.5, here at 96 px) that still learns the task.
TINY_IMAGES, TINY_SEED = 1000, 11
TINY_TRAIN_ARGS = ["--config", "demo", "--image-size", "96", "--epochs", "30", "--seed", "3"]


# Fixtures that train (or need the data the trained run was made from): a test using one is a
# `trained` test, left out of `make test-fast`.
TRAINED_FIXTURES = {"tiny_run", "tiny_bundle", "test_split_images", "sample_images", "synthetic_data"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trained)


def pytest_sessionfinish(session, exitstatus):
    """CI must fail rather than skip: a skipped test in CI is a test that did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; every test must run in CI", red=True)
        session.exitstatus = 1


def code_hash(*parts: str, extra: str = "") -> str:
    """Hash of the source files under the given repo paths, so caches follow code changes."""
    h = hashlib.sha256(extra.encode())
    for part in parts:
        for path in sorted((ROOT / part).rglob("*.py")) if (ROOT / part).is_dir() else [ROOT / part]:
            h.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:16]


def run_module(*args: str, timeout: int = 900, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m ...` from the repo root, capturing output; fail with it on error."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **kwargs.pop("env", {})}
    result = subprocess.run([PYTHON, "-m", *args], cwd=kwargs.pop("cwd", ROOT), env=env, capture_output=True,
                            text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"python -m {' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _built(target: Path, build) -> Path:
    """Build TARGET once: under a lock (parallel sessions wait), into a temporary sibling that is
    renamed at the end, so an interrupted build is never reused."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            build(tmp)
            tmp.rename(target)
    return target


@pytest.fixture(scope="session")
def synthetic_data() -> Path:
    """A small synthetic HAM10000-layout dataset (600x450 JPEGs, Kaggle layout)."""
    key = code_hash("training/synthetic.py", extra=f"{TINY_IMAGES}:{TINY_SEED}")
    return _built(ARTIFACTS / f"data-{key}", lambda tmp: run_module(
        "training.synthetic", str(tmp / "data"), "--images", str(TINY_IMAGES), "--seed", str(TINY_SEED))) / "data"


@pytest.fixture(scope="session")
def small_data() -> Path:
    """200 synthetic images, for tests of the data layer and of short trainings."""
    key = code_hash("training/synthetic.py", extra="200:5")
    return _built(ARTIFACTS / f"small-data-{key}", lambda tmp: run_module(
        "training.synthetic", str(tmp / "data"), "--images", "200", "--seed", "5")) / "data"


@pytest.fixture(scope="session")
def tiny_run(synthetic_data) -> Path:
    """A run folder trained with the tiny configuration on `synthetic_data`."""
    key = code_hash("training", "edge/preprocess.py", "edge/labels.py", extra=" ".join(TINY_TRAIN_ARGS) + str(synthetic_data))

    def build(tmp: Path) -> None:
        run_module("training", "--data", str(synthetic_data), "--out", str(tmp / "run"),
                   "--cache-dir", str(ARTIFACTS / "image-cache"), *TINY_TRAIN_ARGS, timeout=1200)

    return _built(ARTIFACTS / f"run-{key}", build) / "run"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run) -> Path:
    """The tiny run exported to all four variants (float32, float16, dynamic_int8, int8)."""
    key = code_hash("export", "edge", extra=str(tiny_run))

    def build(tmp: Path) -> None:
        shutil.copytree(tiny_run, tmp / "run", ignore=shutil.ignore_patterns("bundle"))
        run_module("export", str(tmp / "run"), "--calibration-images", "200", timeout=1200)

    return _built(ARTIFACTS / f"bundle-{key}", build) / "run" / "bundle"


def _random_bundle(small_data: Path, name: str, *args: str) -> Path:
    """tests/random_bundle.py's bundle made from `small_data` with these arguments, built once."""
    key = code_hash("export", "edge", "training", "bench/measure.py", "tests/random_bundle.py",
                    extra=str(small_data) + " ".join(args))
    return _built(ARTIFACTS / f"{name}-{key}", lambda tmp: run_module(
        "tests.random_bundle", str(small_data), str(tmp / "run"), *args)) / "run" / "bundle"


@pytest.fixture(scope="session")
def random_bundle(small_data) -> Path:
    """All four variants of an untrained alpha-0.25, 96 px MobileNet, evaluated and exported by the
    real pipeline on `small_data` (about a minute, no training).

    For tests of the bundle's shape, the API, the CLI and the browser flows; never for accuracy.
    """
    return _random_bundle(small_data, "random-bundle")


@pytest.fixture(scope="session")
def melanoma_bundle(small_data) -> Path:
    """The random bundle's model made to answer melanoma with probability 0.45 for every photo
    (tests/random_bundle.py --prefer mel): what each front end shows for a melanoma at the top."""
    return _random_bundle(small_data, "melanoma-bundle", "--prefer", "mel")


@pytest.fixture(scope="session")
def melanoma_photos(melanoma_bundle, small_data, tmp_path_factory) -> dict[str, Path]:
    """A JPEG for each status of `melanoma_bundle`'s float32 answers: a training lesion (ok), the
    temple of scikit-learn's sample photos (unsure: far from every lesion) and the lesion made dark
    (retake). The model says melanoma at 0.45 for each, so each answer carries malignant_class,
    melanoma_risk (the bundle's threshold is under 0.45) and low_confidence."""
    from PIL import Image

    from edge import Classifier
    from training.nonlesion import photo_sources

    classifier = Classifier(melanoma_bundle, "float32")
    with (melanoma_bundle.parent / "split.csv").open(newline="") as fh:
        train = [r["image_id"] for r in csv.DictReader(fh) if r["split"] == "train"][:20]
    paths = {p.stem: p for p in small_data.rglob("*.jpg")}
    lesion = next((paths[i] for i in train if classifier.classify(paths[i]).status == "ok"), None)
    assert lesion is not None, "none of 20 training lesions is answered ok by the melanoma bundle's float32"
    folder = tmp_path_factory.mktemp("melanoma-photos")
    photos = {"ok": lesion, "unsure": folder / "temple.jpg", "retake": folder / "dark.jpg"}
    Image.open(photo_sources("selection")[0]).convert("RGB").save(photos["unsure"], quality=90)
    Image.eval(Image.open(lesion), lambda v: v // 6).save(photos["retake"], quality=90)
    for status, path in photos.items():
        assert classifier.classify(path).status == status, (status, path)
    return photos


@pytest.fixture(scope="session")
def test_split_images(tiny_run, synthetic_data) -> list[tuple[Path, str]]:
    """(path, true code) of every test-split image of the tiny run."""
    with (tiny_run / "split.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    paths = {p.stem: p for p in synthetic_data.rglob("*.jpg")}
    return [(paths[r["image_id"]], r["dx"]) for r in rows]


@pytest.fixture(scope="session")
def sample_images(test_split_images) -> list[Path]:
    """One test-split JPEG (600x450) of each class."""
    chosen: dict[str, Path] = {}
    for path, code in test_split_images:
        chosen.setdefault(code, path)
    return [chosen[c] for c in sorted(chosen)]


@pytest.fixture(scope="session")
def photos(small_data) -> list[Path]:
    """One 600x450 synthetic JPEG of each class (no trained model needed)."""
    metadata = pd.read_csv(small_data / "HAM10000_metadata.csv")
    paths = {p.stem: p for p in small_data.rglob("*.jpg")}
    return [paths[image_id] for image_id in metadata.groupby("dx")["image_id"].first()]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
