"""Build a bundle from an untrained tiny MobileNet in seconds, for tests that need a bundle's shape,
not a trained model's answers (API, CLI, Classifier contract, browser flows).

Example usage:
    python -m tests.random_bundle OUT_DIR [--variants float32,int8]

The export path is the real one (SavedModel -> TFLiteConverter, the manifest writer); only the
training is skipped. Its answers are meaningless, so no test may assert accuracy on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

IMAGE_SIZE, ALPHA, SEED = 96, 0.25, 5


def build(out: Path, variants: list[str]) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from export import build as bundle_build
    from training.config import NAMED
    from training.model import build_model

    keras.utils.set_random_seed(SEED)
    config = NAMED["demo"].__class__(alpha=ALPHA, image_size=IMAGE_SIZE, weights="none", seed=SEED)
    model = build_model(config)
    rng = np.random.default_rng(SEED)
    calibration = rng.integers(0, 256, (16, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    out.mkdir(parents=True, exist_ok=True)
    entries = bundle_build.convert_all(model, variants, calibration, out, log=lambda *_: None)
    bundle_build.manifest_for("random-weights", IMAGE_SIZE, entries, {}).write(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.random_bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variants", default="float32,float16,dynamic_int8,int8")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    build(args.out, [v for v in args.variants.split(",") if v])
    print(f"random bundle: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
