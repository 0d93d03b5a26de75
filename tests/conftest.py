"""Shared fixtures (tiny synthetic datasets, the random bundle, a tiny trained run and its bundle)
and the test tiers (docs/tests.md).

The tiers are chosen by markers. A test gets the marker of what it needs from the fixtures it
uses (FIXTURE_MARKERS) or by hand (`tf`, `browser`, `pi`, `web`, `slow`); every test with none of
them is marked `check`, and `pytest -m check` (make check) runs those with TensorFlow, Keras and
Playwright made impossible to import (tests/check_tier/sitecustomize.py, in this process and in
the commands tests start), so a test that needs them and is not marked fails loudly there.

Fixtures are built once and cached under $LESIONLITE_CACHE/test-artifacts/<key> (shared by every
clone on the machine: tests/shared_cache.py), the key a hash of what shapes them: their settings
and the source of the modules their generator can import (tests/import_graph.py). The random
bundles are keyed by the bundle schema version instead, so an edit does not rebuild them, except
under `make test` (LESIONLITE_EXACT_FIXTURES=1), which keys them by their source too. They are
built deterministically (tests/reproducible.py), so a fresh clone builds the same ones.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from edge.manifest import SCHEMA_VERSION
from tests.import_graph import import_graph, module_files, reachable
from tests.shared_cache import CACHE_ROOT

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = CACHE_ROOT / "test-artifacts"  # shared by every clone on the machine
PYTHON = sys.executable
CHECK_TIER_SITE = ROOT / "tests" / "check_tier"
# A tiny configuration (the demo config: alpha 0.5, here at 96 px) that still learns the task.
TINY_IMAGES, TINY_SEED = 1000, 11
TINY_TRAIN_ARGS = ["--config", "demo", "--image-size", "96", "--epochs", "30", "--seed", "3"]


# What a fixture needs gives the test that uses it (directly or through another fixture) a marker.
FIXTURE_MARKERS = {
    "random_bundle": "bundle", "melanoma_bundle": "bundle", "melanoma_photos": "bundle",  # built by TensorFlow, once per schema
    # the tiny trained run, or the data it was made from: minutes to build, `make test` only
    "tiny_run": "trained", "tiny_bundle": "trained", "test_split_images": "trained", "sample_images": "trained",
    "synthetic_data": "trained",
    "vendor": "web",  # the on-device runtime built by `make web` (npm)
    "arm64": "pi",  # qemu-user arm64 emulation
    "playwright_instance": "browser", "chromium_path": "browser",
}
# Markers that keep a test out of the check tier (make check): it needs more than the venv.
HEAVY_MARKERS = ("tf", "bundle", "trained", "slow", "browser", "pi", "web")
# The markers of the longest tests, in the order they are started.
LONGEST_FIRST = ("slow", "tf", "pi")
# Files whose tests are long and share no module fixture: their tests go to either worker.
SPREAD_FILES = {"test_training.py", "test_training_scale.py", "test_training_data.py", "test_export.py", "test_split.py"}


def is_check_tier(config) -> bool:
    return (config.getoption("markexpr", "") or "").strip() == "check"


def pytest_configure(config):
    """The check tier: TensorFlow, Keras and Playwright blocked here and in every command a test starts."""
    if not is_check_tier(config):
        return
    spec = importlib.util.spec_from_file_location("lesionlite_check_tier", CHECK_TIER_SITE / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECK_TIER_SITE), os.environ.get("PYTHONPATH")]))


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & set(FIXTURE_MARKERS):
            item.add_marker(FIXTURE_MARKERS[fixture])
        if not any(item.get_closest_marker(name) for name in HEAVY_MARKERS):
            item.add_marker(pytest.mark.check)
    # The longest first (a stable sort), so that no training of minutes starts last and leaves the
    # other worker idle while it runs.
    items.sort(key=lambda item: [not item.get_closest_marker(name) for name in LONGEST_FIRST])


def pytest_xdist_make_scheduler(config, log):
    """The make targets run two pytest-xdist workers: a file's tests go to one worker, so its module
    fixtures (a server, a benchmark run, a scored set) are built once, except the files of
    independent long trainings (SPREAD_FILES), whose tests go to either. (xdist's own
    `--dist loadgroup` cannot be used: its group suffix is lost on pytest 9's node ids.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileUnlessSpread(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if Path(path).name in SPREAD_FILES else path

    return FileUnlessSpread(config, log)


def refuse_in_check_tier(request, what: str) -> None:
    """A fixture built with TensorFlow, asked for without its marker (request.getfixturevalue)."""
    if is_check_tier(request.config):
        pytest.fail(f"this test needs {what}, which the check tier does not build: mark it "
                    f"{FIXTURE_MARKERS[request.fixturename]!r} or use the fixture as an argument", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """CI must fail rather than skip: a skipped test in CI is a test that did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; every test must run in CI", red=True)
        session.exitstatus = 1


def source_hash(*modules: str, files: tuple[str, ...] = (), extra: str = "") -> str:
    """Hash of the source that shapes a fixture: every project module the given entry modules can
    import (imports inside functions included), the given files, and `extra` (settings)."""
    graph = import_graph(ROOT)
    paths = module_files(ROOT)
    names = sorted(set().union(*(reachable(graph, module) for module in modules))) if modules else []
    h = hashlib.sha256(extra.encode())
    for path in [paths[name] for name in names] + [ROOT / name for name in files]:
        h.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:16]


def installed_versions(*packages: str) -> str:
    """'dist==version' of the distributions providing these import names (tensorflow-cpu for tensorflow),
    read from their metadata, without importing them."""
    provided = importlib.metadata.packages_distributions()
    dists = sorted({dist for package in packages for dist in provided.get(package, [])})
    return " ".join(f"{dist}=={importlib.metadata.version(dist)}" for dist in dists)


def run_module(*args: str, timeout: int = 900, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m ...` from the repo root, capturing output; fail with it on error."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **kwargs.pop("env", {})}
    result = subprocess.run([PYTHON, "-m", *args], cwd=kwargs.pop("cwd", ROOT), env=env, capture_output=True,
                            text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"python -m {' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def built_once(target: Path, build) -> Path:
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
    key = source_hash("training.synthetic", extra=f"{TINY_IMAGES}:{TINY_SEED}")
    return built_once(ARTIFACTS / f"data-{key}", lambda tmp: run_module(
        "training.synthetic", str(tmp / "data"), "--images", str(TINY_IMAGES), "--seed", str(TINY_SEED))) / "data"


@pytest.fixture(scope="session")
def small_data() -> Path:
    """200 synthetic images, for tests of the data layer and of short trainings."""
    key = source_hash("training.synthetic", extra="200:5")
    return built_once(ARTIFACTS / f"small-data-{key}", lambda tmp: run_module(
        "training.synthetic", str(tmp / "data"), "--images", "200", "--seed", "5")) / "data"


@pytest.fixture(scope="session")
def tiny_run(request, synthetic_data) -> Path:
    """A run folder trained with the tiny configuration on `synthetic_data`, deterministically."""
    refuse_in_check_tier(request, "the tiny trained run")
    key = source_hash("training.__main__", "tests.reproducible", extra=" ".join(TINY_TRAIN_ARGS) + str(synthetic_data))

    def build(tmp: Path) -> None:
        run_module("tests.reproducible", "training", "--data", str(synthetic_data), "--out", str(tmp / "run"),
                   "--cache-dir", str(ARTIFACTS / "image-cache"), *TINY_TRAIN_ARGS, timeout=1200)

    return built_once(ARTIFACTS / f"run-{key}", build) / "run"


@pytest.fixture(scope="session")
def tiny_bundle(request, tiny_run) -> Path:
    """The tiny run exported to all four variants (float32, float16, dynamic_int8, int8)."""
    refuse_in_check_tier(request, "the tiny trained run's bundle")
    key = source_hash("export.__main__", "tests.reproducible", extra=str(tiny_run))

    def build(tmp: Path) -> None:
        shutil.copytree(tiny_run, tmp / "run", ignore=shutil.ignore_patterns("bundle"))
        run_module("tests.reproducible", "export", str(tmp / "run"), "--calibration-images", "200", timeout=1200)

    return built_once(ARTIFACTS / f"bundle-{key}", build) / "run" / "bundle"


def _random_bundle(request, small_data: Path, name: str, *args: str) -> Path:
    """tests/random_bundle.py's bundle made from `small_data` with these arguments, built once per
    bundle schema version (see random_bundle)."""
    refuse_in_check_tier(request, f"the {name.replace('-', ' ')}")
    versions = installed_versions("tensorflow", "ai_edge_litert")
    # make test keys it by the code that builds it too (training/, export/, edge/ as reachable).
    modules = ("tests.random_bundle",) if os.environ.get("LESIONLITE_EXACT_FIXTURES") == "1" else ()
    key = source_hash(*modules, files=("tests/random_bundle.py", "tests/reproducible.py"),
                      extra=f"schema {SCHEMA_VERSION} {versions} {small_data} {' '.join(args)}")
    return built_once(ARTIFACTS / f"{name}-{key}", lambda tmp: run_module(
        "tests.random_bundle", str(small_data), str(tmp / "run"), *args)) / "run" / "bundle"


@pytest.fixture(scope="session")
def random_bundle(request, small_data) -> Path:
    """All four variants of an untrained alpha-0.25, 96 px MobileNet, evaluated and exported by the
    real pipeline on `small_data` (about a minute of CPU, no training), deterministically.

    For tests of the bundle's shape, the API, the CLI and the browser flows; never for accuracy.
    Built once per bundle schema version, not per edit: its key is the schema version, its own
    recipe, its data and the TensorFlow and LiteRT releases, not the code of export/ or training/
    (a change to what a bundle holds bumps the schema). `make test` sets LESIONLITE_EXACT_FIXTURES=1,
    which adds that code to the key, so CI always tests the bundle today's code builds.
    """
    return _random_bundle(request, small_data, "random-bundle")


@pytest.fixture(scope="session")
def melanoma_bundle(request, small_data) -> Path:
    """The random bundle's model made to answer melanoma with probability 0.45 for every photo
    (tests/random_bundle.py --prefer mel): what each front end shows for a melanoma at the top."""
    return _random_bundle(request, small_data, "melanoma-bundle", "--prefer", "mel")


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
