"""The Keras engine: today's compiled TensorFlow path behind `engine.Engine`.

Nothing here is new maths: it hands the calls to the modules that compile them once per model and
target with a fixed input signature (`graph` for layers, `cams.compute` for the shared CAM pass,
`scores` for batched region scores and input gradients) and converts NumPy arrays at the boundary.
A `KerasEngine` is a thin, stateless wrapper made per call (`engine.of`); everything compiled is
cached by the model (`caching.PerModel`), so wrapping again costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from explainers import graph, scores
from explainers.caching import PerModel
from explainers.methods import cams

_PREDICTORS = PerModel()
_FORWARDS = PerModel()


class KerasEngine:
    framework = "keras"
    keeps_forward_passes = True

    def __init__(self, model) -> None:
        self.model = model

    def summary(self) -> graph.ModelSummary:
        return graph.inspect_model(self.model)

    def layers(self) -> list[graph.LayerInfo]:
        return graph.explainable_layers(self.model)

    def stages(self) -> list[graph.Stage]:
        return graph.layer_stages(self.model)

    def default_layer(self) -> str:
        return graph.default_layer(self.model)

    def check_layer(self, name: str) -> str:
        return graph.check_layer(self.model, name)

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """From the graph; for dynamic models inferred from the output spec (or one probe call)."""
        flat = graph.flatten(self.model)
        h, w = tuple(flat.logits.shape[1:3])
        if h is None or w is None:
            probe = keras.Model(flat.input, flat.logits)
            spec = probe.compute_output_spec(
                keras.KerasTensor((1, *image_size, int(flat.input.shape[-1])), dtype="float32")
            )
            h, w = spec.shape[1:3]
            if h is None or w is None:
                h, w = probe(np.zeros((1, *image_size, int(flat.input.shape[-1])), np.float32)).shape[1:3]
        return int(h), int(w)

    def _predictor(self):
        model = self.model

        def build():
            flat = graph.flatten(model)
            net = keras.Model(flat.input, [flat.logits, flat.probabilities])

            @tf.function(input_signature=[tf.TensorSpec([None, *flat.input.shape[1:]], tf.float32)])
            def run(x):
                return net(x, training=False)

            return run

        return _PREDICTORS.get(model, "predict", build)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, probs = self._predictor()(tf.constant(np.asarray(x, np.float32)))
        return logits.numpy(), probs.numpy()

    def cam_maps(self, image, mask, class_index, layers: Sequence[str], cams_: Sequence, target: str):
        return cams.compute(self.model, image, mask, class_index, layers, cams_, target)

    def region_scores(self, target: str):
        fn = scores.region_score_function(self.model, target)
        return lambda x, mask, class_index: fn(
            tf.constant(np.asarray(x, np.float32)), tf.constant(np.asarray(mask, np.float32)),
            tf.constant(int(class_index), tf.int32)).numpy()

    def input_gradients(self, target: str):
        fn = scores.input_gradient_function(self.model, target)
        return lambda x, mask, class_index: fn(
            tf.constant(np.asarray(x, np.float32)), tf.constant(np.asarray(mask, np.float32)),
            tf.constant(int(class_index), tf.int32)).numpy()

    def activations(self, layer: str, target: str):
        fn = activations_function(self.model, layer, target)
        return lambda x: fn(tf.constant(np.asarray(x, np.float32))).numpy()

    def activation_bytes(self, image_size: tuple[int, int]) -> int:
        """4 bytes per float of the input and of every activation of one image: about what a taped
        forward pass keeps for its backward pass (measured 13 MB against 12.8 MB on the shipped model)."""
        flat = graph.flatten(self.model)
        h, w = image_size

        def elements(shape) -> int:
            dims = list(shape[1:])
            if len(dims) == 3:
                dims[0] = h if dims[0] is None else dims[0]
                dims[1] = w if dims[1] is None else dims[1]
            return math.prod(int(d) for d in dims if d is not None)

        floats = elements(flat.input.shape) + sum(elements(t.shape) for t in flat.taps.values())
        floats += elements(flat.logits.shape)
        return int(4 * floats)


def activations_function(model, layer: str, target: str):
    """Compiled x batch → (B, h, w, K) activations of `layer` (Score-CAM's forward), built once per model."""

    def build():
        tapped = graph.tap_model(model, [layer], target)
        image_shape = tuple(tapped.inputs[0].shape[1:])

        @tf.function(input_signature=[tf.TensorSpec([None, *image_shape], tf.float32)])
        def run(x):
            return tapped(x, training=False)[1]

        return run

    return _FORWARDS.get(model, (layer, target), build)
