"""Seg-XRes-CAM against an independent NumPy reference: block-averaged gradients of the region sum × activations."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers_models import random_image, tiny_seg_model

from explainers import ExplainerError, api, registry
from explainers.methods import cams


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


def _region(top=3, bottom=10, left=4, right=12, size=16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[top:bottom, left:right] = True
    return region


def _region_sum_tape(model, layer, image, region, class_index):
    """Activations and ∂(Σ over the region of the class logit)/∂A from a plain tape over the model's own layers."""
    tapped = keras.Model(model.input, [model.get_layer(layer).output, model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        acts, logits = tapped(tf.constant(image[None].astype("float32")), training=False)
        score = tf.reduce_sum(logits[0, ..., class_index] * region.astype("float32"))
    return acts[0].numpy().astype(np.float64), tape.gradient(score, acts)[0].numpy().astype(np.float64)


def np_segxrescam(a: np.ndarray, g: np.ndarray, pool: int) -> np.ndarray:
    """Each pool×pool block (from the top-left; border blocks smaller) gets its mean gradient; ReLU(Σ_k g̃ A)."""
    pooled = np.empty_like(g)
    for i in range(0, g.shape[0], pool):
        for j in range(0, g.shape[1], pool):
            pooled[i:i + pool, j:j + pool] = g[i:i + pool, j:j + pool].mean(axis=(0, 1))
    return np.maximum((a * pooled).sum(-1), 0.0)


@pytest.mark.parametrize("layer", ["conv1", "final_conv"])
@pytest.mark.parametrize("pool", [1, 2, 3, 5])
def test_matches_numpy_reference(model, layer: str, pool: int) -> None:
    image, region = random_image(16, seed=3), _region()
    out = api.explain(model, image, region, 2, layer, ("seg-xres-cam",), options={"seg-xres-cam": {"pool_size": pool}})
    a, g = _region_sum_tape(model, layer, image, region, 2)
    expected = np_segxrescam(a, g, pool)
    scale = max(float(expected.max()), 1e-12)
    np.testing.assert_allclose(out["seg-xres-cam"].layer_map, expected, atol=1e-4 * scale, rtol=1e-4)
    assert out["seg-xres-cam"].options.pool_size == pool


def test_pool_of_one_is_hirescam_and_a_whole_grid_pool_is_gradcam(model) -> None:
    image, region = random_image(16, seed=4), _region()
    one = api.explain(model, image, region, 1, "conv2", ("seg-xres-cam", "hirescam", "gradcam"),
                      options={"seg-xres-cam": {"pool_size": 1}})
    np.testing.assert_allclose(one["seg-xres-cam"].heatmap, one["hirescam"].heatmap, atol=1e-5)
    whole = api.explain(model, image, region, 1, "conv2", ("seg-xres-cam",), options={"seg-xres-cam": {"pool_size": 16}})
    np.testing.assert_allclose(whole["seg-xres-cam"].heatmap, one["gradcam"].heatmap, atol=1e-5)


def test_follows_the_region_at_final_conv_where_gradcam_cannot(model) -> None:
    """final_conv → 1×1 linear logits: Grad-CAM's mean gradient is the class weight for every region."""
    image = random_image(16, seed=5)
    left, right = _region(2, 14, 0, 6), _region(2, 14, 10, 16)
    whole = np.ones((16, 16), bool)
    evidence = [api.explain(model, image, whole, c, "final_conv", ("gradcam",))["gradcam"].layer_map for c in range(3)]
    cls = int(np.argmax([min(m[2:14, :6].max(), m[2:14, 10:].max()) for m in evidence]))  # evidence on both sides
    maps = {name: api.explain(model, image, r, cls, "final_conv", ("gradcam", "seg-xres-cam")) for name, r in
            (("left", left), ("right", right))}
    np.testing.assert_allclose(maps["left"]["gradcam"].heatmap, maps["right"]["gradcam"].heatmap, atol=1e-5)
    l_map, r_map = maps["left"]["seg-xres-cam"].layer_map, maps["right"]["seg-xres-cam"].layer_map
    assert l_map[:, 10:].max() == 0 and r_map[:, :6].max() == 0  # no evidence far from the drawn region
    assert l_map[:, :6].max() > 0 and r_map[:, 10:].max() > 0


def test_shares_the_one_compiled_pass_without_retracing(model) -> None:
    image = random_image(16, seed=6)
    names = ("gradcam", "gradcam++", "seg-xres-cam")
    for class_index, region in [(0, _region()), (1, _region(0, 4, 0, 4)), (2, _region(5, 16, 2, 9))]:
        out = api.explain(model, image, region, class_index, "conv2", names)
        assert out["seg-xres-cam"].seconds == out["gradcam"].seconds  # one pass for all three
    objects = [registry.get(n).make_cam(registry.get(n).make_options()) for n in names]
    assert cams.cam_function(model, ["conv2"], "logits", objects).experimental_get_tracing_count() == 1


def test_bad_pool_size_is_refused(model) -> None:
    with pytest.raises(ExplainerError, match="pool_size"):
        api.explain(model, random_image(16), _region(), 1, "conv2", ("seg-xres-cam",),
                    options={"seg-xres-cam": {"pool_size": 0}})
