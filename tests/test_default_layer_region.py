"""Issue 31, item 4: the default layer answers the drawing.

The rule (`explainers.region_rule`, used by `graph.default_layer`, hence by `explain` and the page): the
deepest layer with a non-linear layer between it and the logits. Checked by measurement: at the chosen
layer, Grad-CAM's maps for two different regions differ; at the old default (the map a linear 1×1
classifier reads) they are equal. On the old code the default was that old layer, so these fail there.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers_models import conv_bn_relu_unet, random_image, tiny_seg_model
from keras import layers

import explainers
from explainers import diagnostics, graph, region_rule, regions

DIFFERENT = 1e-2  # max-normalised maps: a region-sensitive layer differs by far more (measured ≥ 0.03)


def _two_regions(size: int) -> tuple[np.ndarray, np.ndarray]:
    a = regions.from_rectangle(size // 8, size // 8, size // 2, size // 2, (size, size))
    b = regions.from_rectangle(size // 2, size // 2, size * 7 // 8, size * 7 // 8, (size, size))
    return a, b


def _gradcam_difference(model, image: np.ndarray, layer: str, class_index: int = 1) -> float:
    first, second = _two_regions(image.shape[0])
    maps = [explainers.explain(model, image, r, class_index, layer, ["gradcam"])["gradcam"] for r in (first, second)]
    assert not any(m.codes() for m in maps), [m.note for m in maps]  # informative maps, not all-zero
    return diagnostics.max_abs_difference(maps[0].heatmap, maps[1].heatmap)


def _check(model, image: np.ndarray, old_default: str, class_index: int = 1) -> str:
    layer = explainers.default_layer(model)
    assert layer != old_default
    assert layer in explainers.answers_region(model) and old_default not in explainers.answers_region(model)
    assert _gradcam_difference(model, image, layer, class_index) > DIFFERENT, layer
    assert _gradcam_difference(model, image, old_default, class_index) <= diagnostics.SAME_TOLERANCE
    # explain() without a layer uses it
    region = _two_regions(image.shape[0])[0]
    assert explainers.explain(model, image, region, class_index, None, ["gradcam"])["gradcam"].layer == layer
    return layer


def test_shipped_model_defaults_to_the_input_of_final_conv() -> None:
    from models import load_default
    from models.scenes import load_sample, sample_names

    model = load_default()
    image, _ = load_sample(sample_names()[0])
    assert _check(model, image, "final_conv") == "head_concat"


def test_small_unet_defaults_to_the_norm_before_the_last_relu() -> None:
    model = conv_bn_relu_unet(32, 4)
    assert _check(model, random_image(32), "dec1_relu") == "dec1_bn"


def _calibrate_batchnorm(model: keras.Model, images: np.ndarray) -> None:
    """Data-dependent init: each BatchNormalization's moving statistics set to its input's on `images`.

    An untrained MobileNetV2's activations shrink to ~1e-12 at the top, so every Grad-CAM would be
    all-zero; with calibrated statistics every block sees unit-scale inputs, as a trained one does.
    """
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    probe = keras.Model(model.inputs[0], [layer.input for layer in norms])
    for index, norm in enumerate(norms):
        values = np.asarray(probe(images, training=False)[index], dtype=np.float64)
        mean, var = values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2)) + 1e-3
        norm.moving_mean.assign(mean.astype(np.float32))
        norm.moving_variance.assign(var.astype(np.float32))


@pytest.mark.slow
def test_mobilenetv2_head_defaults_to_the_norm_before_out_relu() -> None:
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), include_top=False)
    x = layers.Conv2D(21, 1, name="classifier")(net.output)
    x = layers.UpSampling2D(32, interpolation="bilinear", name="upsample")(x)
    model = keras.Model(net.input, layers.Softmax(name="softmax")(x), name="mobilenetv2_head")
    images = np.stack([random_image(224, seed=s) for s in range(2)]).astype(np.float32)
    _calibrate_batchnorm(model, images)
    assert _check(model, random_image(224, seed=5), "out_relu") == "Conv_1_bn"


@pytest.mark.slow
def test_keras_hub_deeplabv3_defaults_before_its_head_relu() -> None:
    pytest.importorskip("keras_hub")
    from models.keras_hub_nets import deeplabv3

    _check(deeplabv3(), random_image(64), "segmentation_head_relu")


def test_the_rule_agrees_with_measurement_at_every_layer() -> None:
    """Every layer the rule calls region-answering differs between regions; every other one does not."""
    model = tiny_seg_model(16, 3)
    image = random_image(16)
    answering = set(explainers.answers_region(model))
    assert answering == {"conv1", "conv2"}  # final_conv (ReLU fused) → 1×1 logits: nothing non-linear after it
    for info in explainers.explainable_layers(model):
        difference = _gradcam_difference(model, image, info.name)
        assert (difference > DIFFERENT) == (info.name in answering), (info.name, difference)


def test_position_uniform_layers() -> None:
    assert region_rule.is_position_uniform(layers.Conv2D(4, 3))  # spatial mixing alone: still uniform
    assert region_rule.is_position_uniform(layers.UpSampling2D(2, interpolation="bilinear"))
    assert region_rule.is_position_uniform(layers.MaxPooling2D(2))
    assert region_rule.is_position_uniform(layers.BatchNormalization())
    assert not region_rule.is_position_uniform(layers.Conv2D(4, 1, activation="relu"))
    assert not region_rule.is_position_uniform(layers.ReLU())
    assert not region_rule.is_position_uniform(layers.Multiply())
    assert not region_rule.is_position_uniform(layers.LayerNormalization())


def test_a_linear_network_falls_back_to_the_map_the_classifier_reads() -> None:
    inputs = keras.Input((16, 16, 3))
    features = layers.Conv2D(8, 3, padding="same", name="features")(inputs)
    model = keras.Model(inputs, layers.Conv2D(3, 1, name="logits")(features))
    assert explainers.answers_region(model) == []
    assert graph.default_layer(model) == "features"
