"""The Pi installer and the on-device runtime: the Pi serves the runtime built on the workstation
(`make web`) and copied with the repository; without it the installer stops before touching anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from edge.manifest import SCHEMA_VERSION
from tests.pwa_helpers import REPO

INSTALLER = REPO / "edge" / "pi" / "install.sh"


def test_installer_refuses_a_copy_without_the_built_runtime(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the installer checks for root before the runtime")
    source = tmp_path / "lesionlite"
    (source / "edge" / "pi").mkdir(parents=True)
    shutil.copy(INSTALLER, source / "edge" / "pi" / "install.sh")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    proc = subprocess.run(["bash", str(source / "edge" / "pi" / "install.sh"), str(bundle)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"the web app's on-device runtime is missing ({source}/pwa/static/vendor): run 'make web'" in proc.stderr
    assert not (tmp_path / "opt").exists() and "apt-get" not in proc.stdout  # nothing done


def test_the_runtime_travels_with_the_repository_but_node_modules_do_not():
    text = INSTALLER.read_text()
    assert "--exclude=node_modules" in text
    manual = (REPO / "docs" / "pi-kiosk.md").read_text()  # the installation steps
    assert "--exclude node_modules" in manual and "make web" in manual
