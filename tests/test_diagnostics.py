"""explainers.diagnostics against hand computations on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from explainers import diagnostics


def test_max_abs_difference_is_the_largest_pixel_gap() -> None:
    a = np.array([[0.0, 0.5], [1.0, 0.25]])
    b = np.array([[0.1, 0.5], [0.7, 0.25]])
    assert diagnostics.max_abs_difference(a, b) == pytest.approx(0.3)
    assert diagnostics.max_abs_difference(a, a) == 0.0


def test_max_abs_difference_treats_non_finite_as_zero_and_refuses_other_shapes() -> None:
    a = np.array([np.nan, 1.0])
    b = np.array([0.5, 1.0])
    assert diagnostics.max_abs_difference(a, b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different shapes"):
        diagnostics.max_abs_difference(np.zeros((2, 2)), np.zeros((2, 3)))


def test_identical_groups_collects_equal_maps_with_their_difference() -> None:
    base = np.linspace(0, 1, 16).reshape(4, 4)
    maps = {"gradcam": base, "gradcam++": base ** 2, "vinogradova": base + 4e-4, "hirescam": 1 - base}
    groups = diagnostics.identical_groups(maps)
    assert len(groups) == 1
    members, difference = groups[0]
    assert members == ("gradcam", "vinogradova")
    assert difference == pytest.approx(4e-4)
    assert diagnostics.names_with(groups, "vinogradova") == ("gradcam",)
    assert diagnostics.names_with(groups, "hirescam") == ()


def test_identical_groups_uses_the_tolerance() -> None:
    base = np.zeros((3, 3))
    maps = {"a": base, "b": base + 0.01}
    assert diagnostics.identical_groups(maps) == []
    assert diagnostics.identical_groups(maps, tolerance=0.02)[0][0] == ("a", "b")


def test_region_independent_compares_the_region_map_with_the_whole_class_map() -> None:
    whole = np.array([[0.0, 1.0], [0.5, 0.2]])
    same, difference = diagnostics.region_independent(whole + 1e-5, whole)
    assert same and difference == pytest.approx(1e-5)
    other = whole.copy()
    other[0, 0] = 0.4
    same, difference = diagnostics.region_independent(other, whole)
    assert not same and difference == pytest.approx(0.4)


def test_common_scale_divides_every_peak_by_the_largest() -> None:
    factors = diagnostics.common_scale({"gradcam": 2.0, "hirescam": 8.0, "layercam": 0.0, "xgradcam": float("nan")})
    assert factors == {"gradcam": 0.25, "hirescam": 1.0, "layercam": 0.0, "xgradcam": 0.0}
    assert diagnostics.common_scale({"a": 0.0}) == {"a": 0.0}
