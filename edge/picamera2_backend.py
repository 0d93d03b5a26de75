"""The Raspberry Pi Camera Module through Picamera2 (libcamera), frames as RGB uint8.

Picamera2 is Raspberry Pi OS's package python3-picamera2: never installed from PyPI by this
project, imported only when a camera is opened or listed. On Raspberry Pi OS Bookworm neither
OpenCV nor Chromium can open a libcamera camera; Picamera2 is the supported way.

Channel order: Picamera2's format names follow libcamera's DRM fourcc convention, so "RGB888"
holds each pixel as B, G, R in memory (and "BGR888" as R, G, B). This backend asks for
"RGB888", the format every Pi's ISP delivers, and reverses the channels (ARCHITECTURE.md).
"""

from __future__ import annotations

import numpy as np

from edge.camera_base import Camera
from edge.errors import CameraError

PICAMERA2_FORMAT = "RGB888"  # B, G, R bytes in memory: reversed in read()
# A Picamera2 that is installed but cannot be imported: the message names the usual cause.
NUMPY_ABI_HINT = (
    "the system's simplejpeg was built for numpy 1.x; install requirements/edge.txt "
    "(its simplejpeg for numpy 2) into this venv, as edge/pi/install.sh does"
)


def import_picamera2():
    """The picamera2 module.

    Raises:
        CameraError: not installed, or installed but not importable (numpy ABI clash named).
    """
    try:
        import picamera2
    except ModuleNotFoundError as err:
        if err.name != "picamera2":
            raise CameraError(f"Picamera2 is installed but cannot be imported: {err}") from None
        raise CameraError(
            "Picamera2 is not installed: on Raspberry Pi OS, apt install python3-picamera2 "
            "and run edge/pi/install.sh again (it makes the venv see it)") from None
    except (ImportError, ValueError) as err:  # ValueError: "numpy.dtype size changed" (ABI)
        hint = f" ({NUMPY_ABI_HINT})" if "numpy" in str(err) else ""
        raise CameraError(f"Picamera2 is installed but cannot be imported: {err}{hint}") from None
    return picamera2


def camera_modules() -> tuple[list[dict], str | None]:
    """(libcamera cameras that are not on USB, why Picamera2 was unusable or None).

    USB webcams also appear in libcamera's list; they are left to OpenCV (plain V4L2), so "auto"
    picks Picamera2 only for a Camera Module. Picamera2 simply not installed is not a problem
    worth reporting (a laptop); installed but broken is.
    """
    try:
        picamera2 = import_picamera2()
    except CameraError as err:
        return [], None if "is not installed" in str(err) else str(err)
    try:
        cameras = picamera2.Picamera2.global_camera_info()
    except RuntimeError as err:
        return [], f"Picamera2 cannot list cameras: {err}"
    return [info for info in cameras if "/usb" not in str(info.get("Id", ""))], None


class Picamera2Camera(Camera):
    """One Camera Module, started in Picamera2's preview (steady stream) or still configuration.

    `size` is the main stream's (width, height); Picamera2 may round it to what the ISP allows.
    """

    name = "picamera2"

    def __init__(self, camera_num: int = 0, size: tuple[int, int] = (640, 480), still: bool = False):
        picamera2 = import_picamera2()
        try:
            self._camera = picamera2.Picamera2(camera_num)
        except (RuntimeError, IndexError) as err:
            raise CameraError(f"cannot open Camera Module {camera_num} with Picamera2: {err or type(err).__name__}") from None
        try:
            self._start(size, still)
        except RuntimeError as err:
            self._camera.close()
            raise CameraError(f"cannot start Camera Module {camera_num}: {err}") from None
        model = self._camera.camera_properties.get("Model", "unknown sensor")
        self.description = f"Camera Module {camera_num} ({model}) via Picamera2, {'still' if still else 'preview'} mode"

    def _start(self, size: tuple[int, int], still: bool) -> None:
        main = {"size": tuple(size), "format": PICAMERA2_FORMAT}
        if still:
            config = self._camera.create_still_configuration(main=main)
        else:
            config = self._camera.create_preview_configuration(main=main)
        self._camera.configure(config)
        self._camera.start()

    def read(self) -> np.ndarray:
        """The next frame as RGB uint8 (H, W, 3).

        Raises:
            CameraError: the capture failed or gave something other than an RGB888 frame.
        """
        try:
            bgr = self._camera.capture_array("main")
        except RuntimeError as err:
            raise CameraError(f"Camera Module capture failed: {err}") from None
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise CameraError(
                f"Picamera2 gave a {bgr.dtype} frame of shape {bgr.shape}, expected HxWx3 uint8 ({PICAMERA2_FORMAT})")
        return np.ascontiguousarray(bgr[:, :, ::-1])  # B, G, R in memory -> R, G, B

    def close(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()
