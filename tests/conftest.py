"""Shared pytest set-up: repository root on sys.path and quiet, deterministic TensorFlow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # the kernels the app runs with (see explainers/__init__)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class SlowMapsWait:
    """What `finish_slow_maps` gives a test: `stop()` lets the page's runs return before their slow maps again."""

    def __init__(self, stop) -> None:
        self.stop = stop


@pytest.fixture
def finish_slow_maps(monkeypatch: pytest.MonkeyPatch) -> SlowMapsWait:
    """AppTest has no browser to time the slow maps' looks, so each run of the page waits for the slow maps it
    asks for, from the test's side: the page's one way to a slow map, `compute.slow_job`, waits for its job."""
    from dashboard import compute

    original = compute.slow_job

    def waiting(*args, **kwargs):
        job = original(*args, **kwargs)
        job.wait()
        return job

    monkeypatch.setattr(compute, "slow_job", waiting)
    return SlowMapsWait(lambda: monkeypatch.setattr(compute, "slow_job", original))


@pytest.fixture
def toy():
    """The toy method (`tests/toy_method.py`), registered by importing its module as a plug-in would be, and
    unregistered afterwards."""
    import importlib

    from explainers import registry

    sys.modules.pop("toy_method", None)
    module = importlib.import_module("toy_method")
    try:
        yield module
    finally:
        registry.unregister(module.NAME)
        sys.modules.pop("toy_method", None)
    assert module.NAME not in registry.ALL_METHODS


@pytest.fixture(autouse=True)
def no_kept_layer_inputs_after_a_test():
    """An AppTest run turns on the page's store of head activations (`explainers.layer_split`) for the whole
    process: turned off after each test, so the next one starts as a fresh process does."""
    yield
    from explainers import layer_split

    layer_split.disable()
