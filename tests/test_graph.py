"""Graph surgery: every accepted model shape becomes tappable; rejected ones fail with one clear sentence."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers_models import (
    classifier_model,
    dense_head_model,
    dynamic_size_model,
    nested_backbone_model,
    no_conv_model,
    sequential_seg_model,
    small_unet_fused_softmax,
    strided_output_model,
    tiny_seg_model,
    two_output_model,
)

from explainers import graph
from explainers.errors import ExplainerError


def _x(size: int, batch: int = 1, seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)), tf.float32)


def _grads_not_none(tapped: keras.Model, x: tf.Tensor) -> list[tf.Tensor]:
    with tf.GradientTape() as tape:
        scores, *acts = tapped(x, training=False)
        score = tf.reduce_sum(scores[..., 0])
    grads = tape.gradient(score, acts)
    assert all(g is not None for g in grads)
    return grads


def test_functional_separate_softmax_taps_logits_and_layers() -> None:
    model = tiny_seg_model()
    summary = graph.inspect_model(model)
    assert summary.input_size == (16, 16) and summary.output_size == (16, 16)
    assert summary.num_classes == 3 and summary.head == "softmax layer"
    assert [info.name for info in summary.layers] == ["conv1", "conv2", "final_conv", "logits"]
    assert graph.default_layer(model) == "conv2"  # final_conv (ReLU) → 1×1 logits ignores the region (issue 31)
    x = _x(16)
    reference = keras.Model(model.input, [model.get_layer("logits").output, model.get_layer("conv2").output])
    ref_logits, ref_conv2 = reference(x)
    logits, conv2 = graph.tap_model(model, ["conv2"])(x)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv2, ref_conv2, rtol=1e-5, atol=1e-5)
    probs = graph.tap_model(model, [], "probabilities")(x)
    probs = probs[0] if isinstance(probs, list) else probs
    np.testing.assert_allclose(probs, model(x), atol=1e-6)


@pytest.mark.parametrize("reload", [False, True])
def test_sequential_model_is_rebuilt_and_tappable(reload: bool, tmp_path) -> None:
    model = sequential_seg_model()
    if reload:  # the FIELD-NOTES trap: a loaded Sequential
        model.save(tmp_path / "seq.keras")
        model = keras.saving.load_model(tmp_path / "seq.keras")
    assert graph.inspect_model(model).head == "softmax layer"
    assert [info.name for info in graph.explainable_layers(model)] == ["conv1", "conv2", "logits"]
    x = _x(16)
    tapped = graph.tap_model(model, ["conv1", "conv2"])
    grads = _grads_not_none(tapped, x)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    np.testing.assert_allclose(tf.nn.softmax(tapped(x)[0]), model(x), atol=1e-6)


def test_nested_vgg16_backbone_inner_layers_are_tappable() -> None:
    model = nested_backbone_model()
    names = [info.name for info in graph.explainable_layers(model)]
    assert names[:3] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert names.index("block3_conv3") < names.index("block5_conv3") < names.index("final_conv")
    with pytest.raises(ValueError):
        model.get_layer("block3_conv3")  # unreachable in the user's graph: why the rebuild exists
    x = _x(32)
    tapped = graph.tap_model(model, ["block3_conv3", "final_conv"])
    _grads_not_none(tapped, x)
    inner = model.layers[1]
    direct = keras.Model(inner.inputs, inner.get_layer("block3_conv3").output)(x)
    np.testing.assert_allclose(tapped(x)[1], direct, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tf.nn.softmax(tapped(x)[0]), model(x), atol=1e-6)


def test_fused_softmax_unet_logits_recovered_without_touching_the_model() -> None:
    model = small_unet_fused_softmax()
    head = model.get_layer("head")
    weights_before = [w.copy() for w in head.get_weights()]
    summary = graph.inspect_model(model)
    assert summary.head == "fused softmax"
    x = _x(16)
    logits = graph.tap_model(model, [])(x)
    logits = logits[0] if isinstance(logits, list) else logits
    np.testing.assert_allclose(tf.nn.softmax(logits), model(x), atol=1e-6)
    assert float(tf.reduce_min(logits)) < 0 or float(tf.reduce_max(logits)) > 1  # really pre-activation
    assert head.get_config()["activation"] == "softmax"
    for before, after in zip(weights_before, head.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_every_spatial_feature_map_is_explainable_but_preprocessing_and_probabilities_are_not() -> None:
    unet = small_unet_fused_softmax()
    infos = {info.name: info for info in graph.explainable_layers(unet)}
    assert "concat" in infos and infos["concat"].kind == "merge (Concatenate)"
    assert graph.check_layer(unet, "concat") == "concat"
    assert graph.check_layer(dense_head_model(), "dense") == "dense"  # a per-pixel Dense map
    model = tiny_seg_model()
    with pytest.raises(ExplainerError, match="only preprocesses the image"):
        graph.check_layer(model, "rescale")
    with pytest.raises(ExplainerError, match="after the class logits"):
        graph.check_layer(model, "softmax")
    with pytest.raises(ExplainerError, match="no layer named"):
        graph.check_layer(unet, "nope")
    flat_model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same", name="c"),
                                   keras.layers.Flatten(name="flat"), keras.layers.Reshape((8, 8, 4)),
                                   keras.layers.Conv2D(2, 1, name="logits")])
    with pytest.raises(ExplainerError, match="does not output a feature map"):
        graph.check_layer(flat_model, "flat")


def test_concat_map_cam_equals_a_tape_on_that_tensor() -> None:
    """A non-convolution layer is tapped at its own tensor: the tapped activations and gradients match."""
    unet = small_unet_fused_softmax()
    x = _x(16)
    tapped = graph.tap_model(unet, ["concat"])
    with tf.GradientTape() as tape:
        logits, concat = tapped(x, training=False)
        score = tf.reduce_sum(logits[..., 1])
    grad = tape.gradient(score, concat)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    inner = keras.Model(unet.input, unet.get_layer("concat").output)
    np.testing.assert_allclose(concat, inner(x), atol=1e-5)


def test_output_resolution_may_differ_from_input() -> None:
    summary = graph.inspect_model(strided_output_model())
    assert summary.input_size == (16, 16) and summary.output_size == (8, 8)
    assert summary.head.startswith("linear")


def test_dynamic_input_size_is_accepted() -> None:
    model = dynamic_size_model()
    summary = graph.inspect_model(model)
    assert summary.input_size == (None, None)
    out = graph.tap_model(model, ["conv1"])(tf.zeros((1, 12, 20, 3)))
    assert out[0].shape == (1, 12, 20, 3) and out[1].shape == (1, 12, 20, 8)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (classifier_model, "classifier"),
        (two_output_model, "2 outputs"),
        (no_conv_model, "no 2-D convolution"),
    ],
)
def test_rejected_models(build, words: str) -> None:
    with pytest.raises(ExplainerError, match=words) as info:
        graph.inspect_model(build())
    assert str(info.value).count(".") <= 2  # one sentence (allowing a dotted name)


def test_rejects_several_inputs_and_non_image_input() -> None:
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two_in = keras.Model([a, b], keras.layers.Conv2D(2, 1)(keras.layers.Add()([a, b])))
    with pytest.raises(ExplainerError, match="2 inputs"):
        graph.inspect_model(two_in)
    v = keras.Input((10,))
    with pytest.raises(ExplainerError, match="not an image"):
        graph.inspect_model(keras.Model(v, keras.layers.Dense(3)(v)))
    with pytest.raises(ExplainerError, match="Keras model"):
        graph.inspect_model("model.keras")


def test_unknown_target_rejected() -> None:
    with pytest.raises(ExplainerError, match="target"):
        graph.tap_model(tiny_seg_model(), [], "softmax")


def test_single_sigmoid_output_is_read_as_background_and_foreground() -> None:
    from helpers_models import binary_sigmoid_model

    import explainers

    model = binary_sigmoid_model()
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    foreground = model(image[None].astype("float32"), training=False).numpy()[0, ..., 0]
    assert graph.inspect_model(model).num_classes == 2
    prediction = explainers.predict(model, image)
    np.testing.assert_allclose(prediction.probs[..., 1], foreground, atol=1e-5)
    np.testing.assert_allclose(prediction.probs[..., 0], 1 - foreground, atol=1e-5)
    np.testing.assert_array_equal(prediction.labels, (foreground > 0.5).astype(int))
    region = np.zeros((16, 16), bool)
    region[4:12, 4:12] = True
    maps = explainers.explain(model, image, region, 1, "conv1", methods=("gradcam", "vinogradova"))
    assert maps["gradcam"].heatmap.max() == pytest.approx(1.0)
    np.testing.assert_allclose(maps["gradcam"].heatmap, maps["vinogradova"].heatmap, atol=1e-5)


def test_dynamic_size_model_with_bilinear_upsampling_explains() -> None:
    """Keras' bilinear UpSampling2D cannot be traced with unknown height and width; our copy can."""
    import explainers

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="features")(inputs)
    x = keras.layers.Conv2D(3, 1, name="classifier")(x)
    model = keras.Model(inputs, keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(x))
    image = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(explainers.predict(model, image).logits, model(image[None].astype("float32"))[0],
                               atol=1e-4)
    region = np.zeros((12, 16), bool)
    region[2:8, 4:12] = True
    maps = explainers.explain(model, image, region, 1, None, methods=("gradcam", "vinogradova"))
    assert maps["gradcam"].layer == "features" and maps["gradcam"].heatmap.shape == (12, 16)
    np.testing.assert_allclose(maps["gradcam"].heatmap, maps["vinogradova"].heatmap, atol=1e-5)


def test_token_layer_without_an_inferable_grid_says_so_and_takes_a_given_grid() -> None:
    """7 tokens fit no h×w grid of a 32×32 input: refused with the way out, then usable once given."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 4, strides=4, name="embed")(inputs)  # 8×8×4
    t = keras.layers.Reshape((64, 4))(x)
    t = keras.layers.Permute((2, 1))(t)  # (4, 64)
    t = keras.layers.Dense(7, name="mix_in")(t)  # (4, 7)
    odd = keras.layers.Permute((2, 1), name="odd_tokens")(t)  # (7, 4): 7 tokens
    t = keras.layers.Permute((2, 1))(odd)
    t = keras.layers.Dense(64, name="mix_out")(t)
    x = keras.layers.Reshape((8, 8, 4))(keras.layers.Permute((2, 1))(t))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, name="logits")(x))
    with pytest.raises(ExplainerError, match="7 tokens.*set_token_grid"):
        graph.check_layer(model, "odd_tokens")
    with pytest.raises(ExplainerError, match="does not fit"):
        graph.set_token_grid(model, "odd_tokens", (2, 3))
    graph.set_token_grid(model, "odd_tokens", (7, 1))
    assert graph.check_layer(model, "odd_tokens") == "odd_tokens"
    info = {i.name: i for i in graph.explainable_layers(model)}["odd_tokens"]
    assert info.output_shape == (None, 7, 1, 4)
    _grads_not_none(graph.tap_model(model, ["odd_tokens"]), _x(32))


def test_layer_stages_group_by_resolution_in_forward_order() -> None:
    model = nested_backbone_model()
    stages = graph.layer_stages(model)
    sizes = [stage.size for stage in stages]
    assert sizes[:3] == [(32, 32), (16, 16), (8, 8)] and len(set(sizes)) == len(sizes)
    assert "1/2 of the input" in stages[1].label
    flat_names = [info.name for stage in stages for info in stage.layers]
    assert sorted(flat_names) == sorted(info.name for info in graph.explainable_layers(model))
    for stage in stages:
        assert all(tuple(info.output_shape[1:3]) == stage.size for info in stage.layers)
