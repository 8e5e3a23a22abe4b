"""Every section of the page with users' models that are not the shipped one (AppTest).

The model comes in as an accepted upload would: saved to a .keras file and put in
`state.MODEL_CHOICE` (the choice `sidebar.model_from_upload` stores); the region through the
`INJECTED_REGION` hook. All sections are switched on: maps, layer sweep, faithfulness, class
overview, image browser and export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from helpers_models import binary_sigmoid_model, coarse_output_model, conv_bn_relu_unet
from streamlit.testing.v1 import AppTest

from dashboard import class_names_input, compute, state

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SIZE = 48
CHEAP = {keys.XRAI_STEPS: 3, keys.XRAI_ALGORITHM: "fast", **keys.input_steps(3), keys.SMOOTHGRAD_SAMPLES: 2,
         keys.SCORECAM_CHANNELS: 4}


def _upload(model, tmp_path: Path, name: str) -> dict:
    """The model saved as a user would save it, and the cache key the page gives its upload."""
    path = tmp_path / name
    model.save(path)
    data = path.read_bytes()
    return {"name": name, "data": data, "key": f"upload:{compute.digest(data)}"}


def _app(choice: dict, **session) -> AppTest:
    """The page after the user uploaded `choice` through the sidebar's model uploader."""
    at = AppTest.from_file(APP, default_timeout=300)
    region = np.zeros((SIZE, SIZE), bool)
    region[12:36, 16:40] = True
    for key, value in {**CHEAP, state.INJECTED_REGION: region, **session}.items():
        at.session_state[key] = value
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).set_value((choice["name"], choice["data"], "application/octet-stream"))
    at.run()
    assert at.session_state[state.MODEL_CHOICE]["key"] == choice["key"]
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_image_browser_with_a_four_class_model_says_why_instead_of_crashing(tmp_path) -> None:
    at = _app(_upload(conv_bn_relu_unet(SIZE, 4), tmp_path, "unet4.keras"), **{state.BROWSER_ON: True,
                                                                               state.METHODS: ["gradcam"],
                                                                               state.IMAGE_TAB: "Image browser (worst first)"})
    at.run()
    _clean(at)
    infos = [i.value for i in at.info]
    assert any("mushroom classes" in text and "4 classes" in text for text in infos), infos
    at.run()  # and on the next rerun too
    _clean(at)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("build", "classes"),
    [(lambda: conv_bn_relu_unet(SIZE, 4), 4), (lambda: coarse_output_model(SIZE, 21, 4), 21),
     (lambda: binary_sigmoid_model(SIZE), 2)],
    ids=["unet-4-classes", "coarse-21-classes", "binary-sigmoid"],
)
def test_every_section_runs_with_a_foreign_model(build, classes: int, tmp_path, finish_slow_maps) -> None:
    choice = _upload(build(), tmp_path, f"model{classes}.keras")
    # XRAI runs in the worker process: wait for it within the run (AppTest has no looks), not on the timing
    at = _app(choice, **{state.SWEEP: True, state.FAITHFULNESS_ON: True, state.OVERVIEW_ON: True,
                         state.BROWSER_ON: True, state.IMAGE_TAB: "Class overview"})
    at.run()
    _clean(at)
    results = at.session_state[state.RESULTS]
    assert set(results) == {"gradcam", "gradcam++", "xrai", "vinogradova"}
    for explanation in results.values():
        assert explanation.heatmap.shape == (SIZE, SIZE) and np.isfinite(explanation.heatmap).all()
    names = at.session_state[class_names_input.CURRENT]["names"]
    assert names == [f"class {k}" for k in range(classes)]  # never the mushroom names
    assert at.session_state[state.FAITHFULNESS] and at.session_state[state.OVERVIEW]
    at.button(key="export-prepare").click().run()
    _clean(at)
    assert any(b.proto.label == "Maps + settings (.zip)" for b in at.get("download_button"))
    at.session_state[state.IMAGE_TAB] = "Image browser (worst first)"  # only the open tab runs
    at.run()
    _clean(at)
    assert any("mushroom classes" in i.value for i in at.info)  # the browser says why it is off

    typed = ", ".join(f"thing{k}" for k in range(classes))
    at.text_area(key=f"{class_names_input.CURRENT}_text_{choice['key']}").set_value(typed).run()
    _clean(at)
    assert at.session_state[class_names_input.CURRENT]["names"][-1] == f"thing{classes - 1}"
    assert at.selectbox(key=state.CLASS).format_func(1) == "thing1"


@pytest.mark.slow
def test_nested_mobilenetv2_shows_maps_and_the_stage_picker(tmp_path) -> None:
    from helpers_models import applications_seg_model

    from dashboard import layer_picker

    choice = _upload(applications_seg_model("MobileNetV2", SIZE, 5), tmp_path, "mobilenet.keras")
    at = _app(choice, **{state.METHODS: ["gradcam", "gradcam++"]})
    at.run()
    _clean(at)
    assert at.selectbox(key=state.LAYER).value == "head_bn"  # issue 31: not head_relu (region-blind)
    stages = at.selectbox(key=layer_picker.STAGE).options
    assert stages[0] == layer_picker.ALL and len(stages) >= 5
    at.selectbox(key=layer_picker.STAGE).set_value(stages[3]).run()  # pick a stage: its deepest layer
    _clean(at)
    layer = at.selectbox(key=state.LAYER).value
    shown = at.selectbox(key=state.LAYER).options  # formatted: "name  (shape · kind)"
    assert layer != "head_bn" and shown[-1].startswith(f"{layer} ")
    results = at.session_state[state.RESULTS]
    assert results["gradcam"].layer == layer and results["gradcam"].heatmap.shape == (SIZE, SIZE)
