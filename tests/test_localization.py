"""Localisation scores against ground truth, each against an independent computation written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from explainers import localization
from explainers.errors import ExplainerError


def _case(seed: int = 0, shape=(9, 11)):
    rng = np.random.default_rng(seed)
    heat = rng.random(shape)
    truth = np.zeros(shape, bool)
    truth[2:5, 3:8] = True
    truth[7, 1] = True  # a second, separate piece: the box is bigger than the mask
    return heat, truth


def _mass(heat, truth):
    inside = total = 0.0
    for i in range(heat.shape[0]):
        for j in range(heat.shape[1]):
            r = max(heat[i, j], 0.0)
            total += r
            inside += r if truth[i, j] else 0.0
    return inside / total if total else 0.0


def _rank(heat, truth):
    """Top-K by sorting, ties at the cut averaged over every order of the tied pixels (enumerated)."""
    flat, gt = heat.ravel(), truth.ravel()
    k = int(gt.sum())
    order = sorted(range(flat.size), key=lambda p: -flat[p])
    cut = flat[order[k - 1]]
    fixed = [p for p in order if flat[p] > cut]
    tied = [p for p in order if flat[p] == cut]
    results = []
    for perm in itertools.permutations(tied):
        chosen = fixed + list(perm[:k - len(fixed)])
        results.append(sum(gt[p] for p in chosen) / k)
    return float(np.mean(results))


def _energy(heat, truth):
    rows = [i for i in range(truth.shape[0]) if truth[i].any()]
    cols = [j for j in range(truth.shape[1]) if truth[:, j].any()]
    box_sum = sum(max(heat[i, j], 0) for i in range(rows[0], rows[-1] + 1) for j in range(cols[0], cols[-1] + 1))
    total = sum(max(v, 0) for v in heat.ravel())
    return box_sum / total


def _pointing(heat, truth, tolerance):
    peaks = [(i, j) for i in range(heat.shape[0]) for j in range(heat.shape[1]) if heat[i, j] == heat.max()]
    gts = [(i, j) for i in range(truth.shape[0]) for j in range(truth.shape[1]) if truth[i, j]]
    hit = [any((i - a) ** 2 + (j - b) ** 2 <= tolerance ** 2 for a, b in gts) for i, j in peaks]
    return sum(hit) / len(hit)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_the_definitions(seed):
    heat, truth = _case(seed)
    assert localization.mass_accuracy(heat, truth) == pytest.approx(_mass(heat, truth), abs=1e-12)
    assert localization.rank_accuracy(heat, truth) == pytest.approx(_rank(heat, truth), abs=1e-12)
    assert localization.energy_pointing_game(heat, truth) == pytest.approx(_energy(heat, truth), abs=1e-12)
    for tol in (0, 1, 3):
        assert localization.pointing_game(heat, truth, tol) == pytest.approx(_pointing(heat, truth, tol))
    got = localization.scores(heat, truth, 2)
    assert set(got) == set(localization.SCORES)


def test_ties_and_flat_maps_are_order_free():
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    heat[1, 1] = heat[2, 2] = heat[3, 3] = heat[0, 3] = 0.5  # four tied at the cut
    truth = np.zeros((4, 4), bool)
    truth[0, 0] = truth[1, 1] = truth[3, 0] = True  # K = 3: one above the cut, two of four tied chosen
    assert localization.rank_accuracy(heat, truth) == pytest.approx(_rank(heat, truth))
    assert localization.rank_accuracy(heat, truth) == pytest.approx((1 + 2 * 1 / 4) / 3)
    flat = np.zeros((4, 4))
    assert localization.mass_accuracy(flat, truth) == 0.0
    assert localization.energy_pointing_game(flat, truth) == 0.0
    assert localization.pointing_game(flat, truth) == pytest.approx(3 / 16)  # every pixel is a peak: chance
    assert localization.rank_accuracy(flat, truth) == pytest.approx(3 / 16)


def test_negative_relevance_does_not_count_and_bad_input_is_refused():
    heat, truth = _case(4)
    signed = heat - 0.5
    assert localization.mass_accuracy(signed, truth) == pytest.approx(_mass(signed, truth))
    with pytest.raises(ExplainerError, match="empty"):
        localization.mass_accuracy(heat, np.zeros(heat.shape, bool))
    with pytest.raises(ExplainerError, match="boolean"):
        localization.mass_accuracy(heat, truth.astype(int))
    with pytest.raises(ExplainerError, match="shape"):
        localization.mass_accuracy(heat[:-1], truth)
