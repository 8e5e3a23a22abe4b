"""CAM methods against independent references: NumPy formulas on activations and gradients taken with a
`tf.GradientTape` written here (not through `explainers`), a closed-form linear case, and PAIR's GradCam.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import saliency.core as saliency
import tensorflow as tf
from helpers_models import linear_conv_model, random_image, tiny_seg_model

import explainers
from explainers.methods import cams

LAYERS = ("conv1", "conv2", "final_conv")


def _region(kind: str, size: int = 16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    if kind == "rectangle":
        region[3:10, 4:12] = True
    elif kind == "pixel":
        region[7, 9] = True
    else:  # scattered blob
        region[np.random.default_rng(1).random((size, size)) < 0.2] = True
    return region


def reference_pass(model, layer, image, region, class_index, reduce="mean", target="logits"):
    """Activations and gradients (float64, no batch axis) from a plain tape over the user's own model."""
    scores_tensor = model.get_layer("logits").output if target == "logits" else model.output
    tapped = keras.Model(model.input, [model.get_layer(layer).output, scores_tensor])
    x = tf.constant(image[None].astype("float32"))
    mask = tf.constant(region[None].astype("float32"))
    with tf.GradientTape() as tape:
        acts, scores = tapped(x, training=False)
        per_pixel = scores[..., class_index] * mask
        score = tf.reduce_mean(per_pixel) if reduce == "mean" else tf.reduce_sum(per_pixel)
    grads = tape.gradient(score, acts)
    return acts[0].numpy().astype(np.float64), grads[0].numpy().astype(np.float64)


def np_gradcam(acts, grads):
    return np.maximum((acts * grads.mean(axis=(0, 1))).sum(-1), 0)


def np_gradcam_pp(acts, grads):
    g2, g3 = grads**2, grads**3
    denominator = 2 * g2 + acts.sum(axis=(0, 1)) * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    weights = (alpha * np.maximum(grads, 0)).sum(axis=(0, 1))
    return np.maximum((acts * weights).sum(-1), 0)


def _unit(a):
    return a / a.max() if a.max() > 0 else a


def _close(ours, ref, tol=1e-4):
    scale = max(float(np.abs(ref).max()), 1e-12)
    np.testing.assert_allclose(ours, ref, atol=tol * scale, rtol=tol)


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("class_index", [0, 2])
def test_each_method_matches_numpy_formula(model, layer: str, class_index: int) -> None:
    image, region = random_image(16, seed=3), _region("rectangle")
    raw = cams.compute(
        model, image.astype("float32"), region, class_index, [layer], ("gradcam", "gradcam++", "vinogradova")
    )[layer]
    acts, grads = reference_pass(model, layer, image, region, class_index, "mean")
    _close(raw["gradcam"][0], np_gradcam(acts, grads))
    _close(raw["gradcam++"][0], np_gradcam_pp(acts, grads))
    acts_s, grads_s = reference_pass(model, layer, image, region, class_index, "sum")
    _close(raw["vinogradova"][0], np_gradcam(acts_s, grads_s))


def test_closed_form_on_linear_model() -> None:
    """feat = (R, G); logit_0 = 2R − G. Adapter Grad-CAM for class 0 is ReLU(|R|/N² · (2R − G)) exactly,
    and Grad-CAM++ keeps only channel R (the G gradient is negative, so ReLU(g) = 0)."""
    model = linear_conv_model(size=6)
    image = random_image(6, seed=5)
    region = np.zeros((6, 6), bool)
    region[1:4, 2:5] = True
    n_pixels, n_region = 36, int(region.sum())
    red, green = image[..., 0].astype(np.float64), image[..., 1].astype(np.float64)
    expected = np.maximum(n_region / n_pixels**2 * (2 * red - green), 0)
    out = explainers.explain(model, image, region, 0, "feat", methods=("gradcam", "gradcam++", "vinogradova"))
    _close(out["gradcam"].layer_map, expected, 1e-5)
    np.testing.assert_allclose(out["gradcam"].heatmap, _unit(expected), atol=1e-5)
    np.testing.assert_allclose(out["vinogradova"].heatmap, _unit(expected), atol=1e-5)
    np.testing.assert_allclose(out["gradcam++"].heatmap, _unit(red), atol=1e-5)


@pytest.mark.parametrize("target", ["logits", "probabilities"])
def test_adapter_gradcam_equals_vinogradova(model, target: str) -> None:
    """Headline: Humer et al.'s adapter route and Vinogradova et al.'s own definition give the same maps."""
    image = random_image(16, seed=7)
    compared = 0
    for kind in ("rectangle", "pixel", "blob"):
        for class_index in range(3):
            sweep = explainers.layer_sweep(
                model, image, _region(kind), class_index, layers=LAYERS, methods=("gradcam", "vinogradova"),
                target=target,
            )
            for layer in LAYERS:
                a, b = sweep[layer]["gradcam"].heatmap, sweep[layer]["vinogradova"].heatmap
                np.testing.assert_allclose(a, b, atol=1e-4)
                compared += int(a.max() > 0)
    assert compared >= 10  # most comparisons are of non-trivial maps


def test_gradcam_pp_depends_on_score_scale_and_follows_the_adapter_contract(model) -> None:
    image, region = random_image(16, seed=3), _region("rectangle")
    ours = explainers.explain(model, image, region, 1, "conv2", methods=("gradcam++",))["gradcam++"].heatmap
    acts, g_mean = reference_pass(model, "conv2", image, region, 1, "mean")
    _, g_sum = reference_pass(model, "conv2", image, region, 1, "sum")
    on_average, on_sum = _unit(np_gradcam_pp(acts, g_mean)), _unit(np_gradcam_pp(acts, g_sum))
    assert np.abs(on_average - on_sum).max() > 1e-2  # the two scores really give different Grad-CAM++ maps
    ours_layer = explainers.explain(model, image, region, 1, "conv2", methods=("gradcam++",))["gradcam++"].layer_map
    np.testing.assert_allclose(_unit(ours_layer), on_average, atol=1e-4)
    assert ours.shape == (16, 16)
    on_region_sum = explainers.explain(model, image, region, 1, "conv2", methods=("gradcam++",),
                                       options={"gradcam++": {"score": "region_sum"}})["gradcam++"]
    np.testing.assert_allclose(_unit(on_region_sum.layer_map), on_sum, atol=1e-4)  # the option's own reference
    assert "summed over the region" in on_region_sum.description


def test_score_choice_measures_gradcampp_score_dependence(model) -> None:
    image, region = random_image(16, seed=3), _region("rectangle")
    choice = explainers.score_choice(model, image, region, 1, "conv2")
    acts, g_mean = reference_pass(model, "conv2", image, region, 1, "mean")
    _, g_sum = reference_pass(model, "conv2", image, region, 1, "sum")
    np.testing.assert_allclose(_unit(choice["region_sum"].layer_map), _unit(np_gradcam_pp(acts, g_sum)), atol=1e-4)
    assert choice["rank_correlation"] < 0.9999  # the two scores give different maps on this model


def test_huge_logits_do_not_overflow(model) -> None:
    huge = keras.models.clone_model(model)
    huge.set_weights(model.get_weights())
    kernel, bias = huge.get_layer("logits").get_weights()
    huge.get_layer("logits").set_weights([kernel * 1e4, bias * 1e4])
    image, region = random_image(16, seed=3), _region("rectangle")
    for target in ("logits", "probabilities"):
        out = explainers.explain(huge, image, region, 1, "conv2", methods=("gradcam", "gradcam++", "vinogradova"),
                                 target=target)
        for explanation in out.values():
            assert np.all(np.isfinite(explanation.heatmap)) and np.all(np.isfinite(explanation.layer_map))
    out = explainers.explain(huge, image, region, 1, "conv2", methods=("gradcam++",))
    acts, grads = reference_pass(huge, "conv2", image, region, 1, "mean")
    np.testing.assert_allclose(_unit(out["gradcam++"].layer_map), _unit(np_gradcam_pp(acts, grads)), atol=1e-4)


def test_gradcam_matches_pair_saliency_gradcam(model) -> None:
    image, region = random_image(16, seed=11), _region("blob")
    tapped = keras.Model(model.input, [model.get_layer("final_conv").output, model.get_layer("logits").output])

    def call(x_batch, call_model_args=None, expected_keys=None):
        mask = tf.constant(call_model_args["region"][None].astype("float32"))
        with tf.GradientTape() as tape:
            acts, logits = tapped(tf.constant(x_batch, tf.float32))
            score = tf.reduce_mean(logits[..., call_model_args["class_index"]] * mask)
        return {
            saliency.CONVOLUTION_LAYER_VALUES: acts.numpy(),
            saliency.CONVOLUTION_OUTPUT_GRADIENTS: tape.gradient(score, acts).numpy(),
        }

    reference = saliency.GradCam().GetMask(
        image.astype("float32"), call, {"region": region, "class_index": 2}, should_resize=False, three_dims=False
    )
    ours = explainers.explain(model, image, region, 2, "final_conv", methods=("gradcam",))["gradcam"].layer_map
    _close(ours, reference)


def test_compiled_function_is_cached_and_not_retraced(model) -> None:
    image = random_image(16, seed=2)
    methods = ("gradcam", "gradcam++", "vinogradova")
    for class_index, kind in [(0, "rectangle"), (1, "pixel"), (2, "blob"), (1, "rectangle")]:
        explainers.explain(model, image, _region(kind), class_index, "conv2", methods=methods)
    fn = cams.cam_function(model, ["conv2"], "logits", methods)
    assert fn is cams.cam_function(model, ["conv2"], "logits", tuple(reversed(methods)))
    assert fn.experimental_get_tracing_count() == 1


def test_base_class_map_is_relu_of_weighted_channels() -> None:
    acts = tf.constant(np.random.default_rng(0).normal(size=(1, 4, 5, 3)), tf.float32)
    grads = tf.constant(np.random.default_rng(1).normal(size=(1, 4, 5, 3)), tf.float32)
    out = cams.GradCAM().layer_map(acts, grads).numpy()[0]
    _close(out, np_gradcam(acts.numpy()[0].astype(np.float64), grads.numpy()[0].astype(np.float64)))
    zero = cams.GradCAMPlusPlus().layer_map(acts, tf.zeros_like(grads)).numpy()
    assert np.all(zero == 0)
