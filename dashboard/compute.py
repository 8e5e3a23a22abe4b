"""Every cache of the page: the only module of `dashboard/` that uses `st.cache_data` / `st.cache_resource`
(`tests/test_lint.py` checks), and the page's way to the numbers of `models` and `explainers`.

Nothing here computes anything itself; it decides what is remembered between reruns:

- models: `st.cache_resource` (one object shared by all sessions), an uploaded model keyed by the
  SHA-256 of its file;
- arrays and maps: `st.cache_data`. A map's identity is its `MapRequest` (`dashboard.map_request`: model key,
  image digest, region digest, class, target, method, layer, options): the CAMs are remembered under their
  requests' `key()`s (`cam_maps`), a slow map's job and result under its request's `key()` (`slow_job`). Other
  arrays are keyed by the model key, the image digest, the region's digest and what else they depend on.
  Models, images and region masks are passed as hash-excluded `_arguments` next to the key that identifies
  them, so Streamlit never hashes a Keras model, and never hashes a large array either (it hashes arrays of
  500,000 elements or more from a random sample of their elements, so two regions a few pixels apart could
  share a cache entry).
- the slow maps (XRAI, Score-CAM, the Integrated-Gradients family): background jobs (`slow_job`),
  started once per key and never restarted by a rerun; the page polls their progress. The scheduling
  (jobs, the worker process, the thread that feeds it) is `dashboard.scheduler`'s; this module owns
  its one dispatcher per server and the small store the results live in (`stored`), not `st.cache_data`.
- pictures, tables and files the views draw (the canvas background, the sweep's pictures, the browser's table,
  the export): remembered here too, under keys decided here; the view hands over how to build the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import streamlit as st

import explainers
import models
from dashboard import map_request, scheduler
from explainers import depth_profile, layer_split, regions, registry
from explainers.caching import LRU
from models import scenes

_MODEL_SOURCES = scheduler.MODEL_SOURCES  # how each cached model was loaded (the worker loads the same)


digest = map_request.digest  # short content hash of bytes or an array (cache keys, the export's settings)
region_digest = map_request.region_digest  # `digest` of a region mask, once per array
MapRequest = map_request.MapRequest  # one map's inputs and its cache identity (`MapRequest.key()`)


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


@st.cache_data(show_spinner=False, max_entries=16)
def layer_stages(model_key: str, _model: Any) -> list[Any]:
    """The explainable layers grouped by output resolution (`explainers.graph.layer_stages`)."""
    from explainers import graph

    return graph.layer_stages(_model)


@st.cache_data(show_spinner=False, max_entries=16)
def working_shapes(model_key: str, image_size: tuple[int, int], _model: Any) -> dict[str, tuple[int | None, ...]]:
    """`explainers.graph.working_shapes` of the model at the image's working size, once per model and size
    (the layer picker shows these sizes instead of "?")."""
    from explainers import graph

    return graph.working_shapes(_model, image_size)


# ---------------------------------------------------------------------------------------------
# Images and predictions


@st.cache_data(show_spinner=False, max_entries=32)
def sample(name: str) -> np.ndarray:
    image, _truth = scenes.load_sample(name)
    return image


@st.cache_data(show_spinner=False, max_entries=32)
def sample_truth(name: str) -> np.ndarray:
    """A gallery sample's ground truth (label map at its original size)."""
    _image, truth = scenes.load_sample(name)
    return truth


SCENE_SIZE = 144  # size of the generated scenes when the model takes any size


def scene_size(model: Any) -> int:
    """The side of the generated scenes for `model`: its square input size, else `SCENE_SIZE`."""
    height, width = explainers.inspect_model(model).input_size
    return int(height) if height is not None and height == width else SCENE_SIZE


@st.cache_data(show_spinner=False, max_entries=8)
def scene_batch(seed: int, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×H×W×3) and ground truths (N×H×W) of a batch of generated scenes; cheap to recall from callbacks."""
    return scenes.generate(int(count), int(seed), int(size))


@st.cache_data(show_spinner="Generating and segmenting the scenes…", max_entries=8)
def ranked_scenes(model_key: str, seed: int, count: int, _model: Any) -> dict[str, Any]:
    """Predictions of a batch of generated scenes and its rows ranked worst first (`quality.rank_by_iou`);
    an ExplainerError when the model's classes are not the scenes' (no confusion matrix then)."""
    from explainers import quality

    size = scene_size(_model)
    images, truths = scene_batch(seed, count, size)
    num_classes = explainers.inspect_model(_model).num_classes
    if num_classes != len(models.CLASS_NAMES):
        raise explainers.ExplainerError(f"the model predicts {num_classes} classes, the scenes' ground truth has "
                                        f"{len(models.CLASS_NAMES)}.")
    predictions, grids = [], []
    for image, truth in zip(images, truths, strict=True):
        labels = explainers.predict(_model, explainers.fit_image(_model, image)).labels
        predictions.append(labels)
        grids.append(quality.resize_labels(truth, labels.shape))
    predictions, grids = np.stack(predictions), np.stack(grids)
    rows = quality.rank_by_iou(grids, predictions, num_classes)
    return {"size": size, "num_classes": num_classes, "rows": rows, "predictions": predictions, "truths": grids}


@st.cache_data(show_spinner="Reading the results…", max_entries=4)
def batch_results(folder: str, stamp: tuple) -> dict[str, Any]:
    """The tables of a batch results folder (`explainers.dataset_analysis.open_results`); `stamp` (the files'
    sizes and times) is only part of the key, so a changed file is read again."""
    from explainers import dataset_analysis

    del stamp
    return dataset_analysis.open_results(folder)


@st.cache_data(show_spinner=False, max_entries=64)
def fitted(model_key: str, image_key: str, _pixels: np.ndarray, _model: Any) -> np.ndarray:
    """The image resized to the model's input size (what every map is computed on)."""
    return np.asarray(explainers.fit_image(_model, _pixels))


@st.cache_data(show_spinner=False, max_entries=64)
def prediction(model_key: str, image_key: str, _image: np.ndarray, _model: Any) -> Any:
    return explainers.predict(_model, _image)


# ---------------------------------------------------------------------------------------------
# Maps


def cam_maps(requests: Sequence[MapRequest], model: Any) -> dict[str, Any]:
    """The gradient CAMs of `requests` (one `MapRequest` per CAM, all on the same model, image, region, class,
    layer and target) in one library call, remembered under their requests' `key()`s."""
    return _cam_maps(tuple(r.key() for r in requests), tuple(requests), model)


@st.cache_data(show_spinner=False, max_entries=256)
def _cam_maps(keys: tuple[tuple, ...], _requests: tuple[MapRequest, ...], _model: Any) -> dict[str, Any]:
    first = _requests[0]
    with layer_split.used():  # the page's models keep their weights: the part before the layer is kept per image
        return dict(explainers.explain(_model, first.image, first.region, first.class_index, first.layer,
                                       methods=tuple(r.method for r in _requests), target=first.target,
                                       options={r.method: dict(r.options) for r in _requests if r.options}))


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


def slow_map(request: MapRequest, model: Any, progress: Callable[..., None] | None = None,
             preview: Callable[[str, Any], None] | None = None) -> Any:
    """One slow method's Explanation in this process, once per `request.key()`; `progress` and `preview` are
    `explainers.explain`'s."""
    key = request.key()
    hit = stored(key)
    if hit is not None:
        return hit
    kwargs: dict[str, Any] = dict(methods=(request.method,), target=request.target,
                                  options={request.method: request.options})
    if progress is not None:
        kwargs["progress"] = progress
    if preview is not None:
        kwargs["preview"] = preview
    result = explainers.explain(model, request.image, request.region, request.class_index, request.layer,
                                **kwargs)[request.method]
    _keep(key, result)
    return result


# ---------------------------------------------------------------------------------------------
# Slow maps as background jobs (`dashboard.scheduler`): the one dispatcher of this server, fed from
# here with the store above, and the page's calls into it.

Job = scheduler.Job
TYPICAL_SECONDS = scheduler.TYPICAL_SECONDS


def _run_here(key: tuple, model: Any, request: MapRequest, progress: Callable[..., None] | None = None,
              preview: Callable[[str, Any], None] | None = None) -> Any:
    """A job's map in this process, when the worker cannot take it (`key` is `request.key()`)."""
    return slow_map(request, model, progress=progress, preview=preview)


@st.cache_resource(show_spinner=False)
def _dispatcher() -> scheduler.Dispatcher:
    return scheduler.Dispatcher(run_here=_run_here, keep=_keep, stored=stored)


def slow_job(request: MapRequest, model: Any) -> Job:
    """The job computing `request`'s map, under `request.key()` (`scheduler.submit`): stored, running, queued
    or new. The job keeps copies of the image and region."""
    request = dataclasses.replace(request, image=np.array(request.image), region=np.array(request.region),
                                  options=dict(request.options))
    return scheduler.submit(_dispatcher(), request.key(), request, model)


def waits_for_preparation(job: Job) -> bool:
    return scheduler.waits_for_preparation(_dispatcher(), job)


def prepare_worker(model_key: str, image_key: str, image: np.ndarray, method: str, target: str,
                   options: dict[str, Any]) -> None:
    """Let the worker prepare this image for `method` while the user draws (`scheduler.prepare`)."""
    scheduler.prepare(_dispatcher(), model_key, image_key, image, method, target, options)


def keep_layer_inputs() -> None:
    """Run the layers before the explained one once per image in this server (`explainers.layer_split`): a
    stroke, a region-mode switch or a class change then costs the layers after it only (on the shipped
    network 13-16 ms instead of ~30 ms; on a 512² DeepLabV3 at its head, ~0.19 s instead of ~0.29 s)."""
    if layer_split.active() is None:
        layer_split.enable()


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


# ---------------------------------------------------------------------------------------------
# Pictures, tables and files the views draw: kept here so that every cache of the page is in this module.
# What is remembered, for how many entries and under which key is decided here; the view hands over how to
# build the value (`_build`, not part of the key: each function below has one caller, and its key names
# everything the value depends on).


@st.cache_data(show_spinner=False, max_entries=16)
def canvas_background(canvas_id: str, classes: tuple[int, bool], size: tuple[int, int], picked_key: str | None,
                      _build: Callable[[], str]) -> str:
    """The region canvas's picture as a data URL (`region`), encoded once per image, model, size and picked
    component."""
    return _build()


@st.cache_data(show_spinner=False, max_entries=8)
def export_files(content_key: str, settings: dict[str, Any], stem: str, caption: str,
                 _build: Callable[[], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """The export's PNG and zip (`export`), rebuilt only when a map, the arrays (`content_key`) or the settings
    change, not on every rerun."""
    return _build()


@st.cache_data(show_spinner=False, max_entries=8)
def scene_table(model_key: str, seed: int, count: int, _build: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The image browser's table of generated scenes, thumbnails included (`browser`), in ranked order."""
    return _build()


@st.cache_data(show_spinner=False, max_entries=64)
def sweep_pictures(model_key: str, image_key: str, region: str, class_index: int, target: str, method: str,
                   layers: tuple[str, ...], _build: Callable[[], dict[str, bytes | None]]) -> dict[str, bytes | None]:
    """layer → JPEG of `method`'s map for the `layers` of one page of the layer sweep (`sweep_view`), encoded
    once per sweep and page (`region`: the region's digest)."""
    return _build()
