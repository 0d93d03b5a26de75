"""Camera stand-ins for the tests: a video file written with OpenCV, and a fake `picamera2` module
with the real one's shape (Picamera2's calls and its "RGB888" = B, G, R memory order)."""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

FRAME_SIZE = (640, 480)
# A Camera Module 3 as Picamera2.global_camera_info() lists it, and a USB webcam as libcamera does.
CAMERA_MODULE_INFO = {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a", "Num": 0}
USB_WEBCAM_INFO = {"Model": "HD Webcam", "Location": 2, "Rotation": 0,
                   "Id": "/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1:1.0-046d:0825", "Num": 1}


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Whether `condition()` came true, polled every 10 ms: an event waited for, with a deadline far
    beyond any expected delay, never a duration asserted."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def rgb_frame(image: Image.Image, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0, repeat: int = 1) -> Path:
    """An FFV1 AVI (lossless, so every decoded frame equals its RGB source exactly) of the frames,
    each written `repeat` times; OpenCV writes BGR, so the frames are converted."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    try:
        for frame in frames:
            for _ in range(repeat):
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


class FakePicamera2:
    """Picamera2's API as this project uses it, recording every call. `frame` is what the camera
    sees (RGB); capture_array returns it in the configured format's memory order."""

    cameras: list[dict] = [CAMERA_MODULE_INFO]
    frame: np.ndarray = np.zeros((480, 640, 3), np.uint8)
    instances: list[FakePicamera2] = []
    sensor_resolution = (4608, 2592)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return [dict(info) for info in FakePicamera2.cameras]

    def __init__(self, camera_num=0, verbose_console=None, tuning=None, allocator=None):
        if not FakePicamera2.cameras:
            raise RuntimeError("Camera(s) not found (Do not forget to disable legacy camera with raspi-config).")
        self.camera_properties = {"Model": FakePicamera2.cameras[camera_num]["Model"]}  # IndexError like libcamera's list
        self.calls: list[tuple] = [("Picamera2", camera_num)]
        self.config, self.started, self.closed = None, False, False
        FakePicamera2.instances.append(self)

    def _configuration(self, use_case: str, default_format: str, default_size, main: dict) -> dict:
        self.calls.append((f"create_{use_case}_configuration", dict(main)))
        return {"use_case": use_case, "main": {"format": default_format, "size": default_size, **main}}

    def create_preview_configuration(self, main={}, lores=None, raw={}, **kwargs):  # noqa: B006 - Picamera2's signature
        return self._configuration("preview", "XBGR8888", (640, 480), main)

    def create_still_configuration(self, main={}, lores=None, raw={}, **kwargs):  # noqa: B006 - Picamera2's signature
        return self._configuration("still", "BGR888", self.sensor_resolution, main)

    def configure(self, camera_config=None):
        self.calls.append(("configure", camera_config["use_case"]))
        self.config = camera_config

    def start(self, config=None, show_preview=False):
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        self.calls.append(("start",))
        self.started = True

    def capture_array(self, name="main", wait=None, signal_function=None):
        if not self.started:
            raise RuntimeError("Camera is not running")
        self.calls.append(("capture_array", name))
        stream = self.config[name]
        rgb = np.asarray(Image.fromarray(FakePicamera2.frame).resize(tuple(stream["size"])))
        memory_order = {"RGB888": rgb[:, :, ::-1], "BGR888": rgb,  # libcamera's fourcc names
                        "XBGR8888": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])}
        return np.ascontiguousarray(memory_order[stream["format"]])

    def stop(self):
        self.calls.append(("stop",))
        self.started = False

    def close(self):
        self.calls.append(("close",))
        self.closed = True


def fake_picamera2_module(frame: np.ndarray, cameras: list[dict] | None = None) -> types.ModuleType:
    """A `picamera2` module whose Picamera2 is FakePicamera2 seeing `frame`, with these cameras."""
    FakePicamera2.frame = frame
    FakePicamera2.cameras = [CAMERA_MODULE_INFO] if cameras is None else cameras
    FakePicamera2.instances = []
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    return module
