"""The library's front door: validate inputs, run the methods, return normalised maps with notes.

Why here: the dashboard, the benchmarks and users' scripts all call the same few functions, so every
check (and every error message telling the user what to change) lives in one place, and the maths
modules (`cams`, `scorecam`, `xrai`, `methods_input`) can assume clean inputs: one image at the model's
input size, a non-empty region already resized to the model's output grid, a valid class, layer and
target.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from explainers import cams, graph, methods_input, regions, scorecam, xrai
from explainers.errors import ExplainerError

METHODS = ("gradcam", "gradcam++", "xrai", "vinogradova")  # the default view
CAM_METHODS = ("gradcam", "gradcam++", "vinogradova", "hirescam", "layercam", "xgradcam", "contrastive-gradcam")
INPUT_METHODS = methods_input.INPUT_METHODS
LAYER_FREE_METHODS = ("xrai", *INPUT_METHODS)
ALL_METHODS = (*METHODS, "hirescam", "layercam", "xgradcam", "contrastive-gradcam", "scorecam", *INPUT_METHODS)
METHOD_LABELS = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "xrai": "XRAI",
    "vinogradova": "Seg-Grad-CAM (Vinogradova et al.)",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "xgradcam": "XGrad-CAM",
    "contrastive-gradcam": "Contrastive Grad-CAM (after MinMax-CAM)",
    "scorecam": "Score-CAM",
    "integrated-gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "guided-ig": "Guided Integrated Gradients",
    "blur-ig": "Blur Integrated Gradients",
}
TARGETS = ("logits", "probabilities")


@dataclass
class Explanation:
    """One attribution map: `heatmap` is H×W float32 in [0, 1] at image size (max 1 unless all zero).

    `layer_map` is the CAM at the layer's own resolution before upsampling (None for the layer-free
    methods: XRAI and the input-gradient methods);
    `seconds` is the wall time of the pass that produced it (CAMs of one call share one pass).
    """

    method: str
    heatmap: np.ndarray
    layer_map: np.ndarray | None
    seconds: float
    layer: str | None
    note: str


@dataclass(frozen=True)
class Prediction:
    """Per-pixel logits and probabilities (H×W×C) and labels (H×W), at the image's resolution."""

    logits: np.ndarray
    probs: np.ndarray
    labels: np.ndarray


# ----------------------------------------------------------------------------------- validation


def _summary(model) -> graph.ModelSummary:
    return graph.inspect_model(model)


def _as_image(model, image, summary: graph.ModelSummary) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2 and summary.channels == 1:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] != summary.channels:
        raise ExplainerError(
            f"The image has shape {arr.shape} but the model expects {summary.channels} channel(s): "
            "pass an H×W×3 uint8 RGB image, or convert it with explainers.fit_image(model, image)."
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ExplainerError(f"The image has dtype {arr.dtype}: pass a uint8 image with values 0-255.")
    h, w = summary.input_size
    if (h is not None and arr.shape[0] != h) or (w is not None and arr.shape[1] != w):
        raise ExplainerError(
            f"The image is {arr.shape[0]}×{arr.shape[1]} but the model takes {h}×{w}: "
            "resize it first with explainers.fit_image(model, image)."
        )
    if not np.all(np.isfinite(arr)):
        raise ExplainerError("The image contains NaN or infinite values: pass a uint8 image with values 0-255.")
    return arr


def _as_region(region, image_shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(region)
    if arr.shape != tuple(image_shape):
        raise ExplainerError(
            f"The region has shape {arr.shape} but the image is {image_shape[0]}×{image_shape[1]}: "
            "draw the region on this image (a boolean mask of the image's height × width)."
        )
    arr = arr.astype(bool)
    if not arr.any():
        raise ExplainerError("The region is empty: draw over at least one pixel of the predicted mask.")
    return arr


def _check_class(class_index, num_classes: int) -> int:
    if isinstance(class_index, bool) or not isinstance(class_index, int | np.integer):
        raise ExplainerError(f"The class index {class_index!r} is not an integer: pass 0 to {num_classes - 1}.")
    if not 0 <= int(class_index) < num_classes:
        raise ExplainerError(
            f"Class index {class_index} is out of range: this model has {num_classes} classes, "
            f"so pass 0 to {num_classes - 1}."
        )
    return int(class_index)


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ExplainerError(f"Unknown target {target!r}: use 'logits' (default) or 'probabilities'.")
    return target


def _check_methods(methods: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in allowed]
    if unknown or not methods:
        raise ExplainerError(
            f"Unknown or missing method(s) {unknown or list(methods)}: choose from {', '.join(allowed)}."
        )
    return methods


_OUTPUT_SIZES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _output_size(model, image_size: tuple[int, int]) -> tuple[int, int]:
    """The output grid for an image of this size (static models: from the graph; dynamic: inferred once)."""
    per_model = _OUTPUT_SIZES.setdefault(model, {})
    if image_size not in per_model:
        flat = graph.flatten(model)
        h, w = tuple(flat.logits.shape[1:3])
        if h is None or w is None:
            probe = keras.Model(flat.input, flat.logits)
            spec = probe.compute_output_spec(
                keras.KerasTensor((1, *image_size, int(flat.input.shape[-1])), dtype="float32")
            )
            h, w = spec.shape[1:3]
            if h is None or w is None:
                probe_out = probe(np.zeros((1, *image_size, int(flat.input.shape[-1])), np.float32))
                h, w = probe_out.shape[1:3]
        per_model[image_size] = (int(h), int(w))
    return per_model[image_size]


def _region_to_grid(region: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Nearest-neighbour resize of the region to the output grid (no-op when sizes agree)."""
    (big_h, big_w), (h, w) = region.shape, size
    if (h, w) == (big_h, big_w):
        return region, ""
    grid = regions.resample_nearest(region, (h, w))
    note = f"The region was resized to the model's {h}×{w} output grid (nearest neighbour)."
    if not grid.any():  # a thin region can fall between sample points: keep every cell it touches
        grid = np.zeros((h, w), dtype=bool)
        r, c = np.nonzero(region)
        grid[r * h // big_h, c * w // big_w] = True
        note = f"The region was resized to the model's {h}×{w} output grid (every cell it touches)."
    return grid, note


# ------------------------------------------------------------------------------- normalisation


def _finite(raw: np.ndarray) -> tuple[np.ndarray, str]:
    raw = np.asarray(raw, dtype=np.float32)
    if np.all(np.isfinite(raw)):
        return raw, ""
    return np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0), "Non-finite values were set to 0."


def _normalise_cam(raw: np.ndarray, layer: str) -> tuple[np.ndarray, str]:
    heat, note = _finite(raw)
    heat = np.maximum(heat, 0.0)
    peak = float(heat.max()) if heat.size else 0.0
    if peak > 0:
        return (heat / peak).astype(np.float32), note
    zero = (
        f"all-zero map: nothing at layer {layer!r} raises the region score for this class "
        "(the ReLU removed all evidence); try another layer or class, or the 'logits' target."
    )
    return np.zeros_like(heat, dtype=np.float32), " ".join(filter(None, [zero, note]))


def _normalise_input(raw: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    heat, note = _finite(methods_input.to_heatmap(raw))
    peak = float(heat.max()) if heat.size else 0.0
    if peak > 0:
        return (heat / peak).astype(np.float32), note
    zero = f"all-zero map: {label} found no input pixel that changes the region score (e.g. zero gradients)."
    return np.zeros(heat.shape, dtype=np.float32), " ".join(filter(None, [zero, note]))


def _normalise_xrai(raw: np.ndarray) -> tuple[np.ndarray, str]:
    heat, note = _finite(raw)
    low, high = float(heat.min()), float(heat.max())
    if high > low:
        return ((heat - low) / (high - low)).astype(np.float32), note
    zero = "all-zero map: XRAI found no difference between regions (e.g. a constant image or zero gradients)."
    return np.zeros_like(heat, dtype=np.float32), " ".join(filter(None, [zero, note]))


# ------------------------------------------------------------------------------------ public API


def fit_image(model, image) -> np.ndarray:
    """Any H×W, H×W×1, ×3 or ×4 image → uint8 with the model's channels, resized to its input size.

    Floats in [0, 1] are scaled to [0, 255]; alpha is dropped; grey is repeated to RGB (or RGB turned
    to grey for 1-channel models). Models with a dynamic input size keep the image's size.
    """
    summary = _summary(model)
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


_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _predictor(model):
    if model not in _PREDICTORS:
        flat = graph.flatten(model)
        net = keras.Model(flat.input, [flat.logits, flat.probabilities])

        @tf.function(input_signature=[tf.TensorSpec([None, *flat.input.shape[1:]], tf.float32)])
        def run(x):
            return net(x, training=False)

        _PREDICTORS[model] = run
    return _PREDICTORS[model]


def predict(model, image) -> Prediction:
    """The model's segmentation of one image; outputs at another resolution are resized (nearest)."""
    summary = _summary(model)
    arr = _as_image(model, image, summary)
    logits, probs = _predictor(model)(tf.constant(arr[None], tf.float32))
    logits, probs = logits[0].numpy(), probs[0].numpy()
    if logits.shape[:2] != arr.shape[:2]:
        logits = regions.resample_nearest(logits, arr.shape[:2])
        probs = regions.resample_nearest(probs, arr.shape[:2])
    return Prediction(logits=logits, probs=probs, labels=probs.argmax(-1).astype(np.int64))


def _prepare(model, image, region, class_index, target):
    summary = _summary(model)
    arr = _as_image(model, image, summary)
    region = _as_region(region, arr.shape[:2])
    class_index = _check_class(class_index, summary.num_classes)
    _check_target(target)
    grid, grid_note = _region_to_grid(region, _output_size(model, arr.shape[:2]))
    return arr.astype(np.float32), grid, class_index, grid_note


def _score_text(method: str, target: str) -> str:
    if method == "vinogradova":
        return f"the class {target} summed over the region"
    if method == "contrastive-gradcam":
        return (
            f"the contrastive score: the adapter's region score of the class minus the mean of the other "
            f"classes' region scores ({target})"
        )
    return f"the adapter's region score (mean over the output of mask × class {target})"


def _cam_explanations(raw, layer, seconds, target, grid_note) -> dict[str, Explanation]:
    out = {}
    for method, (layer_map, heat) in raw.items():
        heatmap, note = _normalise_cam(heat, layer)
        score = _score_text(method, target)
        text = (
            f"{METHOD_LABELS[method]} of {score}, at layer {layer!r} "
            f"({layer_map.shape[0]}×{layer_map.shape[1]}), upsampled bilinearly to the image size."
        )
        out[method] = Explanation(
            method=method,
            heatmap=heatmap,
            layer_map=_finite(layer_map)[0],
            seconds=seconds,
            layer=layer,
            note=" ".join(filter(None, [text, grid_note, note])),
        )
    return out


def explain(
    model,
    image,
    region,
    class_index: int,
    layer: str | None,
    methods: Sequence[str] = METHODS,
    target: str = "logits",
    xrai_steps: int = 100,
    xrai_algorithm: str = "full",
    xrai_batch_size: int = 50,
    progress: Callable[[float], None] | None = None,
    scorecam_channels: int = scorecam.DEFAULT_CHANNELS,
    scorecam_batch_size: int = scorecam.DEFAULT_BATCH_SIZE,
    input_steps: int = methods_input.DEFAULT_STEPS,
    input_batch_size: int = methods_input.DEFAULT_BATCH_SIZE,
    smoothgrad_samples: int = methods_input.DEFAULT_SAMPLES,
    smoothgrad_noise: float = methods_input.DEFAULT_NOISE,
    seed: int = 0,
) -> dict[str, Explanation]:
    """Attribution maps of `methods` (any of `ALL_METHODS`) for `region` (bool H×W) and `class_index`.

    `image` must be uint8 H×W×C at the model's input size (see `fit_image`). `layer` may be None when
    only layer-free methods (XRAI, the input-gradient methods) are asked for; for CAMs None means
    `default_layer(model)`. The gradient CAMs share one compiled forward+backward pass. Score-CAM uses at
    most `scorecam_channels` channels (largest mean activation), `scorecam_batch_size` masked images per
    forward pass. Integrated Gradients, Guided IG and Blur IG use `input_steps` path points (batches of
    `input_batch_size`); SmoothGrad averages `smoothgrad_samples` gradients with noise
    `smoothgrad_noise` × the image's value range, drawn from `seed`. `progress` receives the progress of
    the slow methods (XRAI, Score-CAM, input-gradient methods) in [0, 1], one after the other.
    """
    methods = _check_methods(methods, ALL_METHODS)
    if "xrai" in methods:
        xrai.check_parameters(xrai_steps, xrai_algorithm, xrai_batch_size)
    if "scorecam" in methods:
        scorecam.check_parameters(scorecam_channels, scorecam_batch_size)
    if any(m in INPUT_METHODS for m in methods):
        methods_input.check_parameters(input_steps, input_batch_size, smoothgrad_samples, smoothgrad_noise)
    arr, grid, class_index, grid_note = _prepare(model, image, region, class_index, target)
    results: dict[str, Explanation] = {}
    slow = [m for m in methods if m == "scorecam" or m in LAYER_FREE_METHODS]

    def part(method: str) -> Callable[[float], None] | None:
        """Progress of one slow method mapped onto its share of the whole call."""
        if progress is None:
            return None
        index, count = slow.index(method), len(slow)
        return lambda fraction: progress(min((index + fraction) / count, 1.0))

    cam_methods = tuple(m for m in methods if m in CAM_METHODS)
    if cam_methods or "scorecam" in methods:
        layer = graph.default_layer(model) if layer is None else graph.check_layer(model, layer)
    if cam_methods:
        start = time.perf_counter()
        raw = cams.compute(model, arr, grid, class_index, [layer], cam_methods, target)[layer]
        seconds = time.perf_counter() - start
        results.update(_cam_explanations(raw, layer, seconds, target, grid_note))
    if "xrai" in methods:
        start = time.perf_counter()
        gradient_notes: list[str] = []
        raw = xrai.xrai_map(
            model, arr, grid, class_index, target, xrai_steps, xrai_algorithm, xrai_batch_size,
            part("xrai"), notes=gradient_notes,
        )
        heatmap, note = _normalise_xrai(raw)
        note = " ".join([*gradient_notes, note]).strip()
        text = (
            f"XRAI attributes to input pixels (layer-free): Integrated Gradients of the adapter's region "
            f"score (class {target}; {xrai_steps} steps; baselines filled with the image's min and max), "
            f"ranked over Felzenszwalb regions ('{xrai_algorithm}'), rescaled to [0, 1]."
        )
        results["xrai"] = Explanation(
            method="xrai",
            heatmap=heatmap,
            layer_map=None,
            seconds=time.perf_counter() - start,
            layer=None,
            note=" ".join(filter(None, [text, grid_note, note])),
        )
    if "scorecam" in methods:
        start = time.perf_counter()
        result = scorecam.scorecam_map(
            model, arr, grid, class_index, layer, target, scorecam_channels, scorecam_batch_size, part("scorecam")
        )
        heatmap, note = _normalise_cam(result.heatmap, layer)
        used = len(result.channels)
        text = (
            f"Score-CAM at layer {layer!r} ({result.layer_map.shape[0]}×{result.layer_map.shape[1]}): "
            f"{used} channel(s) with the largest mean activation, each (upsampled, min-max scaled) multiplying "
            f"the image; weights = softmax over channels of the increase of the class {target} averaged over "
            f"the region, versus the black image (best channel: +{float(result.increases.max()):.3g}); "
            "upsampled bilinearly to the image size."
        )
        results["scorecam"] = Explanation(
            method="scorecam",
            heatmap=heatmap,
            layer_map=_finite(result.layer_map)[0],
            seconds=time.perf_counter() - start,
            layer=layer,
            note=" ".join(filter(None, [text, grid_note, note])),
        )
    for method in (m for m in methods if m in INPUT_METHODS):
        start = time.perf_counter()
        raw = methods_input.attribution(
            model, arr, grid, class_index, method, target, input_steps, input_batch_size, smoothgrad_samples,
            smoothgrad_noise, seed, part(method),
        )
        heatmap, note = _normalise_input(raw, METHOD_LABELS[method])
        results[method] = Explanation(
            method=method,
            heatmap=heatmap,
            layer_map=None,
            seconds=time.perf_counter() - start,
            layer=None,
            note=" ".join(filter(None, [_input_text(method, target, input_steps, smoothgrad_samples,
                                                    smoothgrad_noise), grid_note, note])),
        )
    return {m: results[m] for m in methods}


def _input_text(method: str, target: str, steps: int, samples: int, noise: float) -> str:
    how = {
        "integrated-gradients": f"{steps} steps on the straight path from a black image",
        "smoothgrad": f"mean gradient over {samples} noisy copies, noise {noise:g} × the value range",
        "guided-ig": f"{steps} steps on the guided path from a black image",
        "blur-ig": f"{steps} steps on the path from a blurred (σ={methods_input.BLUR_MAX_SIGMA:g}) image",
    }[method]
    return (
        f"{METHOD_LABELS[method]} attributes to input pixels (layer-free) of the adapter's region score "
        f"(class {target}; {how}); |attribution| summed over colour channels, divided by its maximum."
    )


def layer_sweep(
    model,
    image,
    region,
    class_index: int,
    layers: Sequence[str] | None = None,
    methods: Sequence[str] = ("gradcam", "gradcam++"),
    target: str = "logits",
) -> dict[str, dict[str, Explanation]]:
    """CAMs at many layers (default: every explainable layer) from ONE forward+backward pass.

    Returns layer → method → Explanation; `seconds` of each is the time of the whole sweep.
    """
    methods = _check_methods(methods, CAM_METHODS)
    arr, grid, class_index, grid_note = _prepare(model, image, region, class_index, target)
    if layers is None:
        layers = [info.name for info in graph.explainable_layers(model)]
    if isinstance(layers, str):
        layers = [layers]
    layers = [graph.check_layer(model, name) for name in dict.fromkeys(layers)]
    if not layers:
        raise ExplainerError("No layers to sweep: pass at least one convolution layer name.")
    start = time.perf_counter()
    raw = cams.compute(model, arr, grid, class_index, layers, methods, target)
    seconds = time.perf_counter() - start
    return {name: _cam_explanations(raw[name], name, seconds, target, grid_note) for name in layers}


def class_overview(
    model,
    image,
    method: str = "gradcam",
    layer: str | None = None,
    target: str = "logits",
    **options,
) -> dict[int, Explanation]:
    """`method`'s map for every class the model predicts in `image`, each with its whole predicted area as region.

    Returns class index → Explanation, in class order; classes with no predicted pixel are left out.
    `options` are passed to `explain` (e.g. `xrai_steps`, `scorecam_channels`).
    """
    if not isinstance(method, str):
        raise ExplainerError(f"Pass one method name (a string), one of: {', '.join(ALL_METHODS)}.")
    (method,) = _check_methods((method,), ALL_METHODS)
    labels = predict(model, image).labels
    out: dict[int, Explanation] = {}
    for class_index in (int(c) for c in np.unique(labels)):
        region = labels == class_index
        explanation = explain(model, image, region, class_index, layer, methods=(method,), target=target, **options)
        explanation = explanation[method]
        explanation.note = f"Region: every pixel predicted as class {class_index}. {explanation.note}"
        out[class_index] = explanation
    return out
