"""The CAM formulas and scores are written once (`explainers.arrays`): NumPy, TensorFlow and torch agree."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from explainers import arrays, scores
from explainers.methods import cams, segxrescam

import torch  # isort: skip

ALL = (cams.GradCAM(), cams.GradCAMPlusPlus(), cams.HiResCAM(), cams.LayerCAM(), cams.XGradCAM(),
       segxrescam.SegXResCAM(pool_size=2), segxrescam.SegXResCAM(pool_size=3))


@pytest.mark.parametrize("cam", ALL, ids=lambda c: f"{c.name}-{getattr(c, 'pool_size', '')}")
def test_every_cam_gives_the_same_map_on_numpy_tensorflow_and_torch(cam) -> None:
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(2, 7, 5, 6)).astype(np.float32)
    grads = rng.normal(size=(2, 7, 5, 6)).astype(np.float32) * 1e-3
    acts[0, ..., 1] = 0.0  # a dead channel (XGradCAM's 0/0)
    grads[1, 2:4] = 0.0  # zero gradients (Grad-CAM++'s α = 0)
    on_numpy = cam.layer_map(acts, grads)
    assert isinstance(on_numpy, np.ndarray) and on_numpy.shape == (2, 7, 5)
    on_tf = cam.layer_map(tf.constant(acts), tf.constant(grads)).numpy()
    on_torch = cam.layer_map(torch.from_numpy(acts), torch.from_numpy(grads)).numpy()
    np.testing.assert_allclose(on_numpy, on_tf, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(on_torch, on_tf, rtol=1e-5, atol=1e-9)
    assert on_tf.max() > 0


def test_scores_are_the_same_on_every_namespace() -> None:
    rng = np.random.default_rng(1)
    scores_map = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    mask = (rng.random((2, 4, 5)) > 0.5).astype(np.float32)
    region_scores = (scores_map * mask[..., None]).mean(axis=(1, 2))
    for score in (scores.ADAPTER, scores.REGION_SUM, scores.CONTRASTIVE):
        expected = score(tf.constant(region_scores), tf.constant(scores_map), tf.constant(mask), 2).numpy()
        got_np = score(region_scores, scores_map, mask, 2)
        got_torch = score(torch.from_numpy(region_scores), torch.from_numpy(scores_map), torch.from_numpy(mask), 2)
        np.testing.assert_allclose(got_np, expected, rtol=1e-6)
        np.testing.assert_allclose(got_torch.numpy(), expected, rtol=1e-6)
    assert arrays.namespace(np.zeros(1)).name == "numpy"
