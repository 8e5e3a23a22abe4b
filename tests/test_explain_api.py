"""The public API: validation messages, notes, resolution handling, fit_image, predict, sweeps, sanity checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers_models import (
    classifier_model,
    dense_head_model,
    dynamic_size_model,
    nested_backbone_model,
    random_image,
    small_unet_fused_softmax,
    strided_output_model,
    tiny_seg_model,
)

import explainers
from explainers import ExplainerError
from explainers.results import ALL_ZERO, REGION_RESIZED, REGION_TOUCHED

CAMS = ("gradcam", "gradcam++", "vinogradova")


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


def _region(size: int = 16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[4:10, 5:12] = True
    return region


def test_exports_and_method_table() -> None:
    assert explainers.DEFAULT_METHODS == ("gradcam", "gradcam++", "xrai", "vinogradova")
    assert not hasattr(explainers, "METHODS")  # renamed: it was the defaults, not every method
    assert set(explainers.DEFAULT_METHODS) <= set(explainers.METHOD_LABELS)
    assert set(explainers.METHOD_LABELS) == set(explainers.api.ALL_METHODS)  # every method has a label
    for name in ("explain", "Explanation", "predict", "Prediction", "layer_sweep", "fit_image", "ExplainerError",
                 "explainable_layers", "default_layer", "inspect_model", "LayerInfo", "ModelSummary"):
        assert hasattr(explainers, name)


def test_all_methods_return_normalised_maps(model) -> None:
    image = random_image(16, seed=1)
    out = explainers.explain(model, image, _region(), 1, "conv2",
                             options={"xrai": {"steps": 6, "batch_size": 6}})
    assert tuple(out) == explainers.DEFAULT_METHODS
    for method, explanation in out.items():
        assert explanation.method == method
        assert explanation.heatmap.shape == (16, 16) and explanation.heatmap.dtype == np.float32
        assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() <= 1
        assert np.isclose(explanation.heatmap.max(), 1) or explanation.has(ALL_ZERO)
        assert explanation.seconds >= 0 and explanation.note
    assert out["gradcam"].layer == "conv2" and out["gradcam"].layer_map.shape == (16, 16)
    assert out["xrai"].layer is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"region": np.zeros((16, 16), bool)}, "draw over at least one pixel"),
        ({"region": np.ones((8, 8), bool)}, "region has shape"),
        ({"layer": "no_such_layer"}, "no layer named 'no_such_layer'.*final_conv"),
        ({"class_index": 3}, "0 to 2"),
        ({"class_index": -1}, "out of range"),
        ({"class_index": 1.5}, "not an integer"),
        ({"image": random_image(20)}, "fit_image"),
        ({"image": random_image(16, channels=4)}, "channel"),
        ({"methods": ("gradcam", "lime")}, "lime"),
        ({"target": "softmax"}, "logits"),
    ],
)
def test_bad_input_messages(model, change: dict, words: str) -> None:
    args = {"image": random_image(16), "region": _region(), "class_index": 1, "layer": "conv2",
            "methods": CAMS, "target": "logits"}
    args.update(change)
    with pytest.raises(ExplainerError, match=words):
        explainers.explain(model, **args)


def test_non_conv_layers_rejected() -> None:
    unet = small_unet_fused_softmax()
    with pytest.raises(ExplainerError, match="only preprocesses the image.*final_conv"):  # other feature maps are allowed
        explainers.explain(tiny_seg_model(), random_image(16), _region(), 0, "rescale", methods=("gradcam",))
    assert explainers.explain(unet, random_image(16), _region(), 0, "concat", methods=("gradcam",))
    with pytest.raises(ExplainerError, match="after the class logits"):
        explainers.explain(tiny_seg_model(), random_image(16), _region(), 0, "softmax", methods=("gradcam",))
    assert explainers.explain(dense_head_model(), random_image(16), _region(), 0, "dense", methods=("gradcam",))
    with pytest.raises(ExplainerError, match="classifier"):
        explainers.explain(classifier_model(), random_image(16), _region(), 0, None)


def test_constant_image_has_no_nan(model) -> None:
    image = np.full((16, 16, 3), 128, np.uint8)
    out = explainers.explain(model, image, _region(), 0, "final_conv", options={"xrai": {"steps": 4}})
    for explanation in out.values():
        assert np.all(np.isfinite(explanation.heatmap))
    black = explainers.explain(model, np.zeros((16, 16, 3), np.uint8), _region(), 0, "conv1", methods=CAMS)
    assert all(np.all(np.isfinite(e.heatmap)) for e in black.values())


def test_all_zero_map_is_reported() -> None:
    """A layer of zeros (ReLU of negative pre-activations) gives an all-zero map and says so."""
    dead = tiny_seg_model()
    kernel, bias = dead.get_layer("conv1").get_weights()
    dead.get_layer("conv1").set_weights([np.zeros_like(kernel), np.full_like(bias, -1.0)])
    out = explainers.explain(dead, random_image(16), _region(), 0, "conv1", methods=CAMS)
    for explanation in out.values():
        assert np.all(explanation.heatmap == 0) and explanation.codes().count(ALL_ZERO) == 1


def test_strided_output_region_is_resized_and_noted() -> None:
    strided = strided_output_model()
    image = random_image(16, seed=2)
    out = explainers.explain(strided, image, _region(), 1, "final_conv", methods=CAMS)
    assert out["gradcam"].codes() == (REGION_RESIZED,) and "8×8 output grid" in out["gradcam"].note
    np.testing.assert_allclose(out["gradcam"].heatmap, out["vinogradova"].heatmap, atol=1e-4)
    thin = np.zeros((16, 16), bool)
    thin[4, :] = True  # falls between nearest-neighbour sample rows: every touched cell is kept
    assert explainers.explain(strided, image, thin, 1, "conv1", ("gradcam",))["gradcam"].codes() == (REGION_TOUCHED,)
    prediction = explainers.predict(strided, image)
    assert prediction.labels.shape == (16, 16) and prediction.logits.shape == (16, 16, 3)


def test_predict_matches_the_model(model) -> None:
    image = random_image(16, seed=4)
    prediction = explainers.predict(model, image)
    probs = model(image[None].astype("float32")).numpy()[0]
    np.testing.assert_allclose(prediction.probs, probs, atol=1e-6)
    np.testing.assert_array_equal(prediction.labels, probs.argmax(-1))
    np.testing.assert_allclose(
        prediction.logits, keras.Model(model.input, model.get_layer("logits").output)(image[None]).numpy()[0],
        atol=1e-5,
    )


def test_fit_image_sizes_and_channels(model) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (40, 30, 4), dtype=np.uint8)
    assert explainers.fit_image(model, rgba).shape == (16, 16, 3)
    grey = np.random.default_rng(0).integers(0, 256, (20, 20), dtype=np.uint8)
    fitted = explainers.fit_image(model, grey)
    assert fitted.dtype == np.uint8 and fitted.shape == (16, 16, 3)
    assert np.array_equal(fitted[..., 0], fitted[..., 2])
    unit = np.random.default_rng(0).random((16, 16, 3))
    np.testing.assert_array_equal(explainers.fit_image(model, unit), np.round(unit * 255).astype(np.uint8))
    dynamic = dynamic_size_model()
    assert explainers.fit_image(dynamic, random_image(21)).shape == (21, 21, 3)
    with pytest.raises(ExplainerError, match="RGB"):
        explainers.fit_image(model, np.zeros((4, 4, 2), np.uint8))


def test_dynamic_size_model_uses_the_image_size() -> None:
    dynamic = dynamic_size_model()
    image = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    region = np.zeros((12, 20), bool)
    region[3:8, 4:15] = True
    out = explainers.explain(dynamic, image, region, 2, None, methods=CAMS)
    assert out["gradcam"].heatmap.shape == (12, 20) and out["gradcam"].layer == "conv1"  # the classifier reads it


def test_layer_sweep_equals_single_layer_calls(model) -> None:
    image, region = random_image(16, seed=6), _region()
    sweep = explainers.layer_sweep(model, image, region, 2)
    assert list(sweep) == [info.name for info in explainers.explainable_layers(model)]
    for layer in ("conv1", "final_conv"):
        single = explainers.explain(model, image, region, 2, layer, methods=("gradcam", "gradcam++"))
        for method in ("gradcam", "gradcam++"):
            np.testing.assert_allclose(sweep[layer][method].heatmap, single[method].heatmap, atol=1e-5)
    with pytest.raises(ExplainerError, match="xrai"):
        explainers.layer_sweep(model, image, region, 2, methods=("xrai",))


def test_nested_backbone_inner_layer_explained() -> None:
    nested = nested_backbone_model()
    image = random_image(32, seed=8)
    region = np.zeros((32, 32), bool)
    region[8:24, 8:24] = True
    out = explainers.explain(nested, image, region, 1, "block3_conv3", methods=CAMS)
    assert all(np.all(np.isfinite(e.heatmap)) for e in out.values())
    assert out["gradcam"].layer_map.shape == (8, 8)


def test_model_randomisation_changes_every_map(model) -> None:
    """Adebayo et al.'s sanity check: maps must depend on the learned weights."""
    keras.utils.set_random_seed(123)
    randomised = keras.models.clone_model(model)  # same architecture, freshly initialised weights
    image = random_image(16, seed=9)
    region = _region()
    kwargs = {"methods": explainers.DEFAULT_METHODS, "options": {"xrai": {"steps": 8, "batch_size": 8}}}
    before = explainers.explain(model, image, region, 1, "conv2", **kwargs)
    after = explainers.explain(randomised, image, region, 1, "conv2", **kwargs)
    for method in explainers.DEFAULT_METHODS:
        assert np.abs(before[method].heatmap - after[method].heatmap).max() > 0.05, method
