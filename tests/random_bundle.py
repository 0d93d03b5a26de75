"""Build a bundle from an untrained tiny MobileNet in about a minute, for tests that need a
bundle's shape, not a trained model's answers (API, CLI, Classifier contract, browser flows).

Example usage:
    python -m tests.random_bundle DATA_DIR OUT_RUN_DIR

Everything but the training is the real pipeline (BatchNorm's statistics are adapted to the
images so the random features are not all zero): the run folder, the split, the evaluation
(which fits the honest-answer checks on DATA_DIR's images) and the export of all four variants
with their verification. The model's answers are meaningless, so the export's accuracy and
agreement gates are opened, and no test may assert accuracy on this bundle.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tests.reproducible import make_deterministic

IMAGE_SIZE, ALPHA, SEED = 96, 0.25, 5


def adapt_batch_norm(model, pixels, passes: int = 3) -> None:
    """Forward passes in training mode: BatchNorm's moving statistics follow the images (no
    weight is trained). Without it an untrained MobileNet's pooled features are all about 1e-15."""
    import numpy as np

    for _ in range(passes):
        for start in range(0, len(pixels), 32):
            model(np.asarray(pixels[start:start + 32], np.float32), training=True)


def build(data: Path, out: Path) -> Path:
    from export import VARIANTS
    from export.__main__ import export_run
    from training.config import TrainConfig
    from training.data import load_records
    from training.dataset import load_splits
    from training.evaluate import evaluate_run
    from training.model import build_model
    from training.run import RunDir

    make_deterministic(SEED)  # the same bundle on every clone of this machine
    config = TrainConfig(alpha=ALPHA, image_size=IMAGE_SIZE, weights="none", seed=SEED, nonlesion_images=20).validate()
    run = RunDir(out)
    run.start(config, data, cache_dir=None)
    model = build_model(config)
    splits = load_splits(load_records(data), config, run, None, None)
    adapt_batch_norm(model, splits.pixels["train"])
    model.save(run.model)
    evaluate_run(run, splits=splits)
    options = argparse.Namespace(calibration_images=16, max_drop=100.0, min_agreement=0.0, data=None)
    export_run(run.path, list(VARIANTS), options)
    return run.bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.random_bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a HAM10000-layout folder (the tests' small synthetic set)")
    parser.add_argument("out", type=Path, help="run folder to create; the bundle lands in OUT/bundle")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"random bundle: {build(args.data, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
