"""The server's own camera, live: one thread grabs frames, every request reads the newest one.

Example usage:
    live = LiveCamera(open_camera("auto")).start()
    frame = live.newest()                       # Frame(seq, rgb, at)
    with contextlib.closing(live.open_preview()) as parts:  # multipart/x-mixed-replace parts
        for part in parts: ...                              # for a preview <img>
    live.close()

Frames live in memory only: the newest one, and the newest preview JPEG (shared by every viewer,
so each frame is encoded once however many screens show it). Nothing is written or kept.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge.cameras import Camera
from edge.errors import CameraError
from edge.preprocess import to_rgb_square

GRAB_MAX_FPS = 30.0  # the grab loop never spins faster, whatever the source
# Preview frames sent per second and screen (bench camera's measured rate: docs/edge-and-benchmarks.md).
PREVIEW_FPS = 15.0
PREVIEW_JPEG_QUALITY = 80
FRAME_JPEG_QUALITY = 90  # the captured frame shown with its answer
FRAME_TIMEOUT_S = 5.0  # a camera that gives no frame for this long is reported as failing
RETRY_AFTER_ERROR_S = 2.0
MAX_VIEWERS = 2  # preview streams at once: each holds a server thread while it runs
BOUNDARY = "frame"
TOO_MANY_VIEWERS = f"The camera preview is already shown on {MAX_VIEWERS} screens: close one and try again."
NO_CAMERA = "This server has no camera: start it with python -m pwa --camera auto (or a device)."


class PreviewsFullError(Exception):
    """MAX_VIEWERS preview streams are open already (pwa/errors.py answers 503)."""


class NoCameraError(Exception):
    """The server was started without a camera (pwa/errors.py answers 404)."""


@dataclass(frozen=True)
class Frame:
    seq: int  # 1, 2, ... in grab order
    rgb: np.ndarray  # HxWx3 uint8
    at: float  # the LiveCamera's clock (time.monotonic()) when grabbed


def square_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """The frame's centre square (what the model classifies) as a JPEG."""
    image = Image.fromarray(rgb)
    square = to_rgb_square(image)
    buffer = io.BytesIO()
    square.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class LiveCamera:
    """A camera read continuously by a background thread; thread-safe readers of its newest frame."""

    def __init__(self, camera: Camera, max_fps: float = GRAB_MAX_FPS, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], object] | None = None):
        """`clock` (seconds) stamps frames; `wait(seconds)` paces the grab loop and the previews and
        returns early on close(). A test passes its own pair, so pacing is checked without timing."""
        self.camera = camera
        self._interval = 1.0 / max_fps
        self._clock = clock
        self._changed = threading.Condition()
        self._frame: Frame | None = None
        self._error: str | None = None
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait
        self._preview: tuple[int, bytes] = (0, b"")
        self._preview_lock = threading.Lock()
        self._mean_interval = 0.0  # seconds between frames, averaged
        self.viewers = 0
        self._thread = threading.Thread(target=self._grab_loop, name="lesionlite-camera", daemon=True)

    def start(self) -> LiveCamera:
        self._thread.start()
        return self

    def _grab_loop(self) -> None:
        while not self._stopping.is_set():
            self._wait(self.grab_once())

    def grab_once(self) -> float:
        """Read one frame (or the camera's error) and publish it; returns the seconds to wait before
        the next read, so that reads start at most max_fps a second."""
        started = self._clock()
        try:
            rgb = self.camera.read()
        except CameraError as err:
            self._publish(None, str(err))
            return RETRY_AFTER_ERROR_S
        self._publish(rgb, None)
        return max(0.0, self._interval - (self._clock() - started))

    def _publish(self, rgb: np.ndarray | None, error: str | None) -> None:
        with self._changed:
            self._error = error
            if rgb is not None:
                now = self._clock()
                previous = self._frame
                if previous is not None:  # a moving average of the intervals, not of their inverses
                    interval = now - previous.at
                    self._mean_interval = 0.9 * self._mean_interval + 0.1 * interval if self._mean_interval else interval
                self._frame = Frame((previous.seq if previous else 0) + 1, rgb, now)
            self._changed.notify_all()

    def frame_after(self, seq: int, timeout: float = FRAME_TIMEOUT_S) -> Frame:
        """The newest frame whose seq is above `seq`, waiting up to `timeout` seconds for one.

        Raises:
            CameraError: the camera gave no such frame in time (its last error named), or it was closed.
        """
        def ready() -> bool:
            return self._stopping.is_set() or (self._frame is not None and self._frame.seq > seq)

        with self._changed:
            arrived = self._changed.wait_for(ready, timeout)
            if self._stopping.is_set():
                raise CameraError("the camera was closed")
            if not arrived:
                raise CameraError(f"the camera gave no frame for {timeout:g} s" + (f": {self._error}" if self._error else ""))
            return self._frame

    def newest(self) -> Frame:
        """The newest frame, if the camera is delivering; else waits for one (see frame_after)."""
        with self._changed:
            frame, error = self._frame, self._error
        if frame is not None and error is None and self._clock() - frame.at < FRAME_TIMEOUT_S:
            return frame
        return self.frame_after(frame.seq if frame else 0)

    def preview_jpeg(self, frame: Frame) -> bytes:
        """The frame's preview JPEG, encoded once however many viewers ask."""
        with self._preview_lock:
            if self._preview[0] != frame.seq:
                self._preview = (frame.seq, square_jpeg(frame.rgb, PREVIEW_JPEG_QUALITY))
            return self._preview[1]

    def open_preview(self, fps: float = PREVIEW_FPS) -> Preview:
        """A new preview stream, counted as a viewer from now until it is closed.

        The count is checked and raised under one lock: requests arriving together cannot all
        pass the check before any of them is counted.

        Raises:
            PreviewsFullError: MAX_VIEWERS streams are open already.
        """
        with self._changed:
            if self.viewers >= MAX_VIEWERS:
                raise PreviewsFullError(TOO_MANY_VIEWERS)
            self.viewers += 1
        return Preview(self, fps)

    def _viewer_left(self) -> None:
        with self._changed:
            self.viewers -= 1

    def mjpeg(self, fps: float = PREVIEW_FPS) -> Iterator[bytes]:
        """Preview parts for a multipart/x-mixed-replace response, at most `fps` a second, until the
        client leaves (the server then closes this generator) or the camera fails or closes."""
        try:
            seq, interval = 0, 1.0 / fps
            while not self._stopping.is_set():
                started = self._clock()
                frame = self.frame_after(seq)
                seq = frame.seq
                jpeg = self.preview_jpeg(frame)
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                       + jpeg + b"\r\n")
                self._wait(max(0.0, interval - (self._clock() - started)))
        except CameraError:
            return  # the stream ends; the page sees the problem in GET /api/camera

    def status(self) -> dict:
        """What GET /api/camera reports: backend, source, frame size, measured rate, viewers, error."""
        with self._changed:
            frame, error, viewers = self._frame, self._error, self.viewers
            fps = 1 / self._mean_interval if self._mean_interval else 0.0
        age = None if frame is None else self._clock() - frame.at
        if error is None and (frame is None or age > FRAME_TIMEOUT_S):
            error = "the camera has given no frame yet" if frame is None else f"no frame for {age:.0f} s"
        return {
            "backend": self.camera.name,
            "source": self.camera.description,
            "frame_size": None if frame is None else [int(frame.rgb.shape[1]), int(frame.rgb.shape[0])],
            "fps": round(fps, 1),
            "viewers": viewers,
            "error": error,
        }

    def close(self) -> None:
        """Stop grabbing, end every preview stream, release the camera."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():  # a LiveCamera never started has no thread to wait for
            self._thread.join(timeout=FRAME_TIMEOUT_S)
        self.camera.close()


class Preview:
    """One preview stream, a WSGI response body: counted as a viewer from LiveCamera.open_preview()
    until close(), which the server calls when the client leaves, even before the first part."""

    def __init__(self, camera: LiveCamera, fps: float):
        self._camera = camera
        self._parts = camera.mjpeg(fps)
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        return self._parts

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._parts.close()
        self._camera._viewer_left()
