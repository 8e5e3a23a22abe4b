"""Ground truth beside the prediction: overlays, the error map and per-class IoU.

The ground truth of the current image comes from its choice in session state: a sample scene's
label map (from `models.scenes`), a generated scene's (the image browser stores it with the image),
or a label PNG the user uploaded for an uploaded image (`labels_from_upload`, a plain function so
tests can call it with bytes). It is kept at the image's original size and resized to the model's
grid (`explainers.quality.resize_labels`) when shown. The numbers come from `explainers.quality`.
A truth may hold void pixels (255, e.g. Pascal VOC borders from a labelled batch run): drawn as grey
stripes, named in the legend, and left out of the IoU, the accuracy and the errors as in the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import compute, figures, safe_text, state
from explainers import ExplainerError, quality
from models import scenes

PANEL_WIDTH = 288  # pixels of each of the three overlays as built; on screen they stretch to their column


# ---------------------------------------------------------------------------------------------
# Handlers and look-ups (no widgets)


def labels_from_upload(name: str, data: bytes, choice: dict[str, Any],
                       num_classes: int) -> tuple[dict[str, Any] | None, str | None]:
    """The image choice with the uploaded label map as its ground truth, or one line saying why not.

    The label PNG must have the image's original size and values 0 … num_classes - 1."""
    height, width = np.asarray(choice["pixels"]).shape[:2]
    try:
        truth = quality.decode_label_image(data, (height, width), num_classes)
    except (ExplainerError, ValueError, OSError, Image.DecompressionBombError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return None, f"“{name}” was not used as ground truth: {reason}"
    return {**choice, "truth": truth, "truth_name": name}, None


sample_truth = compute.sample_truth  # a gallery sample's ground truth (cached there)


def original_truth(choice: dict[str, Any]) -> np.ndarray | None:
    """The current image's label map at its original size, or None when it has none."""
    if choice.get("truth") is not None:
        return np.asarray(choice["truth"])
    if choice.get("source") == "sample" and choice.get("name") in scenes.SAMPLES:
        return sample_truth(choice["name"])
    return None


def ground_truth(choice: dict[str, Any], labels: np.ndarray,
                 num_classes: int) -> tuple[np.ndarray | None, str | None]:
    """(label map on the prediction's grid, None), or (None, why there is no usable ground truth)."""
    truth = original_truth(choice)
    if truth is None:
        return None, "This image has no ground truth."
    classes = truth[~quality.void_pixels(truth)]  # void pixels (255) are allowed: shown, never scored
    if int(classes.max(initial=0)) >= num_classes:
        return None, (f"The ground truth has class indices up to {int(classes.max())}, but this model's classes are "
                      f"0–{num_classes - 1}: it does not belong to this model.")
    return quality.resize_labels(truth, labels.shape), None


# ---------------------------------------------------------------------------------------------
# Callback


def _on_label_upload(key: str, num_classes: int) -> None:
    uploaded = st.session_state.get(key)
    choice = state.get(state.IMAGE_CHOICE)
    if choice is None:
        return
    if uploaded is None:  # the file was removed from the uploader: the image has no ground truth again
        state.put(state.IMAGE_CHOICE, {k: v for k, v in choice.items() if k not in ("truth", "truth_name")})
        state.put(state.LABEL_MESSAGE, None)
        return
    new_choice, message = labels_from_upload(uploaded.name, uploaded.getvalue(), choice, num_classes)
    state.put(state.LABEL_MESSAGE, message)
    if new_choice is not None:
        state.put(state.IMAGE_CHOICE, new_choice)


# ---------------------------------------------------------------------------------------------
# The panel


def panel(image: np.ndarray, labels: np.ndarray, truth: np.ndarray | None, note: str | None,
          names: list[str], colors: list[tuple[int, int, int]], choice: dict[str, Any]) -> None:
    """Ground truth | prediction | errors, then per-class IoU; or how to add a ground truth."""
    message = state.get(state.LABEL_MESSAGE)
    if message:
        st.error(safe_text.md(message))
    if truth is None:
        can_upload = choice.get("source") == "upload"
        st.info(f"{note} " + ("Upload a label PNG below (one class index per pixel, the image's size) to see "
                              "the errors and use them as regions." if can_upload else
                              "Sample scenes and generated scenes have one; uploaded images can get one "
                              "from a label PNG."))
        if can_upload:
            _uploader(choice, len(names))
        return
    skip = (0,) if names[0] == "background" else ()
    view_options = ["all", *range(len(names))]
    if state.get(state.ERROR_VIEW) not in view_options:
        st.session_state[state.ERROR_VIEW] = "all"
    ious = quality.per_class_iou(truth, labels, len(names))
    mean = quality.mean_iou(truth, labels, len(names))
    accuracy = quality.pixel_accuracy(truth, labels)
    size = (PANEL_WIDTH, round(PANEL_WIDTH * labels.shape[0] / labels.shape[1]))
    view_col, legend_col = st.columns([1, 2], vertical_alignment="bottom")
    view = view_col.selectbox("Errors of", view_options, key=state.ERROR_VIEW,
                              format_func=lambda v: "all classes" if v == "all" else f"{names[v]}",
                              help="All classes: misclassified pixels red, correct objects green. One class: "
                                   "correct, false positives and false negatives of that class.")
    void = quality.void_pixels(truth)
    if view == "all":
        errors = figures.confusion_overlay(image, truth, labels, background=0 if skip else None)
        legend = ["correct", "wrong"]
    else:
        errors = figures.error_overlay(image, quality.error_codes(truth, labels, int(view)))
        legend = ["correct", "false positive", "false negative"]
    if void.any():
        legend.append(quality.VOID_NAME)
    legend_col.markdown(figures.error_legend_html(legend), unsafe_allow_html=True)
    truth_col, pred_col, error_col = st.columns(3)
    truth_col.image(figures.hatch_void(figures.enlarge(figures.mask_overlay(image, truth, colors, skip=skip), size),
                                       void),
                    caption="Ground truth" + (f" (grey stripes: {quality.VOID_NAME})" if void.any() else ""),
                    width="stretch")
    pred_col.image(figures.enlarge(figures.mask_overlay(image, labels, colors, skip=skip), size),
                   caption="Prediction", width="stretch")
    error_col.image(figures.hatch_void(figures.enlarge(errors, size), void), width="stretch",
                    caption="Errors: " + ("all classes" if view == "all" else names[int(view)]))
    confusion = quality.confusion_matrix(truth, labels, len(names))
    fp, fn = quality.error_counts(confusion)
    rows = [{"class": names[k], "IoU": None if np.isnan(ious[k]) else round(float(ious[k]), 3),
             "true px": int(confusion[k].sum()), "predicted px": int(confusion[:, k].sum()),
             "false pos. px": int(fp[k]), "false neg. px": int(fn[k])} for k in range(len(names))]
    st.dataframe(rows, hide_index=True, key="iou_table", placeholder="–")
    void_note = (f" {int(void.sum())} px are void ({quality.VOID} in the ground truth): not scored, never an error "
                 "and never part of an error region, as in the batch's IoU." if void.any() else "")
    scored = "non-void pixels" if void.any() else "pixels"
    accuracy_text = "–" if np.isnan(accuracy) else f"{100 * accuracy:.1f} %"
    st.caption(f"Mean IoU **{mean:.3f}** over the classes present in the ground truth or the prediction "
               f"(– = absent from both); pixel accuracy {accuracy_text} of the {scored}.{void_note} "
               "Use the errors as the region to explain with the region mode “Error region”.")
    if choice.get("source") == "upload":
        _uploader(choice, len(names))


def _uploader(choice: dict[str, Any], num_classes: int) -> None:
    key = f"{state.LABEL_UPLOAD}-{choice['digest']}"  # a new image gets an empty uploader
    height, width = np.asarray(choice["pixels"]).shape[:2]
    st.file_uploader(f"Ground-truth label PNG for this image ({width}×{height} px, values 0–{num_classes - 1}, "
                     f"{quality.VOID} = void)",
                     type=["png"], key=key, on_change=_on_label_upload, args=(key, num_classes),
                     help="A single-channel (grayscale or palette) PNG whose pixel values are class indices, "
                          "at the uploaded image's original size. It is resized to the model's grid.")
