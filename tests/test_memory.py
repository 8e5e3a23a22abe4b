"""Slow methods choose their batch size from the memory budget and refuse clearly when one image is too much."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_models import random_image, tiny_seg_model

from explainers import ExplainerError, api, faithfulness, memory


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


def _region() -> np.ndarray:
    region = np.zeros((16, 16), bool)
    region[4:10, 5:12] = True
    return region


def test_estimate_counts_input_and_every_activation(model) -> None:
    # 16×16 input (3) + rescale (3) + conv1, conv2, final_conv (8 each) + logits, softmax (3 each), + logits (3)
    floats = 16 * 16 * (3 + 3 + 8 * 3 + 3 + 3 + 3)
    assert memory.bytes_per_image(model, (16, 16), backward=False) == int(4 * floats * memory.FORWARD_FACTOR)
    assert memory.bytes_per_image(model, (16, 16)) == int(4 * floats * memory.BACKWARD_FACTOR)


@pytest.mark.parametrize(("method", "options"), [
    ("xrai", {"steps": 4}), ("integrated-gradients", {"steps": 4}), ("smoothgrad", {"samples": 2}),
    ("scorecam", {"channels": 2}), ("rise", {"masks": 4}),
])
def test_refuses_when_one_image_does_not_fit(model, method: str, options: dict) -> None:
    with memory.budget(1000), pytest.raises(ExplainerError, match="memory budget"):
        api.explain(model, random_image(16), _region(), 1, "conv2", (method,), options={method: options})


@pytest.mark.parametrize(("method", "options"), [
    ("xrai", {"steps": 6}), ("integrated-gradients", {"steps": 6}), ("scorecam", {"channels": 4}),
])
def test_default_batch_is_capped_by_the_budget(model, method: str, options: dict) -> None:
    backward = method != "scorecam"
    per_image = memory.bytes_per_image(model, (16, 16), backward=backward)
    with memory.budget(per_image * 2 + 1):
        out = api.explain(model, random_image(16, seed=1), _region(), 1, "conv2", (method,), options={method: options})
    assert out[method].options.batch_size == 2 and not out[method].warnings  # None asked: no warning
    with memory.budget(per_image * 2 + 1):
        asked = api.explain(model, random_image(16, seed=1), _region(), 1, "conv2", (method,),
                            options={method: {**options, "batch_size": 5}})
    assert asked[method].options.batch_size == 2 and asked[method].has("batch-reduced")
    np.testing.assert_allclose(asked[method].heatmap, out[method].heatmap, atol=1e-5)


def test_faithfulness_scores_in_budget_sized_batches(model, monkeypatch) -> None:
    with memory.budget(1000), pytest.raises(ExplainerError, match="memory budget"):
        faithfulness.region_score_function(model, _region(), 1)
    per_image = memory.bytes_per_image(model, (16, 16), backward=False)
    with memory.budget(per_image * 3):
        score_fn = faithfulness.region_score_function(model, _region(), 1)
    images = np.stack([random_image(16, seed=s) for s in range(7)]).astype(np.float32)
    full = faithfulness.region_score_function(model, _region(), 1, batch_size=7)(images)
    np.testing.assert_allclose(score_fn(images), full, rtol=1e-5, atol=1e-6)


def test_environment_variable_sets_the_budget(monkeypatch) -> None:
    monkeypatch.setenv("SEGEXPLAIN_MEMORY_BUDGET_MB", "2")
    assert memory.current_budget() == 2 << 20
    with memory.budget(10):
        assert memory.current_budget() == 10
    assert memory.current_budget() == 2 << 20
