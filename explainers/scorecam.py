"""Score-CAM for a region (Wang et al.): channel weights from masked forward passes instead of gradients.

Why its own module: Score-CAM needs no gradient but one forward pass per channel, so it cannot share the
CAMs' single forward+backward pass. Each pass is cheap and batched through the compiled region-score
function of `xrai.score_function`, and the number of channels is capped.

The formula we use, for class c, a region R and a layer with activations A (h×w×K):
- keep the `channels` channels with the largest spatial mean activation (all of them when K is smaller;
  ties keep the lower channel index);
- H_k = A_k upsampled bilinearly to the image size, then min-max normalised to [0, 1] (a constant channel
  gives H_k = 0, i.e. the baseline);
- s_k = region score of the masked image x ⊙ H_k, and increase_k = s_k − s_b with s_b the score of the
  black image (x ⊙ 0, the paper's baseline);
- weights = softmax over the kept channels of the increases; map = ReLU(Σ_k weight_k · A_k) at the
  layer's resolution, upsampled bilinearly like the other CAMs.
The region score is the mean of the class output over the region's pixels, i.e. the adapter score times
h·w/|R|. That positive factor does not change which channel raises the score most, but it keeps the
softmax's inputs on the scale of one pixel's logit (or probability) whatever the region's size; with
the adapter's average over the whole output a small region would make every weight nearly equal.
Because the softmax ignores a constant shift, s_b does not change the weights; it is returned so the
caller can report how much the best channel raises the score.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from explainers import graph, xrai
from explainers.errors import ExplainerError

DEFAULT_CHANNELS = 64
DEFAULT_BATCH_SIZE = 32
_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ScoreCAMResult:
    """Raw Score-CAM: the layer map, the heatmap at image size, and what was weighted."""

    layer_map: np.ndarray
    heatmap: np.ndarray
    channels: np.ndarray  # indices of the channels used, in order of decreasing mean activation
    weights: np.ndarray  # softmax weights of those channels
    increases: np.ndarray  # region-mean score of x ⊙ H_k minus that of the black image
    baseline_score: float


def check_parameters(channels: int, batch_size: int) -> None:
    """Fail before any work is done when the settings cannot run."""
    ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in (channels, batch_size))
    if not ok:
        raise ExplainerError("Score-CAM needs at least 1 channel and a batch size of at least 1 (integers).")


def _activations_function(model, layer: str, target: str):
    per_model = _FORWARDS.setdefault(model, {})
    key = (layer, target)
    if key not in per_model:
        tapped = graph.tap_model(model, [layer], target)
        image_shape = tuple(tapped.inputs[0].shape[1:])

        @tf.function(input_signature=[tf.TensorSpec([None, *image_shape], tf.float32)])
        def activations(x):
            return tapped(x, training=False)[1]

        per_model[key] = activations
    return per_model[key]


def scorecam_map(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    layer: str,
    target: str = "logits",
    channels: int = DEFAULT_CHANNELS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[float], None] | None = None,
) -> ScoreCAMResult:
    """Raw Score-CAM of the region score; `image` is float H×W×C, `mask` the region at output size."""
    check_parameters(channels, batch_size)
    x = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask, dtype=np.float32)
    acts = _activations_function(model, layer, target)(tf.constant(x[None]))[0].numpy()  # (h, w, K)
    order = np.argsort(-acts.mean(axis=(0, 1)), kind="stable")[: int(channels)]
    kept = acts[..., order]
    upsampled = tf.image.resize(kept[None], x.shape[:2], method="bilinear")[0].numpy()  # (H, W, k)
    low, high = upsampled.min(axis=(0, 1)), upsampled.max(axis=(0, 1))
    span = high - low
    masks = np.where(span > 0, (upsampled - low) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)

    score = xrai.score_function(model, target)
    mask_t, class_t = tf.constant(mask), tf.constant(int(class_index), tf.int32)
    scale = mask.size / max(float(mask.sum()), 1.0)  # adapter score → mean over the region's pixels
    baseline = float(score(tf.zeros((1, *x.shape), tf.float32), mask_t, class_t).numpy()[0]) * scale
    count = masks.shape[-1]
    values = np.empty(count, dtype=np.float64)
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        batch = x[None] * np.moveaxis(masks[..., start:stop], -1, 0)[..., None]
        values[start:stop] = score(tf.constant(batch), mask_t, class_t).numpy() * scale
        if progress is not None:
            progress(stop / count)
    with np.errstate(invalid="ignore", over="ignore"):  # scores of ±inf (overflowing logits) give NaN weights:
        increases = values - baseline  # the API turns the resulting map into zeros with a note
        shifted = np.exp(increases - increases.max())
        weights = shifted / shifted.sum()
    layer_map = np.maximum(np.tensordot(kept.astype(np.float64), weights, axes=([2], [0])), 0.0).astype(np.float32)
    heatmap = tf.image.resize(layer_map[None, ..., None], x.shape[:2], method="bilinear")[0, ..., 0].numpy()
    return ScoreCAMResult(
        layer_map=layer_map,
        heatmap=heatmap,
        channels=order,
        weights=weights,
        increases=increases,
        baseline_score=baseline,
    )
