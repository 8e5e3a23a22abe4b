"""Issue 10 in the dashboard: ground truth beside the prediction, error regions, the image browser.

AppTest as in test_app.py (cheap XRAI, one CAM where the maps themselves do not matter). The numbers
the page shows are checked against `explainers.quality` run here on the same sample and the same
model, so a wrong wiring (truth and prediction swapped, a resized grid, another image) shows up.
The label-PNG upload is tested through its handler, since AppTest cannot upload files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from map_pictures import map_captions
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import state
from explainers import quality

pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SAMPLE = "fly agaric"  # the page's default image
NAMES = ["background", "cap", "gills", "stipe", "ring", "volva"]


@pytest.fixture(scope="module")
def truth_and_prediction() -> tuple[np.ndarray, np.ndarray]:
    """The default sample's ground truth and the shipped model's prediction, computed here."""
    import explainers
    from models import load_default
    from models.scenes import load_sample

    image, truth = load_sample(SAMPLE)
    model = load_default()
    return truth.astype(np.int64), explainers.predict(model, explainers.fit_image(model, image)).labels


def _app(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[keys.XRAI_STEPS] = 4
    at.session_state[keys.XRAI_ALGORITHM] = "fast"
    at.session_state[state.METHODS] = ["gradcam"]
    for key, value in session.items():
        at.session_state[key] = value
    return at


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _table_with(at: AppTest, column: str):
    tables = [d.value for d in at.dataframe if column in d.value.columns]
    assert tables, f"no table with a {column!r} column"
    return tables[0]


def _image_captions(at: AppTest) -> list[str]:
    captions = []
    for element in at.get("image"):
        captions.extend(img.caption for img in element.proto.imgs)
    return captions


def _explained_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Explaining"))


def _map_has_outline(at: AppTest) -> bool:
    """A map picture is on screen (the region outline is drawn into it: see figures.map_image)."""
    return any(" · " in caption and caption.rstrip().endswith(" s") or " s · " in caption
               for caption in map_captions(at))


@pytest.mark.slow
def test_ground_truth_panel_shows_overlays_and_per_class_iou(truth_and_prediction) -> None:
    truth, predicted = truth_and_prediction
    at = _app(**{state.REGION_MODE: "image"})
    at.run()
    _assert_clean(at)
    assert {"Ground truth", "Prediction", "Errors: all classes"} <= set(_image_captions(at))
    table = _table_with(at, "IoU")
    assert list(table["class"]) == NAMES
    expected = quality.per_class_iou(truth, predicted, len(NAMES))
    shown = table["IoU"].to_numpy(dtype=float)
    np.testing.assert_allclose(shown, np.round(expected, 3), atol=1e-9, equal_nan=True)
    assert list(table["true px"]) == list(np.bincount(truth.ravel(), minlength=6))
    mean = quality.mean_iou(truth, predicted, len(NAMES))
    assert any(f"Mean IoU **{mean:.3f}**" in c.value for c in at.caption)

    at.selectbox(key=state.ERROR_VIEW).set_value(1).run()  # one class: correct / FP / FN colouring
    _assert_clean(at)
    assert "Errors: cap" in _image_captions(at)
    assert tuple(at.session_state[state.RESULTS]) == ("gradcam",)  # the comparison is untouched


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fp", "fn", "confusion"])
def test_error_presets_are_explained_like_a_drawn_region(kind, truth_and_prediction) -> None:
    truth, predicted = truth_and_prediction
    confusion = quality.confusion_matrix(truth, predicted, len(NAMES))
    session = {state.REGION_MODE: "errors", state.ERROR_KIND: kind}
    if kind == "confusion":
        a, b = quality.largest_confusion(confusion, ignore=(0,))  # the page's default pair
        expected = quality.confused_pixels(truth, predicted, a, b)
        how = f"pixels of '{NAMES[a]}' predicted as '{NAMES[b]}'"
    else:
        fp, fn = quality.error_counts(confusion)
        counts = (fp if kind == "fp" else fn).copy()
        counts[0] = 0
        c = int(counts.argmax())  # the page's default: the object class with the most such errors
        assert counts[c] > 0
        session[state.ERROR_CLASS] = c
        region_of = quality.false_positives if kind == "fp" else quality.false_negatives
        expected = region_of(truth, predicted, c)
        how = f"{'false positives' if kind == 'fp' else 'false negatives'} of '{NAMES[c]}'"
    at = _app(**session)
    at.run()
    _assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    caption = _explained_caption(at)
    assert how in caption and f"({int(expected.sum())} px)" in caption
    assert tuple(at.session_state[state.RESULTS]) == ("gradcam",)
    assert _map_has_outline(at)  # the preset's outline is drawn on the map
    if kind == "confusion":  # class default follows the region: what the net called these pixels
        assert at.selectbox(key=state.CLASS).value == b


@pytest.mark.slow
def test_clicking_a_confusion_cell_picks_that_pair(truth_and_prediction) -> None:
    truth, predicted = truth_and_prediction
    at = _app(**{state.REGION_MODE: "errors", state.ERROR_KIND: "confusion"})
    at.run()
    at.session_state[state.CONFUSION_TABLE] = {"selection": {"rows": [], "columns": [], "cells": [[1, "gills"]]}}
    at.run()
    _assert_clean(at)
    assert (at.selectbox(key=state.ERROR_TRUE).value, at.selectbox(key=state.ERROR_PRED).value) == (1, 2)
    assert "pixels of 'cap' predicted as 'gills'" in _explained_caption(at)
    # the pickers still work after a click
    at.selectbox(key=state.ERROR_PRED).set_value(0).run()
    assert at.selectbox(key=state.ERROR_PRED).value == 0


@pytest.mark.slow
def test_empty_preset_shows_the_clear_message_and_keeps_the_settings(truth_and_prediction) -> None:
    truth, predicted = truth_and_prediction
    confusion = quality.confusion_matrix(truth, predicted, len(NAMES))
    empty = [(a, b) for a in range(1, 6) for b in range(1, 6) if a != b and confusion[a, b] == 0]
    assert empty, "every confusion cell is non-empty?"
    a, b = empty[0]
    at = _app(**{state.REGION_MODE: "errors", state.ERROR_KIND: "confusion", state.TARGET: "probabilities"})
    at.run()
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    at.selectbox(key=state.ERROR_TRUE).set_value(a)
    at.selectbox(key=state.ERROR_PRED).set_value(b).run()
    _assert_clean(at)
    assert at.error, "expected the empty-region message"
    assert f"No pixel of class '{NAMES[a]}' is predicted as '{NAMES[b]}'" in at.error[0].value
    assert at.session_state[state.RESULTS] == {}
    assert at.session_state[state.RESULT_ERROR] == at.error[0].value
    assert at.selectbox(key=state.LAYER).value == "aggregation"
    assert at.radio(key=state.TARGET).value == "probabilities"
    assert at.multiselect(key=state.METHODS).value == ["gradcam"]
    assert at.selectbox(key=state.REGION_MODE).value == "errors"
    # a non-empty pair brings the maps back with the same settings
    at.selectbox(key=state.ERROR_PRED).set_value(a).run()  # a predicted as a: its correct pixels
    _assert_clean(at)
    assert not at.error
    assert at.session_state[state.RESULTS]["gradcam"].layer == "aggregation"


@pytest.mark.slow
def test_image_without_ground_truth_says_so_and_offers_the_label_upload() -> None:
    from dashboard import quality_view, sidebar
    from models.scenes import load_sample

    image, truth = load_sample("two mushrooms")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    choice, message = sidebar.image_from_upload("mine.png", buffer.getvalue())
    assert message is None
    at = _app(**{state.IMAGE_CHOICE: choice, state.REGION_MODE: "errors"})
    at.run()
    _assert_clean(at)
    infos = [i.value for i in at.info]
    assert any("no ground truth" in i and "Upload a label PNG" in i for i in infos), infos
    assert any("no error regions" in i for i in infos), infos  # the region mode says what to do
    assert any("Ground-truth label PNG" in u.proto.label for u in at.get("file_uploader"))
    assert at.session_state[state.RESULTS] == {}

    with_truth, message = quality_view.labels_from_upload("mine-labels.png", _png(truth), choice, 6)
    assert message is None
    at.session_state[state.IMAGE_CHOICE] = with_truth
    at.run()
    _assert_clean(at)
    assert "Ground truth" in _image_captions(at)
    assert not at.error, [e.value for e in at.error]
    assert tuple(at.session_state[state.RESULTS]) == ("gradcam",)  # an error region of the upload


@pytest.mark.slow
def test_browser_ranks_worst_first_and_picking_a_scene_changes_the_image() -> None:
    at = _app(**{state.REGION_MODE: "image", state.BROWSER_SEED: 3, state.BROWSER_COUNT: 24,
                 state.IMAGE_TAB: "Image browser (worst first)"})
    at.run()
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    at.toggle(key=state.BROWSER_ON).set_value(True).run()
    _assert_clean(at)
    table = _table_with(at, "mean IoU")
    assert len(table) == 24
    ious = table["mean IoU"].to_numpy(dtype=float)
    assert np.all(np.diff(ious) >= 0), "worst first"
    assert {"scene", "errors", *NAMES} <= set(table.columns)
    assert str(table["scene"][0]).startswith("data:image/png;base64,")

    second = int(table["#"][1])
    at.selectbox(key=state.BROWSER_PICK).set_value(second).run()
    at.button(key="browser-use").click().run()
    _assert_clean(at)
    chosen = at.session_state[state.IMAGE_CHOICE]
    assert chosen["source"] == "scene" and chosen["name"] == f"generated scene {second} (seed 3)"
    from models import scenes

    images, truths = scenes.generate(24, 3)
    np.testing.assert_array_equal(chosen["pixels"], images[second])
    np.testing.assert_array_equal(chosen["truth"], truths[second])
    at.session_state[state.IMAGE_TAB] = "Ground truth and errors"  # only the open tab runs
    at.run()
    assert "Ground truth" in _image_captions(at)  # its ground truth came along
    shown = _table_with(at, "IoU")
    assert np.nanmean(shown["IoU"].to_numpy(dtype=float)) == pytest.approx(ious[1], abs=2e-3)
    assert at.selectbox(key=state.LAYER).value == "aggregation"  # settings kept
    assert at.selectbox(key=state.REGION_MODE).value == "image"
    assert tuple(at.session_state[state.RESULTS]) == ("gradcam",)


# ------------------------------------------------------------------------------------------------
# The label-PNG handler (AppTest cannot upload files)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload_choice(height: int = 97, width: int = 301) -> dict:
    return {"source": "upload", "name": "wide.png", "digest": "abc", "pixels": np.zeros((height, width, 3), np.uint8)}


def test_label_png_at_the_original_size_becomes_the_ground_truth() -> None:
    from dashboard import quality_view

    labels = (np.arange(97 * 301).reshape(97, 301) % 6).astype(np.uint8)
    choice, message = quality_view.labels_from_upload("labels.png", _png(labels), _upload_choice(), 6)
    assert message is None and choice is not None
    np.testing.assert_array_equal(choice["truth"], labels)
    assert choice["name"] == "wide.png" and choice["truth_name"] == "labels.png"
    truth, note = quality_view.ground_truth(choice, np.zeros((144, 144), np.int64), 6)
    assert note is None and truth.shape == (144, 144)  # resized to the model grid, classes kept
    assert set(np.unique(truth)) <= set(range(6))


@pytest.mark.parametrize(
    "data, words",
    [
        (_png(np.zeros((144, 144), np.uint8)), "upload the label map made for this image"),  # model size, not original
        (_png(np.full((97, 301), 9, np.uint8)), "values up to 9"),
        (_png(np.zeros((97, 301, 3), np.uint8)), "single-channel"),
        (b"GIF89a not really", "not an image segexplain can read"),
        (b"", "The file is empty"),
    ],
)
def test_bad_label_files_are_refused_in_one_line(data: bytes, words: str) -> None:
    from dashboard import quality_view

    choice, message = quality_view.labels_from_upload("bad-labels.png", data, _upload_choice(), 6)
    assert choice is None
    assert message is not None and "bad-labels.png" in message and "\n" not in message
    assert words in message


def test_ground_truth_with_more_classes_than_the_model_is_not_used() -> None:
    from dashboard import quality_view

    choice = {**_upload_choice(4, 4), "truth": np.full((4, 4), 5, np.uint8)}
    truth, note = quality_view.ground_truth(choice, np.zeros((4, 4), np.int64), 3)
    assert truth is None and "does not belong to this model" in note and "classes are 0–2" in note
    assert quality_view.ground_truth(_upload_choice(4, 4), np.zeros((4, 4), np.int64), 3) == (
        None, "This image has no ground truth.")
