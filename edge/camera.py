"""Example usage:
    python -m edge camera runs/demo/bundle --device 0 --interval 1 --save-last /tmp/last.jpg

Classify frames from a camera (or a video file or stream URL) every --interval seconds and print
the top three classes per frame. OpenCV is imported only here, only when the camera is used.
"""

from __future__ import annotations

import argparse
import sys
import time

from edge.classifier import Classifier
from edge.errors import CameraError
from edge.honesty import Answer
from edge.labels import DISCLAIMER


def device_arg(text: str) -> int | str:
    """A camera index such as 0, or a video file / stream URL that OpenCV opens instead."""
    return int(text) if text.isdigit() else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle folder (runs/NAME/bundle)")
    parser.add_argument("--device", type=device_arg, default=0, help="camera index, video file or URL")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between classified frames")
    parser.add_argument("--variant", default=None, help="model variant in the bundle (default: the bundle's default_variant)")
    parser.add_argument("--save-last", default=None, help="write the last classified frame to this JPEG path")
    parser.add_argument(
        "--frames", type=int, default=0, help="stop after this many frames (0: run until Ctrl-C)"
    )


def format_frame(index: int, answer: Answer) -> str:
    """The status first, then the top three classes (shown for transparency whatever the status)."""
    top = "  ".join(f"{p.code} {p.probability:.1%}" for p in answer.predictions[:3])
    return f"frame {index}: {answer.headline()} | {top}"


def run(args: argparse.Namespace) -> int:
    import cv2  # lazily: only the live camera needs OpenCV

    classifier = Classifier(args.bundle, variant=args.variant)
    capture = cv2.VideoCapture(args.device)
    if not capture.isOpened():
        raise CameraError(f"cannot open camera {args.device}")
    # A small buffer makes a read after a pause return a current frame, where the backend allows.
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    print(DISCLAIMER, file=sys.stderr)
    try:
        index = 0
        while args.frames == 0 or index < args.frames:
            if index:
                time.sleep(args.interval)
            ok, frame = capture.read()
            if not ok:
                raise CameraError(f"camera {args.device} returned no frame")
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # OpenCV frames are BGR; the model wants RGB
            print(format_frame(index, classifier.classify(rgb)), flush=True)
            if args.save_last:
                save_frame(cv2, args.save_last, frame)
            index += 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way to stop an endless capture
    finally:
        capture.release()
    return 0


def save_frame(cv2, path: str, frame) -> None:
    try:
        written = cv2.imwrite(path, frame)
    except cv2.error as err:
        raise CameraError(f"cannot write {path}: {err}") from None
    if not written:
        raise CameraError(f"cannot write {path}")
