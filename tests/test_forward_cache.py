"""Kept forward passes (`explainers.forward_cache`): the gradient of any later region and class from a kept
forward pass is the adapter's input gradient, and XRAI after `prepare_image` runs no forward pass and
gives the same map."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import saliency.core as saliency
import tensorflow as tf
from helpers_models import nested_backbone_model, small_unet_fused_softmax, tiny_seg_model, two_patch_image

import explainers
from explainers import forward_cache
from explainers.methods import xrai


def reference_gradients(model, x: np.ndarray, region: np.ndarray, class_index: int, target: str) -> np.ndarray:
    """Independent of the library: an eager tape over the user's model, the adapter's score written out
    (mean over the output grid of region × class score)."""
    layer = "logits" if target == "logits" else "softmax"
    scores_model = keras.Model(model.input, model.get_layer(layer).output)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        per_pixel = scores_model(xt, training=False)[..., class_index] * region[None].astype("float32")
        score = tf.reduce_sum(tf.reduce_mean(per_pixel, axis=(1, 2)))
    return tape.gradient(score, xt).numpy()


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model(size=24)


@pytest.fixture(scope="module")
def image():
    return two_patch_image(24)


@pytest.fixture
def kept():
    store = forward_cache.enable(256 << 20)
    yield store
    forward_cache.disable()


def _box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    region = np.zeros((24, 24), bool)
    region[top:bottom, left:right] = True
    return region


def _assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    scale = float(np.abs(reference).max())
    assert scale > 0
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * scale)


def _lay_in(store, model, x: np.ndarray, target: str = "logits") -> None:
    with store.forward_only():
        assert not store.input_gradients(model, target, x, np.ones((24, 24), np.float32), 0).any()


@pytest.mark.parametrize("target", ["logits", "probabilities"])
def test_one_kept_forward_pass_serves_every_region_and_class(model, target: str) -> None:
    store = forward_cache.ForwardCache()
    x = np.random.default_rng(0).uniform(0, 255, (6, 24, 24, 3)).astype(np.float32)
    _lay_in(store, model, x, target)
    store.settle()
    cases = [(_box(2, 2, 12, 12), 1), (_box(10, 5, 22, 20), 1), (_box(0, 0, 24, 24), 2), (_box(5, 15, 9, 23), 0)]
    for region, class_index in cases:
        ours = store.input_gradients(model, target, x, region.astype(np.float32), class_index)
        _assert_close(ours, reference_gradients(model, x, region, class_index, target))
    assert (store.misses, store.hits, len(store)) == (1, len(cases), 1)


def test_outside_a_preparation_a_batch_not_kept_is_left_to_the_compiled_gradient(model) -> None:
    store = forward_cache.ForwardCache()
    x = np.random.default_rng(7).uniform(0, 255, (3, 24, 24, 3)).astype(np.float32)
    assert store.input_gradients(model, "logits", x, np.ones((24, 24), np.float32), 1) is None
    assert (store.misses, store.hits, len(store), store.bytes) == (1, 0, 0, 0)


def test_a_batch_is_found_by_its_exact_contents_and_model(model) -> None:
    store = forward_cache.ForwardCache()
    x = np.random.default_rng(1).uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    region = _box(4, 4, 20, 20).astype(np.float32)
    _lay_in(store, model, x)
    nudged = x.copy()
    nudged[0, 0, 0, 0] = np.nextafter(nudged[0, 0, 0, 0], np.float32(np.inf))
    assert store.input_gradients(model, "logits", nudged, region, 1) is None
    other = tiny_seg_model(size=24, seed=3)
    assert store.input_gradients(other, "logits", x, region, 1) is None
    _lay_in(store, other, x)
    theirs = store.input_gradients(other, "logits", x, region, 1)
    assert (store.misses, store.hits) == (4, 1)
    _assert_close(theirs, reference_gradients(other, x, region > 0, 1, "logits"))


def test_the_store_keeps_within_its_byte_budget_least_recently_used_out(model) -> None:
    from explainers import memory

    per_batch = memory.activation_bytes(model, (24, 24)) * 3
    rng = np.random.default_rng(2)
    batches = [rng.uniform(0, 255, (3, 24, 24, 3)).astype(np.float32) for _ in range(3)]
    region = _box(0, 0, 12, 24).astype(np.float32)

    nothing = forward_cache.ForwardCache(max_bytes=per_batch - 1)
    for x in batches:
        _lay_in(nothing, model, x)
    assert len(nothing) == 0 and nothing.bytes == 0
    assert nothing.input_gradients(model, "logits", batches[0], region, 1) is None

    two = forward_cache.ForwardCache(max_bytes=2 * per_batch)
    _lay_in(two, model, batches[0])
    _lay_in(two, model, batches[1])
    _assert_close(two.input_gradients(model, "logits", batches[0], region, 1),
                  reference_gradients(model, batches[0], region > 0, 1, "logits"))
    _lay_in(two, model, batches[2])  # batch 1 was the least recently used: it goes
    assert len(two) == 2 and two.bytes == 2 * per_batch
    for x in (batches[0], batches[2]):
        _assert_close(two.input_gradients(model, "logits", x, region, 1),
                      reference_gradients(model, x, region > 0, 1, "logits"))
    assert two.input_gradients(model, "logits", batches[1], region, 1) is None
    assert (two.misses, two.hits) == (4, 3)


def test_a_preparation_stops_when_asked_and_keeps_what_it_laid_in(model) -> None:
    store = forward_cache.ForwardCache()
    rng = np.random.default_rng(5)
    first, second = (rng.uniform(0, 255, (2, 24, 24, 3)).astype(np.float32) for _ in range(2))
    calls = []
    with pytest.raises(forward_cache.Stopped), store.forward_only(stop=lambda: calls.append(1) or len(calls) > 1):
        store.input_gradients(model, "logits", first, np.ones((24, 24), np.float32), 0)
        store.input_gradients(model, "logits", second, np.ones((24, 24), np.float32), 0)
    assert len(store) == 1
    region = _box(3, 3, 15, 15)
    _assert_close(store.input_gradients(model, "logits", first, region.astype(np.float32), 1),
                  reference_gradients(model, first, region, 1, "logits"))
    assert store.input_gradients(model, "logits", second, region.astype(np.float32), 1) is None


def test_xrai_after_prepare_image_runs_no_forward_pass_and_gives_the_same_map(model, image) -> None:
    options = {"xrai": {"steps": 16, "batch_size": 8}}
    regions = [_box(6, 8, 16, 18), _box(0, 0, 12, 24)]
    plain = [explainers.explain(model, image, r, 1, None, ("xrai",), options=options,
                                preview=lambda *_: None)["xrai"].heatmap for r in regions]
    store = forward_cache.enable(256 << 20)
    try:
        explainers.prepare_image(model, image, ("xrai",), options=options)
        laid_in = store.misses
        assert laid_in > 0 and store.hits == 0
        previews: list = []
        kept_maps = [explainers.explain(model, image, r, 1, None, ("xrai",), options=options,
                                        preview=lambda _m, early: previews.append(early))["xrai"].heatmap
                     for r in regions]
    finally:
        forward_cache.disable()
    assert store.misses == laid_in, "a region after prepare_image needed a forward pass"
    assert store.hits == 2 * laid_in
    assert len(previews) == 2 and all(p.preview for p in previews)
    for ours, reference in zip(kept_maps, plain, strict=True):
        np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_without_a_store_prepare_image_lays_in_the_segments(model, image) -> None:
    xrai._SEGMENTS.clear()
    explainers.prepare_image(model, image)
    assert len(xrai._SEGMENTS) == 1
    explainers.prepare_image(model, image, ("gradcam",))  # nothing to do ahead for a CAM
    assert len(xrai._SEGMENTS) == 1


def test_a_model_that_cannot_be_frozen_falls_back_to_the_compiled_gradient(model, image, monkeypatch,
                                                                          kept) -> None:
    monkeypatch.setattr(forward_cache, "_frozen_forward", lambda _model, _target: None)
    x = np.random.default_rng(6).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    region = _box(2, 2, 20, 20)
    with kept.forward_only():
        assert kept.input_gradients(model, "logits", x, region.astype(np.float32), 1) is None
    assert explainers.prepare_image(model, image, options={"xrai": {"steps": 4}})
    assert len(kept) == 0
    call = xrai.call_model_function(model, kept=kept)
    grads = call(x, {"mask": region.astype(np.float32), "class_index": 1})[saliency.INPUT_OUTPUT_GRADIENTS]
    _assert_close(grads, reference_gradients(model, x, region, 1, "logits"))


def test_prepare_image_is_done_once_while_its_passes_are_kept_and_again_after_an_eviction(model, image) -> None:
    options = {"xrai": {"steps": 8, "batch_size": 4}}
    store = forward_cache.enable(256 << 20)
    try:
        assert explainers.prepare_image(model, image, ("xrai",), options=options)
        laid_in = store.misses
        assert laid_in > 0 and store.hits == 0
        assert explainers.prepare_image(model, image, ("xrai",), options=options)
        assert (store.misses, store.hits) == (laid_in, 0), "a prepared image was laid in again"
        store._drop(next(iter(store._store)))  # the store evicted one of its batches (least recently used)
        assert explainers.prepare_image(model, image, ("xrai",), options=options)
        assert store.misses == laid_in + 1, "only the evicted batch is laid in again"
        hits = store.hits
        assert explainers.prepare_image(model, image, ("xrai",), options=options)
        assert (store.misses, store.hits) == (laid_in + 1, hits), "the image was not prepared again in full"
        other = {"xrai": {"steps": 10, "batch_size": 4}}  # other options ask for other batches
        assert explainers.prepare_image(model, image, ("xrai",), options=other)
        assert store.misses > laid_in + 1
    finally:
        forward_cache.disable()


def _flat_patches(size: int, count: int = 2) -> np.ndarray:
    """Random pixels with flat squares: equal activations there, so every pooling window in them has ties."""
    x = np.random.default_rng(3).uniform(0, 255, (count, size, size, 3)).astype(np.float32)
    x[:, : size // 2, : size // 2] = 127.0
    x[:, size // 2 :, size // 2 :] = 0.0
    return x


@pytest.mark.parametrize("build, size", [(small_unet_fused_softmax, 32), (small_unet_fused_softmax, None),
                                         (nested_backbone_model, 32)], ids=["unet", "unet-any-size", "nested-vgg"])
def test_kept_max_pooling_keeps_its_maxima_and_routes_ties_as_tensorflow_does(build, size) -> None:
    """The kept forward pass computes max pooling with its maxima's positions (so a backward pass does not
    search them again); the gradient through it, ties included, is the eager tape's over the user's model.
    A model that takes any size gets the same rewrite."""
    model = build(size=size)
    forward = forward_cache._frozen_forward(model, "probabilities")
    kinds = {op.type for op in forward.graph.get_operations()}
    assert "MaxPoolWithArgmax" in kinds and "MaxPool" not in kinds
    x = _flat_patches(32)
    region = _box(4, 4, 28, 20)
    region = np.pad(region, ((0, 8), (0, 8)))
    store = forward_cache.ForwardCache(256 << 20)
    with store.forward_only():
        store.input_gradients(model, "probabilities", x, region.astype(np.float32), 1)
    ours = store.input_gradients(model, "probabilities", x, region.astype(np.float32), 1)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = tf.reduce_sum(tf.reduce_mean(model(xt, training=False)[..., 1] * region[None], axis=(1, 2)))
    _assert_close(ours, tape.gradient(score, xt).numpy())


def test_max_pooling_stays_as_it_was_when_the_check_of_the_rewrite_fails(monkeypatch) -> None:
    monkeypatch.setattr(forward_cache, "_same_gradients", lambda *args: False)
    forward = forward_cache._frozen_forward(small_unet_fused_softmax(size=16, seed=5), "logits")
    kinds = {op.type for op in forward.graph.get_operations()}
    assert "MaxPool" in kinds and "MaxPoolWithArgmax" not in kinds
