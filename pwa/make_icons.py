"""Draw the PWA's icons with Pillow: pwa/static/icons/icon-192.png, icon-512.png, maskable-512.png.

Example usage:
    python -m pwa.make_icons

The PNGs are committed; rerun this only to change the design. The mark is a lesion-like spot
inside a viewfinder's corners. The maskable icon keeps it inside the central 80% "safe zone"
(a circle of radius 40%) that Android may crop to any shape.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parent / "static" / "icons"
TEAL = (11, 95, 91)
WHITE = (255, 255, 255)
SPOT = (120, 72, 46)
SPOT_CORE = (74, 40, 26)
SUPERSAMPLE = 4  # draw large, then downsize: Pillow's shapes have no anti-aliasing


def draw_mark(size: int, content_fraction: float, rounded: bool) -> Image.Image:
    """The icon at size x size; the mark spans content_fraction of the side, centred."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    radius = big // 5 if rounded else 0
    draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=radius, fill=TEAL)
    mark = big * content_fraction
    lo, hi = (big - mark) / 2, (big + mark) / 2
    corner, width = mark * 0.28, max(1, round(mark * 0.07))
    for x, y, dx, dy in ((lo, lo, 1, 1), (hi, lo, -1, 1), (lo, hi, 1, -1), (hi, hi, -1, -1)):
        draw.line([(x, y + dy * corner), (x, y), (x + dx * corner, y)], fill=WHITE, width=width, joint="curve")
    centre, spot = big / 2, mark * 0.26
    draw.ellipse((centre - spot * 1.1, centre - spot, centre + spot, centre + spot * 0.95), fill=SPOT)
    core = spot * 0.45
    draw.ellipse((centre - core, centre - core * 0.9, centre + core * 0.8, centre + core), fill=SPOT_CORE)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    draw_mark(192, 0.72, rounded=True).save(ICONS / "icon-192.png", optimize=True)
    draw_mark(512, 0.72, rounded=True).save(ICONS / "icon-512.png", optimize=True)
    # Full-bleed square background; the mark's corners stay inside the safe circle (0.52 * sqrt 2 < 0.8).
    draw_mark(512, 0.52, rounded=False).convert("RGB").save(ICONS / "maskable-512.png", optimize=True)
    for path in sorted(ICONS.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main()
