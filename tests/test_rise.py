"""RISE against an independent reference: masks redrawn here from the seed, scored with plain model calls."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from helpers_models import random_image, tiny_seg_model

from explainers import ExplainerError, api, memory
from explainers.methods import rise


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


def _region() -> np.ndarray:
    region = np.zeros((16, 16), bool)
    region[3:10, 4:12] = True
    return region


def np_bilinear(grid: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear upsampling with pixel-centre alignment (source index clamped at the borders)."""
    in_h, in_w = grid.shape

    def axis(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    r0, r1, fr = axis(out_h, in_h)
    c0, c1, fc = axis(out_w, in_w)
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def reference_rise(model, image, region, class_index, n, cells, p, seed):
    """Σ_i s(x ⊙ M_i) M_i / (N p), s = mean over the output of region × class logit, masks from `seed`."""
    h, w = image.shape[:2]
    ch, cw = math.ceil(h / cells), math.ceil(w / cells)
    rng = np.random.default_rng(seed)
    grids = (rng.random((n, cells, cells)) < p).astype(np.float64)
    rows, cols = rng.integers(0, ch, n), rng.integers(0, cw, n)
    masks = np.stack([np_bilinear(grids[i], (cells + 1) * ch, (cells + 1) * cw)[rows[i]:rows[i] + h, cols[i]:cols[i] + w]
                      for i in range(n)])
    logits = keras.Model(model.input, model.get_layer("logits").output)
    out = logits(np.asarray(image[None] * masks[..., None], np.float32)).numpy()[..., class_index].astype(np.float64)
    scores = (out * region).mean(axis=(1, 2))
    return np.tensordot(scores, masks, axes=(0, 0)) / (n * p), masks


@pytest.mark.parametrize(("cells", "p", "batch"), [(4, 0.5, 7), (5, 0.3, 64)])
def test_matches_the_reference(model, cells: int, p: float, batch: int) -> None:
    image, region = random_image(16, seed=2).astype(np.float64), _region()
    expected, masks = reference_rise(model, image, region, 1, 30, cells, p, seed=3)
    options = rise.RISEOptions(masks=30, cells=cells, p=p, batch_size=batch, seed=3)
    np.testing.assert_allclose(rise.masks(rise.plan((16, 16), options), (16, 16), 0, 30), masks, atol=1e-5)
    fractions = []
    ours = rise.rise_map(model, image, region, 1, "logits", options, fractions.append)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == math.ceil(30 / batch)
    through_api = api.explain(model, image.astype(np.uint8), region, 1, None, ("rise",),
                              options={"rise": options})["rise"]
    low, high = expected.min(), expected.max()
    np.testing.assert_allclose(through_api.heatmap, (expected - low) / (high - low), atol=1e-4)
    assert through_api.layer is None and through_api.layer_map is None


def test_seeded_and_masks_are_soft_in_unit_range(model) -> None:
    image, region = random_image(16, seed=4), _region()
    a = api.explain(model, image, region, 0, None, ("rise",), options={"rise": {"masks": 12, "seed": 1}})["rise"]
    b = api.explain(model, image, region, 0, None, ("rise",), options={"rise": {"masks": 12, "seed": 1}})["rise"]
    c = api.explain(model, image, region, 0, None, ("rise",), options={"rise": {"masks": 12, "seed": 2}})["rise"]
    np.testing.assert_array_equal(a.heatmap, b.heatmap)
    assert not np.allclose(a.heatmap, c.heatmap)
    m = rise.masks(rise.plan((16, 16), rise.RISEOptions(masks=50)), (16, 16), 0, 50)
    assert m.min() >= 0 and m.max() <= 1 and 0.3 < m.mean() < 0.7  # p = 0.5
    assert len(np.unique(np.round(m, 4))) > 10  # bilinear: soft, not binary


@pytest.mark.parametrize("bad", [{"masks": 0}, {"cells": 0}, {"p": 0.0}, {"p": 1.5}, {"seed": -1}, {"batch_size": 0}])
def test_bad_options(bad) -> None:
    with pytest.raises(ExplainerError, match="RISE"):
        rise.RISEOptions(**bad)


def test_batch_shrinks_to_the_memory_budget(model) -> None:
    per_image = memory.bytes_per_image(model, (16, 16), backward=False)
    with memory.budget(per_image * 3):
        out = api.explain(model, random_image(16), _region(), 1, None, ("rise",),
                          options={"rise": {"masks": 10, "batch_size": 8}})["rise"]
    assert out.options.batch_size == 3 and out.has("batch-reduced")
