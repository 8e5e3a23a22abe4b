"""Issue 31, item 5: faithfulness runs within the memory budget instead of refusing, and says how it ran.

Before: one image over the budget → ExplainerError ("… use a smaller input size"), and smaller batches
were used silently. Now: smaller batches first (noted), then a smaller size the network accepts (noted);
only a network that takes one input size is still refused, with the budget to raise.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers_models import random_image, tiny_seg_model
from keras import layers

from explainers import ExplainerError, faithfulness, faithfulness_plan, memory

SIZE = 64


@pytest.fixture(scope="module")
def free_model() -> keras.Model:
    """Any input size that is a multiple of 4 (two poolings, then a skip join at full size)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    a = layers.Conv2D(8, 3, padding="same", activation="relu", name="a")(x)
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="b")(layers.MaxPooling2D(2)(a))
    c = layers.Conv2D(8, 3, padding="same", activation="relu", name="c")(layers.MaxPooling2D(2)(b))
    up = layers.UpSampling2D(4, interpolation="bilinear")(c)
    logits = layers.Conv2D(3, 1, name="logits")(layers.Concatenate()([up, a]))
    return keras.Model(inputs, layers.Softmax()(logits), name="free_size")


def _inputs() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    image = random_image(SIZE, seed=3)
    region = np.zeros((SIZE, SIZE), bool)
    region[10:30, 20:50] = True
    ramp = np.linspace(0, 1, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    return image, region, {"ramp": ramp, "patch": region.astype(np.float32)}


def test_one_image_over_the_budget_is_scored_at_a_smaller_size_with_a_note(free_model) -> None:
    image, region, maps = _inputs()
    per_image = memory.bytes_per_image(free_model, (SIZE, SIZE), backward=False)
    limit = int(per_image * 0.6)  # not even one 64×64 image fits
    with memory.budget(limit):
        how = faithfulness_plan.plan(free_model, (SIZE, SIZE), faithfulness.SCORE_BATCH_SIZE)
        results = faithfulness.evaluate_explanations(free_model, image, region, 1, maps, steps=8)
    assert how.reduced and how.size == (48, 48)  # ≈ 64·√0.6 = 49, down to a multiple of the stride 4
    assert how.batch_size >= 1 and how.batch_size * memory.bytes_per_image(free_model, how.size, False) <= limit
    assert set(results) == {"ramp", "patch", "random"}
    for result in results.values():
        assert "Scored at 48×48 instead of 64×64" in result.note and "memory budget" in result.note
        assert len(result.deletion.scores) == 9 and np.isfinite(result.deletion.scores).all()
        assert np.isfinite(result.insertion.scores).all()


def test_smaller_batches_come_first_and_give_the_same_scores(free_model) -> None:
    image, region, maps = _inputs()
    full = faithfulness.evaluate_explanations(free_model, image, region, 1, maps, steps=8)
    assert all(result.note == "" for result in full.values())
    per_image = memory.bytes_per_image(free_model, (SIZE, SIZE), backward=False)
    with memory.budget(int(per_image * 3.5)):
        small = faithfulness.evaluate_explanations(free_model, image, region, 1, maps, steps=8)
    for name, result in small.items():
        assert result.note.startswith("Scored 3 perturbed images per batch (not 32) to stay within the memory budget")
        np.testing.assert_allclose(result.deletion.scores, full[name].deletion.scores, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(result.insertion.scores, full[name].insertion.scores, rtol=1e-5, atol=1e-7)


def test_a_network_of_one_input_size_is_refused_with_the_budget_to_raise() -> None:
    model = tiny_seg_model(16, 3)
    region = np.ones((16, 16), bool)
    per_image = memory.bytes_per_image(model, (16, 16), backward=False)
    with memory.budget(per_image // 2), pytest.raises(ExplainerError, match="only takes 16×16 images: raise the"):
        faithfulness.evaluate_explanations(model, random_image(16), region, 1, {"m": np.ones((16, 16))}, steps=4)


def test_the_budget_from_the_environment_variable_is_used(free_model, monkeypatch) -> None:
    per_image = memory.bytes_per_image(free_model, (SIZE, SIZE), backward=False)
    monkeypatch.setenv("SEGEXPLAIN_MEMORY_BUDGET_MB", str(per_image * 0.6 / 2**20))
    how = faithfulness_plan.plan(free_model, (SIZE, SIZE), 32)
    assert how.size == (48, 48) and "instead of 64×64" in how.note


def test_resizing_keeps_a_thin_region_and_a_maps_mean() -> None:
    region = np.zeros((64, 64), bool)
    region[10, 5:60] = True  # one row: nearest sampling at 48×48 could drop it
    assert faithfulness_plan.resize_region(region, (48, 48)).any()
    heat = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert faithfulness_plan.resize(heat, (32, 32)).shape == (32, 32)
    assert abs(float(faithfulness_plan.resize(heat, (32, 32)).mean()) - float(heat.mean())) < 1e-3
