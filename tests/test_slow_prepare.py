"""The page asks the worker to prepare XRAI's image-only work while the user draws, and a preparation
never holds up a map it does not serve (`compute.prepare_worker`, `compute.slow_job`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import compute, map_request, scheduler, state

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _asked(monkeypatch, methods: list[str]) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(compute, "prepare_worker", lambda *args: calls.append(args))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.METHODS] = methods
    at.session_state[keys.XRAI_STEPS] = 20
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
    fresh = scheduler.Dispatcher(run_here=compute._run_here, keep=compute._keep, stored=compute.stored)
    fresh.use_process = False
    fresh.waiting = threading.Event()
    monkeypatch.setattr(compute, "_dispatcher", lambda: fresh)
    return fresh


def _job(key: str, method: str = "xrai", image_key: str = "img", options=None) -> scheduler.Job:
    request = compute.MapRequest(method=method, image=None, region=None, class_index=0, layer=None, target="logits",
                                 options={"steps": 20} if options is None else options, model_key="m",
                                 image_key=image_key, region_key=key)  # one job per `key`
    return compute.slow_job(request, None)


def test_a_map_the_running_preparation_serves_lets_it_finish(dispatcher) -> None:
    with dispatcher.lock:
        dispatcher.preparing_now = map_request.work_key("m", "img", "xrai", "logits", {"steps": 20})
    _job("a")
    assert not dispatcher.waiting.is_set()


@pytest.mark.parametrize("other", [dict(method="scorecam"), dict(image_key="other image"),
                                   dict(options={"steps": 30})], ids=["method", "image", "options"])
def test_any_other_map_stops_the_running_preparation(dispatcher, other) -> None:
    with dispatcher.lock:
        dispatcher.preparing_now = map_request.work_key("m", "img", "xrai", "logits", {"steps": 20})
    _job("b", **other)
    assert dispatcher.waiting.is_set()


@pytest.fixture
def preparing(dispatcher, monkeypatch):
    """The dispatcher's loop inside a preparation (a stand-in for the worker process's) until released;
    `start(image_key)` asks for one. Yields (start, release, keys of the preparations begun)."""
    done: list[tuple] = []
    release = threading.Event()

    def prepare(request):
        done.append(request.work_key())
        release.wait(30)
        with dispatcher.lock:
            dispatcher.preparing_now = None

    dispatcher._prepare = prepare
    dispatcher.use_process = True
    monkeypatch.setitem(compute._MODEL_SOURCES, "m", ("default",))

    def start(image_key: str) -> tuple:
        compute.prepare_worker("m", image_key, np.zeros((8, 8, 3), np.uint8), "xrai", "logits", {"steps": 20})
        return map_request.work_key("m", image_key, "xrai", "logits", {"steps": 20})

    yield start, release, done
    dispatcher.use_process = False  # jobs left behind end with an error in this thread, no worker is started
    release.set()


def test_a_new_preparation_stops_the_one_running_for_another_image(dispatcher, preparing) -> None:
    """The user moved to another image (or model, or options): the running preparation stops at its next
    batch and the new one runs after it; asking again for the running one changes nothing."""
    start, release, done = preparing
    first = start("img")
    _until(lambda: dispatcher.preparing_now == first)
    start("img")
    assert dispatcher.preparing is None and not dispatcher.waiting.is_set()
    second = start("other")
    assert dispatcher.waiting.is_set(), "the preparation for the image left behind was not stopped"
    release.set()
    _until(lambda: done == [first, second])
    assert not dispatcher.waiting.is_set(), "the new preparation would stop at once"


def test_a_map_waiting_for_its_images_preparation_says_so(dispatcher, preparing) -> None:
    from dashboard import comparison

    start, _release, _done = preparing
    first = start("img")
    _until(lambda: dispatcher.preparing_now == first)
    assert "waits for this image's forward passes" in comparison.pending_text(None, "xrai", _job("a"))
    assert "queued behind other slow maps" in comparison.pending_text(None, "xrai", _job("b", image_key="other"))


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_job_gets_a_preview_unless_the_last_run_on_that_image_was_quick(dispatcher, monkeypatch) -> None:
    """A preview costs the full map time; it is asked for only when the full map is expected far away: on
    the first run for a model, image and options, and after a run that took `PREVIEW_UNLESS_WITHIN` or more."""
    monkeypatch.setattr(scheduler, "LAST_RUN_SECONDS", scheduler.LRU(8))
    assert _job("first").wants_preview
    scheduler.LAST_RUN_SECONDS.put(map_request.work_key("m", "img", "xrai", "logits", {"steps": 20}),
                                   scheduler.PREVIEW_UNLESS_WITHIN - 1.0)
    quick = _job("second")
    assert not quick.wants_preview and quick.until_preview() is None
    assert _job("third", image_key="another image").wants_preview
    assert _job("fourth", options={"steps": 30}).wants_preview
    scheduler.LAST_RUN_SECONDS.put(map_request.work_key("m", "img", "xrai", "logits", {"steps": 20}),
                                   scheduler.PREVIEW_UNLESS_WITHIN + 1.0)
    assert _job("fifth").wants_preview


def test_a_finished_job_records_how_long_it_took_for_the_next_preview_decision(dispatcher, monkeypatch) -> None:
    monkeypatch.setattr(scheduler, "LAST_RUN_SECONDS", scheduler.LRU(8))
    monkeypatch.setattr(dispatcher, "run_here", lambda *args, **kwargs: "map")
    job = scheduler.Job(key=("map", "x"), label="XRAI", run_key=("m", "img", "xrai"), started=True,
                        started_at=__import__("time").monotonic() - 2.5)
    job.request = scheduler.MapRequest(method="xrai", image=None, region=None, class_index=0, layer=None,
                                       target="logits", options={}, model_key="m")
    dispatcher._run(job)
    assert job.result == "map"
    assert scheduler.LAST_RUN_SECONDS.get(("m", "img", "xrai")) == pytest.approx(2.5, abs=0.5)
