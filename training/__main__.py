"""Train MobileNet on a HAM10000-layout folder and evaluate it on a lesion-disjoint test split.

Example usage:
    python -m training --data demo-data --out runs/demo --config demo
    python -m training --data ~/HAM10000 --out runs/ham --config ham10000 --weights imagenet

Killing a run and starting the same command again resumes from the last finished epoch;
--restart clears the run folder and starts over (e.g. with other weights or another config).
On several machines: the same command on each, with TF_CONFIG set and --strategy multiworker.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

from edge.errors import run_cli
from training.config import NAMED, ConfigError, TrainConfig

# The common knobs get their own flags; any other config key goes through --set KEY=VALUE.
SHORTCUTS = ("epochs", "alpha", "image_size", "batch_size", "weights", "imbalance", "seed", "dropout")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="HAM10000 folder (Kaggle or ISIC 2018 layout)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write, e.g. runs/NAME")
    parser.add_argument("--config", default="ham10000", choices=sorted(NAMED), help="named configuration")
    parser.add_argument("--split", type=Path, help="reuse this split.csv instead of making one")
    parser.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                        help="mirrored: tf.distribute.MirroredStrategy over all GPUs; multiworker: "
                        "MultiWorkerMirroredStrategy over the machines TF_CONFIG names")
    parser.add_argument("--restart", action="store_true",
                        help="clear the run folder's training state and results, then train from the start")
    parser.add_argument("--allow-image-level-split", action="store_true",
                        help="train an ISIC 2018 folder without its lesion groupings file: the split is then by "
                        "image and may leak, and the run records that")
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="split the CPU into N logical devices (to exercise --strategy mirrored without GPUs)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/images"),
                        help="where decoded images are cached between runs")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (fine_tune_epochs)")
    parser.add_argument("--alpha", type=float, help="MobileNet width multiplier")
    parser.add_argument("--image-size", type=int, help="input side in pixels")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--weights", help="imagenet, none, or PATH.h5")
    parser.add_argument("--imbalance", help="class_weight, oversample or none")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other config key, e.g. --set head_epochs=2 (repeatable); keys: "
                        + ", ".join(f.name for f in fields(TrainConfig)))
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """Config overrides from the shortcut flags and --set, as strings."""
    values = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = value.strip()
    for flag in SHORTCUTS:
        value = getattr(args, flag)
        if value is not None:
            values["fine_tune_epochs" if flag == "epochs" else flag] = str(value)
    return values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.config import resolve
    from training.data import check_lesion_ids, load_records
    from training.distribute import role_of

    config = resolve(args.config, overrides(args))
    if args.cpu_devices < 1:
        raise ConfigError(f"--cpu-devices must be at least 1, got {args.cpu_devices}")
    role = role_of(args.strategy)  # a bad TF_CONFIG answers before TensorFlow loads, and so do
    records = load_records(args.data)  # bad data
    check_lesion_ids(args.data, args.allow_image_level_split)  # and a leaky layout
    from training.train import train

    train(config, args.data, args.out, split_file=args.split, strategy_name=args.strategy,
          cpu_devices=args.cpu_devices, cache_dir=args.cache_dir, records=records, restart=args.restart,
          allow_image_level_split=args.allow_image_level_split)
    if role.chief:
        print(f"run folder: {args.out} (report: {args.out / 'report.md'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m training"))
