"""The Raspberry Pi deliverables: the systemd units, the installer, and the edge runtime on arm64.

The arm64 tests run the real aarch64 wheels (ai-edge-litert, numpy, Pillow) under qemu-user, see
tests/pi_emulation.py. They skip only when a tool is missing (scripts/install-system-deps.sh
provides them); a failure under emulation is a failure.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import pi_emulation
from tests.pwa_helpers import model_output

REPO = pi_emulation.REPO_ROOT
PI = REPO / "edge" / "pi"
SERVER_UNIT = PI / "lesionlite.service"
KIOSK_UNIT = PI / "lesionlite-kiosk.service"
KIOSK_DESKTOP = PI / "lesionlite-kiosk.desktop"
INSTALLER = PI / "install.sh"
SERVER_COMMAND = (
    "/opt/lesionlite/.venv/bin/python -m pwa --bundle /opt/lesionlite/bundle "
    "--host 0.0.0.0 --port 8000 --camera auto --kiosk-port 8001"
)
KIOSK_URL = "http://localhost:8001/"  # the kiosk's own listener, the only one with the camera
EMULATION_TIMEOUT = 600


def unit_values(path: Path, key: str) -> list[str]:
    """Every value of KEY in a unit file (units may repeat keys, so no configparser)."""
    values = []
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key and not line.lstrip().startswith(("#", ";")):
            values.append(value.strip())
    return values


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not installed; run `bash scripts/install-system-deps.sh` as root")
    return path


# --- systemd units -------------------------------------------------------------------------------


def localize_server_unit(dest: Path) -> Path:
    """A copy of the server unit runnable here: only the /opt/lesionlite paths are rewritten.

    `systemd-analyze verify` checks that ExecStart's binary exists, and /opt/lesionlite exists only
    on an installed Pi; the venv Python becomes this interpreter and the install prefix the repo.
    """
    original = SERVER_UNIT.read_text()
    localized = original.replace("/opt/lesionlite/.venv/bin/python", sys.executable)
    localized = localized.replace("/opt/lesionlite", str(REPO))
    changed = [
        (a, b)
        for a, b in zip(original.splitlines(), localized.splitlines(), strict=True)
        if a != b
    ]
    # Honesty check: nothing but those paths moved.
    for a, b in changed:
        assert a.split("=", 1)[0] in ("ExecStart", "WorkingDirectory", "Documentation") or a.startswith("#"), (a, b)
    path = dest / SERVER_UNIT.name
    path.write_text(localized)
    return path


def analyze(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = require("systemd-analyze")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_server_unit_runs_the_pwa_cli_as_specified():
    assert unit_values(SERVER_UNIT, "ExecStart") == [SERVER_COMMAND]
    assert unit_values(SERVER_UNIT, "User") == ["lesionlite"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
    }.items():
        assert unit_values(SERVER_UNIT, key) == [value], key
    (memory_max,) = unit_values(SERVER_UNIT, "MemoryMax")
    assert re.fullmatch(r"\d+M", memory_max) and 256 <= int(memory_max[:-1]) <= 1024, memory_max


def test_server_unit_reaches_the_camera_devices_and_nothing_else():
    assert unit_values(SERVER_UNIT, "PrivateDevices") == ["no"]  # yes would hide /dev/video* and /dev/media*
    assert unit_values(SERVER_UNIT, "DevicePolicy") == ["closed"]
    assert unit_values(SERVER_UNIT, "DeviceAllow") == ["char-video4linux rw", "char-media rw", "char-dma_heap rw"]
    assert unit_values(SERVER_UNIT, "SupplementaryGroups") == ["video"]
    (families,) = unit_values(SERVER_UNIT, "RestrictAddressFamilies")
    assert families.split() == ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"]  # netlink: libcamera's udev watch


def test_server_unit_passes_systemd_analyze_verify(tmp_path):
    unit = localize_server_unit(tmp_path)
    proc = analyze(["verify", str(unit)], cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not [line for line in output.splitlines() if "lesionlite" in line], output


def test_server_unit_is_hardened(tmp_path):
    unit = localize_server_unit(tmp_path)
    proc = analyze(["security", "--offline=true", str(unit)], cwd=tmp_path)
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 2.0, proc.stdout


def test_kiosk_unit_passes_systemd_analyze_verify(tmp_path):
    # A user unit: it needs a user manager's runtime directory, even offline.
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    shutil.copy(KIOSK_UNIT, tmp_path / KIOSK_UNIT.name)
    proc = analyze(["--user", "verify", KIOSK_UNIT.name], cwd=tmp_path, env={"XDG_RUNTIME_DIR": str(runtime)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not [line for line in output.splitlines() if "lesionlite" in line], output


def test_kiosk_waits_for_the_server_and_opens_it():
    (pre,) = unit_values(KIOSK_UNIT, "ExecStartPre")
    assert pre.startswith("/usr/bin/curl ") and pre.endswith(" " + KIOSK_URL), pre
    assert "--port 8000" in SERVER_COMMAND and "--kiosk-port 8001" in SERVER_COMMAND
    (start,) = unit_values(KIOSK_UNIT, "ExecStart")
    assert "--kiosk" in start and start.endswith(f"--app={KIOSK_URL}'"), start
    assert unit_values(KIOSK_UNIT, "Restart") in (["always"], ["on-failure"])


def test_kiosk_browser_lookup_finds_chromium():
    """The unit's `command -v chromium-browser || command -v chromium` resolves to a browser."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.fail("chromium not installed; run `bash scripts/install-system-deps.sh` as root")
    (start,) = unit_values(KIOSK_UNIT, "ExecStart")
    lookup = re.search(r'"\$\$\((command -v [^)]*)\)"', start)
    assert lookup, start
    proc = subprocess.run(["/bin/sh", "-c", lookup.group(1)], capture_output=True, text=True)
    assert proc.returncode == 0 and os.access(proc.stdout.strip(), os.X_OK), proc


def test_kiosk_autostart_entry_starts_the_user_unit():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(KIOSK_DESKTOP)
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    argv = shlex.split(desktop["Exec"])
    assert argv[:2] == ["sh", "-c"], argv
    assert "systemctl --user import-environment" in argv[2]
    assert f"systemctl --user restart {KIOSK_UNIT.name}" in argv[2]
    validator = shutil.which("desktop-file-validate")
    if validator:  # optional extra check where desktop-file-utils happens to be installed
        proc = subprocess.run([validator, str(KIOSK_DESKTOP)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --- installers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [INSTALLER, REPO / "scripts" / "install-system-deps.sh"], ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "set -euo pipefail" in script.read_text()
    shellcheck = require("shellcheck")  # installed by scripts/install-system-deps.sh
    proc = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_pi_installer_installs_edge_requirements_only():
    text = INSTALLER.read_text()
    assert "requirements/edge.txt" in text
    assert "requirements/train.txt" not in text and "requirements/dev.txt" not in text
    assert not re.search(r"pip[^\n]*install[^\n]*tensorflow", text, re.IGNORECASE)
    for unit in (SERVER_UNIT, KIOSK_UNIT, KIOSK_DESKTOP):
        assert unit.name in text


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "missing BUNDLE_DIR"), (["/nonexistent-bundle"], "is not a directory"),
     (["--bogus"], "unknown option"), ([".", "."], "one bundle only")],
)
def test_pi_installer_rejects_wrong_arguments_before_touching_anything(args, message):
    proc = subprocess.run(["bash", str(INSTALLER), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    if args != ["/nonexistent-bundle"]:
        assert "usage:" in proc.stderr


def test_pi_installer_prepares_the_camera():
    text = INSTALLER.read_text()
    assert 'usermod -a -G video "$SERVICE_USER"' in text
    assert "rpicam-hello" in text and "libcamera-hello" in text and "--list-cameras" in text
    assert "pkgs+=(python3-picamera2)" in text
    # The venv sees the system's Picamera2 through a .pth file, after its own packages.
    assert 'echo /usr/lib/python3/dist-packages >"$(camera_pth)"' in text
    assert 'python3 -m venv "$VENV"' in text and "venv --system-site-packages" not in text
    assert re.search(r"^simplejpeg==\d+\.\d+\.\d+$", (REPO / "requirements" / "edge.txt").read_text(), re.M)


def test_pi_installer_help():
    proc = subprocess.run(["bash", str(INSTALLER), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc


# --- arm64 emulation -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm64():
    reason = pi_emulation.missing_tools()
    if reason:
        pytest.fail(reason)
    pi_emulation.ensure_sysroot()
    return pi_emulation.run_arm64


def checked(proc: subprocess.CompletedProcess, what: str) -> str:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.pi
def test_emulated_python_is_the_pis(arm64):
    code = ("import platform, sys, ai_edge_litert, numpy, PIL; "
            "print(platform.machine(), '%d.%d' % sys.version_info[:2], numpy.__version__, PIL.__version__)")
    out = checked(arm64(["-c", code]), "emulated python").split()
    import PIL

    assert out == ["aarch64", "3.11", np.__version__, PIL.__version__]


@pytest.mark.pi
@pytest.mark.tf
def test_litert_kernels_agree_on_arm64(arm64, tmp_path):
    """A tiny float model run by LiteRT on emulated arm64 gives x86's outputs (no edge/ code)."""
    import tensorflow as tf
    tf.random.set_seed(0)
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf.keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(7, activation="softmax")(x)
    model_file = tmp_path / "tiny.tflite"
    model_file.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inputs, outputs)).convert())
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32))
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors()\n"
        "it.set_tensor(it.get_input_details()[0]['index'], np.load(sys.argv[2]))\n"
        "it.invoke()\n"
        "np.save(sys.argv[3], it.get_tensor(it.get_output_details()[0]['index']))\n"
    )
    args = [str(script), str(model_file), str(tmp_path / "x.npy")]
    checked(arm64([*args, str(tmp_path / "arm.npy")], cwd=tmp_path, timeout=EMULATION_TIMEOUT), "arm64 run")
    checked(subprocess.run([sys.executable, *args, str(tmp_path / "x86.npy")], capture_output=True,
                           text=True, timeout=120), "x86 run")
    arm, x86 = np.load(tmp_path / "arm.npy"), np.load(tmp_path / "x86.npy")
    assert arm.shape == x86.shape == (1, 7)
    np.testing.assert_allclose(arm, x86, atol=1e-5)


def classify(runner, bundle: Path, images: list[Path], variant: str) -> list[dict]:
    argv = ["-m", "edge", "classify", str(bundle), *map(str, images), "--variant", variant, "--json"]
    out = checked(runner(argv), f"python {' '.join(argv)}")
    return json.loads(out)


def native(argv, cwd=REPO, env=None, timeout=EMULATION_TIMEOUT):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def by_image(results: list[dict]) -> dict[str, dict[str, float]]:
    return {r["image"]: {p["code"]: p["probability"] for p in model_output(r)} for r in results}


def top1(probabilities: dict[str, float]) -> str:
    return max(sorted(probabilities), key=probabilities.get)  # ties broken by code, on both sides


@pytest.mark.pi
@pytest.mark.parametrize(("variant", "tolerance"), [("float32", 1e-4), ("int8", 0.02)])
def test_edge_classify_on_arm64_matches_x86(arm64, tiny_bundle, sample_images, variant, tolerance):
    images = list(sample_images)
    assert images, "no sample images"
    arm = by_image(classify(lambda argv: arm64(argv, timeout=EMULATION_TIMEOUT), tiny_bundle, images, variant))
    x86 = by_image(classify(native, tiny_bundle, images, variant))
    assert sorted(arm) == sorted(x86) == sorted(str(p) for p in images)
    for image, expected in x86.items():
        got = arm[image]
        assert sorted(got) == sorted(expected), image
        assert top1(got) == top1(expected), (image, got, expected)
        worst = max(abs(got[c] - expected[c]) for c in expected)
        assert worst <= tolerance, f"{image} {variant}: arm64 differs from x86 by {worst:.2g}: {got} vs {expected}"
