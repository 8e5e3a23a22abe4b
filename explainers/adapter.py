"""The segmentation adapter of Humer et al.: a segmentation network seen as a classifier of one region.

Why: classification attribution methods need one score per class. Multiplying the per-pixel output
by a binary region mask and global-average-pooling it gives exactly that, and stays differentiable,
so Grad-CAM, Grad-CAM++ and XRAI apply unchanged. The pooling is over all h×w positions of the
output (masked-out pixels count as zeros), not a mean over the region: that fixed 1/(h·w) factor is
what makes Grad-CAM through the adapter equal Vinogradova et al.'s region sum after normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from explainers import graph


class SegmentationAdapter:
    """Keras model (image batch, region mask batch at output resolution) → per-class region scores.

    `model` outputs `[scores (B, C), *([scores_map (B, h, w, C)] if return_map), *activations]`, all from
    one forward pass; `target` picks the per-pixel logits (default) or probabilities.
    """

    def __init__(
        self,
        model: keras.Model,
        layers: Sequence[str] = (),
        target: str = "logits",
        return_map: bool = False,
    ) -> None:
        tapped = graph.tap_model(model, list(layers), target)
        scores_map, *activations = tapped.outputs
        self.layers = tuple(layers)
        self.target = target
        self.return_map = return_map
        self.output_size = tuple(scores_map.shape[1:3])
        self.num_classes = int(scores_map.shape[-1])
        mask = keras.Input(shape=self.output_size, name="region_mask")
        scores = pooled(scores_map, mask)
        outputs = [scores, *([scores_map] if return_map else []), *activations]
        self.model = keras.Model([tapped.inputs[0], mask], outputs, name="segmentation_adapter")

    def __call__(self, image, mask) -> list:
        """Run the adapter in inference mode; returns the output list described in the class docstring."""
        image = tf.convert_to_tensor(image, tf.float32)
        mask = tf.convert_to_tensor(mask, tf.float32)
        outputs = self.model([image, mask], training=False)
        return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def pooled(scores_map, mask):
    """(B, h, w, C) per-pixel scores and (B, h, w) region masks → (B, C) region scores: the mean over all h×w
    positions of mask × scores (Keras ops: on a Keras graph's tensors or TensorFlow tensors alike)."""
    return keras.ops.mean(scores_map * keras.ops.expand_dims(mask, -1), axis=(1, 2))
