"""XRAI for a region, through the segmentation adapter, with PAIR's `saliency.core.XRAI`.

Why this shape: XRAI = Integrated Gradients (two baselines × `steps` gradient evaluations) ranked over
Felzenszwalb regions. Almost all the time is in those gradients and in the segmentation, so the
gradient of the adapter's region score is one compiled, batched function (fixed input signature: no
retracing for new regions, classes or batch sizes), and the segments, which depend only on the image,
are computed once per image and handed back to the library with `segments=`.

This module also owns the two compiled functions of *input images* through the adapter that other
layer-free code reuses: `gradient_function` (the input gradient behind XRAI and the `saliency.core`
methods in `methods_input`) and `score_function` (the batched region score behind Score-CAM and the
faithfulness curves). Both are cached per model and target with a fixed input signature.
"""

from __future__ import annotations

import hashlib
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import saliency.core as saliency
import tensorflow as tf
from saliency.core.xrai import _get_segments_felzenszwalb

from explainers.adapter import SegmentationAdapter
from explainers.errors import ExplainerError

ALGORITHMS = ("full", "fast")
_GRADIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SCORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SEGMENTS: OrderedDict[str, list[np.ndarray]] = OrderedDict()
_SEGMENTS_LOCK = threading.Lock()  # shared by every dashboard session's thread
_SEGMENT_CACHE_SIZE = 16


def _compiled(cache: weakref.WeakKeyDictionary, model, target: str, body):
    """Build once per (model, target) a tf.function over (x batch, region mask at output size, class).

    The fixed input signature (batch dimension None, mask and class as tensors) means new regions,
    classes or batch sizes never retrace. `body(adapter, x, masks, class_index)` is the computation.
    """
    per_model = cache.setdefault(model, {})
    if target not in per_model:
        adapter = SegmentationAdapter(model, (), target)
        image_shape = tuple(adapter.model.inputs[0].shape[1:])

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, *image_shape], tf.float32),
                tf.TensorSpec(list(adapter.output_size), tf.float32),
                tf.TensorSpec([], tf.int32),
            ]
        )
        def run(x, mask, class_index):
            masks = tf.repeat(mask[None], tf.shape(x)[0], axis=0)
            return body(adapter, x, masks, class_index)

        per_model[target] = run
    return per_model[target]


def _input_gradients(adapter, x, masks, class_index):
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = adapter(x, masks)[0]
        score = tf.reduce_sum(tf.gather(scores, class_index, axis=1))
    return tape.gradient(score, x)


def _class_scores(adapter, x, masks, class_index):
    return tf.gather(adapter(x, masks)[0], class_index, axis=1)


def gradient_function(model, target: str = "logits"):
    """Compiled (x batch, region mask at output size, class) → ∂ adapter score / ∂ x, per image."""
    return _compiled(_GRADIENTS, model, target, _input_gradients)


def score_function(model, target: str = "logits"):
    """Compiled (x batch, region mask at output size, class) → (B,) adapter region scores of that class."""
    return _compiled(_SCORES, model, target, _class_scores)


def call_model_function(model, target: str = "logits", progress: Callable[[], None] | None = None):
    """A `saliency.core` call-model function; `call_model_args` holds `mask` (output size) and `class_index`.

    Non-finite gradients (a model whose logits overflow float32) are set to 0 before PAIR's code sees
    them, since its XRAI region selection fails on NaN gains; `call.nonfinite` counts how many were.
    """
    gradients = gradient_function(model, target)

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
    with _SEGMENTS_LOCK:
        if key in _SEGMENTS:
            _SEGMENTS.move_to_end(key)
            return _SEGMENTS[key]
    segs = _get_segments_felzenszwalb(image.astype(np.float32))
    with _SEGMENTS_LOCK:
        _SEGMENTS[key] = segs
        while len(_SEGMENTS) > _SEGMENT_CACHE_SIZE:
            _SEGMENTS.popitem(last=False)
    return segs


def check_parameters(steps: int, algorithm: str, batch_size: int) -> None:
    """Fail before any work is done when XRAI's settings cannot run."""
    if algorithm not in ALGORITHMS:
        raise ExplainerError(f"Unknown XRAI algorithm {algorithm!r}: use 'full' or 'fast'.")
    if not (isinstance(steps, int) and steps >= 2 and isinstance(batch_size, int) and batch_size >= 1):
        raise ExplainerError("Use an integer number of XRAI steps of at least 2 and a batch size of at least 1.")


def xrai_map(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    target: str = "logits",
    steps: int = 100,
    algorithm: str = "full",
    batch_size: int = 50,
    progress: Callable[[float], None] | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Raw XRAI attribution (H×W) of the adapter's region score; `mask` is at the model's output size.

    When the model's gradients were not finite, a sentence saying so is appended to `notes` (if given).
    """
    check_parameters(steps, algorithm, batch_size)
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
    segs = segments(image)
    result = saliency.XRAI().GetMask(
        x,
        call,
        {"mask": mask, "class_index": class_index},
        segments=segs,
        batch_size=batch_size,
        extra_parameters=params,
    )
    if call.nonfinite and notes is not None:
        notes.append(f"{call.nonfinite} non-finite input gradient value(s) (e.g. overflowing logits) were set to 0.")
    if progress is not None:
        progress(1.0)
    return np.asarray(result, dtype=np.float32)
