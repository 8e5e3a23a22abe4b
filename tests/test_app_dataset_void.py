"""Issue 31 item 7 with real-world labels: label PNGs whose object borders are void (255, as in Pascal VOC).
Opening such an image from a labelled batch run shows its ground truth and its error region in the main
view, void pixels drawn as such and never in the error region, with the IoU of the batch's summary.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_dataset_view import dataset_page_on_results

from dashboard import dataset_view, state
from explainers import batch, dataset_analysis, label_scores, quality
from models import CLASS_NAMES, export, scenes

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
VOID = label_scores.VOID


def _void_borders(labels: np.ndarray) -> np.ndarray:
    """Pascal VOC's way: a pixel with a 4-neighbour of another class becomes void."""
    padded = np.pad(labels, 1, mode="edge")
    border = np.zeros(labels.shape, bool)
    for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
        border |= padded[dr:dr + labels.shape[0], dc:dc + labels.shape[1]] != labels
    return np.where(border, VOID, labels).astype(np.uint8)


@pytest.fixture(scope="module")
def void_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("void_root")
    model = export.export(root / "shipped.keras")
    scenes.write_folder(root / "scenes", 3, seed=5)
    for path in sorted((root / "scenes" / "labels").glob("*.png")):
        labels = _void_borders(np.asarray(Image.open(path)))
        assert (labels == VOID).any()
        Image.fromarray(labels, mode="L").save(path)
    out = root / "results" / "void"
    code = batch.main(["--model", str(model), "--images", str(root / "scenes" / "images"), "--out", str(out),
                       "--labels", str(root / "scenes" / "labels"), "--class-names", ",".join(CLASS_NAMES),
                       "--method", "gradcam"])
    assert code == 0
    return root


def _summary_row(run: str, output: str) -> dict[str, str]:
    with (Path(run) / "summary.csv").open(newline="") as handle:
        return next(r for r in csv.DictReader(handle) if r["output"] == output)


def test_an_image_with_void_labels_opens_with_its_ground_truth_error_region_and_the_batchs_iou(
        void_root, monkeypatch) -> None:
    monkeypatch.setenv(dataset_view.ROOT_ENV, str(void_root))
    at = dataset_page_on_results()
    at.button(key="dataset-iou-errors").click().run()  # the worst image, with its error region
    assert not at.exception, [e.value for e in at.exception]
    run, output = at.session_state[state.IMAGE_CHOICE]["batch_output"]
    saved = dataset_analysis.image_arrays(run, output)
    void = saved["truth"] == VOID
    assert void.any()

    choice = at.session_state[state.IMAGE_CHOICE]
    np.testing.assert_array_equal(choice["truth"], saved["truth"])  # the void pixels came along
    kind, c = label_scores.worst_error(saved["truth"], saved["labels"])
    assert at.session_state[state.REGION_MODE] == "errors"
    assert (at.session_state[state.ERROR_KIND], at.session_state[state.ERROR_CLASS]) == (kind, c)
    request = at.session_state[state.REQUEST]
    assert request is not None and at.session_state[state.RESULT_ERROR] is None
    preset = quality.false_positives if kind == "fp" else quality.false_negatives
    np.testing.assert_array_equal(request.region, preset(saved["truth"], saved["labels"], c))
    assert request.region.any() and not (request.region & void).any()  # void is never an error
    assert set(at.session_state[state.RESULTS]) == {"gradcam"}
    note = next(s.value for s in at.success if s.value.startswith("Opened"))
    assert "error region" in note and "does not take" not in note

    # The ground-truth tab: the batch's numbers, void drawn and named in the legend
    row = _summary_row(run, output)
    table = next(d.value for d in at.dataframe if "IoU" in d.value.columns and "class" in d.value.columns)
    assert list(table["class"]) == list(CLASS_NAMES)
    columns = label_scores.column_names(CLASS_NAMES)
    summary = np.array([float(row[k]) if row[k] else np.nan for k in columns])
    np.testing.assert_allclose(table["IoU"].to_numpy(dtype=float), np.round(summary, 3), atol=1e-9, equal_nan=True)
    assert list(table["true px"]) == list(np.bincount(saved["truth"][~void].astype(int), minlength=6))
    assert any(f"Mean IoU **{float(row['mean_iou']):.3f}**" in c.value for c in at.caption)
    assert any(f"{int(void.sum())} px are void" in c.value for c in at.caption)
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert "Ground truth (grey stripes: void (255, not scored))" in captions
    assert any("void (255, not scored)" in m.value for m in at.markdown)  # the errors legend


def test_the_image_browser_opens_it_too_and_one_class_errors_keep_void_apart(void_root, monkeypatch) -> None:
    monkeypatch.setenv(dataset_view.ROOT_ENV, str(void_root))
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state[state.METHODS] = ["gradcam"]
    at.session_state[state.BROWSER_SOURCE] = "batch"
    at.session_state[state.BROWSER_FOLDER] = "results"
    at.session_state[state.IMAGE_TAB] = "Image browser (worst first)"
    at.run()
    assert not at.exception
    at.button(key="browser-iou-errors").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run, output = at.session_state[state.IMAGE_CHOICE]["batch_output"]
    saved = dataset_analysis.image_arrays(run, output)
    np.testing.assert_array_equal(at.session_state[state.IMAGE_CHOICE]["truth"], saved["truth"])
    _kind, c = label_scores.worst_error(saved["truth"], saved["labels"])
    assert not (at.session_state[state.REQUEST].region & (saved["truth"] == VOID)).any()
    at.session_state[state.IMAGE_TAB] = "Ground truth and errors"  # only the open tab runs
    at.run()
    at.selectbox(key=state.ERROR_VIEW).set_value(c).run()  # one class: correct / FP / FN, void apart
    assert not at.exception, [e.value for e in at.exception]
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert f"Errors: {CLASS_NAMES[c]}" in captions
    assert any("void (255, not scored)" in m.value and "false negative" in m.value for m in at.markdown)
