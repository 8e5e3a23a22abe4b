"""Tiny Keras models for tests: every accepted model shape (and some rejected ones), built in milliseconds.

Seeds are fixed so maps are reproducible; sizes are small because the test machine has 2 shared cores.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def _seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def tiny_seg_model(size: int = 16, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """Functional conv net with a separate softmax layer; layers conv1, conv2, final_conv, logits, softmax."""
    _seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="final_conv")(x)
    logits = layers.Conv2D(num_classes, 1, name="logits")(x)
    probs = layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(inputs, probs, name="tiny_seg")


def linear_conv_model(size: int = 6, seed: int = 0) -> keras.Model:
    """Input → 1×1 linear conv `feat` (2 channels) → 1×1 linear conv `logits` (2 classes): Grad-CAM in closed form."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    feat = layers.Conv2D(2, 1, use_bias=False, name="feat")(inputs)
    logits = layers.Conv2D(2, 1, use_bias=False, name="logits")(feat)
    model = keras.Model(inputs, logits, name="linear_conv")
    model.get_layer("feat").set_weights([np.array([[[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]], dtype="float32")])
    model.get_layer("logits").set_weights([np.array([[[[2.0, 0.0], [-1.0, 1.0]]]], dtype="float32")])
    return model


def small_unet_fused_softmax(size: int = 16, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """Two-level U-Net whose last conv has `activation="softmax"` fused in (no separate logits tensor)."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    d1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="down1")(x)
    p = layers.MaxPooling2D(2)(d1)
    b = layers.Conv2D(16, 3, padding="same", activation="relu", name="bottleneck")(p)
    u = layers.UpSampling2D(2)(b)
    c = layers.Concatenate(name="concat")([u, d1])
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="up1")(c)
    out = layers.Conv2D(num_classes, 1, activation="softmax", name="head")(x)
    return keras.Model(inputs, out, name="unet_fused")


def nested_backbone_model(size: int = 32, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """A `keras.applications.VGG16(weights=None)` backbone used as one layer, then a small decoder."""
    _seed(seed)
    backbone = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3))
    x = backbone(inputs)
    x = layers.Conv2D(8, 1, activation="relu", name="final_conv")(x)
    x = layers.UpSampling2D(size // x.shape[1], interpolation="bilinear")(x)
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    out = layers.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, out, name="nested_vgg")


def classifier_model(size: int = 16, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """An image classifier (output [batch, classes]): must be rejected."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def two_output_model(size: int = 16, seed: int = 0) -> keras.Model:
    """A segmentation net with two outputs: must be rejected."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, [layers.Conv2D(2, 1)(x), layers.Conv2D(3, 1)(x)])


def sequential_seg_model(size: int = 16, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """A Sequential segmentation net ending in a separate Softmax layer."""
    _seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.Rescaling(1.0 / 255.0, name="rescale"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
            layers.Conv2D(num_classes, 1, name="logits"),
            layers.Softmax(name="softmax"),
        ],
        name="seq_seg",
    )


def strided_output_model(size: int = 16, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """Output at half the input resolution (stride-2 head), linear logits output."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="final_conv")(x)
    return keras.Model(inputs, layers.Conv2D(num_classes, 1, name="logits")(x), name="strided")


def dynamic_size_model(num_classes: int = 3, seed: int = 0) -> keras.Model:
    """Fully convolutional with input shape (None, None, 3)."""
    _seed(seed)
    inputs = keras.Input((None, None, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="softmax")(x), name="dynamic")


def no_conv_model(size: int = 8, seed: int = 0) -> keras.Model:
    """Per-pixel Dense layers only: a segmentation-shaped output but no 2-D convolution, so rejected."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, layers.Dense(3, name="dense")(inputs))


def dense_head_model(size: int = 16, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """A conv net with a per-pixel Dense layer (4-D output, not a convolution) before the classifier."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Dense(8, activation="relu", name="dense")(x)
    return keras.Model(inputs, layers.Conv2D(num_classes, 1, name="logits")(x))


def random_image(size: int = 16, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)


def two_patch_image(size: int = 24, seed: int = 4) -> np.ndarray:
    """A noisy red left half and a green square: an image with clear Felzenszwalb segments for XRAI tests."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    img[:, : size // 2] = (200, 40, 40)
    img[size // 3: size * 5 // 6, size * 5 // 12: size * 11 // 12] = (30, 160, 60)
    return np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


def binary_sigmoid_model(size: int = 16, seed: int = 0) -> keras.Model:
    """Binary segmentation: one output channel with a fused sigmoid (foreground probability)."""
    _seed(seed)
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, out, name="binary_sigmoid")


# --------------------------------------------------------------------------- real architectures


def applications_seg_model(backbone: str, size: int = 64, num_classes: int = 5, seed: int = 0) -> keras.Model:
    """A segmentation head around a nested `keras.applications` backbone (weights=None, no top).

    head_conv → head_bn → head_relu → classifier → upsample (bilinear, to the input size) → softmax.
    """
    _seed(seed)
    net = getattr(keras.applications, backbone)(weights=None, include_top=False, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3), name="image")
    x = net(inputs)
    x = layers.Conv2D(16, 1, name="head_conv")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = layers.UpSampling2D(size // x.shape[1], interpolation="bilinear", name="upsample")(x)
    return keras.Model(inputs, layers.Softmax(name="softmax")(x), name=f"{backbone.lower()}_seg")


def _conv_bn_relu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_relu_unet(size: int = 32, num_classes: int = 4, seed: int = 0) -> keras.Model:
    """A three-level U-Net of Conv-BN-ReLU blocks with skip concatenations and a separate softmax."""
    _seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    e1 = _conv_bn_relu(x, 8, "enc1")
    e2 = _conv_bn_relu(layers.MaxPooling2D(2, name="pool1")(e1), 16, "enc2")
    b = _conv_bn_relu(layers.MaxPooling2D(2, name="pool2")(e2), 32, "bottom")
    d2 = layers.Concatenate(name="skip2")([layers.UpSampling2D(2, name="up2")(b), e2])
    d2 = _conv_bn_relu(d2, 16, "dec2")
    d1 = layers.Concatenate(name="skip1")([layers.UpSampling2D(2, name="up1")(d2), e1])
    d1 = _conv_bn_relu(d1, 8, "dec1")
    logits = layers.Conv2D(num_classes, 1, name="logits")(d1)
    return keras.Model(inputs, layers.Softmax(name="softmax")(logits), name="unet_bn")


def coarse_output_model(size: int = 32, num_classes: int = 3, stride: int = 4, seed: int = 0) -> keras.Model:
    """A net whose output grid is 1/`stride` of the input (no upsampling), linear logits."""
    _seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    level = 1
    while level < stride:
        x = _conv_bn_relu(x, 8 * level, f"down{level}")
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
        level *= 2
    x = _conv_bn_relu(x, 16, "features")
    return keras.Model(inputs, layers.Conv2D(num_classes, 1, name="logits")(x), name=f"coarse_{stride}")


def token_seg_model(size: int = 32, patch: int = 4, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """A ViT-like encoder: patch embedding → tokens (batch, h·w, channels) → Dense mixer → back to a grid."""
    _seed(seed)
    grid = size // patch
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Conv2D(16, patch, strides=patch, name="patch_embed")(x)
    tokens = layers.Reshape((grid * grid, 16), name="to_tokens")(x)
    tokens = layers.LayerNormalization(name="token_norm")(tokens)
    tokens = layers.Dense(16, activation="gelu", name="token_mlp")(tokens)
    x = layers.Reshape((grid, grid, 16), name="to_grid")(tokens)
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = layers.UpSampling2D(patch, interpolation="bilinear", name="upsample")(x)
    return keras.Model(inputs, x, name="token_seg")


def free_size_skip_model(num_classes: int = 3, seed: int = 0) -> keras.Model:
    """Free input size, output stride 4, and a decoder that concatenates each upsampled branch with its skip:
    like keras-hub's DeepLabV3, it fails in TensorFlow on sides that are not multiples of 4 (300×451)."""
    _seed(seed)
    inputs = keras.Input((None, None, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    skip1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(x)
    skip2 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="enc2")(skip1)
    deep = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="enc3")(skip2)
    x = layers.Concatenate(name="dec2_concat")([layers.UpSampling2D(2, name="up2")(deep), skip2])
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="dec2")(x)
    x = layers.Concatenate(name="dec1_concat")([layers.UpSampling2D(2, name="up1")(x), skip1])
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="dec1")(x)
    x = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="softmax")(x), name="free_skip")
