"""How much two attribution maps agree: rank correlation and overlap of their most important pixels.

Both measures are defined for every input pair, NaN-free, so the dashboard's agreement table never
shows "nan". A constant map (e.g. an all-zero Grad-CAM) ranks no pixel above another, so it carries
no evidence of agreement: both measures give 0.0 for it, whatever the other map is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from explainers.errors import ExplainerError


def _flat_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ExplainerError(f"Maps to compare must have the same shape, got {a.shape} and {b.shape}.")
    return _flat(a), _flat(b)


def _flat(values: np.ndarray) -> np.ndarray:
    """One map to compare as a float64 vector; empty or non-finite maps are refused."""
    values = np.asarray(values)
    if values.size == 0:
        raise ExplainerError("Maps to compare must have at least one pixel.")
    flat = values.astype(np.float64).ravel()
    if not np.isfinite(flat).all():
        raise ExplainerError("Maps to compare must be finite (no NaN or infinity).")
    return flat


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (Spearman's convention)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation over all pixels (average ranks for ties), in [-1, 1].

    Returns 0.0 when either map is constant (Spearman's formula would divide by zero there).
    """
    a, b = _flat_pair(a, b)
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denominator == 0.0:
        return 0.0
    return float(np.clip(float(ra @ rb) / denominator, -1.0, 1.0))


def top_set(values: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the `fraction` most important pixels, chosen by value only (never by position).

    k = ceil(fraction · n). When the k-th largest value is shared by several pixels, that whole group
    is either taken or left out, whichever brings the set's size closer to k (left out on a draw), so
    the result does not depend on pixel order: a zero plateau in a sparse map is not half-included.
    The group is always taken when nothing lies above it; a constant map has no top set (empty mask).
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 < fraction <= 1.0:
        raise ExplainerError(f"The top fraction must be in (0, 1], got {fraction}.")
    flat = values.ravel()
    if flat.size == 0 or flat.min() == flat.max():
        return np.zeros(values.shape, dtype=bool)
    k = max(1, math.ceil(fraction * flat.size - 1e-9))
    threshold = np.partition(flat, flat.size - k)[flat.size - k]
    above = values > threshold
    with_ties = values >= threshold
    n_above, n_with = int(above.sum()), int(with_ties.sum())
    take_ties = n_above == 0 or (n_with - k) < (k - n_above)
    return with_ties if take_ties else above


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """Intersection over union of the two maps' top-`fraction` pixel sets (see `top_set`), in [0, 1].

    0.0 when either set is empty (a constant map).
    """
    a, b = _flat_pair(a, b)
    top_a, top_b = top_set(a, fraction), top_set(b, fraction)
    union = int((top_a | top_b).sum())
    if union == 0 or not top_a.any() or not top_b.any():
        return 0.0
    return int((top_a & top_b).sum()) / union


def agreement_table(maps: Mapping[str, np.ndarray | None]) -> list[dict]:
    """One row per pair of methods (in the mapping's order): method_a, method_b, rank_correlation,
    top10_iou. Entries that are None (a method that produced no map) are left out.

    Each map is ranked and thresholded once, not once per pair (the same numbers as
    `rank_correlation` and `top_overlap`, in n instead of n·(n−1) sorts).
    """
    present = [(name, np.asarray(m)) for name, m in maps.items() if m is not None]
    shapes = {m.shape for _, m in present}
    if len(shapes) > 1:
        raise ExplainerError(f"Maps to compare must have the same shape, got {sorted(shapes)}.")
    prepared = [(name, *_ranked(m)) for name, m in present]
    rows = []
    for i, (name_a, ranks_a, norm_a, top_a) in enumerate(prepared):
        for name_b, ranks_b, norm_b, top_b in prepared[i + 1:]:
            denominator = norm_a * norm_b
            rho = 0.0 if denominator == 0.0 else float(np.clip(float(ranks_a @ ranks_b) / denominator, -1.0, 1.0))
            union = int((top_a | top_b).sum())
            iou = 0.0 if union == 0 or not top_a.any() or not top_b.any() else int((top_a & top_b).sum()) / union
            rows.append({"method_a": name_a, "method_b": name_b, "rank_correlation": rho, "top10_iou": iou})
    return rows


def _ranked(values: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(centred average ranks, their norm, top-10 % mask) of one map, as `rank_correlation` and `top_overlap` use."""
    flat = _flat(values)
    ranks = _average_ranks(flat)
    ranks -= ranks.mean()
    return ranks, math.sqrt(float(ranks @ ranks)), top_set(flat, 0.1)
