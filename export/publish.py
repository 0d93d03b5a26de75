"""Publish an exported, evaluated bundle as a shipped model: models/NAME/ with its model card.

Example usage:
    python -m export.publish runs/ham10000_cpu_v1 models/ham10000 \\
        --variants float32,float16,int8 --isic results/isic2018/metrics.json \\
        --ham-test results/ham-test/metrics.json --training-log training.log

Copies the chosen variants of RUN/bundle (hashes checked first) with their honest-answer files,
writes the manifest with the figures of `python -m bench external` on the ISIC 2018 Task 3 test
set and on the run's HAM10000 test split under source_run.evaluations, and writes MODEL_CARD.md
and LICENSE.md from those same figures, so the card and the manifest cannot disagree. Needs no
TensorFlow. The folder appears whole or not at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import tempfile
from pathlib import Path

from edge.bundle import read_verified_file
from edge.errors import UsageError, run_cli
from edge.manifest import Manifest
from export import model_card

EVALUATIONS = {"isic": "isic2018_task3_test", "ham_test": "ham10000_test_split"}
DARKER_SKIN = "isic2018_task3_test_darker_skin"


class PublishError(UsageError):
    """The bundle, the variants or the evaluations cannot be published; the message says which."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="an exported run folder, runs/NAME (its bundle/ is published)")
    parser.add_argument("out", type=Path, help="the shipped model's folder, models/NAME")
    parser.add_argument("--variants", default=None, help="comma-separated variants to ship (default: all)")
    parser.add_argument("--isic", type=Path, required=True,
                        help="metrics.json of `python -m bench external` on the ISIC 2018 Task 3 test set")
    parser.add_argument("--ham-test", type=Path, required=True,
                        help="metrics.json of `python -m bench external` on the run's HAM10000 test split")
    parser.add_argument("--darker-skin", type=Path, default=None,
                        help="metrics.json of `python -m bench external --transform darker-skin` on the ISIC 2018 "
                        "test set (the default variant at least), for the card's skin-type limit")
    parser.add_argument("--training-log", type=Path, default=None,
                        help="what `python -m training` printed, for the phases' wall time and memory")
    return parser.parse_args(argv)


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PublishError(f"cannot read {path}: {err}") from None


def training_phases(log: Path | None) -> dict[str, dict[str, float]]:
    """{"decode": {"seconds": s, "peak_rss_mb": m}, ...} from the lines training/phases.py prints."""
    if log is None:
        return {}
    found = re.findall(r"^phase (\w+): ([\d.]+) s(?:, peak RSS ([\d,]+) MB)?", log.read_text(), flags=re.MULTILINE)
    return {name: {"seconds": float(s), "peak_rss_mb": float(mb.replace(",", "")) if mb else None}
            for name, s, mb in found}


def _chosen(manifest: Manifest, text: str | None) -> list[str]:
    names = [v.strip() for v in text.split(",")] if text else list(manifest.variants)
    unknown = [v for v in names if v not in manifest.variants]
    if unknown:
        raise PublishError(f"the bundle has no variant(s) {', '.join(unknown)}; it has {', '.join(manifest.variants)}")
    if manifest.default_variant not in names:
        raise PublishError(f"the default variant {manifest.default_variant} must be shipped; add it to --variants")
    return names


def _files(manifest: Manifest, names: list[str]) -> dict[str, str]:
    """File name -> sha256 of everything the chosen variants need."""
    files = {manifest.honesty.file: manifest.honesty.sha256}
    for name in names:
        variant = manifest.variants[name]
        files[variant.file] = variant.sha256
        if variant.honesty:
            files[variant.honesty["file"]] = variant.honesty["sha256"]
    return files


def _figures(key: str, figures: dict, needed: list[str], transform: str) -> dict:
    if figures.get("transform", "none") != transform:
        raise PublishError(f"the {key} evaluation was scored with --transform {figures.get('transform', 'none')}; "
                           f"it must be {transform}")
    missing = [n for n in needed if n not in figures.get("variants", {})]
    if missing:
        raise PublishError(f"the {key} evaluation has no figures for {', '.join(missing)}: run python -m bench "
                           "external on the bundle with " + ("every shipped variant" if len(needed) > 1 else needed[0]))
    return {"data": figures["data"], "images": figures["images"],
            "variants": {n: model_card.summary(r) for n, r in figures["variants"].items()}}


def evaluations(isic: dict, ham_test: dict, names: list[str], default: str, darker: dict | None = None
                ) -> dict[str, dict]:
    """Each evaluation's figures per variant (every evaluated variant, shipped or not); the darker-skin
    one, when given, needs the DEFAULT variant only."""
    found = {EVALUATIONS[key]: _figures(key.replace("_", "-"), figures, names, "none")
             for key, figures in (("isic", isic), ("ham_test", ham_test))}
    if darker is not None:
        found[DARKER_SKIN] = _figures("darker-skin", darker, [default], "darker-skin")
    return found


def publish(run: Path, out: Path, names: list[str] | None, isic: dict, ham_test: dict, phases: dict,
            darker: dict | None = None) -> Manifest:
    """Write OUT (replacing it whole) and return the published manifest.

    Raises:
        BundleError: a file of the bundle is missing or changed. PublishError: see its messages.
    """
    bundle = run / "bundle"
    manifest = Manifest.load(bundle)
    names = _chosen(manifest, ",".join(names) if names else None)
    source = {**manifest.source_run, "evaluations": evaluations(isic, ham_test, names, manifest.default_variant, darker),
              "training_phases": phases}
    shipped = {n: v for n, v in manifest.variants.items() if n in names}  # in the bundle's order
    published = dataclasses.replace(manifest, variants=shipped, source_run=source)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, sha256 in _files(manifest, names).items():
            (staging / name).write_bytes(read_verified_file(bundle, name, sha256))
        published.write(staging)
        (staging / "MODEL_CARD.md").write_text(model_card.render(published, out.name))
        (staging / "LICENSE.md").write_text(model_card.licence(manifest))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return published


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.run / "bundle").is_dir():
        raise PublishError(f"{args.run} has no bundle/: export it first (python -m export {args.run})")
    names = args.variants.split(",") if args.variants else None
    published = publish(args.run, args.out, names, _json(args.isic), _json(args.ham_test),
                        training_phases(args.training_log), _json(args.darker_skin) if args.darker_skin else None)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"published {args.out}: {', '.join(published.variants)} (default {published.default_variant}), "
          f"{size / 2**20:.1f} MiB with MODEL_CARD.md and LICENSE.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m export.publish"))
