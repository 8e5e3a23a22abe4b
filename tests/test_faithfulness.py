"""Faithfulness scores on a score whose right answer is known by construction.

The score depends only on one patch of the input, so a map that highlights the patch must win both
curves against a random map and against a map that highlights everything but the patch.
"""

from __future__ import annotations

import numpy as np
import pytest

from explainers import faithfulness
from explainers.errors import ExplainerError

SIZE = 32
PATCH = (slice(8, 16), slice(20, 28))


def patch_score(images: np.ndarray) -> np.ndarray:
    return images[:, PATCH[0], PATCH[1], :].mean(axis=(1, 2, 3))


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 60, (SIZE, SIZE, 3)).astype(np.float32)
    img[PATCH] = 250.0  # bright patch: blurring it lowers the score
    return img


def _maps() -> dict[str, np.ndarray]:
    right = np.zeros((SIZE, SIZE), np.float32)
    right[PATCH] = 1.0
    return {"right": right, "inverted": 1.0 - right}


def test_the_right_map_beats_random_and_inverted(image) -> None:
    results = faithfulness.evaluate(_maps(), image, patch_score, steps=16)
    right, inverted, chance = results["right"], results["inverted"], results["random"]
    assert right.deletion.auc < chance.deletion.auc < inverted.deletion.auc
    assert right.insertion.auc > chance.insertion.auc > inverted.insertion.auc
    assert [row["method"] for row in faithfulness.ranking(results)] == ["right", "random", "inverted"]


def test_curves_start_and_end_at_the_full_and_blurred_scores(image) -> None:
    base = faithfulness.blurred(image)
    full, empty = patch_score(image[None])[0], patch_score(base[None])[0]
    deletion = faithfulness.deletion_curve(image, _maps()["right"], patch_score, steps=10)
    insertion = faithfulness.insertion_curve(image, _maps()["right"], patch_score, steps=10)
    assert deletion.scores[0] == pytest.approx(full) and deletion.scores[-1] == pytest.approx(empty)
    assert insertion.scores[0] == pytest.approx(empty) and insertion.scores[-1] == pytest.approx(full)
    assert len(deletion.fractions) == 11
    # The patch is 64 of 1024 pixels: after 1/16 of the pixels the right map has removed all of it.
    index = int(np.searchsorted(deletion.fractions, 1 / 16 - 1e-9))
    assert deletion.scores[index + 1] == pytest.approx(empty, rel=1e-5)


def test_curve_batches_are_evaluated_in_one_call(image) -> None:
    calls = []

    def counting(images):
        calls.append(len(images))
        return patch_score(images)

    faithfulness.deletion_curve(image, _maps()["right"], counting, steps=20)
    assert calls == [21]


def test_average_drop_and_increase_in_confidence_follow_the_definitions(image) -> None:
    results = faithfulness.evaluate(_maps(), image, patch_score, random_baseline=False)
    full = patch_score(image[None])[0]
    assert results["right"].average_drop == pytest.approx(0.0)  # the patch is kept at full value
    masked = patch_score((image * _maps()["inverted"][..., None])[None])[0]
    assert results["inverted"].average_drop == pytest.approx((full - masked) / full * 100)
    assert results["inverted"].average_drop == pytest.approx(100.0)
    assert not results["right"].increase_in_confidence
    assert faithfulness.average_drop(10.0, 12.0) == 0.0
    with pytest.raises(ExplainerError, match="positive region score"):
        faithfulness.average_drop(-1.0, 0.0)


def test_ties_are_broken_in_raster_order() -> None:
    np.testing.assert_array_equal(faithfulness.pixel_order(np.zeros((2, 2))), [0, 1, 2, 3])


def test_map_of_the_wrong_shape_is_refused(image) -> None:
    with pytest.raises(ExplainerError, match="compute it for this image"):
        faithfulness.deletion_curve(image, np.ones((4, 4)), patch_score)
