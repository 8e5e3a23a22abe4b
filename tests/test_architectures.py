"""Real architectures end to end: build offline, save, load through the safe loader, explain, compare.

The reference is independent of `explainers.graph`: the chosen layer's `call` is wrapped for one
eager forward pass so a GradientTape sees that layer's own output tensor (and the logits, the input of
the final softmax when there is one), at any nesting depth. From that tensor A and its gradient g of
the adapter score s = mean over the output grid of (mask × class logit), the test writes Grad-CAM
(w = mean g) and Grad-CAM++ (α = g² / (2g² + Σ_ab A·g³), w = Σ α·ReLU(g)) out in NumPy, and the
library's layer maps must equal them to 1e-4 after dividing by the reference's maximum.
"""

from __future__ import annotations

import contextlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers_models import (
    applications_seg_model,
    coarse_output_model,
    conv_bn_relu_unet,
    token_seg_model,
)

import explainers
from explainers import ExplainerError, graph
from models import ModelLoadError, load_user_model
from models.keras_hub_nets import deeplabv3

CAMS = ("gradcam", "gradcam++")


def _find(model: keras.Model, name: str):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = _find(layer, name)
            if found is not None:
                return found
    return None


@contextlib.contextmanager
def _spy(layer, store: dict, key: str, take: str):
    """Record the layer's input or output tensor while it runs (eager), then restore its `call`."""
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        store[key] = args[0] if take == "input" else out
        return out

    layer.call = call
    try:
        yield
    finally:
        layer.call = original


def reference_maps(model, layer: str, image: np.ndarray, grid_mask: np.ndarray, class_index: int,
                   token_grid: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Grad-CAM and Grad-CAM++ at `layer` from a tape on that layer's own output tensor."""
    store: dict = {}
    last = model.layers[-1]
    squashed = isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and last.get_config()["activation"] in ("softmax", "sigmoid"))
    target = _find(model, layer)
    assert target is not None, layer
    x = tf.constant(image[None].astype("float32"))
    mask = tf.constant(grid_mask[None].astype("float32"))
    with contextlib.ExitStack() as stack:
        stack.enter_context(_spy(target, store, "A", "output"))
        if squashed:
            stack.enter_context(_spy(last, store, "logits", "input"))
        with tf.GradientTape() as tape:
            out = model(x, training=False)
            logits = store["logits"] if squashed else out
            score = tf.reduce_mean(logits[..., class_index] * mask)
        activations = store["A"]
        gradient = tape.gradient(score, activations)
    a, g = activations.numpy().astype(np.float64), gradient.numpy().astype(np.float64)
    if token_grid is not None:
        h, w = token_grid
        a, g = a.reshape(1, h, w, -1), g.reshape(1, h, w, -1)
    maps = {}
    weights = g.mean(axis=(1, 2))
    maps["gradcam"] = np.maximum(np.einsum("bhwk,bk->bhw", a, weights), 0)[0]
    spatial_sum = a.sum(axis=(1, 2), keepdims=True)
    denominator = 2 * g**2 + spatial_sum * g**3
    alpha = np.where((g != 0) & (denominator != 0), g**2 / np.where(denominator == 0, 1, denominator), 0)
    weights = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    maps["gradcam++"] = np.maximum(np.einsum("bhwk,bk->bhw", a, weights), 0)[0]
    return maps


def _case(model, size: int, out_size: int, seed: int = 0):
    """A random image and a rectangular region aligned with the output grid (so no resampling is involved)."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    grid = np.zeros((out_size, out_size), bool)
    grid[out_size // 4: 3 * out_size // 4, out_size // 4: out_size // 2 + 1] = True
    stride = size // out_size
    region = np.kron(grid, np.ones((stride, stride), bool)).astype(bool)
    return image, grid, region


def check_against_reference(model, layers: list[str], size: int, out_size: int, class_index: int = 1,
                            token_grids: dict[str, tuple[int, int]] | None = None) -> None:
    image, grid, region = _case(model, size, out_size)
    informative = 0
    for layer in layers:
        got = explainers.explain(model, image, region, class_index, layer, methods=CAMS)
        ref = reference_maps(model, layer, image, grid, class_index, (token_grids or {}).get(layer))
        for method in CAMS:
            layer_map, peak = got[method].layer_map, ref[method].max()
            assert layer_map.shape == ref[method].shape, (layer, method)
            assert got[method].heatmap.shape == (size, size)
            if peak == 0:  # the ReLU removed all evidence in the reference: the library's map must be 0 too
                np.testing.assert_array_equal(layer_map, 0, err_msg=f"{layer}/{method}")
                continue
            informative += 1
            np.testing.assert_allclose(layer_map / peak, ref[method] / peak, atol=1e-4, err_msg=f"{layer}/{method}")
    assert informative >= len(layers), "too many all-zero maps: the comparison would check little"


# ----------------------------------------------------------------------------------- own models


def test_conv_bn_relu_unet_at_activation_norm_and_concat_layers(tmp_path) -> None:
    model = conv_bn_relu_unet(32, 4)
    model.save(tmp_path / "unet.keras")
    loaded = load_user_model(tmp_path / "unet.keras")
    assert explainers.default_layer(loaded) == "dec1_bn"  # the last map with a ReLU after it (issue 31)
    check_against_reference(loaded, ["enc2_relu", "bottom_bn", "skip1", "dec1_relu"], 32, 32)


def test_legacy_h5_file_loads_and_explains(tmp_path) -> None:
    model = conv_bn_relu_unet(32, 4, seed=2)
    model.save(tmp_path / "unet.h5")  # Keras 3 writes the legacy HDF5 format here
    loaded = load_user_model(tmp_path / "unet.h5")
    check_against_reference(loaded, ["enc1_relu", "dec2_relu"], 32, 32, class_index=2)


@pytest.mark.parametrize("stride", [4, 8])
def test_output_grid_smaller_than_the_input(stride: int, tmp_path) -> None:
    model = coarse_output_model(32, 3, stride)
    model.save(tmp_path / "coarse.keras")
    loaded = load_user_model(tmp_path / "coarse.keras")
    assert explainers.inspect_model(loaded).output_size == (32 // stride, 32 // stride)
    assert explainers.default_layer(loaded) == "features_bn"
    check_against_reference(loaded, ["features_relu", "pool1", "down1_bn"], 32, 32 // stride)


def test_token_map_is_reshaped_onto_the_patch_grid() -> None:
    model = token_seg_model(32, 4, 3)
    infos = {info.name: info for info in explainers.explainable_layers(model)}
    assert infos["token_mlp"].output_shape == (None, 8, 8, 16) and "tokens" in infos["token_mlp"].kind
    check_against_reference(model, ["token_mlp", "token_norm"], 32, 32, token_grids={"token_mlp": (8, 8),
                                                                                      "token_norm": (8, 8)})


# ------------------------------------------------------------------------ keras.applications backbones


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backbone", "layers"),
    [
        ("ResNet50", ["conv4_block6_out", "conv3_block4_2_relu"]),
        ("MobileNetV2", ["block_13_expand_relu", "block_6_project_BN"]),
        ("EfficientNetB0", ["block6a_expand_activation", "top_activation"]),
    ],
)
def test_nested_applications_backbones(backbone: str, layers: list[str], tmp_path) -> None:
    model = applications_seg_model(backbone, 64, 5)
    if backbone == "MobileNetV2":  # the safe loader on one of them (ResNet50's file alone is ~95 MB)
        model.save(tmp_path / "net.keras")
        model = load_user_model(tmp_path / "net.keras")
    names = [info.name for info in explainers.explainable_layers(model)]
    assert set(layers) <= set(names)
    assert explainers.default_layer(model) == "head_bn"  # head_relu → 1×1 classifier: region-blind
    stages = graph.layer_stages(model)
    assert sum(len(stage.layers) for stage in stages) == len(names) and len(stages) < 12
    check_against_reference(model, layers, 64, 64)


def test_efficientnet_preprocessing_is_not_offered() -> None:
    model = applications_seg_model("EfficientNetB0", 32, 3)
    inner = model.layers[1]
    preprocessing = [layer.name for layer in inner.layers[1:3]]  # its Rescaling and Normalization
    names = [info.name for info in explainers.explainable_layers(model)]
    for name in preprocessing:
        assert name not in names
        with pytest.raises(ExplainerError, match="only preprocesses the image"):
            graph.check_layer(model, name)


# -------------------------------------------------------------------------------------- keras-hub


def _segformer(num_classes: int = 5):
    from keras_hub.models import MiTBackbone, SegFormerBackbone, SegFormerImageSegmenter

    keras.utils.set_random_seed(0)
    encoder = MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2], layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0, layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2], hidden_dims=[16, 32],
        image_shape=(64, 64, 3),
    )
    return SegFormerImageSegmenter(backbone=SegFormerBackbone(image_encoder=encoder, projection_filters=16),
                                   num_classes=num_classes)


@pytest.mark.slow
def test_keras_hub_deeplabv3_resnet(tmp_path) -> None:
    deeplabv3().save(tmp_path / "deeplab.keras")
    model = load_user_model(tmp_path / "deeplab.keras")
    summary = explainers.inspect_model(model)
    assert summary.input_size == (None, None) and summary.num_classes == 4
    assert explainers.default_layer(model) == "segmentation_head_norm"
    # backbone (inside the nested ResNet encoder, two levels down) and head layers
    check_against_reference(model, ["stack1_block0_out", "encoder_decoder_concat", "segmentation_head_relu"],
                            64, 64)


@pytest.mark.slow
def test_keras_hub_segformer_mit(tmp_path) -> None:
    _segformer().save(tmp_path / "segformer.keras")
    model = load_user_model(tmp_path / "segformer.keras")
    infos = {info.name: info for info in explainers.explainable_layers(model)}
    tokens = [name for name, info in infos.items() if "tokens" in info.kind]
    assert "hierarchical_encoder_0_0" in tokens and "hierarchical_encoder_1_0" in tokens
    assert infos["hierarchical_encoder_1_0"].output_shape == (None, 8, 8, 32)
    head = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)][0]
    inner = next(layer for layer in model.layers if isinstance(layer, keras.Model))  # the backbone
    while isinstance(inner.layers[-1], keras.Model):  # the sub-model holding its last layer
        inner = inner.layers[-1]
    # issue 31: not the map the classifier reads (the head's last activation: only the linear classifier
    # follows it, so Grad-CAM ignores the region) but the normalisation before that activation
    norm = [layer for layer in inner.layers if isinstance(layer, keras.layers.BatchNormalization)][-1]
    assert isinstance(inner.layers[-1], keras.layers.Activation) and inner.layers[-2] is norm
    assert explainers.default_layer(model) == norm.name
    check_against_reference(
        model, ["hierarchical_encoder_0_0", "hierarchical_encoder_1_0", "output_level_1", head], 64, 64,
        token_grids={"hierarchical_encoder_0_0": (16, 16), "hierarchical_encoder_1_0": (8, 8)},
    )


def test_keras_hub_file_without_keras_hub_names_the_package(tmp_path, monkeypatch) -> None:
    deeplabv3().save(tmp_path / "deeplab.keras")
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # `import keras_hub` now raises ImportError
    with pytest.raises(ModelLoadError, match="install the optional package keras-hub") as info:
        load_user_model(tmp_path / "deeplab.keras")
    assert str(info.value).count(". ") == 0
