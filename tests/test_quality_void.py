"""Void pixels (label 255, Pascal VOC's object borders) in the main view's ground truth: the quality numbers and
error regions leave them out exactly as the batch's `label_scores` does, so the IoU the main view shows for a
batch image is the summary's `iou_<class>`; the pictures draw them as grey stripes, never as an error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explainers import label_scores, quality

VOID = label_scores.VOID


def _pair(seed: int, shape=(40, 50), classes: int = 4, void_share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, shape).astype(np.uint8)
    truth[rng.random(shape) < void_share] = VOID
    predicted = rng.integers(0, classes, shape).astype(np.int64)
    return truth, predicted


@pytest.mark.parametrize("seed", range(5))
def test_iou_mean_and_accuracy_leave_void_out_exactly_as_the_batch(seed) -> None:
    truth, predicted = _pair(seed)
    kept = truth != VOID
    np.testing.assert_array_equal(quality.per_class_iou(truth, predicted, 4),
                                  label_scores.iou_per_class(truth, predicted, 4))
    assert quality.mean_iou(truth, predicted, 4) == label_scores.mean_iou(label_scores.iou_per_class(truth, predicted, 4))
    confusion = quality.confusion_matrix(truth, predicted, 4)
    assert confusion.sum() == kept.sum()
    np.testing.assert_array_equal(confusion, quality.confusion_matrix(truth[kept][None], predicted[kept][None], 4))
    assert quality.pixel_accuracy(truth, predicted) == pytest.approx((truth[kept] == predicted[kept]).mean())
    record = label_scores.image_scores(truth, predicted, ["a", "b", "c", "d"])  # what summary.csv gets
    ious = quality.per_class_iou(truth, predicted, 4)
    assert [round(float(v), 6) for v in ious] == list(record["class_iou"].values())


def test_hand_made_void_pixel_is_no_error_and_in_no_region() -> None:
    truth = np.array([[1, 1, VOID], [0, VOID, 0]], np.uint8)
    predicted = np.array([[1, 0, 1], [0, 1, 1]])
    # class 1: truth {(0,0),(0,1)}, predicted non-void {(0,0),(1,2)}: intersection 1, union 3
    assert quality.per_class_iou(truth, predicted, 2)[1] == pytest.approx(1 / 3)
    assert quality.pixel_accuracy(truth, predicted) == pytest.approx(2 / 4)
    codes = quality.error_codes(truth, predicted, 1)
    assert codes[0, 2] == codes[1, 1] == quality.VOID_PIXEL  # predicted as 1 on void: not a false positive
    assert quality.ERROR_CODE_NAMES[quality.VOID_PIXEL] == "void (255, not scored)"
    fp = quality.false_positives(truth, predicted, 1)
    np.testing.assert_array_equal(fp, [[False, False, False], [False, False, True]])
    fn = quality.false_negatives(truth, predicted, 1)
    np.testing.assert_array_equal(fn, [[False, True, False], [False, False, False]])
    assert quality.error_counts(quality.confusion_matrix(truth, predicted, 2))[0].tolist() == [1, 1]


@pytest.mark.parametrize("seed", range(5))
def test_error_regions_never_hold_void_and_match_the_batchs_worst_error(seed) -> None:
    truth, predicted = _pair(seed)
    void = truth == VOID
    for c in range(4):
        for preset in (quality.false_positives, quality.false_negatives):
            assert not (preset(truth, predicted, c) & void).any()
        for b in range(4):
            if b != c and quality.confusion_matrix(truth, predicted, 4)[c, b]:
                assert not (quality.confused_pixels(truth, predicted, c, b) & void).any()
    kind, c = label_scores.worst_error(truth, predicted)
    region = (quality.false_positives if kind == "fp" else quality.false_negatives)(truth, predicted, c)
    fp, fn = quality.error_counts(quality.confusion_matrix(truth, predicted, 4))
    assert region.sum() == (fp if kind == "fp" else fn)[c]  # the page's counts are the region's pixels


def test_an_all_void_truth_has_no_scores() -> None:
    truth = np.full((3, 3), VOID, np.uint8)
    predicted = np.zeros((3, 3), np.int64)
    assert np.isnan(quality.per_class_iou(truth, predicted, 2)).all()
    assert np.isnan(quality.mean_iou(truth, predicted, 2)) and np.isnan(quality.pixel_accuracy(truth, predicted))
    with pytest.raises(quality.ExplainerError):
        quality.false_positives(truth, predicted, 0)


def test_label_png_with_void_pixels_is_accepted_and_other_values_are_not() -> None:
    labels = np.array([[0, 1, VOID], [2, VOID, 1]], np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(labels, mode="L").save(buffer, format="PNG")
    np.testing.assert_array_equal(quality.decode_label_image(buffer.getvalue(), (2, 3), 3), labels)
    buffer = io.BytesIO()
    Image.fromarray(np.where(labels == 2, 7, labels).astype(np.uint8), mode="L").save(buffer, format="PNG")
    with pytest.raises(quality.ExplainerError, match="values up to 7"):
        quality.decode_label_image(buffer.getvalue(), (2, 3), 3)


# ---- The dashboard's pieces that take such a truth (plain functions, no AppTest) ----------------


def test_the_main_views_ground_truth_takes_void_pixels() -> None:
    from dashboard import quality_view

    truth = np.array([[0, 1], [VOID, 2]], np.uint8)
    choice = {"source": "dataset", "name": "x", "digest": "d", "pixels": np.zeros((2, 2, 3), np.uint8), "truth": truth}
    grid, note = quality_view.ground_truth(choice, np.zeros((2, 2), np.int64), 3)
    assert note is None
    np.testing.assert_array_equal(grid, truth)
    bad = {**choice, "truth": np.array([[0, 5], [VOID, 2]], np.uint8)}
    assert quality_view.ground_truth(bad, np.zeros((2, 2), np.int64), 3)[0] is None


def test_void_pixels_are_drawn_as_stripes_and_never_as_errors() -> None:
    from dashboard import figures

    image = np.full((4, 4, 3), 50, np.uint8)
    truth = np.zeros((4, 4), np.uint8)
    truth[:, 3] = VOID
    predicted = np.ones((4, 4), np.int64)  # every pixel wrong, void ones included
    errors = figures.confusion_overlay(image, truth, predicted)
    np.testing.assert_array_equal(errors[:, 3], image[:, 3])  # void: left clear, not red
    assert (errors[:, :3] != image[:, :3]).any(axis=-1).all()
    overlay = figures.mask_overlay(image, truth, [(255, 0, 0), (0, 255, 0)], skip=())  # no IndexError on 255
    np.testing.assert_array_equal(overlay[:, 3], image[:, 3])
    shown = figures.hatch_void(figures.enlarge(overlay, (40, 40)), truth == VOID)
    stripes = {tuple(p) for p in shown[:, 30:].reshape(-1, 3)}
    assert stripes == set(figures.VOID_HATCH)  # both greys, nothing else, on the void column
    np.testing.assert_array_equal(shown[:, :30], figures.enlarge(overlay, (40, 40))[:, :30])
    legend = figures.error_legend_html(["correct", "wrong", quality.VOID_NAME])
    assert "void (255, not scored)" in legend and "repeating-linear-gradient" in legend
