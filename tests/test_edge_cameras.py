"""edge/cameras.py and edge/picamera2_backend.py: RGB frames from both backends, the automatic
choice, and the errors. OpenCV reads a real video file; Picamera2 is a fake with the real API's
shape (tests/camera_helpers.py), since no Camera Module is attached to the machine the tests run on."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from edge import picamera2_backend
from edge.camera import format_frame
from edge.cameras import OpenCVCamera, device_arg, open_camera
from edge.classifier import Classifier
from edge.cli import main
from edge.errors import CameraError
from tests.camera_helpers import (
    CAMERA_MODULE_INFO,
    USB_WEBCAM_INFO,
    FakePicamera2,
    fake_picamera2_module,
    rgb_frame,
    write_video,
)
from tests.pwa_helpers import synthetic_photo


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Two different 640x480 lesion photos: red and blue differ, so a channel swap shows."""
    return [rgb_frame(synthetic_photo(seed)) for seed in (3, 4)]


@pytest.fixture(scope="module")
def video(frames, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "lesions.avi", frames, fps=30, repeat=3)


@pytest.fixture
def picamera2(monkeypatch, frames):
    module = fake_picamera2_module(frames[0])
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


def test_device_arg_takes_numbers_as_camera_indices():
    assert device_arg("0") == 0 and device_arg("12") == 12
    assert device_arg("clip.avi") == "clip.avi" and device_arg("rtsp://cam/1") == "rtsp://cam/1"


def test_opencv_reads_a_video_file_as_rgb_frames_in_order(video, frames):
    with open_camera("opencv", str(video)) as camera:
        read = [camera.read() for _ in range(6)]
        assert camera.description == f"OpenCV video file {video}"
        with pytest.raises(CameraError, match=f"camera {video} returned no frame"):
            camera.read()  # the end of the file, without loop
    for got, expected in zip(read, [frames[0]] * 3 + [frames[1]] * 3, strict=True):
        assert got.dtype == np.uint8 and got.shape == (480, 640, 3)
        np.testing.assert_array_equal(got, expected)  # FFV1 is lossless: exactly the RGB written


class FakeClock:
    """A clock that moves only when told to or slept on, recording every sleep."""

    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_looping_video_file_plays_at_its_frame_rate_and_starts_again(video, frames):
    clock = FakeClock()
    with OpenCVCamera(str(video), loop=True, clock=clock, sleep=clock.sleep) as camera:
        read = [camera.read() for _ in range(9)]
        assert clock.sleeps == pytest.approx([1 / 30] * 8)  # reads take no time: 8 whole intervals, none before frame 1
        clock.now += 0.5  # a reader that fell behind is not sent a burst of frames to catch up
        camera.read()
        camera.read()
        assert clock.sleeps[8:] == pytest.approx([1 / 30])
    np.testing.assert_array_equal(read[6], frames[0])  # frame 7 is frame 1 again


def test_auto_goes_to_opencv_for_files_even_with_a_camera_module(video, frames, picamera2):
    with open_camera("auto", str(video)) as camera:
        assert camera.name == "opencv"
        np.testing.assert_array_equal(camera.read(), frames[0])
    assert FakePicamera2.instances == []


def test_unknown_backend_and_unopenable_devices_are_named():
    with pytest.raises(CameraError, match="unknown camera backend 'v4l': choose one of auto, picamera2, opencv"):
        open_camera("v4l")
    with pytest.raises(CameraError, match="^cannot open camera 97$"):
        open_camera("opencv", 97)
    with pytest.raises(CameraError, match="Picamera2 opens Camera Module numbers, not 'a.avi'"):
        open_camera("picamera2", "a.avi")


def test_picamera2_frames_come_out_rgb_from_bgr_memory(picamera2, frames):
    with open_camera("picamera2", 0) as camera:
        frame = camera.read()
    np.testing.assert_array_equal(frame, frames[0])  # not frames[0][..., ::-1]
    assert not np.array_equal(frames[0], frames[0][:, :, ::-1])  # the test photo would show a swap
    assert camera.description == "Camera Module 0 (imx708) via Picamera2, preview mode"


@pytest.mark.parametrize(("still", "use_case"), [(False, "preview"), (True, "still")])
def test_picamera2_configuration_calls(picamera2, still, use_case):
    camera = open_camera("picamera2", 0, size=(800, 600), still=still)
    camera.read()
    camera.close()
    [instance] = FakePicamera2.instances
    assert instance.calls == [
        ("Picamera2", 0),
        (f"create_{use_case}_configuration", {"size": (800, 600), "format": "RGB888"}),
        ("configure", use_case),
        ("start",),
        ("capture_array", "main"),
        ("stop",),
        ("close",),
    ]
    assert instance.closed


def test_auto_picks_picamera2_for_a_camera_module_and_opencv_for_usb_webcams(monkeypatch, frames):
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(frames[1], [USB_WEBCAM_INFO, CAMERA_MODULE_INFO]))
    modules, problem = picamera2_backend.camera_modules()
    assert (modules, problem) == ([CAMERA_MODULE_INFO], None)
    with open_camera("auto", 0) as camera:
        assert camera.name == "picamera2"
        np.testing.assert_array_equal(camera.read(), frames[1])
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(frames[1], [USB_WEBCAM_INFO]))
    with pytest.raises(CameraError, match="^cannot open camera 0$"):  # OpenCV's turn: no webcam here
        open_camera("auto", 0)


def test_a_missing_picamera2_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # None in sys.modules: ModuleNotFoundError
    with pytest.raises(CameraError, match="Picamera2 is not installed: on Raspberry Pi OS, apt install python3-picamera2"):
        open_camera("picamera2", 0)
    assert picamera2_backend.camera_modules() == ([], None)  # a laptop: nothing worth a note


def test_a_numpy_abi_clash_names_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "picamera2":
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(CameraError) as raised:
        open_camera("picamera2", 0)
    assert str(raised.value).startswith("Picamera2 is installed but cannot be imported: numpy.dtype size changed")
    assert "install requirements/edge.txt (its simplejpeg for numpy 2) into this venv" in str(raised.value)
    modules, problem = picamera2_backend.camera_modules()
    assert modules == [] and problem.startswith("Picamera2 is installed but cannot be imported")


def test_picamera2_errors_are_camera_errors(monkeypatch, frames):
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(frames[0], []))
    with pytest.raises(CameraError, match="cannot open Camera Module 0 with Picamera2: Camera\\(s\\) not found"):
        open_camera("picamera2", 0)
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(frames[0]))
    with pytest.raises(CameraError, match="cannot open Camera Module 3 with Picamera2: list index out of range"):
        open_camera("picamera2", 3)


def test_edge_camera_command_with_picamera2_classifies_the_rgb_frame(random_bundle, picamera2, frames, tmp_path, capsys):
    saved = tmp_path / "last.jpg"
    code = main(["camera", str(random_bundle), "--camera", "picamera2", "--frames", "1", "--save-last", str(saved)])
    assert code == 0
    classifier = Classifier(random_bundle)
    expected = classifier.classify_array(classifier.preprocess(frames[0]))
    assert capsys.readouterr().out.strip() == format_frame(0, expected)
    [instance] = FakePicamera2.instances
    assert instance.calls[1][0] == "create_still_configuration"  # a frame now and then: best quality
    with Image.open(saved) as written:
        assert (written.format, written.size) == ("JPEG", (640, 480))
