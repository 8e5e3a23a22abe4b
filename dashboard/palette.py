"""Class colours that stay tellable apart for large heads (ADE20K has 150 classes, Cityscapes 19).

Why not a cycled qualitative palette: past its 24 colours it repeats, so two classes would share a
colour. Here colours are picked greedily by farthest-point sampling in CIELAB (a space where distance
roughly follows perceived difference) over a fixed grid of sRGB colours, starting from Plotly's Dark24
for the first classes; very dark and very light colours are left out so masks stay visible on images.
Deterministic: the same N always gives the same colours, and the first k of N are those of k.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import plotly.colors

MAX_CLASSES = 256


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in 0-255 → CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    matrix = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ matrix.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@lru_cache(maxsize=1)
def _sequence() -> tuple[tuple[int, int, int], ...]:
    levels = np.linspace(0, 255, 18)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    keep = (lab[:, 0] > 25) & (lab[:, 0] < 92)
    grid, lab = np.round(grid[keep]).astype(int), lab[keep]
    seeds = [plotly.colors.hex_to_rgb(c) for c in plotly.colors.qualitative.Dark24]
    chosen = [tuple(int(v) for v in c) for c in seeds]
    nearest = np.min(np.linalg.norm(lab[:, None, :] - srgb_to_lab(np.array(chosen))[None], axis=-1), axis=1)
    while len(chosen) < MAX_CLASSES:
        k = int(np.argmax(nearest))
        chosen.append(tuple(int(v) for v in grid[k]))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[k], axis=-1))
    return tuple(chosen)


def distinct_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """`num_classes` RGB colours (0-255), well apart in CIELAB; more than 256 repeat."""
    sequence = _sequence()
    return [sequence[k % len(sequence)] for k in range(num_classes)]
