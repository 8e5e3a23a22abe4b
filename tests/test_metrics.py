"""Agreement metrics against independent references: scipy's Spearman and sets counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from explainers import metrics
from explainers.errors import ExplainerError

small_maps = st.integers(2, 9).flatmap(
    lambda n: st.tuples(
        arrays(np.float32, (n, 3), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.1, 0.9])),
        arrays(np.float32, (n, 3), elements=st.floats(-2, 2, width=32)),
    )
)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@settings(max_examples=60, deadline=None)
@given(small_maps)
def test_rank_correlation_matches_scipy_with_ties(pair) -> None:
    a, b = pair
    reference = stats.spearmanr(a.ravel(), b.ravel()).statistic
    got = metrics.rank_correlation(a, b)
    if np.isnan(reference):  # scipy's answer for a constant map; ours is defined
        assert got == 0.0
    else:
        assert got == pytest.approx(reference, abs=1e-9)


def test_rank_correlation_on_real_sized_maps() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((144, 144)).astype(np.float32)
    b = a + 0.3 * rng.random((144, 144)).astype(np.float32)
    b[b < 0.4] = 0.0  # a ReLU-like zero plateau: many ties
    assert metrics.rank_correlation(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic)
    assert metrics.rank_correlation(a, a) == pytest.approx(1.0)
    assert metrics.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert metrics.rank_correlation(a, a**3 + 5) == pytest.approx(1.0)  # monotone maps agree fully


def test_constant_maps_give_zero_not_nan() -> None:
    ramp = np.arange(12.0).reshape(3, 4)
    assert metrics.rank_correlation(np.zeros((3, 4)), ramp) == 0.0
    assert metrics.rank_correlation(np.zeros((3, 4)), np.zeros((3, 4))) == 0.0
    assert metrics.top_overlap(np.zeros((3, 4)), ramp) == 0.0
    assert metrics.top_overlap(np.ones((3, 4)), np.ones((3, 4))) == 0.0


def test_top_overlap_counts_the_top_sets() -> None:
    a = np.arange(20.0).reshape(4, 5)  # top 10% of 20 pixels = 2 pixels: flat indices 18, 19
    b = a.copy()
    b.flat[19], b.flat[0] = -1.0, 100.0  # b's top 2: indices 0 and 18
    assert metrics.top_overlap(a, b) == pytest.approx(1 / 3)
    assert metrics.top_overlap(a, a) == 1.0
    assert metrics.top_overlap(a, -a) == 0.0
    # top 25% = 5 pixels: a -> 15..19, b -> 0, 15..18: 4 shared of 6
    assert metrics.top_overlap(a, b, fraction=0.25) == pytest.approx(4 / 6)
    assert metrics.top_overlap(a, b, fraction=1.0) == 1.0


def test_tied_group_is_taken_or_left_whole_by_size_not_by_position() -> None:
    sparse = np.zeros(100)
    sparse[[3, 50, 97]] = [3.0, 2.0, 1.0]  # 3 positive pixels, 97 zeros; top 10% wants 10
    top = metrics.top_set(sparse, 0.1)
    assert top.sum() == 3 and top[[3, 50, 97]].all()  # the zero plateau (97 px) is left out
    plateau = np.zeros(100)
    plateau[:6] = 2.0
    plateau[6:14] = 1.0  # taking the 1.0 group gives 14 (4 off), leaving it gives 6 (4 off): leave it
    assert metrics.top_set(plateau, 0.1).sum() == 6
    plateau[6:13] = 1.0
    plateau[13] = 0.0  # now taking gives 13 (3 off), leaving gives 6 (4 off): take it
    assert metrics.top_set(plateau, 0.1).sum() == 13
    two_levels = np.r_[np.ones(60), np.zeros(40)]  # nothing above the tied top value: take it
    assert metrics.top_set(two_levels, 0.1).sum() == 60
    # order does not matter: a permutation of the map permutes the set
    order = np.random.default_rng(0).permutation(100)
    np.testing.assert_array_equal(metrics.top_set(sparse[order], 0.1), top[order])


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 40), elements=st.sampled_from([0.0, 1.0, 2.0, 3.5])),
    st.sampled_from([0.05, 0.1, 0.3, 0.5, 1.0]),
)
def test_top_set_reference_rule(values, fraction) -> None:
    got = metrics.top_set(values, fraction)
    if values.min() == values.max():
        assert not got.any()
        return
    k = math.ceil(fraction * values.size)
    # reference: try every threshold among the values, keep the candidate sets "value >= t"
    candidates = sorted({int((values >= t).sum()) for t in np.unique(values)})
    sizes_around = [s for s in candidates if s <= k][-1:] + [s for s in candidates if s >= k][:1]
    assert got.sum() in sizes_around
    assert (values[got].min() if got.any() else np.inf) >= (values[~got].max() if (~got).any() else -np.inf)


def test_agreement_table_has_one_row_per_pair_in_order() -> None:
    rng = np.random.default_rng(1)
    maps = {name: rng.random((6, 6)) for name in ("gradcam", "gradcam++", "xrai")}
    maps["vinogradova"] = None
    rows = metrics.agreement_table(maps)
    assert [(r["method_a"], r["method_b"]) for r in rows] == [
        ("gradcam", "gradcam++"),
        ("gradcam", "xrai"),
        ("gradcam++", "xrai"),
    ]
    first = rows[0]
    assert set(first) == {"method_a", "method_b", "rank_correlation", "top10_iou"}
    assert first["rank_correlation"] == pytest.approx(metrics.rank_correlation(maps["gradcam"], maps["gradcam++"]))
    assert first["top10_iou"] == pytest.approx(metrics.top_overlap(maps["gradcam"], maps["gradcam++"], 0.1))
    assert all(isinstance(r["rank_correlation"], float) for r in rows)
    assert metrics.agreement_table({"gradcam": maps["gradcam"]}) == []


@pytest.mark.parametrize(
    ("a", "b", "words"),
    [
        (np.zeros((3, 3)), np.zeros((3, 4)), "same shape"),
        (np.array([1.0, np.nan]), np.array([1.0, 2.0]), "finite"),
        (np.zeros(0), np.zeros(0), "at least one pixel"),
    ],
)
def test_bad_maps_are_refused(a, b, words) -> None:
    with pytest.raises(ExplainerError, match=words):
        metrics.rank_correlation(a, b)
    with pytest.raises(ExplainerError, match=words):
        metrics.top_overlap(a, b)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction_is_refused(fraction) -> None:
    with pytest.raises(ExplainerError, match="fraction"):
        metrics.top_overlap(np.arange(4.0), np.arange(4.0), fraction)


def test_agreement_table_ranks_each_map_once_and_gives_the_pairwise_numbers() -> None:
    rng = np.random.default_rng(7)
    maps = {"a": rng.random((20, 30)), "flat": np.zeros((20, 30)), "b": rng.random((20, 30))}
    maps["ties"] = np.round(maps["a"] * 4)  # many tied values
    rows = metrics.agreement_table(maps)
    assert [(r["method_a"], r["method_b"]) for r in rows] == [
        ("a", "flat"), ("a", "b"), ("a", "ties"), ("flat", "b"), ("flat", "ties"), ("b", "ties")]
    for row in rows:
        a, b = maps[row["method_a"]], maps[row["method_b"]]
        assert row["rank_correlation"] == pytest.approx(metrics.rank_correlation(a, b), abs=1e-12)
        assert row["top10_iou"] == pytest.approx(metrics.top_overlap(a, b, 0.1), abs=1e-12)
    with pytest.raises(ExplainerError, match="same shape"):
        metrics.agreement_table({"a": np.zeros((2, 2)), "b": np.zeros((3, 3))})
