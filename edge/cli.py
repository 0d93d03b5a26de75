"""Example usage:
    python -m edge classify photo.jpg more_photos/            # the shipped model (models/)
    python -m edge classify runs/demo/bundle photo.jpg more_photos/ --top-k 3
    python -m edge classify runs/demo/bundle photo.jpg --variant float32 --json
    python -m edge classify runs/demo/bundle photo.jpg --show-unassessed
    python -m edge camera runs/demo/bundle --device 0 --interval 1 --frames 10
    python -m edge camera --device 0                          # the shipped model

LesionLite's edge command line: classify photos or watch a camera (benchmarks: python -m bench).
A triage and teaching aid, never a diagnosis. Each photo's answer starts with what happened
("Most similar to ...", "LesionLite cannot assess this photo", "Retake the photo") and the reasons;
the model's output follows for an assessed photo, and for the others only with --show-unassessed.
--json prints the API's answer (the output of an unassessed photo under "unassessed_model_output").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge import camera
from edge.answer import UNASSESSED, Answer
from edge.bundle import SHIPPED_MODEL
from edge.classifier import Classifier
from edge.errors import ImageError, run_cli
from edge.labels import DISCLAIMER

# Files a folder argument contributes; anything else in the folder is skipped with a note.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
NOT_SHOWN = "(The model's output is not an assessment here, so it is not shown: --show-unassessed prints it.)"


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
    classify.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                          help=f"a bundle folder (runs/NAME/bundle; without one, the shipped model {SHIPPED_MODEL.name}), "
                               "then image files or folders of images")
    classify.add_argument("--variant", default=None, help="model variant in the bundle (default: the bundle's default_variant)")
    classify.add_argument("--top-k", type=positive_int, default=7, help="classes shown per image")
    classify.add_argument("--json", action="store_true", help="print JSON instead of tables")
    classify.add_argument("--show-unassessed", action="store_true", help=camera.UNASSESSED_HELP)
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


def bundle_and_images(paths: list[Path]) -> tuple[Path, list[Path]]:
    """The first path is the bundle if it is a folder with a manifest, or, with more paths after it,
    anything but an image file (a missing bundle folder is then reported as one); otherwise every path
    is an image and the bundle is the shipped model."""
    first, rest = paths[0], paths[1:]
    if (first / "manifest.json").is_file():
        return first, rest
    if rest and not first.is_dir() and first.suffix.lower() not in IMAGE_SUFFIXES:
        return first, rest
    return SHIPPED_MODEL, paths


def run_classify(args: argparse.Namespace) -> int:
    bundle, images = bundle_and_images(args.paths)
    if not images:
        raise ImageError(f"no image given: python -m edge classify [BUNDLE] IMAGE... ({bundle} is the bundle)")
    classifier = Classifier(bundle, variant=args.variant, num_threads=args.threads)
    results = []
    for path in image_files(images):
        try:
            results.append((path, classifier.classify(path)))
        except ImageError as err:
            print(f"error: {err}", file=sys.stderr)
    if not results:
        raise ImageError("no image could be classified")
    if args.json:
        print(json.dumps([json_entry(path, answer, args.top_k) for path, answer in results], indent=2))
        print(DISCLAIMER, file=sys.stderr)  # stdout stays valid JSON; the warning still shows
    else:
        print(format_tables(results, args.top_k, args.show_unassessed))
    return 0


def json_entry(path: Path, answer: Answer, top_k: int) -> dict:
    """The API's answer for one photo, with its file, its headline and the top_k classes."""
    entry = {"image": str(path), "headline": answer.headline(), **answer.to_dict()}
    output = next(key for key in entry if key in ("predictions", UNASSESSED))
    entry[output] = entry[output][:top_k]
    return entry


def answer_lines(answer: Answer, top_k: int, show_unassessed: bool) -> list[str]:
    """The headline, then the top_k classes: at once for an assessed photo; for the others only when
    asked, after the statement that they are not an assessment and the warnings they carry."""
    lines = [answer.headline()]
    if not answer.assessed:
        if not show_unassessed:
            return lines + [NOT_SHOWN]
        lines.append(answer.unassessed_statement())
    lines += [f"{p.code:<6} {p.name:<48} {p.probability:>6.1%}" for p in answer.predictions[:top_k]]
    return lines


def format_tables(results: list[tuple[Path, Answer]], top_k: int, show_unassessed: bool) -> str:
    lines = []
    for path, answer in results:
        lines.append(str(path))
        lines += ["  " + line for line in answer_lines(answer, top_k, show_unassessed)]
        lines.append("")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog="python -m edge")
