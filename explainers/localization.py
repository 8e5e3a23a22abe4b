"""How much of a map falls on ground truth: localisation scores wherever labels exist.

Why: the randomisation check says whether a map depends on the network; these say whether it points
at what is known to matter (the ground-truth region of the explained class, or the planted cue of
`models.planted_cue`). Relevance is the map's non-negative part (our maps are in [0, 1]). Formulas,
as docs/DESIGN.md states them (R = relevance, GT = ground-truth pixels, K = |GT|):

- relevance mass accuracy (Arras et al. 2022): Σ_{p ∈ GT} R_p / Σ_p R_p.
- relevance rank accuracy (Arras et al.): |top-K pixels by R ∩ GT| / K; pixels tied at the K-th value
  count by expectation over a random order among them, so the score never depends on pixel order.
- energy-based pointing game (Wang et al., Score-CAM 2020): Σ_{p ∈ box} R_p / Σ_p R_p, box = the
  bounding box of GT.
- pointing game (Zhang et al. 2016): hit when the map's maximum lies within `tolerance` pixels of GT;
  several maximal pixels count by the share of them that hit (an all-zero map scores GT's share of
  the image, a chance hit).

An all-zero map carries no relevance: mass and energy scores are 0.0 for it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from explainers.errors import ExplainerError

SCORES = ("mass_accuracy", "rank_accuracy", "energy_pointing_game", "pointing_game")


def _pair(heatmap, truth) -> tuple[np.ndarray, np.ndarray]:
    heat = np.asarray(heatmap, np.float64)
    gt = np.asarray(truth)
    if heat.shape != gt.shape or heat.ndim != 2:
        raise ExplainerError(f"A map and its ground truth must be H×W of one shape, got {heat.shape} and {gt.shape}.")
    if gt.dtype != bool:
        raise ExplainerError("The ground truth must be a boolean H×W mask.")
    if not gt.any():
        raise ExplainerError("The ground-truth region is empty: nothing to localise.")
    if not np.isfinite(heat).all():
        raise ExplainerError("The map must be finite (no NaN or infinity).")
    return np.maximum(heat, 0.0), gt


def mass_accuracy(heatmap, truth) -> float:
    """Share of the map's relevance inside the ground truth (0.0 for an all-zero map)."""
    heat, gt = _pair(heatmap, truth)
    total = heat.sum()
    return float(heat[gt].sum() / total) if total > 0 else 0.0


def rank_accuracy(heatmap, truth) -> float:
    """Share of the K = |GT| most relevant pixels that lie in GT (ties at the K-th value by expectation)."""
    heat, gt = _pair(heatmap, truth)
    k = int(gt.sum())
    flat, inside = heat.ravel(), gt.ravel()
    threshold = np.partition(flat, flat.size - k)[flat.size - k]
    above = flat > threshold
    tied = flat == threshold
    need = k - int(above.sum())
    hits = float((above & inside).sum()) + need * float((tied & inside).sum()) / float(tied.sum())
    return hits / k


def bounding_box(truth) -> np.ndarray:
    """Boolean mask of the smallest axis-aligned box holding every True pixel."""
    gt = np.asarray(truth, bool)
    rows, cols = np.flatnonzero(gt.any(1)), np.flatnonzero(gt.any(0))
    box = np.zeros(gt.shape, bool)
    if rows.size:
        box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    return box


def energy_pointing_game(heatmap, truth) -> float:
    """Score-CAM's energy-based pointing game: the map's relevance inside GT's bounding box over all of it."""
    heat, gt = _pair(heatmap, truth)
    return mass_accuracy(heat, bounding_box(gt))


def pointing_game(heatmap, truth, tolerance: int = 0) -> float:
    """1.0 when the map's maximum lies in GT grown by `tolerance` pixels (Euclidean), else 0.0; with
    several maximal pixels, the share of them that do."""
    heat, gt = _pair(heatmap, truth)
    if tolerance < 0:
        raise ExplainerError(f"The pointing game's tolerance must be ≥ 0 pixels, got {tolerance}.")
    if tolerance:
        gt = ndimage.distance_transform_edt(~gt) <= tolerance
    peak = heat == heat.max()
    return float((peak & gt).sum() / peak.sum())


def scores(heatmap, truth, tolerance: int = 0) -> dict[str, float]:
    """Every localisation score of one map against one ground-truth mask, keyed as `SCORES`."""
    return dict(mass_accuracy=mass_accuracy(heatmap, truth), rank_accuracy=rank_accuracy(heatmap, truth),
                energy_pointing_game=energy_pointing_game(heatmap, truth),
                pointing_game=pointing_game(heatmap, truth, tolerance))


def random_map(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """The chance baseline: uniform noise per pixel (as `faithfulness`'s random map)."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)
