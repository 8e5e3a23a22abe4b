"""The slow maps' scheduler on its own (`dashboard.scheduler`): typed requests, one job per key, the
newest job first, results kept, errors as sentences, progress messages routed by job id. The dispatcher
runs its jobs in this process here (`use_process` off), through the `run_here` it is given."""

from __future__ import annotations

import pickle
import queue
import threading

import numpy as np
import pytest

import explainers
from dashboard import map_request, scheduler


def _request(method: str = "xrai", class_index: int = 1, **options) -> scheduler.MapRequest:
    return scheduler.MapRequest(method=method, image=np.zeros((4, 4, 3), np.uint8), region=np.eye(4, dtype=bool),
                                class_index=class_index, layer=None, target="logits", options=options,
                                model_key="m", image_key="img")


class _Owner:
    """What `dashboard.compute` gives the dispatcher: a computing function and a store."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.store: dict[tuple, object] = {}
        self.ran: list[tuple] = []
        self.gate = gate

    def run_here(self, key, model, request, progress=None, preview=None):
        if self.gate is not None:
            assert self.gate.wait(30)
        self.ran.append(key)
        if request.method == "broken":
            raise ValueError("no such thing")
        if request.method == "refused":
            raise explainers.ExplainerError("This map needs a region.")
        progress(0.5)
        return ("map of", request.method, request.class_index, model)

    def dispatcher(self) -> scheduler.Dispatcher:
        fresh = scheduler.Dispatcher(run_here=self.run_here, keep=self.store.__setitem__, stored=self.store.get)
        fresh.use_process = False
        return fresh


def test_a_request_is_typed_and_crosses_a_process_boundary_whole() -> None:
    request = _request(steps=8)
    again = pickle.loads(pickle.dumps(request))
    assert (again.method, again.class_index, again.options, again.model_key) == ("xrai", 1, {"steps": 8}, "m")
    np.testing.assert_array_equal(again.region, request.region)
    with pytest.raises(AttributeError):
        request.method = "rise"  # frozen: a job's work cannot change under it
    assert request.work_key() == map_request.work_key("m", "img", "xrai", "logits", {"steps": 8})


def test_a_preparation_is_typed_and_crosses_a_process_boundary_whole() -> None:
    request = map_request.PrepareRequest(source=("default",), image=np.ones((4, 4, 3), np.uint8), method="xrai",
                                       target="logits", options={"steps": 8}, model_key="m", image_key="img")
    again = pickle.loads(pickle.dumps(request))
    assert (again.source, again.method, again.target, again.options) == (("default",), "xrai", "logits", {"steps": 8})
    np.testing.assert_array_equal(again.image, request.image)
    assert again.modules == ()  # a shipped method: no module to import in the worker
    with pytest.raises(AttributeError):
        request.method = "rise"
    assert again.work_key() == _request(steps=8).work_key()  # it serves exactly the maps of that work key


def test_one_job_per_key_its_result_kept_and_the_model_never_in_the_request() -> None:
    owner = _Owner()
    dispatcher = owner.dispatcher()
    job = scheduler.submit(dispatcher, ("k", 1), _request(), model="the model")
    assert job.wait(30) and job.error is None
    assert job.result == ("map of", "xrai", 1, "the model") and job.progress == 1.0
    assert owner.store[("k", 1)] is job.result
    assert job.request is None and job.model is None  # the image and model are let go once done
    assert scheduler.submit(dispatcher, ("k", 1), _request(), model="the model") is job
    assert owner.ran == [("k", 1)]


def test_a_stored_map_makes_a_finished_job_without_running() -> None:
    owner = _Owner()
    owner.store[("k", 2)] = "kept earlier"
    job = scheduler.submit(owner.dispatcher(), ("k", 2), _request())
    assert job.done and job.result == "kept earlier" and owner.ran == []


def test_the_job_asked_for_last_runs_first() -> None:
    gate = threading.Event()
    owner = _Owner(gate)
    dispatcher = owner.dispatcher()
    first = scheduler.submit(dispatcher, ("k", "first"), _request())
    deadline = threading.Event()
    while not first.started:  # the dispatcher has taken it and waits at the gate
        deadline.wait(0.01)
    older = scheduler.submit(dispatcher, ("k", "older"), _request(class_index=2))
    newer = scheduler.submit(dispatcher, ("k", "newer"), _request(class_index=3))
    gate.set()
    assert older.wait(30) and newer.wait(30)
    assert owner.ran == [("k", "first"), ("k", "newer"), ("k", "older")]


def test_failures_reach_the_page_as_one_sentence() -> None:
    owner = _Owner()
    dispatcher = owner.dispatcher()
    refused = scheduler.submit(dispatcher, ("k", "r"), _request("refused"))
    broken = scheduler.submit(dispatcher, ("k", "b"), _request("broken"))
    assert refused.wait(30) and broken.wait(30)
    assert refused.error == "This map needs a region." and refused.result is None
    assert broken.error == "broken failed: ValueError: no such thing"
    assert ("k", "r") not in owner.store


def test_progress_messages_reach_the_job_they_belong_to() -> None:
    """Two readers may take the worker's messages (the dispatcher's thread and a page thread waiting on the
    randomisation check): each message goes to its own job's route, none to another's."""
    dispatcher = _Owner().dispatcher()
    dispatcher.queue = queue.Queue()
    got: dict[int, list] = {1: [], 2: []}
    dispatcher.routes[1] = lambda f, p: got[1].append((f, p))
    dispatcher.routes[2] = lambda f, p: got[2].append((f, p))
    for message in ((1, 0.25, None), (2, 0.5, "preview"), (3, 0.9, None), (1, 0.75, None)):
        dispatcher.queue.put(message)
    dispatcher._drain()
    assert got == {1: [(0.25, None), (0.75, None)], 2: [(0.5, "preview")]}
    assert dispatcher.queue.empty()
