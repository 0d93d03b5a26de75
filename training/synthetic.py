"""Write a synthetic HAM10000-shaped dataset: same layout, same columns, lesion-like images.

Example usage:
    python -m training.synthetic demo-data --images 1400 --seed 7 [--workers 4]

The images are not medical images: they are drawn so that colour, border regularity, size
and texture depend on the class (the cues dermatologists use), with enough variation within a
class and overlap between classes that the task is learnable but not trivial. Several images
of one lesion are drawn from one lesion with a different pose, zoom and light, so a split by
image leaks exactly as it would on the real data.

The lesions are drawn in parallel, one process per core. Each lesion draws from its own random
stream, seeded by (seed, lesion number), so the same seed writes the same bytes whatever the
number of workers.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edge.labels import CODES

WIDTH, HEIGHT = 600, 450
PARTS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
# HAM10000's class counts (ARCHITECTURE.md lists the dataset facts), used as proportions.
HAM_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}
# Every class gets at least this share, so rare classes still have test images in a small set.
RARE_FLOOR = 0.07
# Share of lesions photographed more than once (HAM10000: 1,956 of 7,470).
MULTI_IMAGE_SHARE = 0.26
LOCALIZATIONS = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face",
                 "chest", "foot", "neck", "scalp", "hand", "ear", "genital", "acral", "unknown"]
DX_TYPES = {"mel": "histo", "bcc": "histo", "akiec": "histo", "df": "consensus", "vasc": "consensus",
            "bkl": "histo", "nv": "follow_up"}


@dataclass(frozen=True)
class LesionStyle:
    """How a class looks: base RGB colours, border irregularity, radius range and texture."""

    colours: tuple[tuple[int, int, int], ...]
    irregularity: float  # 0 = a perfect ellipse; 0.35 = ragged, asymmetric
    radius: tuple[int, int]
    texture: str


STYLES: dict[str, LesionStyle] = {
    "akiec": LesionStyle(((190, 95, 85), (205, 120, 105)), 0.22, (100, 165), "scale"),
    "bcc": LesionStyle(((215, 150, 150), (200, 135, 140)), 0.12, (80, 140), "vessels"),
    "bkl": LesionStyle(((150, 105, 60), (170, 125, 75)), 0.15, (100, 170), "crust"),
    "df": LesionStyle(((140, 90, 65), (155, 105, 80)), 0.05, (50, 85), "central_scar"),
    "mel": LesionStyle(((60, 35, 30), (95, 75, 100)), 0.34, (105, 180), "multicolour"),
    "nv": LesionStyle(((120, 75, 45), (105, 65, 40)), 0.05, (65, 125), "uniform"),
    "vasc": LesionStyle(((150, 30, 55), (110, 25, 70)), 0.08, (50, 105), "lobules"),
}


def class_counts(n_images: int) -> dict[str, int]:
    """Images per class: HAM10000's proportions with RARE_FLOOR for the rare classes."""
    total = sum(HAM_COUNTS.values())
    counts = {c: max(round(n_images * HAM_COUNTS[c] / total), round(n_images * RARE_FLOOR)) for c in CODES}
    counts["nv"] -= sum(counts.values()) - n_images
    if counts["nv"] < 1:
        raise ValueError(f"--images {n_images} is too small; use at least 100")
    return counts


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel row and column coordinates (float32: half the memory traffic of float64)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return yy, xx


def _normal(rng: np.random.Generator, scale: float, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)


def _skin(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    tone = (np.array([225, 180, 150]) * rng.uniform(0.75, 1.05) + rng.normal(0, 6, 3)).astype(np.float32)
    img = tone + _normal(rng, 4, (HEIGHT, WIDTH, 1))
    # dermatoscope vignetting: dark round edge
    r = np.hypot((xx - WIDTH / 2) / (WIDTH / 2), (yy - HEIGHT / 2) / (HEIGHT / 2))
    vignette = np.clip(1.15 - np.float32(rng.uniform(0.35, 0.6)) * r**2, 0.15, 1.0)
    return img * vignette[..., None]


def _lesion_mask(lesion: dict, pose: dict, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft mask of the lesion and the normalized radius (0 centre, 1 border)."""
    cx, cy = WIDTH / 2 + pose["dx"], HEIGHT / 2 + pose["dy"]
    f = np.float32
    angle = np.arctan2(yy - f(cy), xx - f(cx)) - f(pose["rotation"])
    dist = np.hypot(xx - f(cx), yy - f(cy))
    wobble = sum(f(a) * np.sin(f(k) * angle + f(p)) for k, a, p in lesion["harmonics"])
    stretch = 1 + f(lesion["elongation"]) * np.cos(2 * angle)
    border = f(lesion["radius"] * pose["zoom"]) * stretch * (1 + wobble)
    rnorm = dist / np.maximum(border, 1)
    mask = np.clip((1 - rnorm) * f(lesion["radius"] * pose["zoom"] / lesion["blur"]), 0, 1)
    return mask, rnorm


def _texture(code: str, lesion: dict, rnorm: np.ndarray, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Class-specific texture painted over the base lesion colour."""
    style = STYLES[code]
    second = (np.array(style.colours[1], dtype=float) * lesion["tone"]).astype(np.float32)
    speckle = _normal(rng, 1, rnorm.shape)
    if code == "mel":
        blobs = _smooth_noise(rng, 4) > 0.15
        grey_blue = (np.array([100, 110, 135]) * lesion["tone"]).astype(np.float32)
        base = np.where(blobs[..., None], second, base)
        base = np.where((_smooth_noise(rng, 6) > 0.5)[..., None], grey_blue, base)
    elif code == "df":
        base = np.where((rnorm < 0.45)[..., None], np.array([225, 205, 190], np.float32), base)
    elif code == "bcc":
        vessels = np.abs(np.sin(rnorm * 25 + _smooth_noise(rng, 3) * 6)) < 0.08
        base = np.where(vessels[..., None], np.array([170, 40, 50], np.float32), base)
    elif code == "akiec":
        flakes = speckle > 1.6
        base = np.where(flakes[..., None], np.array([235, 225, 215], np.float32), base)
    elif code == "bkl":
        cracks = np.abs(_smooth_noise(rng, 12)) < 0.06
        base = np.where(cracks[..., None], second * 0.6, base)
    elif code == "vasc":
        lobules = np.sin(rnorm * 14) > 0.6
        base = np.where(lobules[..., None], second, base)
    else:  # nv: a reticular network, slightly darker centre
        base = base * (1 - np.float32(0.15) * np.clip(1 - rnorm, 0, 1))[..., None]
    return base + speckle[..., None] * np.float32(6)


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] (bilinear-upsampled random grid)."""
    grid = rng.uniform(0, 255, (cells + 1, cells + 1)).astype(np.uint8)
    big = Image.fromarray(grid).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / np.float32(127.5) - 1


def _hairs(image: Image.Image, rng: np.random.Generator) -> None:
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(0, 9)):
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        angle, curve = rng.uniform(0, 2 * math.pi), rng.uniform(-0.02, 0.02)
        points = []
        for _ in range(int(rng.uniform(60, 220))):
            points.append((x, y))
            x, y, angle = x + 2 * math.cos(angle), y + 2 * math.sin(angle), angle + curve
        shade = int(rng.uniform(20, 70))
        draw.line(points, fill=(shade, shade - 10 if shade > 10 else 0, 0), width=int(rng.integers(1, 3)))


def new_lesion(code: str, rng: np.random.Generator) -> dict:
    """The fixed properties of one lesion; each photograph of it varies only the pose and light."""
    style = STYLES[code]
    harmonics = [(k, rng.uniform(0, style.irregularity) / math.sqrt(k), rng.uniform(0, 2 * math.pi))
                 for k in range(2, 8)]
    return {
        "colour": np.array(style.colours[0], dtype=float) * rng.uniform(0.8, 1.2, 3),
        "tone": rng.uniform(0.8, 1.15),
        "radius": rng.uniform(*style.radius),
        "harmonics": harmonics,
        "elongation": rng.uniform(0, 0.25),
        "blur": rng.uniform(4, 14) if code in ("akiec", "bkl") else rng.uniform(2, 6),
        "texture_seed": int(rng.integers(2**31)),
    }


def render(code: str, lesion: dict, rng: np.random.Generator) -> Image.Image:
    """One 600x450 photograph of a lesion, with a random pose, zoom, light and hairs."""
    yy, xx = _grid()
    pose = {"dx": rng.normal(0, 25), "dy": rng.normal(0, 20), "zoom": rng.uniform(0.85, 1.15),
            "rotation": rng.uniform(0, 2 * math.pi)}
    skin = _skin(rng, yy, xx)
    mask, rnorm = _lesion_mask(lesion, pose, yy, xx)
    texture_rng = np.random.default_rng(lesion["texture_seed"])
    colour = np.broadcast_to(lesion["colour"].astype(np.float32), skin.shape)
    lesion_img = _texture(code, lesion, rnorm, texture_rng, colour)
    img = skin + (lesion_img - skin) * mask[..., None]
    img *= np.float32(rng.uniform(0.9, 1.1))  # exposure
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    _hairs(image, rng)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))


def _images_per_lesion(rng: np.random.Generator) -> int:
    if rng.random() >= MULTI_IMAGE_SHARE:
        return 1
    return int(rng.choice([2, 3, 4, 5, 6], p=[0.6, 0.22, 0.1, 0.05, 0.03]))


@dataclass(frozen=True)
class LesionPlan:
    """One lesion to draw: its number (which seeds its random stream), class and image files."""

    number: int
    code: str
    files: tuple[str, ...]  # paths relative to the dataset folder


def plan(n_images: int, seed: int) -> tuple[list[LesionPlan], list[dict]]:
    """Every lesion and the metadata rows, drawn from the seed alone (cheap, one process)."""
    rng = np.random.default_rng(seed)
    plans: list[LesionPlan] = []
    rows: list[dict] = []
    lesion_no, image_no = 0, 24306  # HAM10000's ISIC ids start at ISIC_0024306
    for code, count in class_counts(n_images).items():
        made = 0
        while made < count:
            lesion_no += 1
            meta = {"age": float(rng.integers(1, 18) * 5), "sex": str(rng.choice(["male", "female"])),
                    "localization": str(rng.choice(LOCALIZATIONS))}
            files = []
            for _ in range(min(_images_per_lesion(rng), count - made)):
                image_id = f"ISIC_{image_no:07d}"
                files.append(f"{PARTS[len(rows) % 2]}/{image_id}.jpg")
                rows.append({"lesion_id": f"HAM_{lesion_no:07d}", "image_id": image_id, "dx": code,
                             "dx_type": DX_TYPES[code], **meta})
                image_no += 1
                made += 1
            plans.append(LesionPlan(lesion_no, code, tuple(files)))
    return plans, rows


def draw_lesion(out: Path, seed: int, lesion: LesionPlan) -> None:
    """Write every photograph of one lesion, from its own random stream (seed, lesion number)."""
    rng = np.random.default_rng([seed, lesion.number])
    properties = new_lesion(lesion.code, rng)
    for name in lesion.files:
        render(lesion.code, properties, rng).save(out / name, quality=90)


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def generate(out: Path, n_images: int, seed: int, workers: int | None = None) -> list[dict]:
    """Write OUT/HAM10000_metadata.csv and the JPEGs split over two part folders, as on Kaggle.

    Raises:
        ValueError: n_images is too small for every class to have an image.
    """
    plans, rows = plan(n_images, seed)
    for part in PARTS:
        (out / part).mkdir(parents=True, exist_ok=True)
    draw = functools.partial(draw_lesion, out, seed)
    workers = workers or default_workers()
    if workers == 1:
        for lesion in plans:
            draw(lesion)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(draw, plans, chunksize=8))
    _write_metadata(out / "HAM10000_metadata.csv", rows)
    return rows


def _write_metadata(path: Path, rows: list[dict]) -> None:
    fields = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.synthetic", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--images", type=int, default=1400, help="number of images (>= 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="processes drawing lesions (default: one per core); the output does not depend on it")
    args = parser.parse_args(argv)
    if args.images < 100:
        parser.error(f"--images must be at least 100, got {args.images}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if (args.out / "HAM10000_metadata.csv").exists():
        parser.error(f"{args.out} already holds a dataset; choose an empty folder")
    rows = generate(args.out, args.images, args.seed, args.workers)
    lesions = len({r["lesion_id"] for r in rows})
    counts = {c: sum(r["dx"] == c for r in rows) for c in CODES}
    print(f"wrote {len(rows)} images of {lesions} lesions to {args.out}: "
          + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
