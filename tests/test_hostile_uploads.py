"""Uploads through the page (Streamlit AppTest): hostile files never cost the user their model, image,
region, class, layer or methods; a model upload survives an interrupted run; other sessions cannot
replace a session's model; storage is private; stale messages go; the page says which image is active
and when it is stretched; unexpected errors stay one line."""

from __future__ import annotations

import io
import stat
import tomllib
from pathlib import Path

import helpers_models as hm
import hostile_files as hf
import numpy as np
import page_keys as keys
import pytest
from PIL import Image
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.testing.v1 import AppTest

from dashboard import sidebar, state, uploads

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
pytestmark = pytest.mark.slow


def _app(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    defaults = {keys.XRAI_STEPS: 2, keys.XRAI_ALGORITHM: "fast", state.REGION_MODE: "image",
                state.METHODS: ["gradcam", "vinogradova"]}
    for key, value in {**defaults, **session}.items():
        at.session_state[key] = value
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _evict_all() -> None:
    with uploads._lock:
        uploads._loaded.clear()


def _upload_model(at: AppTest, name: str, data: bytes) -> AppTest:
    return at.file_uploader(key=state.MODEL_UPLOAD).set_value((name, data, "application/octet-stream")).run()


def _upload_image(at: AppTest, name: str, data: bytes) -> AppTest:
    return at.file_uploader(key=state.IMAGE_UPLOAD).set_value((name, data, "image/png")).run()


def _kept(at: AppTest) -> dict:
    """Everything the user chose, as the page holds it."""
    region = at.session_state[state.INJECTED_REGION] if state.INJECTED_REGION in at.session_state else None  # noqa: SIM401
    return {
        "model": at.session_state[state.MODEL_CHOICE].get("digest"),
        "image": at.session_state[state.IMAGE_CHOICE]["digest"],
        "region": None if region is None else region.tobytes(),
        "class": at.session_state[state.CLASS],
        "layer": at.session_state[state.LAYER],
        "methods": list(at.session_state[state.METHODS]),
        "target": at.session_state[state.TARGET],
    }


@pytest.fixture
def upload_base(tmp_path, monkeypatch) -> Path:
    base = tmp_path / "uploads"
    monkeypatch.setattr(sidebar, "MODEL_DIR", base)
    return base


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("page-models")
    tiny = hf.tiny_bytes(folder)

    def class_list(config: dict) -> None:
        next(layer for layer in hf.layer_configs(config) if layer["class_name"] == "Conv2D")["class_name"] = ["X"]

    def tfsm(config: dict) -> None:
        layer = next(layer for layer in hf.layer_configs(config) if layer["class_name"] == "Conv2D")
        layer.update(class_name="TFSMLayer", module="keras.layers", registered_name=None)
        layer["config"] = {"filepath": "/srv/saved", "call_endpoint": "serve", "name": "conv1"}

    return {
        "tiny": tiny,
        "payload.keras": hf.keras_bytes(hf.lambda_model(), folder, "payload.keras"),
        "class-list.keras": hf.edit_config(tiny, class_list),
        "tfsm.keras": hf.edit_config(tiny, tfsm),
        "padded-config.keras": hf.declare_size(tiny, "config.json", 1_950_000_000),
        "input-4096.keras": hf.keras_bytes(hf.big_input_model(4096), folder, "big.keras"),
        "deep.keras": hf.zip_of({**hf.members(tiny), "config.json": hf.nested_json(50_000)}),
    }


def test_hostile_models_keep_the_users_model_image_region_class_layer_and_methods(
        model_files, upload_base, tmp_path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(hf.MARKER_ENV, str(marker))
    at = _app()
    at.run()
    _upload_model(at, "mine.keras", model_files["tiny"])
    _clean(at)
    assert at.session_state[state.MODEL_CHOICE]["kind"] == "upload"
    _upload_image(at, "photo.png", _png(16, 16, seed=5))
    region = np.zeros((16, 16), bool)
    region[2:9, 3:12] = True
    at.session_state[state.INJECTED_REGION] = region
    at.selectbox(key=state.LAYER).set_value("conv2").run()
    at.selectbox(key=state.CLASS).set_value(2).run()
    at.multiselect(key=state.METHODS).set_value(["gradcam", "gradcam++"]).run()
    _clean(at)
    before = _kept(at)
    maps = {m: e.heatmap.copy() for m, e in at.session_state[state.RESULTS].items()}
    assert set(maps) == {"gradcam", "gradcam++"}
    for name in ("payload.keras", "class-list.keras", "tfsm.keras", "padded-config.keras", "input-4096.keras",
                 "deep.keras"):
        _upload_model(at, name, model_files[name])
        _clean(at)
        errors = [e.value for e in at.sidebar.error]
        assert len(errors) == 1 and name in errors[0] and "previous model stays active" in errors[0], (name, errors)
        assert "\n" not in errors[0] and str(upload_base) not in errors[0]
        assert _kept(at) == before, name
        for method, heat in maps.items():
            np.testing.assert_array_equal(at.session_state[state.RESULTS][method].heatmap, heat)
        assert not marker.exists(), f"{name}: uploaded code ran"


def test_a_model_load_interrupted_by_a_rerun_resumes(model_files, upload_base, monkeypatch) -> None:
    real = sidebar.model_from_upload
    calls = []

    def interrupted_once(name, data):
        calls.append(name)
        if len(calls) == 1:
            raise StopException()  # what a click does to a running script: it stops at the next checkpoint
        return real(name, data)

    monkeypatch.setattr(sidebar, "model_from_upload", interrupted_once)
    at = _app()
    at.run()
    _upload_model(at, "slow.keras", model_files["tiny"])
    assert at.session_state[state.MODEL_CHOICE] == {"kind": "default"}
    assert at.session_state[uploads.PENDING_MODEL]["name"] == "slow.keras"
    at.run()  # the rerun any click starts (the interrupted run drew no other widget to click)
    _clean(at)
    assert calls == ["slow.keras", "slow.keras"]
    assert at.session_state[state.MODEL_CHOICE]["name"] == "slow.keras"
    assert at.session_state[uploads.PENDING_MODEL] is None
    assert not at.sidebar.error
    at.run()
    assert len(calls) == 2  # handled once: later reruns do not load it again


def test_a_model_removed_while_its_load_was_interrupted_says_so(model_files, upload_base, monkeypatch) -> None:
    def interrupted(name, data):
        raise StopException()

    monkeypatch.setattr(sidebar, "model_from_upload", interrupted)
    at = _app()
    at.run()
    _upload_model(at, "slow.keras", model_files["tiny"])
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(None).run()
    _clean(at)
    errors = [e.value for e in at.sidebar.error]
    assert errors == ["Loading “slow.keras” was interrupted, the previous model stays active: upload it again."]
    assert at.session_state[state.MODEL_CHOICE] == {"kind": "default"}


def test_other_sessions_uploads_never_replace_a_sessions_model(upload_base, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(uploads.MAX_LOADED_ENV, "1")  # one model in memory server-wide: B's uploads evict A's
    _evict_all()
    a = _app()
    a.run()
    mine = hf.keras_bytes(hm.tiny_seg_model(seed=1), tmp_path, "a.keras")
    _upload_model(a, "a.keras", mine)
    digest = a.session_state[state.MODEL_CHOICE]["digest"]
    b = _app()
    b.run()
    for seed in range(2, 8):  # six uploads by another session
        _upload_model(b, f"b{seed}.keras", hf.keras_bytes(hm.tiny_seg_model(seed=seed), tmp_path, f"b{seed}.keras"))
        _clean(b)
    held_by_b = uploads.loaded_sessions()
    assert len(held_by_b) == 1  # memory stays bounded: A's model was evicted
    a.run()
    _clean(a)
    held_now = uploads.loaded_sessions()
    assert len(held_now) == 1 and held_now != held_by_b  # A reloaded its own model from its own bytes
    assert a.session_state[state.MODEL_CHOICE]["digest"] == digest
    assert not a.sidebar.error, [e.value for e in a.sidebar.error]
    assert any("Active: uploaded **a.keras**" in c.value for c in a.sidebar.caption)


def test_a_lost_model_is_reloaded_from_the_sessions_own_bytes_or_said_at_once(model_files, upload_base) -> None:
    at = _app()
    at.run()
    _upload_model(at, "mine.keras", model_files["tiny"])
    digest = at.session_state[state.MODEL_CHOICE]["digest"]
    _evict_all()  # the in-memory model is gone (evicted)
    at.run()
    _clean(at)
    assert at.session_state[state.MODEL_CHOICE]["digest"] == digest and not at.sidebar.error
    for path in upload_base.rglob("model.keras"):
        path.unlink()  # and now its bytes too
    _evict_all()
    at.run()
    _clean(at)
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "“mine.keras” is no longer available" in errors[0], errors
    assert str(upload_base) not in errors[0] and "/" not in errors[0]
    assert at.session_state[state.MODEL_CHOICE] == {"kind": "default"}  # said in the same run it happened


def test_uploads_are_private_to_the_process_and_session(model_files, upload_base) -> None:
    at = _app()
    at.run()
    _upload_model(at, "mine.keras", model_files["tiny"])
    files = list(upload_base.rglob("model.keras"))
    assert len(files) == 1
    path = files[0]
    session_folder, process_folder = path.parent.parent, path.parent.parent.parent
    assert process_folder.parent == upload_base and process_folder.name.startswith("segexplain-uploads-")
    assert stat.S_IMODE(process_folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(session_folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_stale_image_message_goes_with_a_model_upload_or_switch(model_files, upload_base) -> None:
    at = _app()
    at.run()
    _upload_image(at, "notanimage.png", b"plain text")
    assert any("notanimage.png" in e.value for e in at.sidebar.error)
    _upload_model(at, "mine.keras", model_files["tiny"])
    _clean(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    _upload_image(at, "notanimage2.png", b"more text")
    assert any("notanimage2.png" in e.value for e in at.sidebar.error)
    shipped = next(b for b in at.sidebar.button if b.label == "Use the shipped model instead")
    shipped.click().run()
    _clean(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    assert at.session_state[state.MODEL_CHOICE] == {"kind": "default"}


def test_the_sample_picker_steps_aside_while_an_uploaded_image_is_active(upload_base) -> None:
    at = _app()
    at.run()
    assert [s.key for s in at.sidebar.selectbox if s.key == state.SAMPLE] == [state.SAMPLE]
    _upload_image(at, "photo.png", _png(144, 144))
    _clean(at)
    assert not [s for s in at.sidebar.selectbox if s.key == state.SAMPLE]
    captions = [c.value for c in at.sidebar.caption]
    assert any("Active: upload **photo.png** (144×144 px)" in c for c in captions), captions
    assert any("sample scenes are not in use" in c for c in captions), captions
    back = next(b for b in at.sidebar.button if b.label == "Use the sample scenes again")
    back.click().run()
    _clean(at)
    assert at.session_state[state.IMAGE_CHOICE]["source"] == "sample"
    assert [s.key for s in at.sidebar.selectbox if s.key == state.SAMPLE] == [state.SAMPLE]


def test_a_non_square_upload_is_said_to_be_stretched(upload_base) -> None:
    at = _app()
    at.run()
    _upload_image(at, "wide.png", _png(40, 30))
    _clean(at)
    captions = [c.value for c in at.sidebar.caption]
    assert any("Stretched to the model's 144×144 px input" in c and "40×30 → 144×144" in c for c in captions), captions
    _upload_image(at, "square.png", _png(72, 72))
    captions = [c.value for c in at.sidebar.caption]
    assert not any("Stretched" in c for c in captions)
    assert any("same proportions" in c for c in captions)


@pytest.mark.parametrize("name", ["UNET.KERAS", ".keras"])
def test_upper_case_and_bare_model_names_load_on_the_page(name, model_files, upload_base) -> None:
    at = _app()
    at.run()
    _upload_model(at, name, model_files["tiny"])
    _clean(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    assert at.session_state[state.MODEL_CHOICE]["name"] == name
    assert set(at.session_state[state.RESULTS]) == {"gradcam", "vinogradova"}


def _guarded_script() -> None:
    import streamlit as st

    from dashboard import guard

    with guard.section("Broken part"):
        raise KeyError("/srv/secret/path")
    with guard.section("Stopping part"):
        st.write("before stop")
        st.stop()
    st.write("never reached")


def test_guard_shows_one_line_logs_and_lets_stop_through(caplog) -> None:
    at = AppTest.from_function(_guarded_script, default_timeout=60)
    with caplog.at_level("ERROR", logger="segexplain.dashboard"):
        at.run()
    _clean(at)
    errors = [e.value for e in at.error]
    assert errors == ["Broken part hit an unexpected problem (KeyError) and was skipped; the rest of the page "
                      "still works and the details are in the server log."]
    assert [m.value for m in at.markdown] == ["before stop"]
    assert any("Broken part" in record.getMessage() and record.exc_info for record in caplog.records)


def test_no_tracebacks_reach_the_page() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("type", "none")


def test_a_dynamic_size_model_runs_on_a_copy_within_the_input_limit(upload_base, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGEXPLAIN_MAX_INPUT_PIXELS", "10000")
    at = _app()
    at.run()
    _upload_model(at, "dynamic.keras", hf.keras_bytes(hm.dynamic_size_model(), tmp_path, "dynamic.keras"))
    _upload_image(at, "big.png", _png(200, 150))
    _clean(at)
    captions = [c.value for c in at.sidebar.caption]
    assert any("200×150 px is above the 0.01 MP input limit, so it runs on a 115×86 px copy" in c
               for c in captions), captions
    results = at.session_state[state.RESULTS]
    assert results and all(e.heatmap.shape == (86, 115) for e in results.values())


def test_folders_of_ended_sessions_are_purged_and_the_own_one_kept(tmp_path, monkeypatch) -> None:
    base = tmp_path / "base"
    own = uploads.store(base, "abc", ".keras", b"mine")
    root = uploads.process_root(base)
    other = root / "someone-else"
    other.mkdir()
    (other / "x").write_bytes(b"theirs")
    monkeypatch.setattr(uploads, "_active_checker", lambda: (lambda session: False))
    uploads.purge_ended_sessions(base)
    assert own.is_file() and not other.exists()


def test_a_refused_upload_never_removes_the_process_folder_another_session_stores_into(tmp_path) -> None:
    """A refused upload's folders are removed up to the process's folder, not that folder itself: CI once saw
    a concurrent upload of another session fail with "could not be stored … No such file or directory"."""
    base = tmp_path / "base"
    refused = uploads.store(base, "bad", ".keras", b"not a model")
    root = uploads.process_root(base)
    uploads.forget(refused, base)
    assert not refused.exists() and not refused.parent.exists()
    assert root.is_dir()  # still there for a store that already holds it
    (root / "another-session").mkdir()  # what a concurrent store does next
