"""Cached calls into `models` and `explainers`: the only place the page asks for numbers.

Nothing here computes anything itself; it decides what is remembered between reruns:

- models: `st.cache_resource` (one object shared by all sessions), an uploaded model keyed by the
  SHA-256 of its file;
- arrays and maps: `st.cache_data`, keyed by the model key, the image digest, the region's digest,
  the class, the layer, the methods and the target. Models, images and region masks are passed as
  hash-excluded `_arguments` next to the key that identifies them, so Streamlit never hashes a Keras
  model, and never hashes a large array either (it hashes arrays of 500,000 elements or more from a
  random sample of their elements, so two regions a few pixels apart could share a cache entry).
- the slow maps (XRAI, Score-CAM, the Integrated-Gradients family): background jobs (`slow_job`),
  started once per key and never restarted by a rerun; the page polls their progress. The scheduling
  (jobs, the worker process, the thread that feeds it) is `dashboard.scheduler`'s; this module owns
  its one dispatcher per server and the small store the results live in (`stored`), not `st.cache_data`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

import explainers
import models
from dashboard import scheduler
from explainers import depth_profile, regions, registry
from explainers.caching import LRU
from models import scenes

_MODEL_SOURCES = scheduler.MODEL_SOURCES  # how each cached model was loaded (the worker loads the same)


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
    _MODEL_SOURCES[model_key] = ("default",)
    return models.load_default()


def note_upload_source(model_key: str, path: Any, preprocessing: dict | None = None) -> None:
    """Where the slow-map worker process finds an uploaded model (the session's own stored file), and the
    mean/std the user set for a PyTorch file (the worker loads the file with them)."""
    settings = tuple(sorted((k, tuple(v)) for k, v in (preprocessing or {}).items()))
    _MODEL_SOURCES[model_key] = ("upload", str(path), settings, None)  # see `worker._model`


def with_working_size(model_key: str, model: Any, longest: int, fit: str) -> str:
    """Apply the page's working size to a free-size model; the key of the model at that size (every cache and
    the slow-map worker follow it: the worker's source carries the size)."""
    explainers.set_working_size(model, longest, fit)
    key = f"{model_key}|work:{longest}:{fit}"
    if model_key in _MODEL_SOURCES:
        base = _MODEL_SOURCES[model_key]
        _MODEL_SOURCES[key] = (*base[:3], (longest, fit)) if base[0] == "upload" else base
    return key


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
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...],
    _image: np.ndarray,
    _region: np.ndarray,
    _model: Any,
) -> dict[str, Any]:
    """The gradient CAMs in one call; `region_key` is `digest(_region)`, `options` ((method, ((option,
    value), ...)), ...) those set by the page (e.g. Seg-XRes-CAM's pool size)."""
    return dict(explainers.explain(_model, _image, _region, class_index, layer, methods=methods, target=target,
                                   options={method: dict(items) for method, items in options}))


SWEEP_SIZE = 112  # longest side of each sweep map kept for the page (its pictures are drawn from these)


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
) -> explainers.DepthProfile:
    """Grad-CAM and Grad-CAM++ at every explainable layer from one library call (one compiled pass),
    kept as the page needs it: each map shrunk to `SWEEP_SIZE`, its region share and whether it is
    flat (`explainers.depth_profile`). The full-size maps are not cached: for a 156-layer model at
    224² they are 65 MB per region. `region_key` is `digest(_region)`."""
    by_layer = explainers.layer_sweep(_model, _image, _region, class_index, target=target)
    return depth_profile.profile(by_layer, _region, SWEEP_SIZE)


@st.cache_data(show_spinner=False, max_entries=64)
def score_choice(model_key: str, image_key: str, region_key: str, class_index: int, layer: str, target: str,
                 _image: np.ndarray, _region: np.ndarray, _model: Any) -> float:
    """Rank correlation of Grad-CAM++ on the adapter mean and on the region sum (how much the score matters)."""
    return float(explainers.score_choice(_model, _image, _region, class_index, layer, target=target)["rank_correlation"])


def agreement(maps: dict[str, np.ndarray]) -> list[dict]:
    """The agreement table of `maps`, computed once per set of maps (a rerun with the same maps reuses it)."""
    return _agreement(tuple((name, digest(np.asarray(m))) for name, m in maps.items()), maps)


@st.cache_data(show_spinner=False, max_entries=64)
def _agreement(key: tuple, _maps: dict[str, np.ndarray]) -> list[dict]:
    from explainers import metrics

    return metrics.agreement_table(_maps)


def outline(region: np.ndarray) -> list[np.ndarray]:
    return regions.outline_paths(region)


# ---------------------------------------------------------------------------------------------
# The slow maps (XRAI, Score-CAM, the Integrated-Gradients family) and the faithfulness scores report
# progress to the page while they run, so they live in a store of their own rather than
# `st.cache_data` (a cache hit would replay their progress bars);
# the class overview draws nothing while it runs and is an ordinary `st.cache_data` entry.

_SLOW_STORE_SIZE = 128


@st.cache_resource(show_spinner=False)
def _slow_store() -> LRU:
    return LRU(_SLOW_STORE_SIZE)


def stored(key: tuple) -> Any | None:
    """The value computed earlier for `key` by `slow_map` or `faithfulness`, or None."""
    return _slow_store().get(key)


def _keep(key: tuple, value: Any) -> None:
    _slow_store().put(key, value)


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
    preview: Callable[[str, Any], None] | None = None,
) -> Any:
    """One slow method's Explanation (`options`: a dict of its options fields), once per `key`;
    `progress` and `preview` are `explainers.explain`'s."""
    hit = stored(key)
    if hit is not None:
        return hit
    kwargs: dict[str, Any] = dict(methods=(method,), target=target, options={method: options})
    if progress is not None:
        kwargs["progress"] = progress
    if preview is not None:
        kwargs["preview"] = preview
    result = explainers.explain(model, image, region, class_index, layer, **kwargs)[method]
    _keep(key, result)
    return result


# ---------------------------------------------------------------------------------------------
# Slow maps as background jobs (`dashboard.scheduler`): the one dispatcher of this server, fed from
# here with the store above, and the page's calls into it.

Job = scheduler.Job
TYPICAL_SECONDS = scheduler.TYPICAL_SECONDS


def _run_here(key: tuple, model: Any, request: scheduler.MapRequest, progress: Callable[..., None] | None = None,
              preview: Callable[[str, Any], None] | None = None) -> Any:
    """A job's map in this process, when the worker cannot take it."""
    return slow_map(key, model, request.image, request.region, request.class_index, request.layer, request.method,
                    request.target, request.options, progress=progress, preview=preview)


@st.cache_resource(show_spinner=False)
def _dispatcher() -> scheduler.Dispatcher:
    return scheduler.Dispatcher(run_here=_run_here, keep=_keep, stored=stored)


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
    model_key: str | None = None,
    image_key: str | None = None,
) -> Job:
    """The job computing `method`'s map for `key` (`scheduler.submit`): stored, running, queued or new."""
    request = scheduler.MapRequest(method=method, image=np.array(image), region=np.array(region),
                                   class_index=int(class_index), layer=layer, target=target, options=dict(options),
                                   model_key=model_key, image_key=image_key)
    return scheduler.submit(_dispatcher(), key, request, model)


def waits_for_preparation(job: Job) -> bool:
    return scheduler.waits_for_preparation(_dispatcher(), job)


def prepare_worker(model_key: str, image_key: str, image: np.ndarray, method: str, target: str,
                   options: dict[str, Any]) -> None:
    """Let the worker prepare this image for `method` while the user draws (`scheduler.prepare`)."""
    scheduler.prepare(_dispatcher(), model_key, image_key, image, method, target, options)


def warm_worker(model_key: str) -> None:
    """Start the worker process and load the model in it ahead of the first slow map (`scheduler.warm`)."""
    scheduler.warm(_dispatcher(), model_key)


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
                                          options={method: dict(options)}))


def class_region(labels: np.ndarray, class_index: int) -> np.ndarray:
    return regions.from_class(labels, class_index)


def randomization(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    layer: str | None,
    methods: tuple[str, ...],
    target: str,
    options: dict[str, Any],
    steps: int,
    progress: Callable[[float], None] | None = None,
    model_key: str | None = None,
) -> Any:
    """The randomisation check of `methods` (`explainers.randomization_check`, the Trust tab), once per `key`;
    kept in the slow-map store because it reports progress while it runs.

    It runs in the slow-map worker process when the model can be loaded there (`model_key` names its
    source), as the slow maps do: its copy of the network and its dozens of maps then take neither the
    page process's memory nor its TensorFlow threads. `progress` is still called in this (the page's)
    thread, from the fractions the worker sends. Without a worker it runs here."""
    hit = stored(key)
    if hit is not None:
        return hit
    result = _randomization_in_worker(model_key, image, region, class_index, layer, methods, target, options,
                                      steps, progress)
    if result is None:
        result = explainers.randomization_check(model, image, region, class_index, layer, methods, target=target,
                                                options=options, max_steps=steps, keep_maps=False,
                                                progress=progress)
    _keep(key, result)
    return result


def _randomization_in_worker(model_key: str | None, image: np.ndarray, region: np.ndarray, class_index: int,
                             layer: str | None, methods: tuple[str, ...], target: str, options: dict[str, Any],
                             steps: int, progress: Callable[[float], None] | None) -> Any | None:
    """The check's result from the worker process, or None when it cannot run there."""
    from dashboard import worker

    source = _MODEL_SOURCES.get(model_key) if model_key is not None else None
    dispatcher = _dispatcher()
    if source is None or not dispatcher.use_process:
        return None
    latest: list[float] = []  # filled by whichever thread drains the queue; shown from this thread only
    shown = [-1.0]

    def report(fraction: float, _preview: Any = None) -> None:
        latest.append(float(fraction))

    def show() -> None:
        if progress is not None and latest and latest[-1] != shown[0]:
            shown[0] = latest[-1]
            progress(shown[0])

    return dispatcher.try_in_worker(report, worker.randomize, source, np.asarray(image), np.asarray(region),
                                    int(class_index), layer, tuple(methods), target, dict(options), int(steps),
                                    registry.modules_for(methods), after_drain=show)
