"""keras-hub segmenters built offline with random weights (nothing downloaded), shared by the tests and the
benchmarks (which must not import each other).

`deeplabv3` is a keras-hub `DeepLabV3ImageSegmenter` on a ResNet encoder built from its constructor, with a
free input size `(None, None, 3)` as a user's saved file would have: its decoder concatenates the upsampled
pyramid pooling with the stride-4 features, so it needs sides that are multiples of its output stride
(issue 31: a 451×300 photo fails in TensorFlow without the library's working size). Needs `keras-hub`.
"""

from __future__ import annotations

from collections.abc import Sequence

SMALL = {"filters": (64, 16, 32), "blocks": (1, 1, 1)}  # seconds to build; 43 explainable layers, 0.6 M parameters


def deeplabv3(num_classes: int = 4, filters: Sequence[int] = SMALL["filters"], blocks: Sequence[int] = SMALL["blocks"],
              projection_filters: int = 16, seed: int = 0):
    """DeepLabV3 (keras-hub) on a ResNet encoder of basic blocks with three stages (strides 4, 8, 16 after the
    stem): pyramid pooling on P4 with dilation rates 1 and 2, the decoder's skip from P2, ×4 upsampling."""
    import keras
    from keras_hub.models import DeepLabV3Backbone, DeepLabV3ImageSegmenter, ResNetBackbone

    keras.utils.set_random_seed(seed)
    encoder = ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=list(filters),
        stackwise_num_blocks=list(blocks), stackwise_num_strides=[1, 2, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3),
    )
    backbone = DeepLabV3Backbone(image_encoder=encoder, spatial_pyramid_pooling_key="P4", upsampling_size=4,
                                 dilation_rates=[1, 2], low_level_feature_key="P2",
                                 projection_filters=projection_filters)
    return DeepLabV3ImageSegmenter(backbone=backbone, num_classes=num_classes)
