"""Faithfulness glue on a real Keras model whose right answer is known by construction.

The model's class-1 logit at a pixel is a 1×1 convolution of that pixel alone (class 0 is constant 0),
so the region score of a patch depends only on the patch's pixels: a map highlighting the patch must
beat the random baseline, and so must Integrated Gradients, whose gradient is zero outside the patch.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from explainers import ExplainerError, api, faithfulness, scores

SIZE = 16
PATCH = (slice(4, 9), slice(9, 14))


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((SIZE, SIZE, 3))
    feat = layers.Conv2D(1, 1, use_bias=False, name="feat")(inputs)
    logits = layers.Conv2D(2, 1, name="logits")(feat)
    net = keras.Model(inputs, layers.Softmax(name="softmax")(logits))
    net.get_layer("feat").set_weights([np.full((1, 1, 3, 1), 1.0 / 255.0, np.float32)])
    net.get_layer("logits").set_weights([np.array([[[[0.0, 1.0]]]], np.float32), np.array([0.0, -1.5], np.float32)])
    return net


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (SIZE, SIZE, 3)).astype(np.uint8)
    img[PATCH] = 250
    return img


def _patch_region() -> np.ndarray:
    region = np.zeros((SIZE, SIZE), bool)
    region[PATCH] = True
    return region


def _reference(model, images, region, class_index, target):
    logits_model = keras.Model(model.input, model.get_layer("logits").output)
    out = logits_model(np.asarray(images, np.float32)).numpy().astype(np.float64)
    if target == "probabilities":
        out = np.exp(out) / np.exp(out).sum(-1, keepdims=True)
    return (out[..., class_index] * region).mean(axis=(1, 2))


@pytest.mark.parametrize("target", ["logits", "probabilities"])
def test_region_score_function_equals_the_adapter_score(model, image, target: str) -> None:
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)
    region = _patch_region()
    score_fn = faithfulness.region_score_function(model, region, 1, target, batch_size=2)
    np.testing.assert_allclose(score_fn(images), _reference(model, images, region, 1, target), rtol=1e-5, atol=1e-7)
    assert score_fn(image.astype(np.float32)).shape == (1,)


def test_score_function_is_compiled_once(model) -> None:
    rng = np.random.default_rng(2)
    for class_index, rows in [(0, slice(0, 4)), (1, slice(3, 12)), (1, slice(8, 9))]:
        region = np.zeros((SIZE, SIZE), bool)
        region[rows, 2:10] = True
        fn = faithfulness.region_score_function(model, region, class_index, "logits")
        for n in (1, 3, 7):
            fn(rng.uniform(0, 255, (n, SIZE, SIZE, 3)))
    assert scores.region_score_function(model, "logits").experimental_get_tracing_count() == 1


def test_patch_map_and_integrated_gradients_beat_random(model, image) -> None:
    region = _patch_region()
    explanations = api.explain(model, image, region, 1, "feat", methods=("integrated-gradients", "gradcam"),
                               options={"integrated-gradients": {"steps": 8}})
    right = np.zeros((SIZE, SIZE), np.float32)
    right[PATCH] = 1.0
    maps = {**explanations, "patch": right, "inverted": 1.0 - right}
    results = faithfulness.evaluate_explanations(model, image, region, 1, maps, steps=16)
    assert set(results) == {"integrated-gradients", "gradcam", "patch", "inverted", "random"}
    chance = results["random"]
    for name in ("patch", "integrated-gradients"):
        assert results[name].deletion.auc < chance.deletion.auc
        assert results[name].insertion.auc > chance.insertion.auc
    assert results["inverted"].deletion.auc > chance.deletion.auc
    assert results["patch"].average_drop >= 0 and np.isfinite(results["patch"].average_drop)
    assert [row["method"] for row in faithfulness.ranking(results)][-1] == "inverted"


def test_evaluate_explanations_scores_the_same_as_evaluate(model, image) -> None:
    region = _patch_region()
    right = np.zeros((SIZE, SIZE), np.float32)
    right[PATCH] = 1.0
    glued = faithfulness.evaluate_explanations(model, image, region, 1, {"patch": right}, steps=8, target="logits")
    score_fn = faithfulness.region_score_function(model, region, 1, "logits")
    direct = faithfulness.evaluate({"patch": right}, image.astype(np.float32), score_fn, steps=8)
    np.testing.assert_allclose(glued["patch"].deletion.scores, direct["patch"].deletion.scores)
    np.testing.assert_allclose(glued["patch"].insertion.scores, direct["patch"].insertion.scores)


def test_glue_errors(model, image) -> None:
    region = _patch_region()
    with pytest.raises(ExplainerError, match="region has shape"):
        faithfulness.region_score_function(model, np.ones((8, 8), bool), 1)
    with pytest.raises(ExplainerError, match="empty"):
        faithfulness.region_score_function(model, np.zeros((SIZE, SIZE), bool), 1)
    with pytest.raises(ExplainerError, match="0 to 1"):
        faithfulness.region_score_function(model, region, 2)
    with pytest.raises(ExplainerError, match="random"):
        faithfulness.evaluate_explanations(model, image, region, 1, {"random": np.ones((SIZE, SIZE))})
    fn = faithfulness.region_score_function(model, region, 1)
    with pytest.raises(ExplainerError, match="region's size"):
        fn(np.zeros((1, 8, 8, 3)))
