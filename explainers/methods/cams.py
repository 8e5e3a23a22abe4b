"""Gradient class activation maps for a region: the Grad-CAM family, all in one compiled pass.

Why one module: every method here is map = ReLU(Σ_k w_k ⊙ A_k) over a layer's activations A, and only
the weights w (and the score they differentiate, a `scores.Score`) change. So one compiled function
runs one forward pass, takes one gradient per distinct score, and feeds every requested method and
layer. Weights are either one number per channel (B, K) or one per activation element (B, h, w, K);
the base class handles both, so a new method is a `CAM` subclass with a `channel_weights` method
(e.g. `segxrescam.SegXResCAM`, in its own file) and a registry entry.

- Grad-CAM: w_k = spatial mean of ∂s/∂A_k, with s the adapter score (global average of mask × output).
- Grad-CAM++ (Chattopadhay et al., exponential-score closed form): α = g² / (2g² + Σ_ab A_ab·g³) and
  w_k = Σ_ij α·ReLU(g), with g = ∂s/∂A and Σ_ab the spatial *sum*. For g ≠ 0 this equals
  1 / (2 + Σ_ab A_ab·g), which we evaluate instead: no exp, no cube, so huge logits cannot overflow.
  α is 0 where g is 0 or the denominator vanishes.
- Vinogradova et al. (Seg-Grad-CAM): the region-sum score y = Σ over the region of the class output,
  w_k = spatial mean of ∂y/∂A_k. Its gradient is h·w times the adapter's, so after normalisation it
  must equal Grad-CAM; computing it separately is what lets tests check that.
- HiResCAM (Draelos & Carin): element-wise weights w = g, i.e. map = ReLU(Σ_k g_k ⊙ A_k).
- LayerCAM (Jiang et al.): element-wise weights w = ReLU(g), map = ReLU(Σ_k ReLU(g_k) ⊙ A_k).
- XGradCAM (Fu et al.): w_k = Σ_ij A_ij·g_ij / Σ_ij A_ij (0 where the channel's activations sum to 0).
- Contrastive Grad-CAM (after MinMax-CAM, David et al.): Grad-CAM weights of the contrastive score.

Scale: every method above except Grad-CAM++ is linear in the gradient, so multiplying the score by a
constant multiplies the map by it and normalisation cancels it. Grad-CAM++ is not: its α depends on
Σ A·g, so the adapter mean and the region sum (h·w times larger) give different maps. Our default is
the adapter mean; `GradCAMPlusPlusOptions(score="region_sum")` runs it on the region sum instead
(pytorch-grad-cam's segmentation target), and `api.score_choice` measures how much that changes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from explainers import arrays, layer_split, scores
from explainers import options as opts
from explainers.adapter import SegmentationAdapter, pooled
from explainers.caching import PerModel


@dataclasses.dataclass(frozen=True)
class CAM:
    """Base: the map from activations and gradients of `score`; subclasses define the weights.

    The formulas take channels-last arrays of any engine (TensorFlow tensors in the Keras engine's
    compiled pass, NumPy arrays from the PyTorch engine) and use `arrays.namespace` for their operations.
    """

    name: str = "cam"
    score: scores.Score = scores.ADAPTER

    def channel_weights(self, activations, gradients):
        """(B, K) weights per channel, or (B, h, w, K) weights per activation element."""
        raise NotImplementedError

    def layer_map(self, activations, gradients):
        """(B, h, w, K) activations and gradients → (B, h, w) map, ReLU of the weighted channel sum."""
        xp = arrays.namespace(activations)
        weights = self.channel_weights(activations, gradients)
        if xp.rank(weights) == 4:
            return xp.relu(xp.sum(activations * weights, axis=-1))
        return xp.relu(xp.einsum("bhwk,bk->bhw", activations, weights))


@dataclasses.dataclass(frozen=True)
class GradCAM(CAM):
    name: str = "gradcam"

    def channel_weights(self, activations, gradients):
        return arrays.namespace(gradients).mean(gradients, axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class GradCAMPlusPlus(CAM):
    name: str = "gradcam++"

    def channel_weights(self, activations, gradients):
        xp = arrays.namespace(gradients)
        spatial_sum = xp.sum(activations, axis=(1, 2), keepdims=True)
        denominator = 2.0 + spatial_sum * gradients
        alpha = xp.where((gradients != 0) & (denominator != 0), xp.divide_no_nan(1.0, denominator), 0.0)
        return xp.sum(alpha * xp.relu(gradients), axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class SegGradCAM(GradCAM):
    """Vinogradova et al.: Grad-CAM weights, but of the region-sum score, not the adapter's."""

    name: str = "vinogradova"
    score: scores.Score = scores.REGION_SUM


@dataclasses.dataclass(frozen=True)
class HiResCAM(CAM):
    name: str = "hirescam"

    def channel_weights(self, activations, gradients):
        return gradients


@dataclasses.dataclass(frozen=True)
class LayerCAM(CAM):
    name: str = "layercam"

    def channel_weights(self, activations, gradients):
        return arrays.namespace(gradients).relu(gradients)


@dataclasses.dataclass(frozen=True)
class XGradCAM(CAM):
    name: str = "xgradcam"

    def channel_weights(self, activations, gradients):
        xp = arrays.namespace(gradients)
        weighted = xp.sum(activations * gradients, axis=(1, 2))
        return xp.divide_no_nan(weighted, xp.sum(activations, axis=(1, 2)))


@dataclasses.dataclass(frozen=True)
class ContrastiveGradCAM(GradCAM):
    """Grad-CAM weights of the contrastive score S_c − mean of the other classes' adapter scores."""

    name: str = "contrastive-gradcam"
    score: scores.Score = scores.CONTRASTIVE


# ------------------------------------------------------------------------------------- options


@dataclasses.dataclass(frozen=True)
class GradCAMPlusPlusOptions:
    """`score`: "adapter" (default: the adapter's mean, our contract) or "region_sum" (h·w times it)."""

    score: str = opts.option("adapter", "Grad-CAM++ score", "'adapter': the adapter's mean over the output grid "
                             "(our contract); 'region_sum': h·w times it.", kind="choice",
                             choices=("adapter", "region_sum"), page=False)

    def __post_init__(self) -> None:
        opts.choice(self.score, "score", "Grad-CAM++", ("adapter", "region_sum"))


def plain(cls: type[CAM]):
    """The registry's factory of a CAM without options."""
    return lambda _options: cls()


def gradcampp(options: GradCAMPlusPlusOptions) -> CAM:
    return GradCAMPlusPlus(score=scores.SCORES[options.score])


def describe(cam: CAM, label: str, layer: str, layer_shape: tuple[int, int], target: str,
             uses_score: bool = True) -> str:
    """The sentence every CAM's Explanation carries: what, of which score (if the method reads one), where."""
    of = f" of {cam.score.phrase.format(target=target)}," if uses_score else ","
    return (f"{label}{of} at layer {layer!r} "
            f"({layer_shape[0]}×{layer_shape[1]}), upsampled bilinearly to the image size.")


# ------------------------------------------------------------------------------ the shared pass

_FUNCTIONS = PerModel()


def _build(model, layers: tuple[str, ...], target: str, cams: tuple[CAM, ...]):
    adapter = SegmentationAdapter(model, layers, target, return_map=True)
    image_shape = tuple(adapter.model.inputs[0].shape[1:])

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *image_shape], tf.float32),
            tf.TensorSpec([None, *adapter.output_size], tf.float32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def run(image, mask, class_index):
        def forward():
            region_scores, scores_map, *activations = adapter(image, mask)
            return region_scores, scores_map, activations

        return _maps(forward, layers, cams, mask, class_index, tf.shape(image)[1:3])

    return run


def _build_tail(model, layer: str, target: str, cams: tuple[CAM, ...]):
    """The pass from `layer_split.kept_inputs` (the layer's activations and the side inputs after it) for
    one layer: the same maps as `_build`'s without the layers before `layer`."""
    cut = layer_split.split(model, layer, target)
    output_size = tuple(cut.tail.outputs[0].shape[1:3])

    @tf.function(
        input_signature=[
            cut.specs(),
            tf.TensorSpec([None, *output_size], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([2], tf.int32),
        ]
    )
    def run(kept, mask, class_index, size):
        def forward():
            scores_map = cut.tail(list(kept), training=False)
            return pooled(scores_map, mask), scores_map, [kept[0]]

        return _maps(forward, (layer,), cams, mask, class_index, size, watch=kept[0])

    return run


def _maps(forward, layers: tuple[str, ...], cams: tuple[CAM, ...], mask, class_index, size, watch=None) -> dict:
    """The shared pass: `forward()` → (region scores, scores map, activations per layer) under a tape, one
    gradient per distinct score, then every CAM's layer map and its heatmap at `size`."""
    needed = {cam.score.name: cam.score for cam in cams}
    with tf.GradientTape(persistent=len(needed) > 1) as tape:
        if watch is not None:
            tape.watch(watch)
        region_scores, scores_map, activations = forward()
        targets = {name: tf.reduce_sum(score(region_scores, scores_map, mask, class_index))
                   for name, score in needed.items()}
    grads = {name: tape.gradient(value, activations) for name, value in targets.items()}
    del tape
    out = {}
    for i, layer in enumerate(layers):
        acts = activations[i]
        per_layer = {}
        for index, cam in enumerate(cams):
            g = grads[cam.score.name][i]
            g = tf.zeros_like(acts) if g is None else g
            layer_map = cam.layer_map(acts, g)
            heat = tf.image.resize(layer_map[..., None], size, method="bilinear")[..., 0]
            per_layer[str(index)] = {"layer_map": layer_map, "heatmap": heat}
        out[layer] = per_layer
    return out


def _objects(cams: Sequence[CAM | str]) -> tuple[CAM, ...]:
    """CAM objects (names of the option-free ones in `CLASSIC` allowed), without repeats, in a fixed order."""
    objects = {CLASSIC[c]() if isinstance(c, str) else c for c in cams}
    return tuple(sorted(objects, key=repr))


def cam_function(model, layers: Sequence[str], target: str, cams: Sequence[CAM | str]):
    """The compiled CAM function for this model, layer set, target and CAMs (built once, then reused)."""
    key = (tuple(layers), target, _objects(cams))
    return _FUNCTIONS.get(model, key, lambda: _build(model, key[0], target, key[2]))


def tail_function(model, layer: str, target: str, cams: Sequence[CAM | str]):
    """The compiled pass after `layer` (see `_build_tail`) for this model, target and CAMs, built once."""
    key = ("tail", layer, target, _objects(cams))
    return _FUNCTIONS.get(model, key, lambda: _build_tail(model, layer, target, key[3]))


def compute(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    layers: Sequence[str],
    cams: Sequence[CAM | str],
    target: str = "logits",
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Raw (unnormalised) maps: layer → method name → (layer map h_l×w_l, heatmap at image size).

    `image` is one float image H×W×C in the model's input range, `mask` the region at output resolution;
    `cams` are CAM objects (or the names of the option-free ones in `CLASSIC`).
    """
    cams = _objects(cams)
    mask_t, class_t = tf.constant(mask[None], tf.float32), tf.constant(class_index, tf.int32)
    kept = layer_split.kept_inputs(model, layers, target, image)
    if kept is not None:  # the layers before `layer` ran once for this image (`layer_split`): the rest runs here
        fn = tail_function(model, layers[0], target, cams)
        out = fn(kept, mask_t, class_t, tf.constant(image.shape[:2], tf.int32))
    else:
        out = cam_function(model, layers, target, cams)(tf.constant(image[None], tf.float32), mask_t, class_t)
    return {
        layer: {cams[int(i)].name: (v["layer_map"].numpy()[0], v["heatmap"].numpy()[0]) for i, v in per.items()}
        for layer, per in out.items()
    }


CLASSIC: dict[str, type[CAM]] = {
    cls().name: cls for cls in (GradCAM, GradCAMPlusPlus, SegGradCAM, HiResCAM, LayerCAM, XGradCAM, ContrastiveGradCAM)
}
