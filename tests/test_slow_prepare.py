"""The page asks the worker to prepare XRAI's image-only work while the user draws, and a preparation
never holds up a map it does not serve (`compute.prepare_worker`, `compute.slow_job`)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import compute, state

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _asked(monkeypatch, methods: list[str]) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(compute, "prepare_worker", lambda *args: calls.append(args))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.METHODS] = methods
    at.session_state[state.XRAI_STEPS] = 20
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return calls


def test_the_page_asks_for_xrais_preparation_with_the_options_its_job_gets(monkeypatch) -> None:
    calls = _asked(monkeypatch, ["gradcam", "xrai"])
    assert calls, "XRAI is shown but the worker was not asked to prepare the image"
    model_key, image_key, image, method, target, options = calls[-1]
    assert (method, target, options) == ("xrai", "logits", {"steps": 20, "algorithm": "full"})
    assert isinstance(image, np.ndarray) and image.shape == (144, 144, 3) and image_key and model_key


def test_no_preparation_without_xrai_on_screen(monkeypatch) -> None:
    assert _asked(monkeypatch, ["gradcam", "gradcam++"]) == []


@pytest.fixture
def dispatcher(monkeypatch):
    fresh = compute._Dispatcher()
    fresh.use_process = False
    fresh.waiting = threading.Event()
    monkeypatch.setattr(compute, "_dispatcher", lambda: fresh)
    return fresh


def _job(key: str, method: str = "xrai", image_key: str = "img", options=None) -> compute.Job:
    return compute.slow_job(("map", key), None, None, None, 0, None, method, "logits",
                            {"steps": 20} if options is None else options, model_key="m", image_key=image_key)


def test_a_map_the_running_preparation_serves_lets_it_finish(dispatcher) -> None:
    with dispatcher.lock:
        dispatcher.preparing_now = compute._prepare_key("m", "img", "xrai", "logits", {"steps": 20})
    _job("a")
    assert not dispatcher.waiting.is_set()


@pytest.mark.parametrize("other", [dict(method="scorecam"), dict(image_key="other image"),
                                   dict(options={"steps": 30})], ids=["method", "image", "options"])
def test_any_other_map_stops_the_running_preparation(dispatcher, other) -> None:
    with dispatcher.lock:
        dispatcher.preparing_now = compute._prepare_key("m", "img", "xrai", "logits", {"steps": 20})
    _job("b", **other)
    assert dispatcher.waiting.is_set()
