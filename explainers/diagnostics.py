"""What two maps have in common: the numbers behind the page's "these maps are the same" notes.

Why a module of its own: the dashboard says when two methods produce the same map (Grad-CAM through
the adapter and Seg-Grad-CAM are equal after normalisation by construction), and when a layer makes a
method blind to the drawn region (its map for the region equals its map for the whole class). Both
claims are measured here on the maps themselves, so the wording on the page cannot drift from the
numbers, and the maths is tested without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SAME_TOLERANCE = 1e-3  # maps in [0, 1]: a largest pixel difference below this is invisible on screen


def is_flat(heatmap: np.ndarray | None) -> bool:
    """Whether a map is one constant over the whole image (its maximum everywhere, or zero everywhere):
    no location at all, as from a 1×1 layer or a map upsampled from one. Normalised to its maximum such
    a map would paint the image in one colour."""
    if heatmap is None:
        return False
    values = np.asarray(heatmap, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        return False
    spread = float(values.max() - values.min())
    return spread <= 1e-6 * max(float(np.abs(values).max()), 1e-12)


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest pixel-wise |a − b| of two maps of one shape (non-finite values count as 0)."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64))
    b = np.nan_to_num(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes cannot be compared: {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)))


def identical_groups(maps: Mapping[str, np.ndarray],
                     tolerance: float = SAME_TOLERANCE) -> list[tuple[tuple[str, ...], float]]:
    """Groups of two or more maps that are the same within `tolerance`, each with its largest difference.

    A map joins a group when it is within `tolerance` of the group's first map (the order of `maps`
    decides which one that is); the reported difference is the largest between any two members."""
    names = list(maps)
    used: set[str] = set()
    groups: list[tuple[tuple[str, ...], float]] = []
    for i, first in enumerate(names):
        if first in used:
            continue
        members = [first]
        for other in names[i + 1:]:
            if other not in used and max_abs_difference(maps[first], maps[other]) <= tolerance:
                members.append(other)
        if len(members) > 1:
            used.update(members)
            worst = max(max_abs_difference(maps[a], maps[b]) for k, a in enumerate(members) for b in members[k + 1:])
            groups.append((tuple(members), worst))
    return groups


def region_independent(map_for_region: np.ndarray, map_for_whole: np.ndarray,
                       tolerance: float = SAME_TOLERANCE) -> tuple[bool, float]:
    """(whether the map ignores the drawn region, the measured difference).

    `map_for_whole` is the same method's map with the whole class (or whole image) as the region. When
    the two agree within `tolerance`, the drawn region changed nothing: the method cannot say why
    *this* region is segmented, only why the class is."""
    difference = max_abs_difference(map_for_region, map_for_whole)
    return difference <= tolerance, difference


def common_scale(peaks: Mapping[str, float]) -> dict[str, float]:
    """Factor per map for a shared absolute scale: its own peak ÷ the largest peak (1 for the largest).

    Maps normalised to their own maximum and multiplied by these factors are on one scale, the largest
    map reaching 1. Non-positive or non-finite peaks give 0 (an all-zero map stays zero)."""
    clean = {k: float(v) if np.isfinite(v) and v > 0 else 0.0 for k, v in peaks.items()}
    top = max(clean.values(), default=0.0)
    return {k: (v / top if top > 0 else 0.0) for k, v in clean.items()}


def names_with(groups: Sequence[tuple[tuple[str, ...], float]], name: str) -> tuple[str, ...]:
    """The other members of `name`'s group of identical maps (empty when it has none)."""
    for members, _difference in groups:
        if name in members:
            return tuple(m for m in members if m != name)
    return ()
