"""A real-sized model: a DeepLabV3+-style net on a ResNet50 backbone, 21 classes, 512×512 input.

Measures (1) three CAM maps (Grad-CAM, Grad-CAM++, Seg-Grad-CAM) for a new region through
`explainers.explain`, against one compiled forward+backward pass of the same model (the gradient of
a region score with respect to the input image, in a `tf.function` with a fixed signature), both warm,
median of several runs; target ratio ≤ 1.5. (2) resident memory over 100 explain calls with new
regions and classes after warm-up: it must stay flat (growth under 50 MB, while one copy of the
logits alone is 22 MB and of the explained layer 17 MB), i.e. no per-call copies of layer tensors.

The backbone is `keras.applications.ResNet50(weights=None)` used as one nested layer returning its
stride-4 and stride-16 maps; the head is ASPP-lite (1×1 and three dilated 3×3 branches plus image
pooling) and a DeepLabV3+ decoder. Random weights: speed does not depend on them.
Run: `python -m benchmarks.big_model [--quick]` (quick: 256×256, 10 memory calls).
"""

from __future__ import annotations

import gc

import numpy as np

from benchmarks.common import Section, rss_mb, timed

NUM_CLASSES = 21


def build_deeplab_resnet50(size: int = 512, num_classes: int = NUM_CLASSES):
    """DeepLabV3+-style segmentation net around a nested ResNet50 (weights=None)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    resnet = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(size, size, 3))
    backbone = keras.Model(resnet.input, [resnet.get_layer("conv2_block3_out").output,
                                          resnet.get_layer("conv4_block6_out").output], name="resnet50_features")
    inputs = keras.Input((size, size, 3), name="image")
    low, high = backbone(inputs)

    def conv_bn_relu(x, filters, kernel, name, rate=1):
        x = layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    grid = size // 16
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(high)
    pooled = conv_bn_relu(pooled, 128, 1, "aspp_image")
    pooled = layers.UpSampling2D(grid, name="aspp_image_up")(pooled)
    branches = [conv_bn_relu(high, 128, 1, "aspp_1x1")]
    branches += [conv_bn_relu(high, 128, 3, f"aspp_rate{r}", rate=r) for r in (6, 12, 18)]
    x = layers.Concatenate(name="aspp_concat")([*branches, pooled])
    x = conv_bn_relu(x, 128, 1, "aspp_project")
    x = layers.UpSampling2D(4, interpolation="bilinear", name="aspp_up")(x)
    skip = conv_bn_relu(low, 48, 1, "decoder_skip")
    x = layers.Concatenate(name="decoder_concat")([x, skip])
    x = conv_bn_relu(x, 128, 3, "decoder1")
    x = layers.Conv2D(128, 3, padding="same", activation="relu", name="final_conv")(x)
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="softmax")(x), name="deeplabv3plus_resnet50")


def _regions(size: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        top, left = rng.integers(0, size - 64, 2)
        h, w = rng.integers(32, 64, 2)
        region = np.zeros((size, size), bool)
        region[top:top + h, left:left + w] = True
        yield region


def run(quick: bool = False) -> Section:
    import tensorflow as tf

    import explainers

    size = 256 if quick else 512
    calls = 10 if quick else 100
    section = Section(f"Real-sized model: DeepLabV3+ / ResNet50, {NUM_CLASSES} classes, {size}×{size}")
    model = build_deeplab_resnet50(size)
    section.row("parameters", f"{model.count_params() / 1e6:.1f} M")
    layer = explainers.default_layer(model)
    section.row("explained layer (default rule)", f"`{layer}`")
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    cams = ("gradcam", "gradcam++", "vinogradova")

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32),
                                  tf.TensorSpec([None, size, size], tf.float32), tf.TensorSpec([], tf.int32)])
    def forward_backward(x, mask, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)
            probs = model(x, training=False)
            score = tf.reduce_mean(tf.gather(probs, class_index, axis=-1) * mask)
        return tape.gradient(score, x)

    x = tf.constant(image[None], tf.float32)
    regions = _regions(size, 10_000, seed=1)
    first = next(regions)
    mask = tf.constant(first[None], tf.float32)
    repeats = 3 if quick else 5
    base = timed(lambda: forward_backward(x, mask, tf.constant(1, tf.int32)).numpy(), repeats=repeats)
    explainers.explain(model, image, first, 1, layer, methods=cams)  # warm-up: builds the compiled CAM pass
    counter = iter(range(10_000))
    three = timed(lambda: explainers.explain(model, image, next(regions), next(counter) % NUM_CLASSES, layer,
                                             methods=cams), repeats=repeats)
    ratio = three / base
    section.row("one compiled forward+backward pass (median)", f"{base * 1000:.0f} ms")
    section.row("3 CAM maps, new region (median)", f"{three * 1000:.0f} ms")
    section.row("ratio", f"{ratio:.2f}×")
    section.target("3 CAM maps <= 1.5 x one forward+backward pass", ratio <= 1.5)

    gc.collect()
    before = rss_mb()
    trace = []
    for k, region in zip(range(calls), regions, strict=False):
        explainers.explain(model, image, region, k % NUM_CLASSES, layer, methods=cams)
        if k % max(calls // 5, 1) == 0:
            gc.collect()
            trace.append(rss_mb() - before)
    gc.collect()
    growth = rss_mb() - before
    logits_mb = size * size * NUM_CLASSES * 4 / 2**20
    section.row("explain calls (new region and class each)", str(calls))
    section.row("resident memory before", f"{before:.0f} MB")
    section.row("growth during the calls", " → ".join(f"{v:+.0f}" for v in trace) + f" → {growth:+.1f} MB")
    section.row("size of one copy of the logits", f"{logits_mb:.0f} MB")
    section.target(f"memory flat over {calls} calls (growth < 50 MB)", growth < 50)
    return section


if __name__ == "__main__":
    from benchmarks.cli import main

    main(run, __doc__)
