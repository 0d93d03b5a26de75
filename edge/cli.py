"""Example usage:
    python -m edge classify runs/demo/bundle photo.jpg more_photos/ --top-k 3
    python -m edge classify runs/demo/bundle photo.jpg --variant float32 --json
    python -m edge camera runs/demo/bundle --device 0 --interval 1 --frames 10

LesionLite's edge command line: classify photos or watch a camera (benchmarks: python -m bench).
A triage and teaching aid, never a diagnosis.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge import camera
from edge.classifier import Classifier
from edge.errors import ImageError, run_cli
from edge.labels import DISCLAIMER

# Files a folder argument contributes; anything else in the folder is skipped with a note.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, and keeps the docstrings' example lines as written."""


def build_parser() -> argparse.ArgumentParser:
    formatter = HelpFormatter
    parser = argparse.ArgumentParser(prog="python -m edge", description=__doc__, formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser(
        "classify", help="classify image files or folders", description=__doc__, formatter_class=formatter
    )
    classify.add_argument("bundle", type=Path, help="bundle folder (runs/NAME/bundle)")
    classify.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    classify.add_argument("--variant", default=None, help="model variant in the bundle (default: the bundle's default_variant)")
    classify.add_argument("--top-k", type=positive_int, default=7, help="classes shown per image")
    classify.add_argument("--json", action="store_true", help="print JSON instead of tables")
    classify.add_argument("--threads", type=positive_int, default=1, help="LiteRT interpreter threads")
    classify.set_defaults(run=run_classify)

    cam = commands.add_parser(
        "camera", help="classify frames from a camera", description=camera.__doc__, formatter_class=formatter
    )
    camera.add_arguments(cam)
    cam.set_defaults(run=camera.run)
    return parser


def image_files(paths: list[Path]) -> list[Path]:
    """Named files as given; folders expanded to the image files directly inside them, sorted."""
    files = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for child in sorted(path.iterdir()):
            if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                files.append(child)
            else:
                print(f"note: skipping {child}: not an image file", file=sys.stderr)
    return files


def run_classify(args: argparse.Namespace) -> int:
    classifier = Classifier(args.bundle, variant=args.variant, num_threads=args.threads)
    results = []
    for path in image_files(args.images):
        try:
            answer = classifier.classify(path)
        except ImageError as err:
            print(f"error: {err}", file=sys.stderr)
            continue
        result = answer.to_dict()
        results.append({"image": str(path), "headline": answer.headline(), **result,
                        "predictions": result["predictions"][: args.top_k]})
    if not results:
        raise ImageError("no image could be classified")
    if args.json:
        print(json.dumps(results, indent=2))
        print(DISCLAIMER, file=sys.stderr)  # stdout stays valid JSON; the warning still shows
    else:
        print(format_tables(results))
    return 0


def format_tables(results: list[dict]) -> str:
    lines = []
    for result in results:
        lines.append(result["image"])
        lines.append("  " + result["headline"])
        for p in result["predictions"]:
            lines.append(f"  {p['code']:<6} {p['name']:<48} {p['probability']:>6.1%}")
        lines.append("")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog="python -m edge")
