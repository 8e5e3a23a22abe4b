"""The default network: a small PSPNet with a VGG-style backbone, named like the paper's use case.

Layer names (block1_conv1 ... block4_conv3, psp_level1..4, concat, aggregation, final_conv, logits,
softmax) are the contract the explainers and the dashboard's layer picker rely on. Only standard,
serialisable Keras layers are used (no Lambda), so the model round-trips through Keras safe mode.
Widths are kept small so one compiled forward+backward pass stays interactive on a laptop CPU.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

INPUT_SIZE = 144
NUM_CLASSES = 6
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "pspnet_mushrooms.weights.h5"

_BINS = (1, 2, 3, 6)  # pyramid pooling grid sizes of psp_level1..psp_level4
_BLOCK_DEPTHS = (2, 2, 3, 3)  # VGG-style: convs per block; pooling after blocks 1-3 → stride 8


def _conv(x, filters: int, kernel: int, name: str, activation: str | None = "relu"):
    return layers.Conv2D(filters, kernel, padding="same", activation=activation,
                         kernel_initializer="he_normal", name=name)(x)


def build_pspnet(
    input_size: int = INPUT_SIZE,
    num_classes: int = NUM_CLASSES,
    widths: tuple[int, int, int, int] = (16, 32, 64, 128),
    psp_channels: int = 32,
    aggregation_channels: int = 64,
    head_channels: int = 32,
    skip_channels: int = 16,
) -> keras.Model:
    """Build the (untrained) network: float image in [0, 255] → per-pixel class probabilities.

    A light skip from block2 (stride 2) joins the upsampled aggregation before `final_conv`, because
    thin parts such as the ring get lost when stride-8 features are upsampled alone.
    """
    if input_size % (8 * 6) != 0:
        raise ValueError(f"input_size must be a multiple of 48 (stride 8 × 6 pyramid bins), got {input_size}.")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    skip = None
    for block, (depth, width) in enumerate(zip(_BLOCK_DEPTHS, widths, strict=True), start=1):
        for i in range(1, depth + 1):
            x = _conv(x, width, 3, f"block{block}_conv{i}")
        if block == 2:
            skip = x
        if block < 4:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)

    grid = input_size // 8
    levels = []
    for k, bins in enumerate(_BINS, start=1):
        step = grid // bins
        p = layers.AveragePooling2D(step, name=f"psp_level{k}_pool")(x)
        p = _conv(p, psp_channels, 1, f"psp_level{k}_conv")
        levels.append(layers.UpSampling2D(step, interpolation="bilinear", name=f"psp_level{k}")(p))
    x = layers.Concatenate(name="concat")([x, *levels])
    x = _conv(x, aggregation_channels, 3, "aggregation")
    x = layers.UpSampling2D(4, interpolation="bilinear", name="aggregation_up")(x)
    s = _conv(skip, skip_channels, 1, "skip_conv")
    x = layers.Concatenate(name="head_concat")([x, s])
    x = _conv(x, head_channels, 3, "final_conv")
    x = _conv(x, num_classes, 1, "classifier", activation=None)
    logits = layers.UpSampling2D(2, interpolation="bilinear", name="logits")(x)
    probs = layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(inputs, probs, name="pspnet_mushrooms")
