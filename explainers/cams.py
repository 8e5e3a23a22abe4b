"""Gradient class activation maps for a region: the Grad-CAM family through the adapter, and Vinogradova et al.

Why one module: every method here is map = ReLU(Σ_k w_k ⊙ A_k) over a layer's activations A, and only
the weights w (and the score they differentiate) change. So one compiled function runs one forward
pass, takes one gradient per distinct score, and feeds every requested method and layer. Weights are
either one number per channel (B, K) or one per activation element (B, h, w, K); the base class
handles both, so a new method is a subclass with a `channel_weights` method and, if needed, a score.

- Grad-CAM: w_k = spatial mean of ∂s/∂A_k, with s the adapter score (global average of mask × output).
- Grad-CAM++ (Chattopadhay et al., exponential-score closed form), on the same adapter score:
  α = g² / (2g² + Σ_ab A_ab·g³) and w_k = Σ_ij α·ReLU(g), with g = ∂s/∂A and Σ_ab the spatial *sum*.
  For g ≠ 0 this equals 1 / (2 + Σ_ab A_ab·g), which we evaluate instead: no exp, no cube, so huge
  logits cannot overflow. α is 0 where g is 0 or the denominator vanishes.
- Vinogradova et al. (Seg-Grad-CAM): its own score y = Σ over the region of the class output (no
  adapter, no averaging), w_k = spatial mean of ∂y/∂A_k. Its gradient is h·w times the adapter's, so
  after normalisation it must equal Grad-CAM; computing it separately is what lets tests check that.
- HiResCAM (Draelos & Carin): element-wise weights w = g, i.e. map = ReLU(Σ_k g_k ⊙ A_k). Unlike
  Grad-CAM it does not average the gradient over space, so the map follows where the gradient is.
- LayerCAM (Jiang et al.): element-wise weights w = ReLU(g), map = ReLU(Σ_k ReLU(g_k) ⊙ A_k).
- XGradCAM (Fu et al.): w_k = Σ_ij A_ij·g_ij / Σ_ij A_ij (0 where the channel's activations sum to 0).
- Contrastive Grad-CAM (after MinMax-CAM, David et al.): Grad-CAM weights of J = S_c − mean_{n≠c} S_n,
  with S the adapter's region scores of every class: evidence for c that is not also evidence for the
  other classes in the same region. With a single-class head J = S_c.
All of them are linear in the gradient, so (like Grad-CAM) they do not depend on the score's scale.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from explainers.adapter import SegmentationAdapter

ADAPTER_SCORE = "adapter"  # GAP over all output pixels of mask × output, class c (Humer et al.)
REGION_SUM_SCORE = "region_sum"  # Σ over region pixels of the class output (Vinogradova et al.)
CONTRASTIVE_SCORE = "contrastive"  # adapter score of c minus the mean adapter score of the other classes


class CAM:
    """Base: the map from activations and gradients; subclasses define the channel weights."""

    name = "cam"
    score = ADAPTER_SCORE

    def channel_weights(self, activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
        """(B, K) weights per channel, or (B, h, w, K) weights per activation element."""
        raise NotImplementedError

    def layer_map(self, activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
        """(B, h, w, K) activations and gradients → (B, h, w) map, ReLU of the weighted channel sum."""
        weights = self.channel_weights(activations, gradients)
        if weights.shape.rank == 4:
            return tf.nn.relu(tf.reduce_sum(activations * weights, axis=-1))
        return tf.nn.relu(tf.einsum("bhwk,bk->bhw", activations, weights))


class GradCAM(CAM):
    name = "gradcam"

    def channel_weights(self, activations, gradients):
        return tf.reduce_mean(gradients, axis=(1, 2))


class GradCAMPlusPlus(CAM):
    name = "gradcam++"

    def channel_weights(self, activations, gradients):
        spatial_sum = tf.reduce_sum(activations, axis=(1, 2), keepdims=True)
        denominator = 2.0 + spatial_sum * gradients
        alpha = tf.where(
            (gradients != 0) & (denominator != 0), tf.math.divide_no_nan(1.0, denominator), 0.0
        )
        return tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2))


class SegGradCAM(GradCAM):
    """Vinogradova et al.: Grad-CAM weights, but of the region-sum score, not the adapter's."""

    name = "vinogradova"
    score = REGION_SUM_SCORE


class HiResCAM(CAM):
    name = "hirescam"

    def channel_weights(self, activations, gradients):
        return gradients


class LayerCAM(CAM):
    name = "layercam"

    def channel_weights(self, activations, gradients):
        return tf.nn.relu(gradients)


class XGradCAM(CAM):
    name = "xgradcam"

    def channel_weights(self, activations, gradients):
        weighted = tf.reduce_sum(activations * gradients, axis=(1, 2))
        return tf.math.divide_no_nan(weighted, tf.reduce_sum(activations, axis=(1, 2)))


class ContrastiveGradCAM(GradCAM):
    """Grad-CAM weights of the contrastive score S_c − mean of the other classes' adapter scores."""

    name = "contrastive-gradcam"
    score = CONTRASTIVE_SCORE


CAM_METHODS: dict[str, CAM] = {
    m.name: m
    for m in (GradCAM(), GradCAMPlusPlus(), SegGradCAM(), HiResCAM(), LayerCAM(), XGradCAM(), ContrastiveGradCAM())
}

_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def contrastive_scores(scores: tf.Tensor, class_index: tf.Tensor) -> tf.Tensor:
    """(B, C) adapter scores → (B,) S_c − mean_{n≠c} S_n (just S_c when there is one class)."""
    own = tf.gather(scores, class_index, axis=1)
    others = scores.shape[-1] - 1
    if not others:
        return own
    return own - (tf.reduce_sum(scores, axis=1) - own) / float(others)


def _build(model, layers: tuple[str, ...], target: str, methods: tuple[str, ...]):
    adapter = SegmentationAdapter(model, layers, target, return_map=True)
    image_shape = tuple(adapter.model.inputs[0].shape[1:])
    cams = [CAM_METHODS[name] for name in methods]
    scores_needed = sorted({cam.score for cam in cams})

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *image_shape], tf.float32),
            tf.TensorSpec([None, *adapter.output_size], tf.float32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def run(image, mask, class_index):
        with tf.GradientTape(persistent=len(scores_needed) > 1) as tape:
            scores, scores_map, *activations = adapter(image, mask)
            targets = {}
            if ADAPTER_SCORE in scores_needed:
                targets[ADAPTER_SCORE] = tf.reduce_sum(tf.gather(scores, class_index, axis=1))
            if REGION_SUM_SCORE in scores_needed:
                class_map = tf.gather(scores_map, class_index, axis=-1)
                targets[REGION_SUM_SCORE] = tf.reduce_sum(class_map * mask)
            if CONTRASTIVE_SCORE in scores_needed:
                targets[CONTRASTIVE_SCORE] = tf.reduce_sum(contrastive_scores(scores, class_index))
        grads = {kind: tape.gradient(score, activations) for kind, score in targets.items()}
        del tape
        size = tf.shape(image)[1:3]
        out = {}
        for i, layer in enumerate(layers):
            acts = activations[i]
            per_layer = {}
            for cam in cams:
                g = grads[cam.score][i]
                g = tf.zeros_like(acts) if g is None else g
                layer_map = cam.layer_map(acts, g)
                heat = tf.image.resize(layer_map[..., None], size, method="bilinear")[..., 0]
                per_layer[cam.name] = {"layer_map": layer_map, "heatmap": heat}
            out[layer] = per_layer
        return out

    return run


def cam_function(model, layers: Sequence[str], target: str, methods: Sequence[str]):
    """The compiled CAM function for this model, layer set, target and methods (built once, then reused)."""
    key = (tuple(layers), target, tuple(sorted(methods)))
    per_model = _FUNCTIONS.setdefault(model, {})
    if key not in per_model:
        per_model[key] = _build(model, key[0], target, key[2])
    return per_model[key]


def compute(
    model,
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    layers: Sequence[str],
    methods: Sequence[str],
    target: str = "logits",
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Raw (unnormalised) maps: layer → method → (layer map h_l×w_l, heatmap at image size).

    `image` is one float image H×W×C in the model's input range, `mask` the region at output resolution.
    """
    fn = cam_function(model, layers, target, methods)
    out = fn(
        tf.constant(image[None], tf.float32), tf.constant(mask[None], tf.float32), tf.constant(class_index, tf.int32)
    )
    return {
        layer: {name: (v["layer_map"].numpy()[0], v["heatmap"].numpy()[0]) for name, v in per.items()}
        for layer, per in out.items()
    }
