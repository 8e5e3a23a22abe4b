"""The straightforward ways of computing each map, as library examples do them: the baselines.

Each function builds its own eager `tf.GradientTape` pass, as the keras.io Grad-CAM example and
PAIR's saliency notebooks do. They are deliberately independent of `explainers` so that the
benchmarks compare our path with what a user would otherwise write.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow import keras


def tap(model: keras.Model, layer: str) -> keras.Model:
    """A model returning (layer activations, per-pixel logits), keras.io style."""
    return keras.Model(model.inputs, [model.get_layer(layer).output, model.get_layer("logits").output])


def _pass(grad_model, image, region, class_index, reduce):
    x = tf.convert_to_tensor(image[None].astype("float32"))
    mask = tf.convert_to_tensor(region[None].astype("float32"))
    with tf.GradientTape() as tape:
        acts, logits = grad_model(x, training=False)
        score = reduce(logits[..., class_index] * mask)
    return acts[0].numpy(), tape.gradient(score, acts)[0].numpy()


def gradcam(grad_model, image, region, class_index) -> np.ndarray:
    acts, grads = _pass(grad_model, image, region, class_index, tf.reduce_mean)
    return np.maximum((acts * grads.mean(axis=(0, 1))).sum(-1), 0)


def gradcam_pp(grad_model, image, region, class_index) -> np.ndarray:
    acts, grads = _pass(grad_model, image, region, class_index, tf.reduce_mean)
    g2, g3 = grads**2, grads**3
    denom = 2 * g2 + acts.sum(axis=(0, 1)) * g3
    alpha = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1), 0)
    weights = (alpha * np.maximum(grads, 0)).sum(axis=(0, 1))
    return np.maximum((acts * weights).sum(-1), 0)


def vinogradova(grad_model, image, region, class_index) -> np.ndarray:
    acts, grads = _pass(grad_model, image, region, class_index, tf.reduce_sum)
    return np.maximum((acts * grads.mean(axis=(0, 1))).sum(-1), 0)


def xrai_call_model_function(model: keras.Model):
    """An eager call-model function for `saliency.core`, one tape per call, as PAIR's examples."""
    import saliency.core as saliency

    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)

    def call(x_batch, call_model_args=None, expected_keys=None):
        region, class_index = call_model_args["region"], call_model_args["class_index"]
        x = tf.convert_to_tensor(np.asarray(x_batch, dtype="float32"))
        mask = tf.convert_to_tensor(region[None].astype("float32"))
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_mean(logits_model(x, training=False)[..., class_index] * mask, axis=(1, 2))
        return {saliency.INPUT_OUTPUT_GRADIENTS: tape.gradient(score, x).numpy()}

    return call
