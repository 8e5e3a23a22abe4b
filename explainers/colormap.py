"""The one colour map of attribution maps, shared by the dashboard and the batch previews.

Why in the library: the batch CLI writes PNG previews and may not import the dashboard, and a preview
that colours a map differently from the page misleads whoever compares them. The stops are Plotly's
"Turbo" scale (the page's Plotly figures name it directly), evenly spaced over [0, 1] and interpolated
linearly in RGB as Plotly does; `lookup_table()` samples it at 256 points.
"""

from __future__ import annotations

import functools

import numpy as np

NAME = "Turbo"  # the Plotly name of the same scale, for the page's figures
TURBO = ("#30123b", "#4145ab", "#4675ed", "#39a2fc", "#1bcfd4", "#24eca6", "#61fc6c", "#a4fc3b", "#d1e834",
         "#f3c63a", "#fe9b2d", "#f36315", "#d93806", "#b11901", "#7a0402")
OPACITY = 0.55  # maps are drawn over the image with this opacity


@functools.cache
def lookup_table() -> np.ndarray:
    """256 RGB uint8 entries of the scale for values 0 … 1 (computed once, read-only)."""
    stops = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in TURBO], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(TURBO))
    values = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(values, positions, stops[:, k]) for k in range(3)], axis=-1)
    table = np.clip(table + 0.5, 0, 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def _index(heatmap: np.ndarray) -> np.ndarray:
    """H×W values in [0, 1] (NaN as 0) → H×W rows of the lookup table."""
    values = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """H×W values in [0, 1] (NaN as 0) → H×W×3 uint8 colours."""
    return lookup_table()[_index(heatmap)]


def heat_over_image(image: np.ndarray, heatmap: np.ndarray, opacity: float = OPACITY) -> np.ndarray:
    """The image with the map over it, as the page shows it (uint8 H×W×3). The colours are weighted once per
    table row, not per pixel: a 512² map costs ~4 ms instead of ~12 ms, three times per stroke on the page."""
    tint = lookup_table().astype(np.float32) * opacity + 0.5  # + 0.5: rounded by the cast below
    out = np.asarray(image, dtype=np.float32)[..., :3] * (1 - opacity)
    out += tint[_index(heatmap)]
    return np.clip(out, 0, 255, out=out).astype(np.uint8)
