"""Example usage:
    python -m bench edge runs/demo/bundle --data demo-data --split runs/demo/split.csv --threads 1,2
    python -m bench serving runs/demo/bundle --variants int8 float32 --requests 200
    python -m bench training --data demo-data --config demo
    python -m bench browser runs/demo/bundle --variants int8 float32
    python -m bench camera runs/demo/bundle --device camera.avi --variants int8 float32
    python -m bench external models/ham10000 --data ~/ISIC2018_Task3_Test --out results/isic2018
    python -m bench hostile runs/demo/bundle --json runs/demo/bench/hostile.json

LesionLite's benchmarks: `edge` measures every variant of a bundle with the LiteRT interpreter,
`serving` load-tests the PWA server, `camera` the server camera's capture and preview, `training`
the training input pipeline, `browser` the on-device path (LiteRT.js in Chromium) against the
interpreter, `external` scores every variant on a labelled set (ISIC 2018 Task 3 layout) with the
challenge's metric, `hostile` the server's memory, throughput and threads under hostile clients.
`edge`, `serving`, `camera`, `external` and `hostile` run without TensorFlow (a Raspberry Pi);
`bench edge --data` and `bench external` also need pandas, scikit-learn and SciPy.
`python -m bench SUBCOMMAND --help` lists each one's options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import ArgumentParser, browser, camera, edge, external, hostile, keras_baseline, serving, training
from edge.errors import run_cli

PROG = "python -m bench"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, and keeps the docstrings' example lines as written."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{edge,serving,camera,training,browser,external,hostile}")
    for name, module, summary in (
        ("edge", edge, "benchmark every variant of a bundle with the LiteRT interpreter"),
        ("serving", serving, "load-test the PWA server with concurrent clients"),
        ("camera", camera, "the server camera: capture-to-answer latency, preview rate and CPU"),
        ("training", training, "benchmark the training input pipeline and one training step"),
        ("browser", browser, "on-device classification in Chromium (LiteRT.js) against the interpreter"),
        ("external", external, "score every variant on a labelled set (ISIC 2018 Task 3 layout)"),
        ("hostile", hostile, "the server under decompression bombs, slow clients and a hostile mix"),
    ):
        command = commands.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    # Not for people: `bench edge --keras-baseline` runs it as its own program (it imports Keras).
    baseline = commands.add_parser("keras-baseline", description=keras_baseline.__doc__, formatter_class=HelpFormatter)
    baseline.add_argument("job", type=Path, help="JOB.json written by `bench edge`")
    baseline.set_defaults(run=keras_baseline.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(run_cli(main, prog=PROG))
