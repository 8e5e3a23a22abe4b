"""The dataset view under AppTest: a batch run of the shipped model over generated scenes, its matrix
as a heatmap, a cell's images, and one of them opened in the main view with its region and class."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import dataset_view, state
from explainers import batch, dataset_analysis
from models import CLASS_NAMES, export, scenes

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "dashboard" / "pages" / "dataset.py")
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset_root")
    model = export.export(root / "shipped.keras")
    scenes.write_folder(root / "scenes", 4, seed=3)
    out = root / "results" / "whole"
    code = batch.main(["--model", str(model), "--images", str(root / "scenes" / "images"), "--out", str(out),
                       "--labels", str(root / "scenes" / "labels"), "--class-names", ",".join(CLASS_NAMES),
                       "--method", "gradcam", "--method", "hirescam"])
    assert code == 0
    return root


@pytest.fixture
def rooted(results_root, monkeypatch):
    monkeypatch.setenv(dataset_view.ROOT_ENV, str(results_root))
    return results_root


def _array(value) -> np.ndarray:
    """A Plotly JSON array: a plain list, or a typed array {dtype, bdata (base64), shape}."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return data.reshape([int(n) for n in str(shape).split(",")] if shape else -1).astype(float)
    return np.array(value, dtype=float)


def _page(**session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    for key, value in session.items():
        at.session_state[key] = value
    return at


def test_matrix_heatmap_shows_the_library_numbers(rooted) -> None:
    at = _page(**{dataset_view.FOLDER: "results"}).run()
    assert not at.exception and not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    expected = dataset_analysis.analyse([rooted / "results" / "whole"])
    method = at.selectbox(key=dataset_view.METHOD).value
    source = at.radio(key=dataset_view.SOURCE).value
    assert set(at.radio(key=dataset_view.SOURCE).options) == {"predicted labels", "ground truth"}
    matrix = dataset_analysis.matrix(expected["tables"]["context_matrix"], method, source, len(CLASS_NAMES))
    shown = _array(figure["data"][0]["z"])
    np.testing.assert_allclose(shown, matrix[~np.isnan(matrix).all(axis=1)], equal_nan=True)
    assert list(figure["data"][0]["x"]) == list(CLASS_NAMES)
    assert at.button(key="dataset-open-0") is not None


@pytest.mark.parametrize(("typed", "words"), [("/etc", "Only folders under the results root"),
                                              ("../..", "Only folders under the results root"),
                                              ("nowhere", "is not a folder"),
                                              ("scenes", "no batch results")])
def test_folders_outside_the_root_or_without_results_are_refused(rooted, typed, words) -> None:
    at = _page(**{dataset_view.FOLDER: typed}).run()
    assert not at.exception
    assert any(words in e.value for e in at.error), [e.value for e in at.error]


def dataset_page_on_results() -> AppTest:
    """The app run once (the main view first, as a user arrives), then the dataset page on the batch results
    under the root (`rooted`)."""
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    assert not at.exception
    at.switch_page("pages/dataset.py")
    at.session_state[dataset_view.FOLDER] = "results"
    at.run()
    assert not at.exception and not at.error
    return at


def test_a_cell_image_opens_in_the_main_view_with_its_region(rooted) -> None:
    at = dataset_page_on_results()
    at.selectbox(key=dataset_view.METHOD).set_value("hirescam").run()
    cell = at.selectbox(key=dataset_view.CELL_CLASS).value, at.selectbox(key=dataset_view.CELL_ON).value
    at.button(key="dataset-open-0").click().run()  # the page goes to the main view itself (issue 32)
    run, output = at.session_state[state.IMAGE_CHOICE]["batch_output"]
    saved = dataset_analysis.image_arrays(run, output)
    np.testing.assert_array_equal(at.session_state[state.IMAGE_CHOICE]["pixels"], saved["image"])
    np.testing.assert_array_equal(at.session_state[state.INJECTED_REGION], saved["region"])
    assert at.session_state[state.CLASS] == saved["class_index"]
    top = dataset_analysis.top_images(dataset_analysis.analyse([rooted / "results" / "whole"])["tables"]["image_shares"],
                                      "hirescam", "predicted", *cell)
    assert output == top[0]["output"]
    at.switch_page("app.py").run()
    assert not at.exception
    assert at.session_state[state.RESULT_ERROR] is None
    results = at.session_state[state.RESULTS]
    assert {"gradcam", "hirescam"} <= set(results)
    assert at.session_state[state.CLASS] == saved["class_index"]
    assert any(output in c.value for c in at.caption), "the sidebar names the opened image"


def test_an_analysis_naming_files_outside_the_root_opens_nothing(rooted, tmp_path) -> None:
    result = dataset_analysis.analyse([rooted / "results" / "whole"])
    for row in result["tables"]["image_shares"]:
        row["run"] = str(tmp_path)  # a tampered analysis pointing elsewhere on the server
    dataset_analysis.write_tables(result, rooted / "tampered")
    at = _page(**{dataset_view.FOLDER: "tampered"}).run()
    assert not at.exception
    at.button(key="dataset-open-0").click().run()
    assert state.IMAGE_CHOICE not in at.session_state or at.session_state[state.IMAGE_CHOICE] is None
    assert any("outside the results root" in e.value for e in at.error)
