"""Score-CAM for a region (Wang et al.): channel weights from masked forward passes instead of gradients.

Why its own module: Score-CAM needs no gradient but one forward pass per channel, so it cannot share the
CAMs' single forward+backward pass. Each pass is cheap and batched through the compiled region-score
function of `scores.region_score_function`, the number of channels is capped, and the batch size
defaults to what the memory budget allows (at most 32).

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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from explainers import engine, memory
from explainers import options as opts
from explainers.keras_engine import activations_function as _activations_function  # noqa: F401 (tests)
from explainers.results import RawMap

DEFAULT_CHANNELS = 64
DEFAULT_BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class ScoreCAMOptions:
    """`channels`: at most this many channels are scored; `batch_size` masked images per pass (None: memory)."""

    channels: int = opts.option(DEFAULT_CHANNELS, "Score-CAM channels", "At most this many channels (largest mean "
                                "activation) are scored: one forward pass each.", low=1, high=1024, step=16)
    batch_size: int | None = opts.option(None, "batch size", "Images per pass; auto: the largest that fits the memory budget.", low=1, page=False, optional=True)

    def __post_init__(self) -> None:
        opts.set_field(self, "channels", opts.whole(self.channels, "channels", 1, "Score-CAM"))
        opts.set_field(self, "batch_size", opts.batch(self.batch_size, "batch_size", "Score-CAM"))


@dataclass(frozen=True)
class ScoreCAMResult:
    """Raw Score-CAM: the layer map, the heatmap at image size, and what was weighted."""

    layer_map: np.ndarray
    heatmap: np.ndarray
    channels: np.ndarray  # indices of the channels used, in order of decreasing mean activation
    weights: np.ndarray  # softmax weights of those channels
    increases: np.ndarray  # region-mean score of x ⊙ H_k minus that of the black image
    baseline_score: float


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
    x = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask, dtype=np.float32)
    runner = engine.of(model)
    acts = runner.activations(layer, target)(x[None])[0]  # (h, w, K)
    order = np.argsort(-acts.mean(axis=(0, 1)), kind="stable")[: int(channels)]
    kept = acts[..., order]
    upsampled = tf.image.resize(kept[None], x.shape[:2], method="bilinear")[0].numpy()  # (H, W, k)
    low, high = upsampled.min(axis=(0, 1)), upsampled.max(axis=(0, 1))
    span = high - low
    masks = np.where(span > 0, (upsampled - low) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)

    score = runner.region_scores(target)
    scale = mask.size / max(float(mask.sum()), 1.0)  # adapter score → mean over the region's pixels
    baseline = float(score(np.zeros((1, *x.shape), np.float32), mask, class_index)[0]) * scale
    count = masks.shape[-1]
    values = np.empty(count, dtype=np.float64)
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        batch = x[None] * np.moveaxis(masks[..., start:stop], -1, 0)[..., None]
        values[start:stop] = score(batch, mask, class_index) * scale
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


def run(model, inputs, layer: str, options: ScoreCAMOptions, progress=None) -> RawMap:
    """The registry's entry point: Score-CAM at `layer` for validated `inputs`."""
    options, warnings = memory.resolve(model, inputs, options, "Score-CAM", DEFAULT_BATCH_SIZE, backward=False)
    result = scorecam_map(model, inputs.image, inputs.grid, inputs.class_index, layer, inputs.target,
                          options.channels, options.batch_size, progress)
    h, w = result.layer_map.shape
    text = (
        f"Score-CAM at layer {layer!r} ({h}×{w}): {len(result.channels)} channel(s) with the largest mean "
        f"activation, each (upsampled, min-max scaled) multiplying the image; weights = softmax over channels "
        f"of the increase of the class {inputs.target} averaged over the region, versus the black image (best "
        f"channel: +{float(result.increases.max()):.3g}); upsampled "
        "bilinearly to the image size."
    )
    return RawMap(heatmap=result.heatmap, layer_map=result.layer_map, options=options, description=text,
                  warnings=warnings)


def status(options: ScoreCAMOptions) -> str:
    return f"Score-CAM: up to {options.channels} channels…"
