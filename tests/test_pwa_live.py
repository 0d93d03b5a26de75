"""pwa/live.py's pacing and measured rate, with a clock the test moves: the grab loop's waits, the
preview's pace, the frame rate GET /api/camera reports, a stale frame and close(), all checked
as behaviour, without timing anything (the real rates are `python -m bench camera`'s figures)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from edge.cameras import Camera
from edge.errors import CameraError
from pwa import live

FRAME = np.zeros((480, 640, 3), np.uint8)


class Clock:
    """Seconds that pass only when the test or a camera read says so; waits are recorded."""

    def __init__(self):
        self.now, self.waits = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class ClockedCamera(Camera):
    """Each read takes `read_s` seconds of the test's clock; `fail` makes reads fail."""

    name, description = "opencv", "clocked camera"

    def __init__(self, clock: Clock, read_s: float):
        self.clock, self.read_s, self.fail, self.closed = clock, read_s, False, False

    def read(self) -> np.ndarray:
        self.clock.now += self.read_s
        if self.fail:
            raise CameraError("camera 0 returned no frame")
        return FRAME

    def close(self) -> None:
        self.closed = True


def clocked(read_s: float) -> tuple[live.LiveCamera, Clock]:
    clock = Clock()
    return live.LiveCamera(ClockedCamera(clock, read_s), clock=clock, wait=clock.wait), clock


@pytest.mark.parametrize(("read_s", "wait_s"), [(0.01, 1 / 30 - 0.01), (0.0, 1 / 30), (0.05, 0.0)])
def test_the_grab_loop_waits_out_the_rest_of_the_frame_interval(read_s, wait_s):
    camera, _ = clocked(read_s)
    assert camera.grab_once() == pytest.approx(wait_s)  # at most GRAB_MAX_FPS (30) reads a second, never a negative wait


@pytest.mark.parametrize(("read_s", "fps"), [(0.04, 25.0), (0.01, 30.0)])
def test_the_reported_rate_is_one_over_the_mean_frame_interval(read_s, fps):
    camera, clock = clocked(read_s)
    for _ in range(20):
        clock.wait(camera.grab_once())
    status = camera.status()
    assert (status["fps"], status["frame_size"], status["error"], status["source"]) == (fps, [640, 480], None, "clocked camera")


def test_a_failing_camera_is_retried_later_and_reported():
    camera, _ = clocked(0.01)
    camera.grab_once()
    camera.camera.fail = True
    assert camera.grab_once() == live.RETRY_AFTER_ERROR_S
    assert camera.status()["error"] == "camera 0 returned no frame"


def test_a_frame_older_than_the_timeout_is_reported_as_no_frame():
    camera, clock = clocked(0.01)
    assert camera.status()["error"] == "the camera has given no frame yet"
    camera.grab_once()
    assert camera.newest().seq == 1 and camera.status()["error"] is None
    clock.now += live.FRAME_TIMEOUT_S + 1
    assert camera.status()["error"] == f"no frame for {live.FRAME_TIMEOUT_S + 1:.0f} s"


def test_the_preview_waits_out_its_frame_interval_after_each_part():
    camera, clock = clocked(0.0)
    preview = camera.open_preview(fps=live.PREVIEW_FPS)
    stream = iter(preview)
    camera.grab_once()
    first = next(stream)
    camera.grab_once()
    clock.now += 0.02  # sending the first part took 20 ms
    next(stream)
    camera.grab_once()
    next(stream)
    assert clock.waits == pytest.approx([1 / live.PREVIEW_FPS - 0.02, 1 / live.PREVIEW_FPS])
    assert camera.status()["viewers"] == 1
    preview.close()
    assert camera.status()["viewers"] == 0
    head, _, jpeg = first.partition(b"\r\n\r\n")
    assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    assert Image.open(io.BytesIO(jpeg[:-2])).size == (480, 480)  # the centre square


def test_close_wakes_a_reader_waiting_for_a_frame_and_releases_the_camera():
    camera, _ = clocked(0.01)
    said, done = [], threading.Event()

    def reader():
        try:
            camera.frame_after(0, timeout=600)
        except CameraError as err:
            said.append(str(err))
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    camera.close()
    assert done.wait(60), "close() left the reader waiting for a frame"
    assert said == ["the camera was closed"]  # woken by close, not by the 600 s timeout
    assert camera.camera.closed
