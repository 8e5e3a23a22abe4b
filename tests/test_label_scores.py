"""Issue 31 item 7: per-image IoU per class against the user's labels (explainers.label_scores), checked
against a plain per-class count written independently here, with undefined classes and void pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explainers import label_scores


def _reference_iou(truth: np.ndarray, predicted: np.ndarray, k: int) -> list[float]:
    """IoU by boolean masks, class by class, void (255) pixels dropped first; NaN for an empty union."""
    keep = truth != 255
    out = []
    for c in range(k):
        t, p = (truth == c) & keep, (predicted == c) & keep
        union = np.logical_or(t, p).sum()
        out.append(np.logical_and(t, p).sum() / union if union else math.nan)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_iou_matches_a_mask_by_mask_count_with_void_and_absent_classes(seed) -> None:
    rng = np.random.default_rng(seed)
    k = 5
    truth = rng.integers(0, 3, (20, 17))  # classes 3 and 4 never in the truth
    predicted = rng.integers(0, 4, (20, 17))  # class 4 never predicted: undefined
    truth[rng.random(truth.shape) < 0.2] = 255
    predicted[truth == 255] = 3  # predictions on void pixels must not count for class 3
    expected = _reference_iou(truth, predicted, k)
    got = label_scores.iou_per_class(truth, predicted, k)
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert math.isnan(got[4])
    assert label_scores.mean_iou(got) == pytest.approx(np.mean([v for v in expected if not math.isnan(v)]))


def test_hand_made_case_and_record_fields() -> None:
    truth = np.array([[0, 0, 1, 255], [0, 0, 1, 1]])
    predicted = np.array([[0, 1, 1, 2], [0, 0, 2, 1]])
    # class 0: ∩ 3, ∪ 4; class 1: ∩ 2 ({0,2},{1,3}), ∪ 4 (+{0,1} predicted, {1,2} missed); class 2: ∩ 0, ∪ 1
    # (the 2 on the void pixel does not count); class 3: nowhere
    scores = label_scores.image_scores(truth, predicted, ["bg", "cap", "=HYPERLINK()", "ring"])
    assert scores["class_iou"] == {"iou_bg": 0.75, "iou_cap": 0.5, "iou_=HYPERLINK()": 0.0, "iou_ring": None}
    assert scores["mean_iou"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert math.isnan(label_scores.mean_iou(label_scores.iou_per_class(np.full((2, 2), 255), np.zeros((2, 2)), 2)))


def test_label_problems_are_one_sentence_each() -> None:
    fine = np.array([[0, 1], [255, 2]])
    assert label_scores.label_problem(fine, (2, 2), 3) == ""
    size = label_scores.label_problem(fine, (4, 2), 3)
    assert "2×2 pixels but the image is 2×4" in size and size.count(". ") == 0
    values = label_scores.label_problem(np.array([[0, 7]]), (1, 2), 3)
    assert "class 7" in values and "3 classes" in values


def test_column_names_keep_one_column_per_class() -> None:
    assert label_scores.column_names(["a\nb", "", "x", "x", "mean"]) == ["iou_a b", "iou_1", "iou_x", "iou_3_x",
                                                                       "iou_mean"]


def test_ranking_is_worst_first_and_leaves_out_images_without_a_mean() -> None:
    records = [{"image": "b.png", "output": "b", "mean_iou": 0.5, "class_iou": {"iou_bg": 0.5, "iou_cap": None}},
               {"image": "a.png", "output": "a", "mean_iou": 0.2, "class_iou": {"iou_bg": 0.2, "iou_cap": 0.2}},
               {"image": "c.png", "output": "c", "mean_iou": None, "class_iou": {"iou_bg": None, "iou_cap": None}},
               {"image": "d.png", "output": "d"}]
    rows = label_scores.ranking(records, run="r")
    assert [r["image"] for r in rows] == ["a.png", "b.png"]
    assert math.isnan(rows[1]["iou_cap"]) and rows[0]["run"] == "r"


def test_worst_error_picks_the_worst_class_and_its_larger_error() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    predicted = np.array([[0, 0, 0, 1], [0, 0, 0, 1]])  # class 1 loses 2 of 4 pixels to class 0
    assert label_scores.worst_error(truth, predicted, 2) == ("fn", 1)
    assert label_scores.worst_error(truth, truth, 2) is None
