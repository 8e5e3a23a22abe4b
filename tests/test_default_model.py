"""The default network: its layer contract, its shipped weights, and their quality on held-out scenes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models import CLASS_NAMES
from models.pspnet import INPUT_SIZE, WEIGHTS_PATH, build_pspnet
from models.scenes import generate
from models.train import HELDOUT_SEED, MONITOR_SEED, TRAIN_SEED

FORWARD_ORDER = [
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3",
    "psp_level1", "psp_level2", "psp_level3", "psp_level4",
    "concat", "aggregation", "final_conv", "logits", "softmax",
]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_pspnet()


@pytest.fixture(scope="module")
def trained() -> keras.Model:
    net = build_pspnet()
    net.load_weights(WEIGHTS_PATH)
    return net


def test_layer_names_present_in_forward_order(model: keras.Model) -> None:
    names = [layer.name for layer in model.layers]
    positions = [names.index(name) for name in FORWARD_ORDER]
    assert positions == sorted(positions)
    for k in range(1, 5):
        assert f"psp_level{k}_conv" in names


def test_spatial_sizes_follow_the_design(model: keras.Model) -> None:
    assert model.get_layer("block4_conv3").output.shape[1:3] == (INPUT_SIZE // 8, INPUT_SIZE // 8)
    for k, bins in enumerate((1, 2, 3, 6), start=1):
        assert model.get_layer(f"psp_level{k}_conv").output.shape[1:3] == (bins, bins)
        assert model.get_layer(f"psp_level{k}").output.shape[1:3] == (INPUT_SIZE // 8, INPUT_SIZE // 8)


def test_output_is_a_separate_softmax_over_per_pixel_logits(model: keras.Model) -> None:
    assert model.input.shape[1:] == (INPUT_SIZE, INPUT_SIZE, 3)
    assert model.output.shape[1:] == (INPUT_SIZE, INPUT_SIZE, len(CLASS_NAMES))
    assert model.get_layer("logits").output.shape[1:] == (INPUT_SIZE, INPUT_SIZE, len(CLASS_NAMES))
    softmax = model.get_layer("softmax")
    assert isinstance(softmax, keras.layers.Activation)
    assert softmax.get_config()["activation"] == "softmax"
    assert model.outputs[0] is softmax.output
    assert any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)


def test_convs_are_plain_conv2d_and_final_conv_is_last_before_classifier(model: keras.Model) -> None:
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(c.get_config()["activation"] in ("linear", "relu") for c in convs)
    assert [c.name for c in convs][-2] == "final_conv"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_roundtrips_through_keras_safe_mode(model: keras.Model, tmp_path) -> None:
    path = tmp_path / "pspnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).uniform(0, 255, (1, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)


def test_shipped_weights_exist_and_are_small() -> None:
    assert WEIGHTS_PATH.name == "pspnet_mushrooms.weights.h5"
    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 10 * 1024 * 1024


def test_heldout_seed_is_not_a_training_seed() -> None:
    assert HELDOUT_SEED not in (TRAIN_SEED, MONITOR_SEED)


def test_shipped_weights_segment_heldout_scenes(trained: keras.Model) -> None:
    images, masks = generate(24, seed=HELDOUT_SEED + 1)  # a held-out stream the card did not use either
    probs = trained(images.astype(np.float32), training=False)
    predicted = np.argmax(np.asarray(probs), axis=-1)
    ious = []
    for c in range(len(CLASS_NAMES)):
        truth_c, pred_c = masks == c, predicted == c
        union = np.logical_or(truth_c, pred_c).sum()
        if union:
            ious.append(np.logical_and(truth_c, pred_c).sum() / union)
    assert np.mean(ious) >= 0.8, np.round(ious, 3)
