"""The scores a method differentiates or perturbs, as small objects, and their compiled batched forms.

A score turns the adapter's outputs into one number per image: `scores` (B, C) are the adapter's
region scores (global average over the output of mask × class output, Humer et al.), `scores_map`
(B, h, w, C) the per-pixel outputs, `mask` (B, h, w) the region at output size.

- `ADAPTER`: s = scores[c], the adapter mean (default for every method).
- `REGION_SUM`: y = Σ over the region of the class output (Vinogradova et al.'s Seg-Grad-CAM); it is
  h·w times the adapter mean.
- `CONTRASTIVE`: J = S_c − mean_{n≠c} S_n (after MinMax-CAM); just S_c for a single-class head.

Methods linear in the gradient (Grad-CAM, HiResCAM, ...) give the same normalised map for ADAPTER and
REGION_SUM, since the factor h·w cancels. Grad-CAM++ does not: see `cams.GradCAMPlusPlus`.

`region_score_function` and `input_gradient_function` are the compiled (x batch, mask, class)
functions of input images behind XRAI, the input-gradient methods, Score-CAM, RISE and the
faithfulness curves: built once per model and target with a fixed input signature, never retraced.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from explainers import arrays
from explainers.adapter import SegmentationAdapter
from explainers.caching import PerModel


@dataclass(frozen=True)
class Score:
    """Base: `name`, a phrase for descriptions, and the (B,) score of a batch."""

    name: str = "score"
    phrase: str = ""

    def __call__(self, scores, scores_map, mask, class_index):
        """Arrays of any engine (`arrays.namespace`): scores (B, C), scores_map (B, h, w, C), mask (B, h, w)."""
        raise NotImplementedError


@dataclass(frozen=True)
class AdapterMean(Score):
    name: str = "adapter"
    phrase: str = "the adapter's region score (mean over the output of mask × class {target})"

    def __call__(self, scores, scores_map, mask, class_index):
        return arrays.namespace(scores).take(scores, class_index, axis=1)


@dataclass(frozen=True)
class RegionSum(Score):
    name: str = "region_sum"
    phrase: str = "the class {target} summed over the region"

    def __call__(self, scores, scores_map, mask, class_index):
        xp = arrays.namespace(scores_map)
        return xp.sum(xp.take(scores_map, class_index, axis=-1) * mask, axis=(1, 2))


def contrastive_scores(scores, class_index):
    """(B, C) adapter scores → (B,) S_c − mean_{n≠c} S_n (just S_c when there is one class)."""
    xp = arrays.namespace(scores)
    own = xp.take(scores, class_index, axis=1)
    others = scores.shape[-1] - 1
    if not others:
        return own
    return own - (xp.sum(scores, axis=1) - own) / float(others)


@dataclass(frozen=True)
class Contrastive(Score):
    name: str = "contrastive"
    phrase: str = ("the contrastive score: the adapter's region score of the class minus the mean of the other "
                   "classes' region scores ({target})")

    def __call__(self, scores, scores_map, mask, class_index):
        return contrastive_scores(scores, class_index)


ADAPTER = AdapterMean()
REGION_SUM = RegionSum()
CONTRASTIVE = Contrastive()
SCORES: dict[str, Score] = {s.name: s for s in (ADAPTER, REGION_SUM, CONTRASTIVE)}

_COMPILED = PerModel()


def _compiled(model, target: str, kind: str, body):
    """One tf.function per (model, target, kind) over (x batch, region mask at output size, class)."""

    def build():
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

        return run

    return _COMPILED.get(model, (target, kind), build)


def _input_gradients(adapter, x, masks, class_index):
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(ADAPTER(adapter(x, masks)[0], None, masks, class_index))
    return tape.gradient(score, x)


def _class_scores(adapter, x, masks, class_index):
    return ADAPTER(adapter(x, masks)[0], None, masks, class_index)


def input_gradient_function(model, target: str = "logits"):
    """Compiled (x batch, region mask at output size, class) → ∂ adapter score / ∂ x, per image."""
    return _compiled(model, target, "gradient", _input_gradients)


def region_score_function(model, target: str = "logits"):
    """Compiled (x batch, region mask at output size, class) → (B,) adapter region scores of that class."""
    return _compiled(model, target, "score", _class_scores)
