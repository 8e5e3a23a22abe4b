"""The three CAM methods together vs each computed the straightforward way, and vs the floor.

Baseline: a fresh eager `GradientTape` pass per method (keras.io style). Floor: one bare compiled
forward+backward pass of the model (gradient of the region score with respect to the input).
Run: `python -m benchmarks.cam_speed [--quick]`.
"""

from __future__ import annotations

import tensorflow as tf

from benchmarks import reference
from benchmarks.common import Section, default_setup, timed

CAMS = ("gradcam", "gradcam++", "vinogradova")


def bare_pass(model):
    """Compiled forward+backward of the whole model: the practical floor for any gradient method."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *model.input_shape[1:]], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def step(x, mask, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(x, training=False)
            score = tf.reduce_mean(tf.gather(out, class_index, axis=-1) * mask)
        return tape.gradient(score, x)

    return step


def run(quick: bool = False) -> Section:
    import explainers

    section = Section("Grad-CAM + Grad-CAM++ + Vinogradova together vs separately")
    model, image, _, region, class_index = default_setup()
    layer = explainers.default_layer(model)
    repeats = 3 if quick else 15
    grad_model = reference.tap(model, layer)

    def separately():
        for method in (reference.gradcam, reference.gradcam_pp, reference.vinogradova):
            method(grad_model, image, region, class_index)

    def together():
        explainers.explain(model, image, region, class_index, layer, methods=CAMS)

    step = bare_pass(model)
    x = tf.constant(image[None].astype("float32"))
    mask = tf.constant(region.astype("float32"))
    c = tf.constant(class_index, tf.int32)

    t_sep = timed(separately, repeats)
    t_tog = timed(together, repeats)
    t_bare = timed(lambda: step(x, mask, c).numpy(), repeats)
    section.row("layer", layer)
    section.row("separately (3 eager tapes)", f"{t_sep * 1000:.1f} ms")
    section.row("together (explainers.explain)", f"{t_tog * 1000:.1f} ms")
    section.row("bare compiled forward+backward", f"{t_bare * 1000:.1f} ms")
    section.row("speed-up together vs separately", f"{t_sep / t_tog:.1f}x")
    section.row("together / bare pass", f"{t_tog / t_bare:.2f}x")
    section.target(">= 3x faster than separately", t_sep / t_tog >= 3)
    section.target("<= 1.5x one bare forward+backward pass", t_tog / t_bare <= 1.5)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
