"""XRAI through the adapter equals PAIR's own `XRAI().GetMask` driven by a plain eager call-model function."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import saliency.core as saliency
import tensorflow as tf
from helpers_models import tiny_seg_model, two_patch_image

import explainers
from explainers import scores
from explainers.methods import xrai
from explainers.results import ALL_ZERO


def plain_call_model_function(model):
    """The reference: an eager tape per call over the user's model, batch by batch, as PAIR's examples do."""
    logits_model = keras.Model(model.input, model.get_layer("logits").output)

    def call(x_batch, call_model_args=None, expected_keys=None):
        region, class_index = call_model_args["region"], call_model_args["class_index"]
        x = tf.constant(np.asarray(x_batch, dtype="float32"))
        with tf.GradientTape() as tape:
            tape.watch(x)
            per_pixel = logits_model(x, training=False)[..., class_index] * region[None].astype("float32")
            score = tf.reduce_mean(per_pixel, axis=(1, 2))
        return {saliency.INPUT_OUTPUT_GRADIENTS: tape.gradient(score, x).numpy()}

    return call


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model(size=24)


@pytest.fixture(scope="module")
def image():
    return two_patch_image(24)


def _region() -> np.ndarray:
    region = np.zeros((24, 24), bool)
    region[6:16, 8:18] = True
    return region


@pytest.mark.parametrize("algorithm", ["full", "fast"])
def test_equals_pair_reference(model, image, algorithm: str) -> None:
    region, steps = _region(), 12
    params = saliency.XRAIParameters(steps=steps, algorithm=algorithm)
    reference = saliency.XRAI().GetMask(
        image.astype("float32"),
        plain_call_model_function(model),
        {"region": region, "class_index": 1},
        batch_size=1,
        extra_parameters=params,
    )
    ours = xrai.xrai_map(model, image, region, 1, steps=steps, algorithm=algorithm, batch_size=5)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())


def test_api_rescales_raw_map_and_reports_layer_free(model, image) -> None:
    region = _region()
    raw = xrai.xrai_map(model, image, region, 2, steps=10, batch_size=10)
    out = explainers.explain(model, image, region, 2, None, methods=("xrai",),
                             options={"xrai": {"steps": 10, "batch_size": 10}})
    explanation = out["xrai"]
    assert explanation.layer_map is None and explanation.layer is None
    assert "input pixels" in explanation.note
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(explanation.heatmap, expected, atol=1e-6)
    assert explanation.heatmap.dtype == np.float32 and explanation.heatmap.max() == 1


def test_segments_are_computed_once_per_image(model, image, monkeypatch) -> None:
    calls = []
    real = xrai._get_segments_felzenszwalb
    monkeypatch.setattr(xrai, "_get_segments_felzenszwalb", lambda im: calls.append(1) or real(im))
    fresh = image.copy()
    fresh[0, 0] = (1, 2, 3)  # a new image (new bytes): not in the cache yet
    for class_index in (0, 1, 2):
        xrai.xrai_map(model, fresh, _region(), class_index, steps=4, batch_size=4)
    assert len(calls) == 1
    segs = xrai.segments(fresh)
    own = real(fresh.astype("float32"))
    assert len(segs) == len(own) and all(np.array_equal(a, b) for a, b in zip(segs, own, strict=True))


def test_progress_callback_and_compiled_gradient(model, image) -> None:
    seen = []
    xrai.xrai_map(model, image, _region(), 1, steps=10, batch_size=4, progress=seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    grad = scores.input_gradient_function(model)
    call = xrai.call_model_function(model)
    for batch in (1, 3, 7):
        out = call(np.zeros((batch, 24, 24, 3), np.float32), call_model_args={"mask": _region(), "class_index": 0},
                   expected_keys=[saliency.INPUT_OUTPUT_GRADIENTS])
        assert out[saliency.INPUT_OUTPUT_GRADIENTS].shape == (batch, 24, 24, 3)
    assert grad.experimental_get_tracing_count() == 1


def test_constant_image_gives_zero_map_without_nan(model) -> None:
    flat = np.full((24, 24, 3), 90, np.uint8)
    out = explainers.explain(model, flat, _region(), 1, None, methods=("xrai",), options={"xrai": {"steps": 4}})["xrai"]
    assert np.all(out.heatmap == 0) and out.has(ALL_ZERO)


def test_bad_parameters(model, image) -> None:
    with pytest.raises(explainers.ExplainerError, match="algorithm"):
        explainers.explain(model, image, _region(), 1, None, methods=("xrai",), options={"xrai": {"algorithm": "slow"}})
    with pytest.raises(explainers.ExplainerError, match="steps"):
        explainers.explain(model, image, _region(), 1, None, methods=("xrai",), options={"xrai": {"steps": 1}})


@pytest.mark.parametrize("steps", [16, 37, 50, 100, 101, 201])
def test_preview_steps_are_every_dth_of_pairs_integration_points(steps: int) -> None:
    early = xrai.preview_steps(steps)
    assert early is not None and xrai.MIN_PREVIEW_STEPS <= early <= steps // 4
    stride = (steps - 1) // (early - 1)
    assert (steps - 1) % (early - 1) == 0
    np.testing.assert_allclose(np.linspace(0, 1, steps)[::stride], np.linspace(0, 1, early), atol=1e-15)


def test_no_preview_when_no_even_subset_of_the_points_is_small_enough() -> None:
    assert xrai.preview_steps(100) == 12  # 99 = 9 × 11: every 9th point
    assert xrai.preview_steps(20) is None and xrai.preview_steps(200) is None  # 19, 199 prime: only the 2 end points
    assert xrai.preview_steps(10) is None  # too few steps to be worth a preview


def test_preview_is_pairs_xrai_at_its_steps_and_the_full_map_reuses_its_gradients(model, image, monkeypatch) -> None:
    region, steps = _region(), 100
    computed = []
    real = xrai.call_model_function

    def counting(*args, **kwargs):
        call = real(*args, **kwargs)

        def wrapped(x_batch, call_model_args=None, expected_keys=None):
            computed.append(np.asarray(x_batch, np.float32).tobytes())
            return call(x_batch, call_model_args, expected_keys)

        wrapped.nonfinite = 0
        return wrapped

    monkeypatch.setattr(xrai, "call_model_function", counting)
    previews = []
    full = xrai.xrai_map(model, image, region, 1, steps=steps, batch_size=16,
                         preview=lambda raw, early: previews.append((raw, early)))
    with_preview = list(computed)
    computed.clear()
    plain = xrai.xrai_map(model, image, region, 1, steps=steps, batch_size=16)
    (early_map, early), = previews
    assert early == 12
    args = {"region": region, "class_index": 1}
    for run_steps, ours in ((early, early_map), (steps, full)):
        reference = saliency.XRAI().GetMask(image.astype("float32"), plain_call_model_function(model), args,
                                            batch_size=1, extra_parameters=saliency.XRAIParameters(steps=run_steps))
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    np.testing.assert_allclose(full, plain, rtol=1e-5, atol=1e-6 * np.abs(plain).max())
    # each of the 2 × steps points is computed once (the image itself ends both baselines' paths: once), the
    # preview's 2 × 12 first; a run without a preview asks for the very same batches (the forward passes kept
    # for one are found by the other)
    rows = sum(len(batch) // (image.size * 4) for batch in with_preview)
    assert rows == 2 * steps - 1
    assert sum(len(b) // (image.size * 4) for b in with_preview[:2]) == 2 * early - 1
    assert computed == with_preview


def test_explain_hands_out_xrai_preview_first_and_returns_the_same_maps(model, image) -> None:
    region = _region()
    seen = []
    methods = ("gradcam", "xrai", "integrated-gradients")
    options = {"xrai": {"steps": 50, "batch_size": 20}, "integrated-gradients": {"steps": 16}}
    out = explainers.explain(model, image, region, 1, None, methods=methods, options=options,
                             preview=lambda method, explanation: seen.append((method, explanation)))
    plain = explainers.explain(model, image, region, 1, None, methods=methods, options=options)
    assert [method for method, _ in seen] == ["xrai"]
    early = seen[0][1]
    assert early.preview and early.options.steps == 8 and "Preview: 8 of the 50 steps" in early.description
    assert early.heatmap.shape == out["xrai"].heatmap.shape and early.layer is None
    for method in methods:
        assert not out[method].preview
        np.testing.assert_allclose(out[method].heatmap, plain[method].heatmap, atol=1e-5)
    assert out["xrai"].options.steps == 50 and "Preview" not in out["xrai"].description
