"""The library's front door: check inputs once, run the registry's methods, return normalised maps.

Why here: the dashboard, the batch CLI, the benchmarks and users' scripts all call `explain`, so the
checks (`inputs.prepare`, the options objects of `registry`) run once, in one place, and the maths
modules (`cams`, `scorecam`, `xrai`, `methods_input`, `segxrescam`, `rise`) can assume clean inputs.
There is no per-method branch here: a method's family says how it runs (the CAMs share one compiled
pass), its registry record how it is normalised and described.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from explainers import engine, forward_cache, inputs, metrics, regions, registry, working_size
from explainers.caching import array_digest
from explainers.errors import ExplainerError, framework_errors
from explainers.methods import cams, xrai
from explainers.results import ALL_ZERO, NON_FINITE, Explanation, MapWarning, Prediction, RawMap
from explainers.working_size import set_working_size

DEFAULT_METHODS = registry.DEFAULT_METHODS  # the default view (the four the page starts with)
METHOD_LABELS = registry.METHOD_LABELS  # name → label, updated in place by `registry.register`
# The registry's derived name lists, read when asked for (`__getattr__`): a copy taken at import time would miss
# the methods `registry.register` adds later.
_LIVE = ("ALL_METHODS", "CAM_METHODS", "LAYER_FREE_METHODS")
TARGETS = inputs.TARGETS
__all__ = ["Explanation", "MapWarning", "Prediction", "class_overview", "explain", "fit_image", "layer_sweep",
           "predict", "prepare_image", "score_choice", "set_working_size"]


def __getattr__(name: str) -> Any:
    """`api.ALL_METHODS`, `api.CAM_METHODS`, `api.LAYER_FREE_METHODS`: the registry's lists as they are now."""
    if name in _LIVE:
        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------- normalisation


def _finite(raw: np.ndarray) -> tuple[np.ndarray, list[MapWarning]]:
    raw = np.asarray(raw, dtype=np.float32)
    if np.all(np.isfinite(raw)):
        return raw, []
    return (np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0),
            [MapWarning(NON_FINITE, "Non-finite values were set to 0.")])


def _zero_message(method: registry.Method, layer: str | None) -> str:
    """Why a map is all zero, in the words of what the method reads (its score, or none)."""
    if method.score is None:
        where = "" if method.layer_free else f" at layer {layer!r}"
        return f"all-zero map: {method.short_label} found nothing positive{where}; try another layer or class."
    if not method.layer_free:
        return (f"all-zero map: nothing at layer {layer!r} raises the region score for this class "
                "(the ReLU removed all evidence); try another layer or class, or the 'logits' target.")
    return (f"all-zero map: {method.short_label} found no input pixel that changes the region score "
            "(e.g. a constant image or zero gradients).")


def _normalise(method: registry.Method, raw: np.ndarray, layer: str | None) -> tuple[np.ndarray, list[MapWarning]]:
    """Map to [0, 1] by the method's rule; an all-zero map gets the ALL_ZERO warning."""
    heat, warnings = _finite(raw)
    if method.normalise == "minmax":
        low, high = (float(heat.min()), float(heat.max())) if heat.size else (0.0, 0.0)
        heat, peak = heat - low, high - low
    else:
        heat = np.maximum(heat, 0.0)
        peak = float(heat.max()) if heat.size else 0.0
    if peak > 0:
        return (heat / peak).astype(np.float32), warnings
    return np.zeros(heat.shape, np.float32), [MapWarning(ALL_ZERO, _zero_message(method, layer)), *warnings]


def _explanation(method: registry.Method, raw: RawMap, layer: str | None, seconds: float,
                 checked: inputs.Inputs) -> Explanation:
    """The normalised map, on the image as the user gave it (a free-size model's working size undone)."""
    heatmap, warnings = _normalise(method, checked.to_image(raw.heatmap), layer)
    grid_warning = checked.grid_warning
    layer_map = None if raw.layer_map is None else _finite(raw.layer_map)[0]
    return Explanation(method=method.name, heatmap=heatmap, layer_map=layer_map, seconds=seconds,
                       layer=None if method.layer_free else layer, options=raw.options, description=raw.description,
                       warnings=tuple(w for w in (grid_warning, *raw.warnings, *warnings) if w is not None),
                       preview=raw.preview)


# ------------------------------------------------------------------------------------ public API


def fit_image(model, image) -> np.ndarray:
    """Any H×W, H×W×1, ×3 or ×4 image → uint8 with the model's channels, resized to its input size.

    Floats in [0, 1] are scaled to [0, 255]; alpha is dropped; grey is repeated to RGB (or RGB turned
    to grey for 1-channel models). Models with a dynamic input size keep the image's size: `predict` and
    `explain` run them at their working size (`set_working_size`) and give maps at the image's size.
    """
    summary = inputs.summary(model)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise ExplainerError(
            f"The image has shape {np.asarray(image).shape}: pass an H×W grey, H×W×3 RGB or H×W×4 RGBA image."
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ExplainerError(f"The image has dtype {arr.dtype}: pass a uint8 image with values 0-255.")
    work = np.nan_to_num(arr.astype(np.float32))
    if np.issubdtype(arr.dtype, np.floating) and work.max(initial=0.0) <= 1.0:
        work = work * 255.0
    if work.shape[-1] == 4:
        work = work[..., :3]
    if summary.channels == 1 and work.shape[-1] == 3:
        work = work @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
    elif summary.channels >= 3 and work.shape[-1] == 1:
        work = np.repeat(work, 3, axis=-1)
    if summary.channels == 4:
        work = np.concatenate([work, np.full(work.shape[:2] + (1,), 255.0, np.float32)], axis=-1)
    h, w = summary.input_size
    target = (h or work.shape[0], w or work.shape[1])
    if target != work.shape[:2]:
        work = tf.image.resize(work, target, method="bilinear", antialias=True).numpy()
    return np.clip(np.round(work), 0, 255).astype(np.uint8)


def predict(model, image) -> Prediction:
    """The model's segmentation of one image; outputs at another resolution are resized (nearest).

    A free-size model runs at its working size (`working_size`); its output goes back to the image's
    size (nearest; with the fit "crop" the parts outside the crop get zero logits and probabilities)."""
    arr = inputs.image(model, image)
    model_summary = inputs.summary(model)
    plan = working_size.plan(model, arr.shape[:2], model_summary.input_size)
    work = arr.astype(np.float32) if plan is None else plan.to_work(arr.astype(np.float32))
    with framework_errors(work.shape[:2]):
        logits, probs = engine.of(model).predict(work[None])
    logits, probs = logits[0], probs[0]
    if logits.shape[:2] != work.shape[:2]:
        logits = regions.resample_nearest(logits, work.shape[:2])
        probs = regions.resample_nearest(probs, work.shape[:2])
    if plan is not None and not plan.identity:
        logits = plan.to_image(logits, nearest=True)
        probs = plan.to_image(probs, nearest=True)
    return Prediction(logits=logits, probs=probs, labels=probs.argmax(-1).astype(np.int64))


def _cam_maps(model, checked: inputs.Inputs, layers: Sequence[str], names: Sequence[str],
              options: Mapping[str, Any]) -> dict[str, dict[str, Explanation]]:
    """layer → method → Explanation for the CAM-family `names`, all from one compiled pass."""
    objects = {name: registry.get(name).make_cam(options[name]) for name in names}
    start = time.perf_counter()
    raw = engine.of(model).cam_maps(checked.image, checked.grid, checked.class_index, layers,
                                    list(objects.values()), checked.target)
    seconds = time.perf_counter() - start
    out: dict[str, dict[str, Explanation]] = {}
    for layer in layers:
        out[layer] = {}
        for name, cam in objects.items():
            method = registry.get(name)
            layer_map, heat = raw[layer][cam.name]
            text = cams.describe(cam, method.label, layer, layer_map.shape, checked.target,
                                 uses_score=method.score is not None)
            out[layer][name] = _explanation(method, RawMap(heat, layer_map, options[name], text), layer, seconds,
                                            checked)
    return out


_LEGACY = ("xrai_steps", "xrai_algorithm", "xrai_batch_size", "scorecam_channels", "scorecam_batch_size",
           "input_steps", "input_batch_size", "smoothgrad_samples", "smoothgrad_noise", "seed")


def explain(
    model,
    image,
    region,
    class_index: int,
    layer: str | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    target: str = "logits",
    options: Mapping[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
    preview: Callable[[str, Explanation], None] | None = None,
    **unknown: Any,
) -> dict[str, Explanation]:
    """Attribution maps of `methods` (names in `registry.ALL_METHODS`) for `region` (bool H×W) and `class_index`.

    `image` must be uint8 H×W×C at the model's input size (see `fit_image`). `layer` applies to the
    layer methods (None: `default_layer(model)`); layer-free methods ignore it. `options` maps a method
    name to its options object or a dict of its fields, e.g. `{"xrai": {"steps": 20}, "scorecam":
    ScoreCAMOptions(channels=16)}`; methods not in it run with their defaults. The CAM family shares one
    compiled forward+backward pass; `progress` receives the progress of the slow methods in [0, 1],
    one after the other. `preview(method, Explanation)`, if given, receives the early map of a slow
    method that has one (XRAI: PAIR's XRAI at about an eighth of the steps, whose gradients the full
    run reuses) as soon as it is ready; the returned maps are the same with or without it.
    """
    if unknown:
        old = [k for k in unknown if k in _LEGACY]
        raise ExplainerError(
            f"explain() got unknown keyword(s) {', '.join(unknown)}"
            + (": per-method settings now go in options={method: {...}}, e.g. options={'xrai': {'steps': 20}}."
               if old else ".")
        )
    methods = registry.check_methods(methods)
    chosen = registry.options_for(methods, options)
    checked = inputs.prepare(model, image, region, class_index, target)
    with framework_errors(checked.image.shape[:2]):
        return _explain(model, checked, layer, methods, chosen, progress, preview)


def _explain(model, checked: inputs.Inputs, layer: str | None, methods: Sequence[str], chosen: Mapping[str, Any],
             progress: Callable[[float], None] | None,
             preview: Callable[[str, Explanation], None] | None) -> dict[str, Explanation]:
    records = [registry.get(m) for m in methods]
    if any(not m.layer_free for m in records):
        runner = engine.of(model)
        layer = runner.default_layer() if layer is None else runner.check_layer(layer)
    results: dict[str, Explanation] = {}
    cam_names = [m.name for m in records if m.family == registry.CAM]
    if cam_names:
        results.update(_cam_maps(model, checked, [layer], cam_names, chosen)[layer])
    slow = [m for m in records if m.family != registry.CAM]
    for index, method in enumerate(slow):
        part = None
        if progress is not None:
            def part(fraction: float, index: int = index) -> None:
                progress(min((index + fraction) / len(slow), 1.0))
        start = time.perf_counter()
        extra = {}
        if preview is not None and method.previews:
            def early(raw: RawMap, method: registry.Method = method, start: float = start) -> None:
                preview(method.name, _explanation(method, raw, None, time.perf_counter() - start, checked))
            extra["preview"] = early
        raw = method.run(model, checked, None if method.layer_free else layer, chosen[method.name], part, **extra)
        results[method.name] = _explanation(method, raw, layer if not method.layer_free else None,
                                            time.perf_counter() - start, checked)
    return {m: results[m] for m in methods}


def prepare_image(
    model,
    image,
    methods: Sequence[str] = ("xrai",),
    *,
    target: str = "logits",
    options: Mapping[str, Any] | None = None,
    stop: Callable[[], bool] | None = None,
) -> bool:
    """Do, before any region is drawn, the part of `methods`' work that depends on the image alone, so
    the first region costs what later ones do.

    For XRAI: its Felzenszwalb segments and, when `forward_cache` is active in this process, the forward
    passes of its integration points, laid in by one XRAI run that skips every backward pass. `options`
    must be those of the later `explain` calls, since a kept batch is found again by its exact contents
    (a preview or none does not matter: XRAI asks for the same batches either way). An image whose
    passes are all still kept is not laid in again. Other methods need nothing ahead. For a PyTorch
    model (`from_torch`) only the segments are computed: `forward_cache` keeps TensorFlow graphs only.
    `stop()`, checked before each batch, ends the work early (a region is waiting: the batches laid in so
    far stay). Returns whether everything was done.
    """
    methods = registry.check_methods(methods)
    if "xrai" not in methods:
        return True
    stopped = stop if stop is not None else (lambda: False)
    whole = np.ones(np.asarray(image).shape[:2], bool)
    checked = inputs.prepare(model, image, whole, 0, target)
    if stopped():
        return False
    xrai.segments(checked.image)
    kept = forward_cache.active()
    if kept is None or not engine.of(model).keeps_forward_passes or not forward_cache.can_keep(model, target):
        return True
    tag = _preparation_tag(model, checked.image, target, options)
    if kept.holds(tag):
        return True
    laid_in = kept.misses
    try:
        with kept.forward_only(stopped, tag=tag):
            explain(model, image, whole, 0, None, ("xrai",), target=target, options=options)
    except forward_cache.Stopped:
        return False
    if kept.misses > laid_in and not stopped():
        kept.settle()
    return True


def _preparation_tag(model, image: np.ndarray, target: str, options: Mapping[str, Any] | None) -> tuple:
    chosen = registry.options_for(("xrai",), options)["xrai"]
    return id(model), target, array_digest(np.asarray(image)), repr(chosen)


def layer_sweep(
    model,
    image,
    region,
    class_index: int,
    layers: Sequence[str] | None = None,
    methods: Sequence[str] = ("gradcam", "gradcam++"),
    *,
    target: str = "logits",
    options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Explanation]]:
    """CAMs at many layers (default: every explainable layer) from ONE forward+backward pass.

    Returns layer → method → Explanation; `seconds` of each is the time of the whole sweep.
    """
    methods = registry.check_methods(methods, registry.CAM_METHODS)
    chosen = registry.options_for(methods, options)
    checked = inputs.prepare(model, image, region, class_index, target)
    if layers is None:
        layers = [info.name for info in engine.of(model).layers()]
    if isinstance(layers, str):
        layers = [layers]
    layers = [engine.of(model).check_layer(name) for name in dict.fromkeys(layers)]
    if not layers:
        raise ExplainerError("No layers to sweep: pass at least one convolution layer name.")
    with framework_errors(checked.image.shape[:2]):
        return _cam_maps(model, checked, layers, methods, chosen)


def class_overview(
    model,
    image,
    method: str = "gradcam",
    layer: str | None = None,
    *,
    target: str = "logits",
    options: Mapping[str, Any] | None = None,
) -> dict[int, Explanation]:
    """`method`'s map for every class the model predicts in `image`, each with its whole predicted area as region.

    Returns class index → Explanation, in class order; classes with no predicted pixel are left out.
    `options` are `explain`'s (e.g. `{"xrai": {"steps": 20}}`).
    """
    if not isinstance(method, str):
        raise ExplainerError(f"Pass one method name (a string), one of: {', '.join(registry.ALL_METHODS)}.")
    (method,) = registry.check_methods((method,))
    labels = predict(model, image).labels
    out: dict[int, Explanation] = {}
    for index in (int(c) for c in np.unique(labels)):
        region = regions.from_class(labels, index)
        explanation = explain(model, image, region, index, layer, (method,), target=target, options=options)[method]
        out[index] = dataclasses.replace(
            explanation, description=f"Region: every pixel predicted as class {index}. {explanation.description}")
    return out


def score_choice(model, image, region, class_index: int, layer: str | None = None, *,
                 target: str = "logits") -> dict[str, Any]:
    """How much Grad-CAM++ depends on the score it differentiates: adapter mean versus region sum.

    Returns {"adapter": Explanation, "region_sum": Explanation, "rank_correlation": Spearman ρ of the two
    heatmaps, "top10_iou": overlap of their top 10 %}. Linear methods (Grad-CAM, ...) would give ρ = 1.
    """
    runner = engine.of(model)
    layer = runner.default_layer() if layer is None else runner.check_layer(layer)
    maps = {score: explain(model, image, region, class_index, layer, ("gradcam++",), target=target,
                           options={"gradcam++": {"score": score}})["gradcam++"] for score in ("adapter", "region_sum")}
    a, b = maps["adapter"].heatmap, maps["region_sum"].heatmap
    return {**maps, "rank_correlation": metrics.rank_correlation(a, b), "top10_iou": metrics.top_overlap(a, b)}
