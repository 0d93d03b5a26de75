"""`python -m bench camera`: the server camera's capture latency and preview rate, end to end on the
untrained bundle with the benchmark's own synthetic video as the camera."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pwa import live


def test_bench_camera_measures_captures_per_variant_and_the_preview(repo_root, random_bundle, tmp_path):
    out = tmp_path / "camera.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "camera", str(random_bundle), "--variants", "int8", "float32",
         "--captures", "5", "--preview-seconds", "1.5", "--json", str(out)],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("camera: synthetic 640x480 MJPEG video, 30 fps; ")
    assert [line.split()[0] for line in lines[2:4]] == ["int8", "float32"]
    assert lines[4].startswith("preview: ")
    report = json.loads(out.read_text())
    for capture in report["captures"]:
        assert capture["captures"] == 5
        parts = capture["grab_p50_ms"] + capture["preprocess_p50_ms"] + capture["invoke_p50_ms"]
        assert 0 < capture["invoke_p50_ms"] < capture["server_p50_ms"] <= capture["round_trip_p50_ms"]
        assert parts <= capture["round_trip_p50_ms"]
    # The figures depend on the machine and its load; what cannot: the rate is the frames counted over
    # the window, never faster than the preview's pace (parts 1/PREVIEW_FPS apart), and CPU shares are shares.
    preview = report["preview"]
    assert preview["frames_per_s"] == round(preview["frames"] / preview["seconds"], 1) <= live.PREVIEW_FPS + 1
    assert 0 <= preview["server_cpu_idle_pct"] <= 100 * os.cpu_count()
    assert 0 <= preview["server_cpu_previewing_pct"] <= 100 * os.cpu_count()


def test_bench_camera_refuses_an_unknown_variant(repo_root, random_bundle):
    result = subprocess.run([sys.executable, "-m", "bench", "camera", str(random_bundle), "--variants", "int4"],
                            cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown variant 'int4'")
