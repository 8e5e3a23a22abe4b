"""Where segmentation fails: confusion, per-class IoU, and error regions usable as regions to explain.

The use case asks "for which images does the segmentation work, and where did it not?". These are
pure NumPy functions of a ground-truth label map and a predicted one (both H×W class indices), so
the dashboard only shows them and the tests check them on hand-made masks.

Void pixels: a ground-truth pixel labelled `VOID` (255, Pascal VOC's object borders) counts for no class,
exactly as in `explainers.label_scores` (the batch's per-image IoU): it is left out of the confusion
matrix, the IoU, the pixel accuracy and every error region, and gets the code `VOID_PIXEL` in
`error_codes`. So the main view's IoU of a batch image equals the batch summary's `iou_<class>`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from explainers import label_scores
from explainers.errors import ExplainerError

VOID = label_scores.VOID  # ground-truth value of pixels that are not scored (255)
VOID_NAME = f"void ({VOID}, not scored)"

# Codes of `error_codes`, one per pixel, for one chosen class.
TRUE_NEGATIVE, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE, VOID_PIXEL = 0, 1, 2, 3, 4
ERROR_CODE_NAMES = ("other", "correct", "false positive", "false negative", VOID_NAME)


def _check_pair(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape or truth.ndim != 2:
        raise ExplainerError(
            f"The label map has shape {truth.shape} but the prediction has shape {predicted.shape}: "
            "use a label image with one class index per pixel and the same size as the image."
        )
    return truth.astype(np.int64), predicted.astype(np.int64)


def void_pixels(truth: np.ndarray) -> np.ndarray:
    """Bool mask of the ground truth's void pixels (value `VOID`): in no class, never scored or an error."""
    return np.asarray(truth) == VOID


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts of the non-void pixels, rows = true class, columns = predicted class."""
    truth, predicted = _check_pair(truth, predicted)
    kept = truth != VOID
    flat = truth[kept] * num_classes + predicted[kept]
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """IoU of every class over the non-void pixels; NaN for a class absent from both maps (IoU is undefined
    there, not 0 or 1). The batch's rule (`label_scores.iou_per_class`), so both give the same numbers."""
    truth, predicted = _check_pair(truth, predicted)
    return label_scores.iou_per_class(truth, predicted, num_classes)


def mean_iou(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Mean IoU over the classes present in the truth or the prediction (void pixels not counted)."""
    return label_scores.mean_iou(per_class_iou(truth, predicted, num_classes))


def pixel_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of the non-void pixels whose predicted class is the true one (NaN when every pixel is void)."""
    truth, predicted = _check_pair(truth, predicted)
    kept = truth != VOID
    return float((truth[kept] == predicted[kept]).mean()) if kept.any() else float("nan")


def class_shares(labels: np.ndarray, num_classes: int) -> list[float]:
    """Fraction of the pixels labelled as each class."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return [float(c) / max(1, labels.size) for c in counts]


def error_codes(truth: np.ndarray, predicted: np.ndarray, class_index: int) -> np.ndarray:
    """Per pixel: correct, false positive, false negative or unrelated, for one class; `VOID_PIXEL` where the
    truth is void (never an error)."""
    truth, predicted = _check_pair(truth, predicted)
    void = truth == VOID
    in_truth, in_pred = (truth == class_index) & ~void, predicted == class_index
    codes = np.full(truth.shape, TRUE_NEGATIVE, dtype=np.uint8)
    codes[in_truth & in_pred] = TRUE_POSITIVE
    codes[~in_truth & in_pred] = FALSE_POSITIVE
    codes[in_truth & ~in_pred] = FALSE_NEGATIVE
    codes[void] = VOID_PIXEL
    return codes


def confused_pixels(
    truth: np.ndarray,
    predicted: np.ndarray,
    true_class: int,
    predicted_class: int,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Region preset "pixels of class a predicted as b" (a cell of the confusion table)."""
    truth, predicted = _check_pair(truth, predicted)
    name = _namer(class_names)
    return _non_empty(
        (truth == true_class) & (predicted == predicted_class) & (truth != VOID),
        f"No pixel of class {name(true_class)} is predicted as {name(predicted_class)} in this image: "
        "pick a non-zero cell of the confusion table, or another region.",
    )


def false_positives(
    truth: np.ndarray, predicted: np.ndarray, class_index: int, class_names: Sequence[str] | None = None
) -> np.ndarray:
    """Region preset: pixels predicted as the class that are something else in the ground truth."""
    return _non_empty(
        error_codes(truth, predicted, class_index) == FALSE_POSITIVE,
        f"The network has no false positives for {_namer(class_names)(class_index)} in this image: "
        "choose another class or region.",
    )


def false_negatives(
    truth: np.ndarray, predicted: np.ndarray, class_index: int, class_names: Sequence[str] | None = None
) -> np.ndarray:
    """Region preset: pixels of the class in the ground truth that the network called something else."""
    return _non_empty(
        error_codes(truth, predicted, class_index) == FALSE_NEGATIVE,
        f"The network misses no pixel of {_namer(class_names)(class_index)} in this image: "
        "choose another class or region.",
    )


def rank_by_iou(truths: np.ndarray, predictions: np.ndarray, num_classes: int) -> list[dict]:
    """One row per image (index, mean IoU, per-class IoU), worst first, for the image browser."""
    rows = []
    for index, (truth, predicted) in enumerate(zip(truths, predictions, strict=True)):
        ious = per_class_iou(truth, predicted, num_classes)
        rows.append({"index": index, "mean_iou": float(np.nanmean(ious)), "class_iou": ious})
    return sorted(rows, key=lambda row: (row["mean_iou"], row["index"]))


def decode_label_image(data: bytes, shape: tuple[int, int], num_classes: int) -> np.ndarray:
    """Read an uploaded label PNG (one class index per pixel) and check it fits the image and model.

    Accepted: 8- or 16-bit single-channel images and palette images (the palette index is the class);
    value `VOID` (255) marks void pixels. The label map must have the image's original size
    (`shape` = (height, width)).
    """
    from explainers.images import decode_with

    def class_indices(label_image) -> np.ndarray:
        if label_image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise ExplainerError(
                f"The label image is in colour mode {label_image.mode}: save it as a single-channel "
                "(grayscale or palette) PNG whose pixel values are class indices."
            )
        return np.asarray(label_image).astype(np.int64)

    labels = decode_with(data, class_indices)
    if labels.shape != tuple(shape):
        raise ExplainerError(
            f"The label image is {labels.shape[1]}×{labels.shape[0]} pixels but the image is "
            f"{shape[1]}×{shape[0]}: upload the label map made for this image."
        )
    values = labels[labels != VOID]  # void pixels (255) are allowed: not scored, as in the batch's labels
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ExplainerError(
            f"The label image has values up to {values.max()}, but the model has {num_classes} classes "
            f"(0 to {num_classes - 1}, and {VOID} for void pixels): each pixel must be a class index."
        )
    return labels.astype(np.uint8 if num_classes <= 256 else np.int32)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to the model's grid (class indices must not blend)."""
    from explainers.regions import resample_nearest

    return resample_nearest(labels, shape)


def _non_empty(region: np.ndarray, message: str) -> np.ndarray:
    """A preset region, or the clear error when it selects nothing (never an empty mask downstream)."""
    if not region.any():
        raise ExplainerError(message)
    return region


def _namer(class_names: Sequence[str] | None):
    return (lambda c: f"'{class_names[c]}'") if class_names else (lambda c: str(c))


# ---- Defaults for the dashboard's error-region presets -------------------------------------------


def error_counts(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) per class from a confusion matrix (rows true, columns predicted)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ExplainerError(f"A confusion matrix must be square, got shape {confusion.shape}.")
    correct = np.diag(confusion)
    return confusion.sum(axis=0) - correct, confusion.sum(axis=1) - correct


def largest_confusion(confusion: np.ndarray, ignore: Sequence[int] = ()) -> tuple[int, int] | None:
    """The (true class, predicted class) off the diagonal with the most pixels (ties: lowest indices).

    Cells whose true or predicted class is in `ignore` (e.g. background) are chosen only when no other
    off-diagonal cell has a pixel. None when the prediction is perfect (nothing off the diagonal)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    error_counts(confusion)  # shape check
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    if not off.any():
        return None
    preferred = off.copy()
    for k in ignore:
        if 0 <= int(k) < len(off):
            preferred[int(k), :] = 0
            preferred[:, int(k)] = 0
    if preferred.any():
        off = preferred
    true_class, predicted_class = np.unravel_index(int(off.argmax()), off.shape)
    return int(true_class), int(predicted_class)
