"""The segmentation adapter against a plain NumPy computation of its definition."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers_models import small_unet_fused_softmax, strided_output_model, tiny_seg_model

from explainers.adapter import SegmentationAdapter


def _inputs(size: int = 16, out: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    out = out or size
    mask = np.zeros((2, out, out), "float32")
    mask[0, 2:6, 3:9] = 1
    mask[1, out // 2:, : out // 3] = 1
    return x, mask


@pytest.mark.parametrize("target", ["logits", "probabilities"])
def test_scores_are_global_average_of_masked_output(target: str) -> None:
    model = tiny_seg_model()
    x, mask = _inputs()
    source = model.get_layer("logits").output if target == "logits" else model.output
    per_pixel = keras.Model(model.input, source)(x).numpy()
    expected = (per_pixel * mask[..., None]).sum(axis=(1, 2)) / (16 * 16)  # GAP over ALL pixels
    scores = SegmentationAdapter(model, target=target)(x, mask)[0].numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    region_mean = (per_pixel * mask[..., None]).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))[:, None]
    assert not np.allclose(scores, region_mean)  # the contract is not a mean over the region


def test_activations_come_from_the_same_pass() -> None:
    model = tiny_seg_model()
    x, mask = _inputs()
    adapter = SegmentationAdapter(model, ["conv1", "final_conv"], return_map=True)
    scores, scores_map, conv1, final = adapter(x, mask)
    reference = keras.Model(
        model.input,
        [model.get_layer("logits").output, model.get_layer("conv1").output, model.get_layer("final_conv").output],
    )(x)
    for ours, ref in zip((scores_map, conv1, final), reference, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    assert scores.shape == (2, 3)


def test_fused_head_and_strided_output() -> None:
    unet = small_unet_fused_softmax()
    x, mask = _inputs()
    probs = SegmentationAdapter(unet, target="probabilities")(x, mask)[0].numpy()
    np.testing.assert_allclose(probs, (unet(x).numpy() * mask[..., None]).mean(axis=(1, 2)), atol=1e-6)
    strided = SegmentationAdapter(strided_output_model())
    assert strided.output_size == (8, 8)
    _, small = _inputs(out=8)
    assert strided(x, small)[0].shape == (2, 3)


def test_differentiable_end_to_end() -> None:
    model = tiny_seg_model()
    adapter = SegmentationAdapter(model)
    x, mask = _inputs()
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(adapter(x, mask)[0][:, 1])
    grad = tape.gradient(score, x)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
