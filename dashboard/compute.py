"""Cached calls into `models` and `explainers`: the only place the page asks for numbers.

Nothing here computes anything itself; it decides what is remembered between reruns:

- models: `st.cache_resource` (one object shared by all sessions), an uploaded model keyed by the
  SHA-256 of its file;
- arrays and maps: `st.cache_data`, keyed by the model key, the image digest, the region's digest,
  the class, the layer, the methods and the target. Models, images and region masks are passed as
  hash-excluded `_arguments` next to the key that identifies them, so Streamlit never hashes a Keras
  model, and never hashes a large array either (it hashes arrays of 500,000 elements or more from a
  random sample of their elements, so two regions a few pixels apart could share a cache entry).
- XRAI: a small store of its own (see `xrai`), because it reports progress to the page while it runs,
  and Streamlit replays the page elements touched inside an `st.cache_data` function on later hits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

import explainers
import models
from explainers import regions
from explainers.caching import LRU
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


@st.cache_data(show_spinner=False, max_entries=64)
def score_choice(model_key: str, image_key: str, region_key: str, class_index: int, layer: str, target: str,
                 _image: np.ndarray, _region: np.ndarray, _model: Any) -> float:
    """Rank correlation of Grad-CAM++ on the adapter mean and on the region sum (how much the score matters)."""
    return float(explainers.score_choice(_model, _image, _region, class_index, layer, target=target)["rank_correlation"])


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
) -> Any:
    """One slow method's Explanation (`options`: a dict of its options fields), once per `key`."""
    hit = stored(key)
    if hit is not None:
        return hit
    kwargs: dict[str, Any] = dict(methods=(method,), target=target, options={method: options})
    if progress is not None:
        kwargs["progress"] = progress
    result = explainers.explain(model, image, region, class_index, layer, **kwargs)[method]
    _keep(key, result)
    return result


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
