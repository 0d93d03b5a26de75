"""Build a bundle from an untrained tiny MobileNet in about a minute, for tests that need a
bundle's shape, not a trained model's answers (API, CLI, Classifier contract, browser flows).

Example usage:
    python -m tests.random_bundle DATA_DIR OUT_RUN_DIR
    python -m tests.random_bundle DATA_DIR OUT_RUN_DIR --prefer mel

Everything but the training is the real pipeline (BatchNorm's statistics are adapted to the
images so the random features are not all zero): the run folder, the split, the evaluation
(which fits the honest-answer checks on DATA_DIR's images) and the export of all four variants
with their verification. The model's answers are meaningless, so the export's accuracy and
agreement gates are opened, and no test may assert accuracy on this bundle.

--prefer CODE makes the model answer that class with PREFERRED_PROBABILITY for every photo, so
the tests can see what each front end shows for a known answer (a melanoma at the top).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from edge.labels import CODES
from tests.reproducible import make_deterministic

IMAGE_SIZE, ALPHA, SEED = 96, 0.25, 5
# The preferred class's calibrated probability: under the 0.5 low-confidence limit, so an answer
# carries every warning about the model's output (the others share the rest equally).
PREFERRED_PROBABILITY = 0.45


def adapt_batch_norm(model, pixels, passes: int = 3) -> None:
    """Forward passes in training mode: BatchNorm's moving statistics follow the images (no
    weight is trained). Without it an untrained MobileNet's pooled features are all about 1e-15."""
    import numpy as np

    for _ in range(passes):
        for start in range(0, len(pixels), 32):
            model(np.asarray(pixels[start:start + 32], np.float32), training=True)


def prefer(run, code: str, probability: float) -> None:
    """Rewrite the run's model to give CODE this probability after calibration, whatever the photo:
    a zero last-layer kernel and a bias of T * log(p), so softmax((f W + b) / T) = p. Done after the
    evaluation, so the honest-answer settings stay the untrained model's; the features, and so the
    out-of-distribution check, still depend on the photo, as the photo-quality check does.

    Raises:
        ValueError: the bundle would not refer a melanoma this probable (threshold above it).
    """
    import numpy as np

    from edge.labels import CODES, MELANOMA

    params, _ = run.honesty()
    if code == MELANOMA and params["melanoma"]["threshold"] > probability:
        raise ValueError(f"melanoma threshold {params['melanoma']['threshold']} is above {probability}")
    wanted = np.full(len(CODES), (1 - probability) / (len(CODES) - 1))
    wanted[CODES.index(code)] = probability
    model = run.load_model()
    layer = model.get_layer("probabilities")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), (params["temperature"] * np.log(wanted)).astype(bias.dtype)])
    model.save(run.model)


def build(data: Path, out: Path, preferred: str | None = None) -> Path:
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
    if preferred:
        prefer(run, preferred, PREFERRED_PROBABILITY)
    # Every gate open (accuracy drop, agreement, calibration): an untrained model's answers mean nothing.
    options = argparse.Namespace(calibration_images=16, max_drop=100.0, min_agreement=0.0, max_ece_rise=1.0, data=None,
                                 qat_epochs=0, qat_learning_rate=1e-5)
    export_run(run.path, list(VARIANTS), options)
    return run.bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.random_bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a HAM10000-layout folder (the tests' small synthetic set)")
    parser.add_argument("out", type=Path, help="run folder to create; the bundle lands in OUT/bundle")
    parser.add_argument("--prefer", choices=CODES, default=None,
                        help=f"a class the model answers with probability {PREFERRED_PROBABILITY} for every photo")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"random bundle: {build(args.data, args.out, args.prefer)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
