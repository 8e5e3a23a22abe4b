"""The page with an uploaded ONNX file (AppTest): the sections run, the layers are the original module
paths, and the sidebar says which mean, std and size are in force."""

from __future__ import annotations

import hostile_torch_files as ht
import numpy as np
from streamlit.testing.v1 import AppTest
from test_app_foreign_models import APP, CHEAP

from dashboard import compute, state


def _page_with_upload(name: str, data: bytes) -> AppTest:
    """The page with a 48² region drawn and `data` uploaded as the model file `name`."""
    at = AppTest.from_file(APP, default_timeout=300)
    region = np.zeros((48, 48), bool)
    region[12:36, 16:40] = True
    for key, value in {**CHEAP, state.INJECTED_REGION: region}.items():
        at.session_state[key] = value
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).set_value((name, data, "application/octet-stream"))
    at.run()
    return at


def test_an_uploaded_onnx_file_is_explained_on_the_page(tmp_path) -> None:
    data = ht.export_onnx(ht.small_seg(), tmp_path / "net.onnx", size=(48, 48)).read_bytes()
    at = _page_with_upload("net.onnx", data)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.session_state[state.MODEL_CHOICE]["key"] == f"upload:{compute.digest(data)}"
    assert any("from the ONNX graph's input shape" in c.value and "ImageNet defaults" in c.value for c in at.caption)
    results = at.session_state[state.RESULTS]
    assert "gradcam" in results and np.isfinite(results["gradcam"].heatmap).all()
    assert results["gradcam"].layer.startswith(("backbone", "classifier"))


def test_an_uploaded_transformers_zip_brings_its_class_names_and_preprocessing(tmp_path) -> None:
    preprocessor = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 48, "width": 48}}
    files = ht.segformer_folder(tmp_path / "seg", preprocessor)
    data = ht.zip_folder(files, tmp_path / "seg.zip").read_bytes()
    at = _page_with_upload("seg.zip", data)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["class_names"]["names"] == ["sky", "road", "car"]
    assert any("from preprocessor_config.json" in c.value for c in at.caption)
    assert np.isfinite(at.session_state[state.RESULTS]["gradcam"].heatmap).all()


def test_mean_and_std_set_in_the_sidebar_are_used_and_a_bad_value_changes_nothing(tmp_path) -> None:
    """An ONNX file has no normalisation: the sidebar's values reach the model, its cache key and the worker's
    copy; a malformed value is one sentence and the model stays as it was."""
    net = ht.small_seg()
    data = ht.export_onnx(net, tmp_path / "net.onnx", size=(48, 48)).read_bytes()
    digest = compute.digest(data)
    at = _page_with_upload("net.onnx", data)
    before = at.session_state[state.RESULTS]["gradcam"].heatmap.copy()

    at.text_input(key=f"normalisation_mean_{digest}").set_value("0.5, 0.5, 0.5")
    at.text_input(key=f"normalisation_std_{digest}").set_value("0.25 0.25 0.25")
    at.button(key=f"normalisation_apply_{digest}").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    choice = at.session_state[state.MODEL_CHOICE]
    assert choice["preprocessing"] == {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    assert choice["key"] != f"upload:{digest}"  # maps of the old setting are not served for the new one
    # the caption is the active model's own description: the page explains with the file under the new values
    assert any("mean (0.500, 0.500, 0.500) from your setting" in c.value for c in at.caption)
    assert compute._MODEL_SOURCES[choice["key"]][2] == (("mean", (0.5, 0.5, 0.5)), ("std", (0.25, 0.25, 0.25)))
    after = at.session_state[state.RESULTS]["gradcam"]
    assert not np.allclose(after.heatmap, before)

    at.text_input(key=f"normalisation_std_{digest}").set_value("0.25, 0, 0.25")
    at.button(key=f"normalisation_apply_{digest}").click()
    at.run()
    assert not at.exception
    assert any("every std must be above 0" in e.value for e in at.error), [e.value for e in at.error]
    assert at.session_state[state.MODEL_CHOICE]["preprocessing"] == {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
