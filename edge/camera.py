"""Example usage:
    python -m edge camera runs/demo/bundle --interval 1 --save-last /tmp/last.jpg
    python -m edge camera runs/demo/bundle --camera opencv --device 0
    python -m edge camera runs/demo/bundle --device lesion.mp4 --frames 10

Classify frames from a camera every --interval seconds and print one line per frame: what happened
("Most similar to ...", "LesionLite cannot assess this photo", "Retake the photo") and the reasons,
then the top three classes; for a frame LesionLite cannot assess, only with --show-unassessed.
--camera auto (the default) uses the Raspberry Pi Camera Module through Picamera2 when one is
attached and Picamera2 imports, and OpenCV otherwise (USB webcams, video files, stream URLs).
OpenCV and Picamera2 are imported only here, only when the camera is used.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from PIL import Image

from edge.answer import Answer
from edge.bundle import SHIPPED_MODEL
from edge.cameras import BACKENDS, device_arg, open_camera
from edge.classifier import Classifier
from edge.errors import CameraError
from edge.labels import DISCLAIMER

TOP_N = 3
UNASSESSED_HELP = ("also print the model's output for photos LesionLite cannot assess (unsure, retake), "
                   "after the statement that it is not an assessment")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", nargs="?", default=str(SHIPPED_MODEL),
                        help="bundle folder (runs/NAME/bundle); without one, the shipped model")
    parser.add_argument("--camera", choices=BACKENDS, default="auto",
                        help="auto: Picamera2 for an attached Camera Module, else OpenCV")
    parser.add_argument("--device", type=device_arg, default=0,
                        help="camera number, or (OpenCV) a video file or stream URL")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between classified frames")
    parser.add_argument("--variant", default=None, help="model variant in the bundle (default: the bundle's default_variant)")
    parser.add_argument("--save-last", default=None, help="write the last classified frame to this JPEG path")
    parser.add_argument(
        "--frames", type=int, default=0, help="stop after this many frames (0: run until Ctrl-C)"
    )
    parser.add_argument("--show-unassessed", action="store_true", help=UNASSESSED_HELP)


def format_frame(index: int, answer: Answer, show_unassessed: bool = False) -> str:
    """The headline, then the top three classes: at once for an assessed frame; for the others only
    when asked, after the statement that they are not an assessment and the warnings they carry."""
    line = f"frame {index}: {answer.headline()}"
    if not (answer.assessed or show_unassessed):
        return line
    top = "  ".join(f"{p.code} {p.probability:.1%}" for p in answer.predictions[:TOP_N])
    return f"{line} | {top}" if answer.assessed else f"{line} | {answer.unassessed_statement()} {top}"


def run(args: argparse.Namespace) -> int:
    classifier = Classifier(args.bundle, variant=args.variant)
    # The still configuration: a frame every --interval seconds, in Picamera2's best quality.
    camera = open_camera(args.camera, args.device, still=True)
    print(f"{camera.description}. {DISCLAIMER}", file=sys.stderr)
    try:
        index = 0
        while args.frames == 0 or index < args.frames:
            if index:
                time.sleep(args.interval)
            rgb = camera.read()
            answer = classifier.classify_array(classifier.preprocess(rgb))
            print(format_frame(index, answer, args.show_unassessed), flush=True)
            if args.save_last:
                save_frame(args.save_last, rgb)
            index += 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way to stop an endless capture
    finally:
        camera.close()
    return 0


def save_frame(path: str, rgb: np.ndarray) -> None:
    try:
        Image.fromarray(rgb).save(path, format="JPEG", quality=90)
    except (OSError, ValueError) as err:
        raise CameraError(f"cannot write {path}: {err}") from None
