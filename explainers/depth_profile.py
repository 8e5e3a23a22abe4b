"""Where along the network's depth the attribution settles on the drawn region.

Why: a sweep over every layer of a real backbone gives 150+ maps per method, too many to compare by eye.
One number per map, the share of its positive attribution that falls inside the drawn region, turns
them into a curve over depth per method ("where does the decision form?"). A map spread evenly over
the image scores the region's share of the image (`chance_share`), so the curve is read against it.
`profile` also shrinks each map to a small picture's size once, so a page can show all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.diagnostics import is_flat
from explainers.errors import ExplainerError


def region_share(heatmap, region) -> float:
    """Σ over the region of max(map, 0) ÷ Σ over the image of max(map, 0); NaN when the map has no
    positive value (nothing to share). Non-finite values count as 0."""
    values = np.asarray(heatmap, dtype=np.float64)
    mask = np.asarray(region, dtype=bool)
    if values.shape != mask.shape:
        raise ExplainerError(f"The region ({mask.shape[0]}×{mask.shape[1]}) must have the map's size "
                             f"({values.shape[0]}×{values.shape[1]}).")
    positive = np.where(np.isfinite(values), np.maximum(values, 0.0), 0.0)
    total = float(positive.sum())
    if total <= 0.0:
        return float("nan")
    return float(positive[mask].sum() / total)


def chance_share(region) -> float:
    """The share a map spread evenly over the image gives the region: its fraction of the pixels."""
    mask = np.asarray(region, dtype=bool)
    return float(mask.mean()) if mask.size else float("nan")


def shrink(heatmap, size: int) -> np.ndarray:
    """The map with its longest side at most `size`, each small cell the mean of the block it covers
    (no cell dropped, as nearest sampling would); float32, NaN kept where the block holds one."""
    values = np.asarray(heatmap, dtype=np.float32)
    h, w = values.shape
    factor = max(1, int(np.ceil(max(h, w) / max(1, size))))
    if factor == 1:
        return values.copy()
    rows, cols = -(-h // factor), -(-w // factor)
    if np.isfinite(values).all():  # the usual case: block sums over the edges, divided by each block's size
        row_starts, col_starts = np.arange(0, h, factor), np.arange(0, w, factor)
        sums = np.add.reduceat(np.add.reduceat(values, row_starts, axis=0), col_starts, axis=1)
        sizes = np.outer(np.diff(row_starts, append=h), np.diff(col_starts, append=w))
        return (sums / sizes).astype(np.float32)
    padded = np.full((rows * factor, cols * factor), np.nan, dtype=np.float32)
    padded[:h, :w] = values
    blocks = padded.reshape(rows, factor, cols, factor)
    counts = np.isfinite(blocks).sum(axis=(1, 3))
    sums = np.nansum(blocks, axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)


@dataclass(frozen=True)
class DepthProfile:
    """A layer sweep summarised for display: layers in forward order; per method the region share of
    each layer's map (NaN: no positive attribution), whether the map is flat (one value everywhere: no
    location), and the map shrunk to `size` (None when flat)."""

    layers: tuple[str, ...]
    methods: tuple[str, ...]
    shares: dict[str, np.ndarray]
    flat: dict[str, tuple[bool, ...]]
    small: dict[str, dict[str, np.ndarray | None]]
    chance: float
    seconds: float


def profile(by_layer: Mapping[str, Mapping[str, Any]], region, size: int = 112,
            methods: Sequence[str] | None = None) -> DepthProfile:
    """`layer_sweep`'s result (layer → method → Explanation) as a `DepthProfile` for `region`."""
    layers = tuple(by_layer)
    if methods is None:
        methods = tuple(dict.fromkeys(m for result in by_layer.values() for m in result))
    shares: dict[str, np.ndarray] = {}
    flat: dict[str, tuple[bool, ...]] = {}
    small: dict[str, dict[str, np.ndarray | None]] = {}
    seconds = 0.0
    for method in methods:
        values, flags, pictures = [], [], {}
        for layer in layers:
            explanation = by_layer[layer].get(method)
            if explanation is None:
                values.append(float("nan"))
                flags.append(False)
                pictures[layer] = None
                continue
            seconds = max(seconds, float(getattr(explanation, "seconds", 0.0) or 0.0))
            heatmap = np.asarray(explanation.heatmap)
            values.append(region_share(heatmap, region))
            flags.append(is_flat(heatmap))
            pictures[layer] = None if flags[-1] else shrink(heatmap, size)
        shares[method] = np.asarray(values, dtype=np.float64)
        flat[method] = tuple(flags)
        small[method] = pictures
    return DepthProfile(layers=layers, methods=tuple(methods), shares=shares, flat=flat, small=small,
                        chance=chance_share(region), seconds=seconds)
