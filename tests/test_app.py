"""The dashboard under Streamlit's AppTest: the page as a script, without a browser.

AppTest cannot draw on the canvas or upload files, so regions come in through the documented test
hook `st.session_state["injected_region"]` (see dashboard/state.py), and the upload handlers are
called directly with bytes. XRAI is kept cheap here (few steps, 'fast' selection) through the
advanced settings' session-state keys; the page itself defaults to 100 steps.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from map_pictures import map_captions
from streamlit.testing.v1 import AppTest

from dashboard import figures, state

pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
FOUR = ("gradcam", "gradcam++", "xrai", "vinogradova")
SIZE = 144


def _app(region: np.ndarray | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[keys.XRAI_STEPS] = 4
    at.session_state[keys.XRAI_ALGORITHM] = "fast"
    if region is not None:
        at.session_state[state.INJECTED_REGION] = region
    for key, value in session.items():
        at.session_state[key] = value
    return at


def _box(top: int = 40, left: int = 45, bottom: int = 72, right: int = 100) -> np.ndarray:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[top:bottom, left:right] = True  # the cap of the default sample ("fly agaric")
    return region


MAP_CAPTION = re.compile(r"^[^·]+ · [0-9.]+ s")


def _map_titles(at: AppTest) -> list[str]:
    """Captions of the map pictures ("Grad-CAM · 0.02 s …"), in the order shown."""
    return [caption for caption in map_captions(at) if MAP_CAPTION.match(caption)]


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _results(at: AppTest) -> dict:
    return at.session_state[state.RESULTS]


@pytest.mark.slow
def test_page_runs_on_defaults_and_asks_for_a_region() -> None:
    at = _app()
    at.run()
    _assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Draw on the image" in info.value for info in at.info)
    assert at.selectbox(key=state.LAYER).value == "head_concat"  # the default that answers the region (issue 31)
    assert at.multiselect(key=state.METHODS).value == list(FOUR)
    assert at.session_state[keys.XRAI_STEPS] == 4  # the test's cheap setting was kept
    assert _results(at) == {}


def test_default_xrai_steps_is_100() -> None:
    from dashboard import method_settings

    assert method_settings.defaults()[keys.XRAI_STEPS] == 100
    assert method_settings.defaults()[keys.XRAI_ALGORITHM] == "full"


@pytest.mark.slow
def test_injected_region_gives_four_maps_on_one_scale() -> None:
    at = _app(_box())
    at.run()
    _assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    results = _results(at)
    assert tuple(results) == FOUR
    for method, explanation in results.items():
        assert explanation.heatmap.shape == (SIZE, SIZE), method
        assert np.all(np.isfinite(explanation.heatmap)) and explanation.heatmap.min() >= 0
        assert explanation.heatmap.max() <= 1
    titles = _map_titles(at)
    assert [t.split(" ·")[0] for t in titles] == ["Grad-CAM", "Grad-CAM++", "XRAI", "Seg-Grad-CAM"]
    assert any("each map ÷ its own maximum" in m.value for m in at.markdown)  # the scale in use is labelled
    # class defaulted to the class most present in the region; layer to head_concat (issue 31: not final_conv)
    assert at.selectbox(key=state.LAYER).value == "head_concat"
    assert results["gradcam"].layer == "head_concat"
    assert results["xrai"].layer is None
    assert at.dataframe, "agreement table missing"


@pytest.mark.slow
def test_changing_layer_then_class_keeps_the_other_choices() -> None:
    at = _app(_box(), **{state.TARGET: "probabilities"})
    at.run()
    _assert_clean(at)
    first_class = at.selectbox(key=state.CLASS).value
    first_xrai = _results(at)["xrai"]
    at.multiselect(key=state.METHODS).set_value(["gradcam", "xrai", "vinogradova"]).run()

    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    _assert_clean(at)
    results = _results(at)
    assert tuple(results) == ("gradcam", "xrai", "vinogradova")
    assert results["gradcam"].layer == "aggregation"
    assert at.selectbox(key=state.CLASS).value == first_class
    assert at.radio(key=state.TARGET).value == "probabilities"
    assert results["xrai"] is first_xrai  # layer-free: not recomputed for a new layer

    other_class = (first_class + 1) % 6
    at.selectbox(key=state.CLASS).set_value(other_class).run()
    _assert_clean(at)
    assert at.selectbox(key=state.LAYER).value == "aggregation"
    assert at.multiselect(key=state.METHODS).value == ["gradcam", "xrai", "vinogradova"]
    assert at.radio(key=state.TARGET).value == "probabilities"
    assert _results(at)["gradcam"].layer == "aggregation"
    assert _results(at)["xrai"] is not first_xrai  # a new class is a new XRAI map


@pytest.mark.slow
def test_empty_region_shows_the_clear_error_and_no_exception() -> None:
    at = _app(np.zeros((SIZE, SIZE), dtype=bool))
    at.run()
    _assert_clean(at)
    assert at.error, "expected an error message"
    assert "region is empty" in at.error[0].value
    assert _results(at) == {}
    assert at.session_state[state.RESULT_ERROR] == at.error[0].value
    # settings are untouched: the same widgets with the same values are still there
    assert at.selectbox(key=state.LAYER).value == "head_concat"


@pytest.mark.slow
def test_region_of_the_wrong_size_is_explained_in_words() -> None:
    at = _app(np.ones((10, 10), dtype=bool))
    at.run()
    _assert_clean(at)
    assert at.error and "shape" in at.error[0].value


@pytest.mark.slow
def test_restricting_to_a_class_the_region_misses_says_so() -> None:
    at = _app(_box(), **{state.RESTRICT: True})
    at.run()
    _assert_clean(at)
    labels = None
    for cls in range(6):  # pick a class with no predicted pixel inside the box
        at.selectbox(key=state.CLASS).set_value(cls).run()
        if at.error:
            labels = cls
            break
    assert labels is not None, "every class is predicted inside the box?"
    assert "None of the drawn pixels" in at.error[0].value
    _assert_clean(at)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["class", "component", "image"])
def test_preset_regions_produce_maps(mode: str) -> None:
    at = _app(**{state.REGION_MODE: mode, state.METHODS: ["gradcam", "vinogradova"]})
    at.run()
    _assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert tuple(_results(at)) == ("gradcam", "vinogradova")
    if mode == "component":
        at.number_input(key=state.CLICK_ROW).set_value(5).run()
        at.number_input(key=state.CLICK_COL).set_value(5).run()
        _assert_clean(at)
        assert at.number_input(key=state.CLICK_ROW).value == 5


@pytest.mark.slow
def test_gallery_click_changes_the_image_and_keeps_the_settings() -> None:
    at = _app(**{state.REGION_MODE: "image", state.METHODS: ["gradcam"], state.IMAGE_TAB: "Sample gallery"})
    at.run()
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    at.button(key="gallery-two mushrooms").click().run()
    _assert_clean(at)
    assert at.session_state[state.IMAGE_CHOICE]["name"] == "two mushrooms"
    assert at.selectbox(key=state.SAMPLE).value == "two mushrooms"
    assert at.selectbox(key=state.LAYER).value == "aggregation"
    assert at.selectbox(key=state.REGION_MODE).value == "image"
    assert tuple(_results(at)) == ("gradcam",)


@pytest.mark.slow
def test_layer_sweep_draws_the_depth_curve_and_a_grid_of_maps() -> None:
    at = _app(_box(), **{state.METHODS: ["gradcam"]})
    at.run()
    at.toggle(key=state.SWEEP).set_value(True).run()
    _assert_clean(at)
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text") for c in at.get("plotly_chart")]
    assert any("by depth" in str(title) for title in titles), titles
    assert at.radio(key="sweep_method").options == ["Grad-CAM", "Grad-CAM++"]
    assert any("data:image/jpeg" in h.value for h in at.html if figures.MAP_CLASS not in h.value)  # the sweep grid's maps


@pytest.mark.slow
def test_export_bundle_holds_png_npz_and_settings() -> None:
    from dashboard import comparison, export

    at = _app(_box())
    at.run()
    results = _results(at)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    request = comparison.Request(model=None, model_key="default", image=image, image_key="abc", region=_box(),
                                 class_index=1, layer="final_conv", methods=FOUR, target="logits",
                                 options={"xrai": {"steps": 4, "algorithm": "fast"}})
    choice = {"source": "sample", "name": "fly agaric", "digest": "abc", "pixels": image}
    files = export.files(request, results, choice, "shipped", ["bg", "cap", "g", "s", "r", "v"],
                         np.zeros((SIZE, SIZE), np.int64), "drawing")
    assert files.png.startswith(b"\x89PNG")
    with zipfile.ZipFile(io.BytesIO(files.zip)) as archive:
        names = sorted(archive.namelist())
        assert [n.rsplit(".", 1)[1] for n in names] == ["json", "npz", "png"]
        settings = json.loads(archive.read(next(n for n in names if n.endswith(".json"))))
        arrays = np.load(io.BytesIO(archive.read(next(n for n in names if n.endswith(".npz")))))
        assert arrays["region"].dtype == bool and arrays["region"].sum() == _box().sum()
        assert {"heatmap_gradcam", "heatmap_gradcampp", "heatmap_xrai", "heatmap_vinogradova"} <= set(arrays.files)
    assert settings["region"]["pixel_count"] == int(_box().sum())
    assert settings["region"]["bbox"] == {"top": 40, "left": 45, "bottom": 72, "right": 100}
    assert settings["class"] == {"index": 1, "name": "cap"}
    assert settings["layer"] == "final_conv" and settings["target"] == "logits"
    assert settings["methods"]["xrai"]["options"]["steps"] == 4
    assert settings["image"]["sha256_prefix"] == "abc"


# ------------------------------------------------------------------------------------------------
# Upload handlers (AppTest cannot upload files: the callbacks' logic is tested with bytes)


def test_non_image_upload_is_refused_in_one_line() -> None:
    from dashboard import sidebar

    choice, message = sidebar.image_from_upload("notes.txt", b"this is not a picture\n")
    assert choice is None
    assert message is not None and "notes.txt" in message and "\n" not in message
    assert "not an image" in message


def test_image_upload_of_any_size_is_accepted() -> None:
    from PIL import Image

    from dashboard import sidebar

    buffer = io.BytesIO()
    Image.new("RGB", (301, 97), (200, 30, 30)).save(buffer, format="PNG")
    choice, message = sidebar.image_from_upload("wide.png", buffer.getvalue())
    assert message is None and choice is not None
    assert choice["pixels"].shape == (97, 301, 3) and choice["source"] == "upload"


def test_bad_model_upload_is_refused_in_one_line(tmp_path, monkeypatch) -> None:
    from dashboard import sidebar

    monkeypatch.setattr(sidebar, "MODEL_DIR", tmp_path)
    choice, message = sidebar.model_from_upload("broken.keras", b"not a zip archive")
    assert choice is None
    assert message is not None and "broken.keras" in message and "\n" not in message
    assert "previous model stays active" in message


@pytest.mark.slow
def test_refused_upload_messages_show_and_keep_the_previous_choices() -> None:
    at = _app(_box(), **{state.IMAGE_MESSAGE: "“notes.txt” was not used: not an image.",
                         state.MODEL_MESSAGE: "“broken.keras” was not loaded, the previous model stays active."})
    at.run()
    _assert_clean(at)
    errors = [e.value for e in at.sidebar.error]
    assert any("notes.txt" in e for e in errors) and any("broken.keras" in e for e in errors)
    assert tuple(_results(at)) == FOUR  # the page still works with the previous image and model
