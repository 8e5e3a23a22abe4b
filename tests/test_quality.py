"""Segmentation-quality helpers on hand-made masks, where every number can be counted by eye."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explainers import quality
from explainers.errors import ExplainerError

NAMES = ("background", "cap", "gills")

# truth:        predicted:
# 0 0 1 1       0 1 1 1
# 0 0 1 1       0 0 1 2
# 2 2 0 0       2 0 0 0
TRUTH = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 2], [2, 0, 0, 0]])


def test_confusion_matrix_counts_pixels() -> None:
    expected = np.array([[5, 1, 0], [0, 3, 1], [1, 0, 1]])
    np.testing.assert_array_equal(quality.confusion_matrix(TRUTH, PRED, 3), expected)
    assert quality.confusion_matrix(TRUTH, PRED, 3).sum() == TRUTH.size


def test_per_class_iou_from_counts() -> None:
    # background: TP 5, FP 1, FN 1 -> 5/7; cap: 3/(3+1+1); gills: 1/(1+1+1)
    np.testing.assert_allclose(quality.per_class_iou(TRUTH, PRED, 3), [5 / 7, 3 / 5, 1 / 3])
    assert quality.mean_iou(TRUTH, PRED, 3) == pytest.approx((5 / 7 + 3 / 5 + 1 / 3) / 3)


def test_absent_class_has_undefined_iou_and_is_left_out_of_the_mean() -> None:
    ious = quality.per_class_iou(TRUTH, PRED, 4)
    assert np.isnan(ious[3])
    assert quality.mean_iou(TRUTH, PRED, 4) == pytest.approx(np.mean(ious[:3]))


def test_error_codes_for_one_class() -> None:
    codes = quality.error_codes(TRUTH, PRED, 1)
    assert codes[0, 1] == quality.FALSE_POSITIVE
    assert codes[1, 3] == quality.FALSE_NEGATIVE
    assert (codes == quality.TRUE_POSITIVE).sum() == 3
    assert codes[2, 0] == quality.TRUE_NEGATIVE


def test_presets_select_exactly_the_error_pixels() -> None:
    assert quality.false_positives(TRUTH, PRED, 1).nonzero() == (np.array([0]), np.array([1]))
    assert quality.false_negatives(TRUTH, PRED, 1).nonzero() == (np.array([1]), np.array([3]))
    ring_as_bg = quality.confused_pixels(TRUTH, PRED, 2, 0)
    assert ring_as_bg.nonzero() == (np.array([2]), np.array([1]))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: quality.false_positives(TRUTH, TRUTH, 1, NAMES), "no false positives for 'cap'"),
        (lambda: quality.false_negatives(TRUTH, TRUTH, 2, NAMES), "misses no pixel of 'gills'"),
        (lambda: quality.confused_pixels(TRUTH, PRED, 2, 1, NAMES), "'gills' is predicted as 'cap'"),
    ],
)
def test_empty_presets_raise_the_usual_clear_error(call, words) -> None:
    with pytest.raises(ExplainerError, match=words):
        call()


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ExplainerError, match="same size"):
        quality.confusion_matrix(TRUTH, PRED[:, :3], 3)


def test_rank_by_iou_puts_the_worst_image_first() -> None:
    truths = np.stack([TRUTH, TRUTH])
    preds = np.stack([TRUTH, PRED])
    ranked = quality.rank_by_iou(truths, preds, 3)
    assert [row["index"] for row in ranked] == [1, 0]
    assert ranked[1]["mean_iou"] == pytest.approx(1.0)


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_label_png_round_trip() -> None:
    labels = quality.decode_label_image(_png(TRUTH.astype(np.uint8)), (3, 4), 3)
    np.testing.assert_array_equal(labels, TRUTH)


def test_palette_label_png_uses_palette_indices() -> None:
    image = Image.fromarray(TRUTH.astype(np.uint8), mode="L").convert("P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 - 3) * 3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    np.testing.assert_array_equal(quality.decode_label_image(buffer.getvalue(), (3, 4), 3), TRUTH)


@pytest.mark.parametrize(
    "data, shape, words",
    [
        (_png(TRUTH.astype(np.uint8)), (4, 4), "upload the label map made for this image"),
        (_png((TRUTH * 3).astype(np.uint8)), (3, 4), "values up to 6"),
        (_png(np.zeros((3, 4, 3), np.uint8)), (3, 4), "single-channel"),
        (b"not a png at all", (3, 4), "not an image segexplain can read"),
    ],
)
def test_bad_label_images_are_refused_with_a_reason(data, shape, words) -> None:
    with pytest.raises(ExplainerError, match=words):
        quality.decode_label_image(data, shape, 3)


def test_resize_labels_keeps_class_indices() -> None:
    big = quality.resize_labels(TRUTH, (6, 8))
    assert set(np.unique(big)) == {0, 1, 2}
    np.testing.assert_array_equal(big[::2, ::2], TRUTH)


# ---- Preset defaults (dashboard's error-region mode) ---------------------------------------------


def test_error_counts_are_column_and_row_sums_off_the_diagonal() -> None:
    # confusion of TRUTH/PRED: [[5, 1, 0], [0, 3, 1], [1, 0, 1]]
    fp, fn = quality.error_counts(quality.confusion_matrix(TRUTH, PRED, 3))
    np.testing.assert_array_equal(fp, [1, 1, 1])  # predicted as c, something else in truth
    np.testing.assert_array_equal(fn, [1, 1, 1])  # c in truth, predicted as something else
    for c in range(3):
        assert fp[c] == quality.false_positives(TRUTH, PRED, c).sum()
        assert fn[c] == quality.false_negatives(TRUTH, PRED, c).sum()


def test_largest_confusion_picks_the_biggest_off_diagonal_cell() -> None:
    confusion = np.array([[50, 2, 0], [0, 30, 7], [4, 0, 9]])
    assert quality.largest_confusion(confusion) == (1, 2)
    assert quality.largest_confusion(np.array([[1, 3], [3, 1]])) == (0, 1)  # ties: lowest indices
    assert quality.largest_confusion(np.diag([5, 6, 7])) is None  # perfect prediction



def test_largest_confusion_can_prefer_object_classes() -> None:
    confusion = np.array([[90, 40, 3], [20, 30, 7], [4, 5, 9]])
    assert quality.largest_confusion(confusion) == (0, 1)
    assert quality.largest_confusion(confusion, ignore=(0,)) == (1, 2)
    only_background = np.array([[9, 2, 0], [1, 5, 0], [0, 0, 4]])
    assert quality.largest_confusion(only_background, ignore=(0,)) == (0, 1)  # nothing else to show


def test_largest_confusion_cell_is_a_valid_confused_region() -> None:
    a, b = quality.largest_confusion(quality.confusion_matrix(TRUTH, PRED, 3))
    assert quality.confused_pixels(TRUTH, PRED, a, b).sum() == 1


def test_non_square_confusion_is_refused() -> None:
    with pytest.raises(ExplainerError, match="square"):
        quality.error_counts(np.zeros((2, 3)))


def test_label_upload_gets_the_image_upload_safety_checks() -> None:
    """Formats Pillow would hand to Ghostscript are refused, and the pixel limit applies before decoding."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 3\n"
    with pytest.raises(ExplainerError, match="not an image segexplain can read"):
        quality.decode_label_image(eps, (3, 4), 3)
    huge = io.BytesIO()
    Image.new("L", (9000, 5000)).save(huge, format="PNG")
    with pytest.raises(ExplainerError, match="MP limit"):
        quality.decode_label_image(huge.getvalue(), (5000, 9000), 3)


def test_pixel_accuracy_and_class_shares_count_pixels() -> None:
    assert quality.pixel_accuracy(TRUTH, PRED) == pytest.approx(9 / 12)
    assert quality.class_shares(PRED, 3) == pytest.approx([6 / 12, 4 / 12, 2 / 12])
