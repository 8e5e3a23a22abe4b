"""The share of attribution inside the drawn region, per layer (`explainers.depth_profile`), against
values worked out by hand and a plain loop over pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from explainers import ExplainerError, depth_profile, region_share


def test_region_share_by_hand() -> None:
    heatmap = np.array([[4.0, -3.0, 0.0],
                        [1.0, 2.0, np.nan],
                        [0.0, 0.0, 3.0]])
    region = np.array([[True, True, False],
                       [False, True, True],
                       [False, False, False]])
    # positive mass: 4 + 1 + 2 + 3 = 10 (−3 and NaN count as 0); inside: 4 + 2 = 6 (−3 → 0, NaN → 0)
    assert region_share(heatmap, region) == pytest.approx(0.6)


def test_region_share_against_a_loop_over_pixels() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        heatmap = rng.normal(size=(9, 13))
        region = rng.random((9, 13)) < 0.3
        inside = total = 0.0
        for r in range(9):
            for c in range(13):
                value = heatmap[r, c] if heatmap[r, c] > 0 else 0.0
                total += value
                inside += value if region[r, c] else 0.0
        assert region_share(heatmap, region) == pytest.approx(inside / total, rel=1e-12)


def test_a_map_without_positive_attribution_has_no_share_and_an_even_map_has_the_chance_share() -> None:
    region = np.zeros((4, 4), bool)
    region[:1] = True
    assert math.isnan(region_share(-np.ones((4, 4)), region))
    assert region_share(np.ones((4, 4)), region) == pytest.approx(depth_profile.chance_share(region)) == 0.25
    with pytest.raises(ExplainerError, match="must have the map's size"):
        region_share(np.ones((4, 4)), np.ones((3, 4), bool))


def test_shrink_averages_blocks_and_keeps_every_cell() -> None:
    values = np.arange(25, dtype=np.float32).reshape(5, 5)
    small = depth_profile.shrink(values, 3)  # factor 2: blocks of 2×2, the last row and column partial
    assert small.shape == (3, 3)
    assert small[0, 0] == pytest.approx((0 + 1 + 5 + 6) / 4)
    assert small[2, 2] == pytest.approx(24)
    assert small[0, 2] == pytest.approx((4 + 9) / 2)
    assert depth_profile.shrink(values, 8).shape == (5, 5)


@dataclass
class _Map:
    heatmap: np.ndarray
    seconds: float = 0.25


def test_profile_orders_layers_and_blanks_flat_maps() -> None:
    region = np.zeros((4, 4), bool)
    region[:2, :2] = True
    spot = np.zeros((4, 4))
    spot[0, 0] = 1.0
    by_layer = {"early": {"gradcam": _Map(np.ones((4, 4)))}, "late": {"gradcam": _Map(spot)}}
    result = depth_profile.profile(by_layer, region, size=2)
    assert result.layers == ("early", "late") and result.methods == ("gradcam",)
    assert result.shares["gradcam"].tolist() == [pytest.approx(0.25), pytest.approx(1.0)]
    assert result.flat["gradcam"] == (True, False)
    assert result.small["gradcam"]["early"] is None and result.small["gradcam"]["late"].shape == (2, 2)
    assert result.chance == 0.25 and result.seconds == 0.25


def test_shrink_of_a_finite_map_equals_the_mean_of_each_block_edges_included() -> None:
    values = np.random.default_rng(1).random((512, 509)).astype(np.float32)
    small = depth_profile.shrink(values, 112)  # factor 5: the last row and column of blocks are partial
    assert small.shape == (103, 102) and small.dtype == np.float32
    expected = [[values[r:r + 5, c:c + 5].mean() for c in range(0, 509, 5)] for r in range(0, 512, 5)]
    np.testing.assert_allclose(small, np.asarray(expected), rtol=1e-5)
    with_nan = values.copy()
    with_nan[7, 3] = np.nan  # the other route: the block's other cells
    assert depth_profile.shrink(with_nan, 112)[1, 0] == pytest.approx(np.delete(values[5:10, 0:5].ravel(), 2 * 5 + 3).mean(), rel=1e-5)
