"""XRAI for a region, through the segmentation adapter, with PAIR's `saliency.core.XRAI`.

Why this shape: XRAI = Integrated Gradients (two baselines × `steps` gradient evaluations) ranked over
Felzenszwalb regions. Almost all the time is in those gradients and in the segmentation, so the
gradient of the adapter's region score is one compiled, batched function
(`scores.input_gradient_function`: fixed input signature, no retracing for new regions, classes or
batch sizes), and the segments, which depend only on the image, are computed once per image and handed
back to the library with `segments=`. The batch size defaults to what the memory budget allows
(`memory.choose_batch`), at most 50.

`call_model_function` (the `saliency.core` call-model function over that gradient) is shared with the
input-gradient methods in `methods_input`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable

import numpy as np
import saliency.core as saliency
import tensorflow as tf
from saliency.core.xrai import _get_segments_felzenszwalb

from explainers import memory, scores
from explainers import options as opts
from explainers.caching import LRU
from explainers.results import NON_FINITE_GRADIENTS, MapWarning, RawMap

ALGORITHMS = ("full", "fast")
DEFAULT_STEPS = 100
DEFAULT_BATCH_SIZE = 50
_SEGMENTS = LRU(16)  # shared by every dashboard session's thread


@dataclasses.dataclass(frozen=True)
class XRAIOptions:
    """`steps` IG points per baseline (≥ 2), `algorithm` "full" or "fast", `batch_size` (None: from memory)."""

    steps: int = DEFAULT_STEPS
    algorithm: str = "full"
    batch_size: int | None = None

    def __post_init__(self) -> None:
        opts.set_field(self, "steps", opts.whole(self.steps, "steps", 2, "XRAI"))
        opts.choice(self.algorithm, "algorithm", "XRAI", ALGORITHMS)
        opts.set_field(self, "batch_size", opts.batch(self.batch_size, "batch_size", "XRAI"))


def call_model_function(model, target: str = "logits", progress: Callable[[], None] | None = None):
    """A `saliency.core` call-model function; `call_model_args` holds `mask` (output size) and `class_index`.

    Non-finite gradients (a model whose logits overflow float32) are set to 0 before PAIR's code sees
    them, since its XRAI region selection fails on NaN gains; `call.nonfinite` counts how many were.
    """
    gradients = scores.input_gradient_function(model, target)

    def call(x_batch, call_model_args=None, expected_keys=None):
        args = call_model_args or {}
        grads = gradients(
            tf.constant(np.asarray(x_batch, dtype=np.float32)),
            tf.constant(np.asarray(args["mask"], dtype=np.float32)),
            tf.constant(int(args["class_index"]), tf.int32),
        ).numpy()
        bad = ~np.isfinite(grads)
        if bad.any():
            call.nonfinite += int(bad.sum())
            grads = np.where(bad, np.float32(0.0), grads)
        if progress is not None:
            progress()
        return {saliency.INPUT_OUTPUT_GRADIENTS: grads}

    call.nonfinite = 0
    return call


def segments(image: np.ndarray) -> list[np.ndarray]:
    """The library's Felzenszwalb segments for this image, cached by its bytes (they depend on nothing else)."""
    image = np.ascontiguousarray(image)
    key = hashlib.sha1(image.tobytes() + str((image.shape, image.dtype.str)).encode()).hexdigest()
    return _SEGMENTS.get_or_compute(key, lambda: _get_segments_felzenszwalb(image.astype(np.float32)))


def xrai_map(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    target: str = "logits",
    steps: int = DEFAULT_STEPS,
    algorithm: str = "full",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[float], None] | None = None,
    notes: list[MapWarning] | None = None,
) -> np.ndarray:
    """Raw XRAI attribution (H×W) of the adapter's region score; `mask` is at the model's output size.

    Settings are assumed valid (`XRAIOptions` checks them). When the model's gradients were not
    finite, a warning saying so is appended to `notes` (if given).
    """
    x = np.asarray(image, dtype=np.float32)
    if float(np.ptp(x)) == 0.0:
        # Both baselines equal the image (zero IG) and Felzenszwalb's min-max scaling would divide by 0.
        if progress is not None:
            progress(1.0)
        return np.zeros(x.shape[:2], dtype=np.float32)
    total = 2 * math.ceil(steps / batch_size) + 1  # two baselines' IG batches, then segments + selection
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0] / total, 1.0))

    call = call_model_function(model, target, tick)
    params = saliency.XRAIParameters(steps=steps, algorithm=algorithm)
    result = saliency.XRAI().GetMask(
        x,
        call,
        {"mask": mask, "class_index": class_index},
        segments=segments(image),
        batch_size=batch_size,
        extra_parameters=params,
    )
    if call.nonfinite and notes is not None:
        notes.append(nonfinite_warning(call.nonfinite))
    if progress is not None:
        progress(1.0)
    return np.asarray(result, dtype=np.float32)


def nonfinite_warning(count: int) -> MapWarning:
    return MapWarning(NON_FINITE_GRADIENTS,
                      f"{count} non-finite input gradient value(s) (e.g. overflowing logits) were set to 0.")


def run(model, inputs, layer: str | None, options: XRAIOptions, progress=None) -> RawMap:
    """The registry's entry point: XRAI of the adapter score for validated `inputs`."""
    options, warnings = memory.resolve(model, inputs, options, "XRAI", DEFAULT_BATCH_SIZE)
    raw = xrai_map(model, inputs.image, inputs.grid, inputs.class_index, inputs.target, options.steps,
                   options.algorithm, options.batch_size, progress, notes=warnings)
    text = (
        f"XRAI attributes to input pixels (layer-free): Integrated Gradients of the adapter's region "
        f"score (class {inputs.target}; {options.steps} steps; baselines filled with the image's min and max), "
        f"ranked over Felzenszwalb regions ('{options.algorithm}'), rescaled to [0, 1]."
    )
    return RawMap(heatmap=raw, layer_map=None, options=options, description=text, warnings=warnings)


def status(options: XRAIOptions) -> str:
    return f"XRAI: {options.steps} steps × 2 baselines…"
