"""Issue 31 item 7: a batch run with labels on the dataset page and in the image browser: its images
ranked worst first by mean IoU, the worst opened in the main view with its ground truth and error region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest
from test_dataset_view import dataset_page_on_results, results_root, rooted  # noqa: F401  (the batch run with --labels the pages read)

from dashboard import state
from explainers import dataset_analysis, label_scores, quality

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _expected_order(root: Path) -> list[str]:
    rows = dataset_analysis.analyse([root / "results" / "whole"])["tables"]["iou"]
    means = [r["mean_iou"] for r in rows]
    assert len(rows) == 4 and means == sorted(means)
    return [r["image"] for r in rows]


def _check_opened_with_errors(at: AppTest) -> None:
    run, output = at.session_state[state.IMAGE_CHOICE]["batch_output"]
    saved = dataset_analysis.image_arrays(run, output)
    choice = at.session_state[state.IMAGE_CHOICE]
    np.testing.assert_array_equal(choice["pixels"], saved["image"])
    np.testing.assert_array_equal(choice["truth"], saved["truth"])  # the ground truth came along
    kind, c = label_scores.worst_error(saved["truth"], saved["labels"])
    assert at.session_state[state.REGION_MODE] == "errors"
    assert (at.session_state[state.ERROR_KIND], at.session_state[state.ERROR_CLASS]) == (kind, c)
    request = at.session_state[state.REQUEST]
    assert request is not None and at.session_state[state.RESULT_ERROR] is None
    preset = quality.false_positives if kind == "fp" else quality.false_negatives
    np.testing.assert_array_equal(request.region, preset(saved["truth"], saved["labels"], c))


def test_dataset_page_ranks_worst_first_and_opens_the_worst_with_its_errors(rooted) -> None:  # noqa: F811
    order = _expected_order(rooted)
    at = dataset_page_on_results()
    table = next(d for d in at.dataframe if "mean IoU" in d.value.columns)
    assert list(table.value["image"]) == order
    assert {"IoU cap", "IoU background"} <= set(table.value.columns)
    assert at.selectbox(key="dataset-iou-pick").value == 0
    at.button(key="dataset-iou-errors").click().run()  # the page goes to the main view itself
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[state.IMAGE_CHOICE]["batch_output"][1] == order[0].rsplit(".", 1)[0]
    _check_opened_with_errors(at)
    assert any(s.value.startswith("Opened") and "error region" in s.value for s in at.success)


def test_image_browser_ranks_a_batch_run_and_opens_an_image_with_its_ground_truth(rooted) -> None:  # noqa: F811
    order = _expected_order(rooted)
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state[state.METHODS] = ["gradcam"]
    at.session_state[state.BROWSER_SOURCE] = "batch"
    at.session_state[state.BROWSER_FOLDER] = "results"
    at.session_state[state.IMAGE_TAB] = "Image browser (worst first)"
    at.run()
    assert not at.exception
    table = next(d for d in at.dataframe if "mean IoU" in d.value.columns)
    assert list(table.value["image"]) == order
    at.button(key="browser-iou-errors").click().run()
    assert not at.exception, [e.value for e in at.exception]
    _check_opened_with_errors(at)
    at.selectbox(key="browser-iou-pick").set_value(1).run()
    at.button(key="browser-iou-open").click().run()  # the explained region this time
    run, output = at.session_state[state.IMAGE_CHOICE]["batch_output"]
    assert output == order[1].rsplit(".", 1)[0]
    saved = dataset_analysis.image_arrays(run, output)
    np.testing.assert_array_equal(at.session_state[state.REQUEST].region, saved["region"])
    np.testing.assert_array_equal(at.session_state[state.IMAGE_CHOICE]["truth"], saved["truth"])
