"""Issue 32: the dataset page's "Open in main view" goes to the main page itself, says there what it
opened, keeps the user's methods (adding the batch's) and explains the opened region at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest
from test_dataset_view import results_root, rooted  # noqa: F401  (the batch run the dataset page reads)

from dashboard import dataset_view, state
from explainers import dataset_analysis

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def test_open_in_main_view_goes_there_with_the_users_methods_and_the_batchs(rooted) -> None:  # noqa: F811
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state[state.METHODS] = ["gradcam", "gradcam++"]
    at.run()
    assert not at.exception
    at.switch_page("pages/dataset.py")
    at.session_state[dataset_view.FOLDER] = "results"
    at.run()
    at.selectbox(key=dataset_view.METHOD).set_value("hirescam").run()
    at.button(key="dataset-open-0").click().run()  # no switch_page by the test: the page goes itself
    assert not at.exception, [e.value for e in at.exception]
    run, output = at.session_state[state.IMAGE_CHOICE]["batch_output"]
    saved = dataset_analysis.image_arrays(run, output)
    request = at.session_state[state.REQUEST]
    assert request is not None, "the run after the click did not show the main view's maps"
    np.testing.assert_array_equal(request.region, saved["region"])
    assert request.class_index == saved["class_index"]
    assert set(at.session_state[state.RESULTS]) == {"gradcam", "gradcam++", "hirescam"}
    notes = [s.value for s in at.success if s.value.startswith("Opened")]
    assert len(notes) == 1 and output in notes[0] and "hirescam" in notes[0], [s.value for s in at.success]
