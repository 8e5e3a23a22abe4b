"""The network cut at the explained layer (`explainers.layer_split`): with a store active, the CAMs of a new
region or class on an image already seen come from the layers after the explained one only, and equal the
whole network's pass."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers_models import conv_bn_relu_unet, free_size_skip_model, random_image, token_seg_model

import explainers
from explainers import layer_split
from explainers.methods import cams

CAMS = tuple(cams.CLASSIC)


@pytest.fixture(autouse=True)
def calls_use_the_store():
    with layer_split.used():
        yield


def _region(shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    region = np.zeros(shape, np.float32)
    region[top:top + shape[0] // 3, left:left + shape[1] // 2] = 1
    return region


@pytest.mark.parametrize("build, size", [(conv_bn_relu_unet, (32, 32)), (free_size_skip_model, (24, 40)),
                                         (token_seg_model, (32, 32))])
def test_every_layers_cams_from_the_kept_part_equal_the_whole_networks(build, size) -> None:
    model = build()
    image = np.random.default_rng(3).random((*size, 3)).astype(np.float32) * 255
    layers = [info.name for info in explainers.explainable_layers(model)]
    cut = 0
    for number, layer in enumerate(layers):
        region, class_index = _region(size, number % 5, number % 7), number % 3
        layer_split.disable()
        whole = cams.compute(model, image, region, class_index, [layer], CAMS)[layer]
        store = layer_split.enable()
        split = cams.compute(model, image, region, class_index, [layer], CAMS)[layer]
        cut += store.misses
        for name, (layer_map, heatmap) in whole.items():
            scale = max(float(np.abs(heatmap).max()), 1e-12)
            np.testing.assert_allclose(split[name][1], heatmap, atol=1e-5 * scale, err_msg=f"{layer} {name}")
            np.testing.assert_allclose(split[name][0], layer_map, atol=1e-5 * scale, err_msg=f"{layer} {name}")
    assert cut >= len(layers) - 1  # every layer but (at most) the class scores themselves was cut


def test_a_decoder_layer_is_cut_with_its_skip_connection() -> None:
    model = conv_bn_relu_unet()
    cut = layer_split.split(model, "dec2_relu", "logits")
    assert cut is not None
    # the tail reads dec2's output and the first encoder block's (skip1), and holds no encoder layer
    assert len(cut.tail.inputs) == 2
    names = {layer.name for layer in cut.tail.layers}
    assert {"dec1_conv", "logits"} <= names and not names & {"enc1_conv", "enc2_conv", "bottom_conv"}


def test_the_part_before_the_layer_runs_once_per_image() -> None:
    model = free_size_skip_model()
    store = layer_split.enable()
    image = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32) * 255
    for top, class_index in [(0, 0), (4, 1), (9, 2), (4, 0)]:  # strokes and class changes on one image
        explainers.explain(model, image, _region((24, 32), top, 3).astype(bool), class_index, "dec2",
                           methods=("gradcam", "vinogradova"))
    assert (store.misses, store.hits) == (1, 3)
    explainers.explain(model, image[::-1].copy(), _region((24, 32), 0, 0).astype(bool), 0, "dec2",
                       methods=("gradcam",))
    assert store.misses == 2  # another image is another forward pass


def test_the_store_keeps_at_most_its_bytes_and_the_newest_image() -> None:
    model = conv_bn_relu_unet()
    one_image = (16 * 16 * 16 + 32 * 32 * 8) * 4  # dec2_relu (16×16×16) and the skip from enc1 (32×32×8)
    store = layer_split.enable(max_bytes=2 * one_image)
    for seed in range(4):
        cams.compute(model, random_image(32, seed=seed), _region((32, 32), 2, 2), 1, ["dec2_relu"], ("gradcam",))
    assert len(store) <= 2 and store.bytes <= 2 * one_image
    cams.compute(model, random_image(32, seed=3), _region((32, 32), 5, 5), 0, ["dec2_relu"], ("gradcam",))
    assert store.hits == 1  # the newest image is still kept


def test_without_a_store_nothing_is_kept() -> None:
    model = conv_bn_relu_unet()
    assert layer_split.active() is None
    cams.compute(model, random_image(32, seed=1), _region((32, 32), 2, 2), 1, ["dec2_relu"], ("gradcam",))
    assert layer_split.kept_inputs(model, ["dec2_relu"], "logits", random_image(32, seed=1)) is None


def test_calls_outside_used_run_the_whole_network_on_weights_changed_in_place() -> None:
    """The store knows a model by identity: the randomisation check's copy, whose weights change in place
    between calls, must not be served the activations of its earlier weights."""
    model = conv_bn_relu_unet()
    image, region = random_image(32, seed=2), _region((32, 32), 4, 4)
    store = layer_split.enable()
    before = cams.compute(model, image, region, 1, ["dec2_relu"], ("gradcam",))["dec2_relu"]["gradcam"][1]
    encoder = model.get_layer("enc1_conv")
    encoder.set_weights([w * -1.5 for w in encoder.get_weights()])
    seen = store.misses + store.hits
    thread = threading.Thread(target=lambda: after.append(
        cams.compute(model, image, region, 1, ["dec2_relu"], ("gradcam",))["dec2_relu"]["gradcam"][1]))
    after: list = []
    thread.start()
    thread.join()  # another thread, outside `used()`: the whole network with the new weights
    assert store.misses + store.hits == seen
    layer_split.disable()
    expected = cams.compute(model, image, region, 1, ["dec2_relu"], ("gradcam",))["dec2_relu"]["gradcam"][1]
    np.testing.assert_allclose(after[0], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, expected)
