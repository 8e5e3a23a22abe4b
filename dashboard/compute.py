"""Cached calls into `models` and `explainers`: the only place the page asks for numbers.

Nothing here computes anything itself; it decides what is remembered between reruns:

- models: `st.cache_resource` (one object shared by all sessions), an uploaded model keyed by the
  SHA-256 of its file;
- arrays and maps: `st.cache_data`, keyed by the model key, the image digest, the region's digest,
  the class, the layer, the methods and the target. Models, images and region masks are passed as
  hash-excluded `_arguments` next to the key that identifies them, so Streamlit never hashes a Keras
  model, and never hashes a large array either (it hashes arrays of 500,000 elements or more from a
  random sample of their elements, so two regions a few pixels apart could share a cache entry).
- the slow maps (XRAI, Score-CAM, the Integrated-Gradients family): background jobs (`slow_job`) in
  one worker thread, started once per key and never restarted by a rerun; the page polls their
  progress. Their results live in a small store of their own (`stored`), not `st.cache_data`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

import explainers
import models
from explainers import regions
from models import scenes


def digest(data: bytes | np.ndarray) -> str:
    """Short content hash used as a cache key and in the export's settings."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes() + repr((data.shape, data.dtype.str)).encode()
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Models


def default_model_key() -> str:
    """Changes when the shipped weights file changes (e.g. after retraining), so the cache follows."""
    try:
        from models import pspnet

        stat = pspnet.WEIGHTS_PATH.stat()
        return f"default:{stat.st_size}:{int(stat.st_mtime)}"
    except (ImportError, AttributeError, OSError):
        return "default"


@st.cache_resource(show_spinner="Loading the default model…", max_entries=2)
def default_model(model_key: str) -> Any:
    del model_key  # only part of the cache key
    return models.load_default()


@st.cache_resource(show_spinner="Loading the uploaded model…", max_entries=4)
def uploaded_model(model_key: str, _path: str) -> Any:
    return models.load_user_model(_path)


@st.cache_data(show_spinner=False, max_entries=16)
def layer_table(model_key: str, _model: Any) -> tuple[list[Any], str]:
    """Explainable layers (forward order) and the default layer of a model."""
    return list(explainers.explainable_layers(_model)), explainers.default_layer(_model)


# ---------------------------------------------------------------------------------------------
# Images and predictions


@st.cache_data(show_spinner=False, max_entries=32)
def sample(name: str) -> np.ndarray:
    image, _truth = scenes.load_sample(name)
    return image


@st.cache_data(show_spinner=False, max_entries=64)
def fitted(model_key: str, image_key: str, _pixels: np.ndarray, _model: Any) -> np.ndarray:
    """The image resized to the model's input size (what every map is computed on)."""
    return np.asarray(explainers.fit_image(_model, _pixels))


@st.cache_data(show_spinner=False, max_entries=64)
def prediction(model_key: str, image_key: str, _image: np.ndarray, _model: Any) -> Any:
    return explainers.predict(_model, _image)


# ---------------------------------------------------------------------------------------------
# Maps


@st.cache_data(show_spinner=False, max_entries=256)
def cam_maps(
    model_key: str,
    image_key: str,
    region_key: str,
    class_index: int,
    layer: str,
    methods: tuple[str, ...],
    target: str,
    _image: np.ndarray,
    _region: np.ndarray,
    _model: Any,
) -> dict[str, Any]:
    """The gradient CAMs in one call; `region_key` is `digest(_region)`."""
    return dict(
        explainers.explain(_model, _image, _region, class_index, layer, methods=methods, target=target)
    )


@st.cache_data(show_spinner=False, max_entries=32)
def sweep(
    model_key: str,
    image_key: str,
    region_key: str,
    class_index: int,
    target: str,
    _image: np.ndarray,
    _region: np.ndarray,
    _model: Any,
) -> dict[str, dict[str, Any]]:
    """Grad-CAM and Grad-CAM++ at every explainable layer (layer → method → Explanation);
    `region_key` is `digest(_region)`."""
    return explainers.layer_sweep(_model, _image, _region, class_index, target=target)


def agreement(maps: dict[str, np.ndarray]) -> list[dict]:
    from explainers import metrics

    return metrics.agreement_table(maps)


def outline(region: np.ndarray) -> list[np.ndarray]:
    return regions.outline_paths(region)


# ---------------------------------------------------------------------------------------------
# The slow maps (XRAI, Score-CAM, the Integrated-Gradients family) and the faithfulness scores report
# progress to the page while they run, so they live in a store of their own rather than
# `st.cache_data` (a cache hit would replay their progress bars);
# the class overview draws nothing while it runs and is an ordinary `st.cache_data` entry.

_SLOW_STORE_SIZE = 128


@st.cache_resource(show_spinner=False)
def _slow_store() -> tuple[OrderedDict, threading.Lock]:
    return OrderedDict(), threading.Lock()


def stored(key: tuple) -> Any | None:
    """The value computed earlier for `key` by `slow_map` or `faithfulness`, or None."""
    store, lock = _slow_store()
    with lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    return None


def _keep(key: tuple, value: Any) -> None:
    store, lock = _slow_store()
    with lock:
        store[key] = value
        while len(store) > _SLOW_STORE_SIZE:
            store.popitem(last=False)


def slow_map(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    layer: str | None,
    method: str,
    target: str,
    options: dict[str, Any],
    progress: Callable[..., None] | None = None,
) -> Any:
    """One slow method's Explanation (`options` are `explain` keyword arguments), once per `key`."""
    hit = stored(key)
    if hit is not None:
        return hit
    kwargs: dict[str, Any] = dict(methods=(method,), target=target, **options)
    if progress is not None:
        kwargs["progress"] = progress
    result = explainers.explain(model, image, region, class_index, layer, **kwargs)[method]
    _keep(key, result)
    return result


# ---------------------------------------------------------------------------------------------
# Slow maps as background jobs: started once per key, never restarted or cancelled by a rerun. A
# new stroke, class or layer only starts the jobs whose inputs changed; the others keep running (or
# are already stored) and the page polls them. One worker thread: slow maps queue behind each other
# and leave the second core to the fast maps of the next stroke.


@dataclass
class Job:
    """A slow map being computed: `progress` in [0, 1], then `result` (an Explanation) or `error`."""

    key: tuple
    label: str
    progress: float = 0.0
    started: bool = False
    result: Any = None
    error: str | None = None
    future: Future | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


_JOBS_SIZE = 64


@st.cache_resource(show_spinner=False)
def _job_store() -> tuple[OrderedDict, threading.Lock, ThreadPoolExecutor]:
    return OrderedDict(), threading.Lock(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="slow-maps")


def _run_job(job: Job, model: Any, image: np.ndarray, region: np.ndarray, class_index: int, layer: str | None,
             method: str, target: str, options: dict[str, Any]) -> None:
    job.started = True

    def report(fraction: float, *_args: Any, **_kwargs: Any) -> None:
        job.progress = float(min(max(fraction, 0.0), 1.0))

    try:
        job.result = slow_map(job.key, model, image, region, class_index, layer, method, target, options,
                              progress=report)
        job.progress = 1.0
    except explainers.ExplainerError as error:
        job.error = str(error)
    except Exception as error:  # a crash in a worker must reach the page as a message, not vanish
        job.error = f"{label_of(method)} failed: {type(error).__name__}: {error}"


def label_of(method: str) -> str:
    return explainers.METHOD_LABELS.get(method, method)


def slow_job(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    layer: str | None,
    method: str,
    target: str,
    options: dict[str, Any],
) -> Job:
    """The job computing `method`'s map for `key`: the stored one, the running or queued one, or a new one.

    Calling it again with the same key (any later rerun) returns the same job: nothing restarts."""
    jobs, lock, pool = _job_store()
    with lock:
        job = jobs.get(key)
        if job is not None and job.error is None:
            jobs.move_to_end(key)
            return job
        hit = stored(key)
        job = Job(key=key, label=label_of(method))
        if hit is not None:
            job.result, job.progress, job.started = hit, 1.0, True
        jobs[key] = job
        while len(jobs) > _JOBS_SIZE:
            oldest_key, oldest = next(iter(jobs.items()))
            if not oldest.done:
                break  # never drop a job that is still to run
            jobs.pop(oldest_key)
    if hit is None:
        job.future = pool.submit(_run_job, job, model, np.array(image), np.array(region), int(class_index), layer,
                                 method, target, dict(options))
    return job


def faithfulness(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    heatmaps: dict[str, np.ndarray],
    steps: int,
    target: str,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Deletion/insertion curves, Average Drop and Increase in Confidence of every map plus the random
    baseline (`explainers.faithfulness.evaluate_explanations`), once per `key`.

    One library call for all maps (the blurred image and full-image score are shared); the random
    map comes last, from the library's own seeded baseline."""
    hit = stored(key)
    if hit is not None:
        return hit
    from explainers import faithfulness as faith

    results = faith.evaluate_explanations(model, image, region, class_index, heatmaps, steps=steps, target=target,
                                          random_baseline=True, progress=progress)
    _keep(key, results)
    return results


def faithfulness_ranking(results: dict[str, Any]) -> list[dict]:
    from explainers import faithfulness as faith

    return faith.ranking(results)


@st.cache_data(show_spinner=False, max_entries=32)
def class_overview(
    model_key: str,
    image_key: str,
    method: str,
    layer: str | None,
    target: str,
    options: tuple[tuple[str, Any], ...],
    _image: np.ndarray,
    _model: Any,
) -> dict[int, Any]:
    """`method`'s map for every predicted class, its whole predicted area as the region."""
    return dict(explainers.class_overview(_model, _image, method=method, layer=layer, target=target,
                                          **dict(options)))


def class_region(labels: np.ndarray, class_index: int) -> np.ndarray:
    return regions.from_class(labels, class_index)
