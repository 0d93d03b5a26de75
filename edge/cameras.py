"""Cameras that give RGB uint8 frames: the Raspberry Pi Camera Module through Picamera2, anything
else (USB webcams, video files, stream URLs) through OpenCV.

Example usage:
    from edge.cameras import open_camera
    with open_camera("auto", device=0) as camera:
        rgb = camera.read()          # HxWx3 uint8, RGB order, whatever the backend
        print(camera.description)

"auto" picks Picamera2 when it imports and lists a camera that is not on USB (the Camera Module,
driven by libcamera, which OpenCV cannot open on Raspberry Pi OS Bookworm), OpenCV otherwise.
A video file or URL always goes to OpenCV. OpenCV and Picamera2 are imported only when used.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.camera_base import Camera
from edge.errors import CameraError
from edge.picamera2_backend import Picamera2Camera, camera_modules

BACKENDS = ("auto", "picamera2", "opencv")
# Frames of 640x480 are plenty for a 96-224 px model and a kiosk preview, and cheap to encode.
DEFAULT_SIZE = (640, 480)
# A video file standing in for a camera plays at its own frame rate, or this one if it has none.
FALLBACK_FPS = 30.0

__all__ = ["BACKENDS", "DEFAULT_SIZE", "Camera", "OpenCVCamera", "device_arg", "open_camera"]


def device_arg(text: str) -> int | str:
    """A camera number such as 0, or a video file / stream URL that OpenCV opens instead."""
    return int(text) if text.isdigit() else text


def is_stream_or_file(device: int | str) -> bool:
    """True for a video file or stream URL, False for a camera index."""
    return not isinstance(device, int)


class OpenCVCamera(Camera):
    """cv2.VideoCapture on a camera index, a video file or a stream URL; frames converted BGR -> RGB.

    A video file plays in real time (at its own frame rate) and, with loop=True, starts again at
    its end, so it can stand in for a camera. `clock` and `sleep` pace it (a test passes its own,
    so the pacing is checked without timing anything).
    """

    name = "opencv"

    def __init__(self, device: int | str = 0, size: tuple[int, int] | None = DEFAULT_SIZE, loop: bool = False,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        import cv2  # lazily: only a camera needs OpenCV

        self._cv2, self.device, self.loop = cv2, device, loop
        self._clock, self._sleep = clock, sleep
        self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            raise CameraError(f"cannot open camera {device}")
        # A small buffer makes a read after a pause return a current frame, where the backend allows.
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if size and not is_stream_or_file(device):
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        self._is_file = isinstance(device, str) and Path(device).is_file()
        fps = self._capture.get(cv2.CAP_PROP_FPS) if self._is_file else 0
        self._frame_interval = 1.0 / (fps if 0 < fps <= 240 else FALLBACK_FPS) if self._is_file else 0.0
        self._next_frame_at = 0.0
        self.description = f"OpenCV {'video file' if self._is_file else 'device'} {device}"

    def read(self) -> np.ndarray:
        """The next frame, RGB. Raises CameraError when the camera gives none (a file at its end, unless loop)."""
        self._pace()
        ok, frame = self._capture.read()
        if not ok and self._is_file and self.loop:
            self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if not ok or frame is None:
            raise CameraError(f"camera {self.device} returned no frame")
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)  # OpenCV frames are BGR

    def _pace(self) -> None:
        if not self._frame_interval:
            return  # a camera's read() waits for its next frame by itself
        now = self._clock()
        if self._next_frame_at > now:
            self._sleep(self._next_frame_at - now)
        self._next_frame_at = max(now, self._next_frame_at) + self._frame_interval

    def close(self) -> None:
        self._capture.release()


def open_camera(backend: str = "auto", device: int | str = 0, size: tuple[int, int] = DEFAULT_SIZE,
                still: bool = False, loop: bool = False) -> Camera:
    """Open a camera with the named backend ("auto": see the module docstring).

    `still` asks Picamera2 for its still configuration (best quality, for a frame now and then)
    instead of its preview configuration (a steady stream); `loop` replays a video file.

    Raises:
        CameraError: unknown backend, or the camera cannot be opened (the message says which and why).
    """
    if backend not in BACKENDS:
        raise CameraError(f"unknown camera backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "picamera2":
        if is_stream_or_file(device):
            raise CameraError(f"Picamera2 opens Camera Module numbers, not {device!r}: use --camera opencv for files and URLs")
        return Picamera2Camera(device, size, still=still)
    if backend == "auto" and not is_stream_or_file(device):
        modules, problem = camera_modules()
        if device in [info["Num"] for info in modules]:
            return Picamera2Camera(device, size, still=still)
        if problem:
            print(f"note: not using Picamera2 ({problem}); trying OpenCV", file=sys.stderr)
    return OpenCVCamera(device, size, loop=loop)
