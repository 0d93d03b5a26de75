"""Run the edge stack as a Raspberry Pi would: arm64 bookworm, Python 3.11, under qemu-user.

Not a test file. The recipe (verified on this project's machines):

- an extract-only arm64 bookworm sysroot made by ``mmdebstrap`` (nothing runs under emulation
  while building it), cached in ``$LESIONLITE_CACHE/pi/sysroot`` (tests/shared_cache.py);
- the aarch64 wheels of ``requirements/edge.txt`` (pinned further by ``constraints.txt``, so the
  versions match the x86 venv) in ``SYSROOT/opt/site``, via ``pip install --target`` with every
  aarch64 platform tag (pip matches tags exactly: with fewer it silently picks an old
  ai-edge-litert);
- ``qemu-aarch64`` 10.x from bookworm-backports, unpacked into ``$LESIONLITE_CACHE/pi/qemu`` by
  ``scripts/install-system-deps.sh`` (bookworm's qemu 7.2 segfaults in ai-edge-litert >= 2.2).

Builds are atomic: each stage is made in a temporary directory, stamped with a marker holding the
hash of its recipe (and of the requirement files, for the wheels), then renamed into place under
a file lock. An interrupted build leaves only a temporary directory, removed on the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.shared_cache import CACHE_ROOT

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = CACHE_ROOT / "pi"  # shared by every clone (tests/shared_cache.py)
EDGE_REQUIREMENTS = REPO_ROOT / "requirements" / "edge.txt"
CONSTRAINTS = REPO_ROOT / "requirements" / "constraints.txt"
INSTALL_HINT = "run `bash scripts/install-system-deps.sh` as root (or `make system-deps`)"

SUITE = "bookworm"
SYSROOT_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1", "zlib1g")
# Raspberry Pi OS 64-bit wheels: pip needs every tag spelled out.
PLATFORM_TAGS = (
    "manylinux_2_17_aarch64",
    "manylinux_2_27_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux2014_aarch64",
)
# Packages of edge.txt left out of the emulated install. None today: opencv-python-headless has an
# aarch64 wheel (~83 MB unpacked) that installs and imports under qemu in about a second.
EXCLUDED_PACKAGES: frozenset[str] = frozenset()
QEMU_MIN_MAJOR = 10
# Pi 4 (cortex-a72); set LESIONLITE_PI_CPU=cortex-a76 to emulate a Pi 5.
CPU = os.environ.get("LESIONLITE_PI_CPU", "cortex-a72")
BASE_MARKER = ".lesionlite-sysroot.json"
SITE_MARKER = ".lesionlite-site.json"


def _log(msg: str) -> None:
    print(f"pi_emulation: {msg}", file=sys.stderr, flush=True)


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _base_recipe() -> dict:
    return {
        "suite": SUITE,
        "arch": "arm64",
        "variant": "extract",
        "include": list(SYSROOT_PACKAGES),
        "mirror": os.environ.get("LESIONLITE_DEBIAN_MIRROR", ""),
    }


def _site_recipe() -> dict:
    reqs = EDGE_REQUIREMENTS.read_bytes()
    cons = CONSTRAINTS.read_bytes() if CONSTRAINTS.exists() else b""
    return {
        "requirements_sha256": _sha256(reqs, cons),
        "platforms": list(PLATFORM_TAGS),
        "python": "3.11",
        "excluded": sorted(EXCLUDED_PACKAGES),
    }


@contextlib.contextmanager
def _locked(cache_dir: Path):
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".sysroot.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, **kw) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )


def _remove_stale_temporaries(cache_dir: Path, sysroot: Path) -> None:
    for pattern, parent in (("sysroot.tmp-*", cache_dir), ("site.tmp-*", sysroot / "opt")):
        for stale in parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _build_base(cache_dir: Path, sysroot: Path) -> None:
    recipe = _base_recipe()
    tmp = Path(tempfile.mkdtemp(prefix="sysroot.tmp-", dir=cache_dir))
    t0 = time.monotonic()
    target = tmp / "root"
    cmd = [
        "mmdebstrap",
        "--quiet",
        "--arch=arm64",
        "--variant=extract",
        "--include=" + ",".join(SYSROOT_PACKAGES),
        SUITE,
        str(target),
    ]
    if recipe["mirror"]:
        cmd.append(recipe["mirror"])
    _log(f"building the arm64 {SUITE} sysroot with mmdebstrap in {sysroot} ...")
    try:
        _run(cmd, "mmdebstrap")
        if not (target / "usr/bin/python3.11").exists():
            raise RuntimeError(f"mmdebstrap made no usr/bin/python3.11 in {target}")
        (target / BASE_MARKER).write_text(json.dumps(recipe, indent=1))
        if sysroot.exists():
            shutil.rmtree(sysroot)
        target.rename(sysroot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _log(f"sysroot built in {time.monotonic() - t0:.1f} s")


def _requirement_lines() -> list[str]:
    """edge.txt's requirement lines, minus EXCLUDED_PACKAGES."""
    keep = []
    for line in EDGE_REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0]
        if name.lower().replace("_", "-") in EXCLUDED_PACKAGES:
            continue
        keep.append(line)
    return keep


def _install_site(sysroot: Path) -> None:
    recipe = _site_recipe()
    opt = sysroot / "opt"
    opt.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="site.tmp-", dir=opt))
    t0 = time.monotonic()
    reqs = tmp / "requirements.txt"
    reqs.write_text("\n".join(_requirement_lines()) + "\n")
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-warn-script-location", "--no-compile", "--target", str(target),
           "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
           "--abi", "cp311"]
    for tag in PLATFORM_TAGS:
        cmd += ["--platform", tag]
    cmd += ["-r", str(reqs)]
    if CONSTRAINTS.exists():
        cmd += ["-c", str(CONSTRAINTS)]
    _log(f"installing aarch64 wheels of {EDGE_REQUIREMENTS.name} into {opt / 'site'} ...")
    try:
        _run(cmd, "pip install (aarch64 wheels)")
        (target / SITE_MARKER).write_text(json.dumps(recipe, indent=1))
        old = opt / "site"
        if old.exists():
            old.rename(tmp / "old")
        target.rename(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _log(f"wheels installed in {time.monotonic() - t0:.1f} s")


def ensure_sysroot(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """The arm64 sysroot with the edge wheels in ``opt/site``; built once, rebuilt when stale.

    The base is rebuilt when its recipe changes or its marker is missing (an interrupted build);
    the wheels are reinstalled when requirements/edge.txt or constraints.txt change.
    """
    cache_dir = Path(cache_dir)
    sysroot = cache_dir / "sysroot"
    with _locked(cache_dir):
        _remove_stale_temporaries(cache_dir, sysroot)
        if _read_json(sysroot / BASE_MARKER) != _base_recipe():
            _build_base(cache_dir, sysroot)
        if _read_json(sysroot / "opt" / "site" / SITE_MARKER) != _site_recipe():
            _install_site(sysroot)
    return sysroot


def qemu_binary(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """qemu-aarch64 as unpacked by scripts/install-system-deps.sh (or $LESIONLITE_QEMU_AARCH64)."""
    override = os.environ.get("LESIONLITE_QEMU_AARCH64")
    if override:
        return Path(override)
    return Path(cache_dir) / "qemu" / "usr" / "bin" / "qemu-aarch64"


def qemu_version(cache_dir: Path = DEFAULT_CACHE_DIR) -> str | None:
    qemu = qemu_binary(cache_dir)
    if not os.access(qemu, os.X_OK):
        return None
    out = subprocess.run([str(qemu), "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.match(r"qemu-aarch64 version (\d+(?:\.\d+)*)", out)
    return m.group(1) if m else None


def missing_tools(cache_dir: Path = DEFAULT_CACHE_DIR) -> str | None:
    """Why the emulation cannot run on this machine, or None when it can (a pytest skip reason)."""
    problems = []
    version = qemu_version(cache_dir)
    if version is None:
        problems.append(f"qemu-aarch64 (>= {QEMU_MIN_MAJOR}, from bookworm-backports) not found at "
                        f"{qemu_binary(cache_dir)}")
    elif int(version.split(".")[0]) < QEMU_MIN_MAJOR:
        problems.append(f"qemu-aarch64 {version} at {qemu_binary(cache_dir)} is too old "
                        f"(need >= {QEMU_MIN_MAJOR}; 7.2 segfaults in ai-edge-litert)")
    base_ok = _read_json(Path(cache_dir) / "sysroot" / BASE_MARKER) == _base_recipe()
    if not base_ok and shutil.which("mmdebstrap") is None:
        problems.append("mmdebstrap not installed (needed once, to build the arm64 sysroot)")
    if not problems:
        return None
    return "Pi emulation unavailable: " + "; ".join(problems) + f"; {INSTALL_HINT}"


def run_arm64(
    argv: list[str],
    cwd: Path | str = REPO_ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``python3.11 *argv`` on emulated arm64 (e.g. ``["-m", "edge", "classify", ...]``).

    PYTHONPATH is SYSROOT/opt/site plus the repo root. The host environment is passed through
    minus anything that points Python at the host's packages; ``env`` is applied last.
    """
    sysroot = ensure_sysroot(cache_dir)
    qemu = qemu_binary(cache_dir)
    run_env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "QEMU_")) and k not in ("VIRTUAL_ENV", "LD_LIBRARY_PATH")}
    run_env.update({
        "PYTHONPATH": os.pathsep.join([str(sysroot / "opt" / "site"), str(REPO_ROOT)]),
        "PYTHONNOUSERSITE": "1",
        # Bytecode goes to the cache, not into the repo's __pycache__ (and makes warm runs faster).
        "PYTHONPYCACHEPREFIX": str(Path(cache_dir) / "pycache-arm64"),
        "LANG": "C.UTF-8",
    })
    if env:
        run_env.update(env)
    cmd = [str(qemu), "-L", str(sysroot), "-cpu", CPU, str(sysroot / "usr" / "bin" / "python3.11"),
           *[str(a) for a in argv]]
    return subprocess.run(cmd, cwd=cwd, env=run_env, capture_output=True, text=True,
                          timeout=timeout, check=check)


if __name__ == "__main__":  # python tests/pi_emulation.py [-c CODE | -m MODULE ...]: a quick manual check
    reason = missing_tools()
    if reason:
        sys.exit(reason)
    t = time.monotonic()
    ensure_sysroot()
    print(f"sysroot ready in {time.monotonic() - t:.1f} s", file=sys.stderr)
    t = time.monotonic()
    args = sys.argv[1:] or ["-c", "import platform, ai_edge_litert, numpy, PIL; print(platform.machine())"]
    p = run_arm64(args)
    print(p.stdout, end="")
    print(p.stderr, end="", file=sys.stderr)
    print(f"run took {time.monotonic() - t:.1f} s (exit {p.returncode})", file=sys.stderr)
    sys.exit(p.returncode)
