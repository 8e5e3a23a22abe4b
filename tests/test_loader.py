"""Model loading: accepted architectures round-trip, everything else is refused with one sentence,
and a model carrying Python code is never executed."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import helpers_models as hm
import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

from explainers import model_files
from explainers.graph import inspect_model
from models import pspnet
from models.loader import ModelLoadError, describe_model, load_default, load_user_model

MARKER_ENV = "SEGEXPLAIN_TEST_LAMBDA_MARKER"


def save(model: keras.Model, folder: Path, name: str) -> Path:
    path = folder / name
    model.save(path)
    return path


def predict(model: keras.Model, image: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(image[None].astype("float32"), training=False))[0]


def rewrite_archive(source: Path, target: Path, edit) -> Path:
    """Copy a .keras zip with `edit(config_dict)` applied to its config.json."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def assert_one_sentence(message: str) -> None:
    assert message.endswith((".", ")")) and "\n" not in message, message
    assert message.rstrip(".").count(". ") == 0, message


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def tiny_keras(folder) -> Path:
    return save(hm.tiny_seg_model(), folder, "tiny.keras")


# --- the default model ---------------------------------------------------------------------------


def test_load_default_gives_the_trained_pspnet() -> None:
    assert pspnet.WEIGHTS_PATH.is_file(), (
        f"{pspnet.WEIGHTS_PATH} is missing: run `python -m models.train` (the shipped weights are required)"
    )
    model = load_default()
    for name in ("block1_conv1", "block4_conv3", "psp_level1", "psp_level4", "concat", "aggregation",
                 "final_conv", "logits", "softmax"):
        model.get_layer(name)
    assert tuple(model.output.shape) == (None, pspnet.INPUT_SIZE, pspnet.INPUT_SIZE, 6)
    summary = inspect_model(model)
    assert summary.num_classes == 6 and summary.input_size == (pspnet.INPUT_SIZE, pspnet.INPUT_SIZE)
    untrained = pspnet.build_pspnet()
    trained_kernel = model.get_layer("final_conv").get_weights()[0]
    assert not np.allclose(trained_kernel, untrained.get_layer("final_conv").get_weights()[0])
    probs = predict(model, hm.random_image(pspnet.INPUT_SIZE, seed=1))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)


def test_load_default_reads_the_weights_file(tmp_path, monkeypatch) -> None:
    reference = pspnet.build_pspnet()
    path = tmp_path / "pspnet.weights.h5"
    reference.save_weights(path)
    monkeypatch.setattr(pspnet, "WEIGHTS_PATH", path)
    model = load_default()
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_missing_default_weights_say_how_to_train(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pspnet, "WEIGHTS_PATH", tmp_path / "absent.weights.h5")
    with pytest.raises(ModelLoadError, match=r"python -m models\.train") as info:
        load_default()
    assert_one_sentence(str(info.value))


def test_default_weights_of_another_network_are_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "other.weights.h5"
    hm.tiny_seg_model().save_weights(path)
    monkeypatch.setattr(pspnet, "WEIGHTS_PATH", path)
    with pytest.raises(ModelLoadError, match="do not fit the network"):
        load_default()


def test_default_weights_with_a_missing_layer_are_refused(tmp_path, monkeypatch) -> None:
    """Keras may only warn and keep random weights here; the loader must not."""
    import h5py

    path = tmp_path / "partial.weights.h5"
    pspnet.build_pspnet().save_weights(path)
    with h5py.File(path, "a") as handle:
        last_conv = sorted(name for name in handle["layers"] if name.startswith("conv2d"))[-1]
        del handle["layers"][last_conv]
    monkeypatch.setattr(pspnet, "WEIGHTS_PATH", path)
    with pytest.raises(ModelLoadError, match="do not fit the network"):
        load_default()


# --- accepted user models ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "size"),
    [
        (pspnet.build_pspnet, 144),
        (hm.small_unet_fused_softmax, 16),
        (hm.sequential_seg_model, 16),
    ],
    ids=["default-pspnet", "unet-fused-softmax", "sequential"],
)
def test_accepted_models_round_trip(build, size, tmp_path) -> None:
    model = build()
    path = save(model, tmp_path, "model.keras")
    loaded = load_user_model(path)
    image = hm.random_image(size, seed=2)
    np.testing.assert_allclose(predict(loaded, image), predict(model, image), atol=1e-5)
    assert inspect_model(loaded) == inspect_model(model)


@pytest.mark.slow
def test_nested_vgg16_backbone_is_accepted(tmp_path) -> None:
    model = hm.nested_backbone_model(size=64)
    path = save(model, tmp_path, "nested.keras")
    loaded = load_user_model(str(path))
    image = hm.random_image(64, seed=3)
    np.testing.assert_allclose(predict(loaded, image), predict(model, image), atol=1e-5)
    names = [info.name for info in inspect_model(loaded).layers]
    assert "block5_conv3" in names and "final_conv" in names


def test_legacy_h5_is_accepted(folder) -> None:
    model = hm.small_unet_fused_softmax()
    path = folder / "unet.h5"
    model.save(path)
    loaded = load_user_model(path)
    image = hm.random_image(16, seed=4)
    np.testing.assert_allclose(predict(loaded, image), predict(model, image), atol=1e-5)


def test_describe_model_lists_every_layer_with_shapes() -> None:
    model = hm.nested_backbone_model(size=32)
    rows = describe_model(model)
    by_name = {row.name: row for row in rows}
    assert by_name["vgg16"].kind == "Functional"
    assert by_name["block1_conv1"].output_shape == (None, 32, 32, 64)
    assert by_name["final_conv"].kind == "Conv2D"
    names = [row.name for row in rows]
    assert names.index("vgg16") < names.index("block1_conv1") < names.index("final_conv")


# --- refused user models -------------------------------------------------------------------------


def two_input_model() -> keras.Model:
    a, b = keras.Input((16, 16, 3)), keras.Input((16, 16, 3))
    x = layers.Conv2D(3, 1)(layers.Add()([a, b]))
    return keras.Model([a, b], x)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (hm.classifier_model, "classifier"),
        (hm.two_output_model, "2 outputs"),
        (two_input_model, "2 inputs"),
        (hm.no_conv_model, "no 2-D convolution"),
    ],
    ids=["classifier", "two-outputs", "two-inputs", "no-conv"],
)
def test_unexplainable_models_are_refused(build, words, tmp_path) -> None:
    path = save(build(), tmp_path, "model.keras")
    with pytest.raises(ModelLoadError, match=words) as info:
        load_user_model(path)
    assert_one_sentence(str(info.value))


def test_not_a_file_or_wrong_extension(tmp_path, tiny_keras) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        load_user_model(tmp_path / "absent.keras")
    with pytest.raises(ModelLoadError, match="no model file"):
        load_user_model(tmp_path)
    renamed = tmp_path / "model.txt"
    renamed.write_bytes(tiny_keras.read_bytes())
    with pytest.raises(ModelLoadError, match=r"extension '\.txt'.*\.keras"):
        load_user_model(renamed)
    pickled = tmp_path / "model.pt"  # a PyTorch name: refused as a pickle, never opened (tests/test_torch_files.py)
    pickled.write_bytes(tiny_keras.read_bytes())
    with pytest.raises(ModelLoadError, match="never opens it"):
        load_user_model(pickled)
    bare = tmp_path / "model"
    bare.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="extension '.none.'"):
        load_user_model(bare)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def text_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "just some text, no model here\n")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("picture.keras", png_bytes(), "not a .keras archive"),
        ("notes.keras", text_zip(), "not a Keras model .no config.json"),
        ("empty.keras", b"", "not a .keras archive"),
        ("picture.h5", png_bytes(), "not an HDF5 file"),
    ],
)
def test_files_that_are_not_models_are_refused(name, content, words, tmp_path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=words) as info:
        load_user_model(path)
    assert_one_sentence(str(info.value))


def test_truncated_archive_is_refused(tmp_path, tiny_keras) -> None:
    data = tiny_keras.read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="not a .keras archive"):
        load_user_model(path)


def test_corrupted_archive_content_is_refused(tmp_path, tiny_keras) -> None:
    data = bytearray(tiny_keras.read_bytes())
    with zipfile.ZipFile(tiny_keras) as archive:
        info = archive.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # local header, then data
    data[start + info.compress_size // 2] ^= 0xFF
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="damaged") as info_:
        load_user_model(path)
    assert_one_sentence(str(info_.value))


def test_bad_config_json_is_refused(tmp_path, tiny_keras) -> None:
    path = tmp_path / "badjson.keras"
    with zipfile.ZipFile(tiny_keras) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            target.writestr(name, b"{not json" if name == "config.json" else source.read(name))
    with pytest.raises(ModelLoadError, match="damaged"):
        load_user_model(path)


def test_unknown_custom_objects_are_refused(tmp_path, tiny_keras) -> None:
    def swap_conv(config: dict) -> None:
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Conv2D" and layer["config"]["name"] == "conv2":
                layer["class_name"] = "FancyConv"
                layer["module"] = "my_private_layers"
                layer["registered_name"] = "my_private_layers>FancyConv"

    path = rewrite_archive(tiny_keras, tmp_path / "custom.keras", swap_conv)
    with pytest.raises(ModelLoadError, match="custom object Keras does not know .'.*FancyConv'") as info:
        load_user_model(path)
    assert_one_sentence(str(info.value))


def test_archive_paths_outside_the_archive_are_refused(tmp_path, tiny_keras) -> None:
    path = tmp_path / "slip.keras"
    with zipfile.ZipFile(tiny_keras) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        target.writestr("../../escape.txt", "x")
    with pytest.raises(ModelLoadError, match="outside the archive"):
        load_user_model(path)


def test_weights_only_h5_is_refused(tmp_path) -> None:
    path = tmp_path / "only.weights.h5"
    hm.tiny_seg_model().save_weights(path)
    with pytest.raises(ModelLoadError, match="weights only"):
        load_user_model(path)


# --- security: serialised code is never run ------------------------------------------------------


def lambda_model() -> keras.Model:
    """A model whose Lambda writes a marker file, but only while MARKER_ENV is set (set during loading)."""
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.Lambda(
        lambda t: t if not __import__("os").environ.get("SEGEXPLAIN_TEST_LAMBDA_MARKER")
        else (open(__import__("os").environ["SEGEXPLAIN_TEST_LAMBDA_MARKER"], "w").close() or t),
        name="sneaky",
    )(x)
    return keras.Model(inputs, layers.Conv2D(2, 1, activation="softmax", name="head")(x))


@pytest.fixture(scope="module")
def lambda_files(folder) -> dict[str, Path]:
    model = lambda_model()
    return {suffix: save(model, folder, f"lambda{suffix}") for suffix in (".keras", ".h5")}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_model_is_refused_and_its_code_never_runs(suffix, lambda_files, tmp_path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    with pytest.raises(ModelLoadError, match="Lambda layer") as info:
        load_user_model(lambda_files[suffix])
    assert not marker.exists()
    assert_one_sentence(str(info.value))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_safe_mode_alone_also_refuses_the_lambda(suffix, lambda_files, tmp_path, monkeypatch) -> None:
    """With our own config scan switched off, Keras' safe mode is still a second guard."""
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    monkeypatch.setattr(model_files, "scan_config", lambda config, name: None)
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        load_user_model(lambda_files[suffix])
    assert not marker.exists()


def test_the_lambda_would_really_write_the_marker_if_loaded_unsafely(lambda_files, tmp_path, monkeypatch) -> None:
    """Control: proves the security tests above use a lambda that does run when deserialised."""
    marker = tmp_path / "marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    keras.saving.load_model(lambda_files[".keras"], compile=False, safe_mode=False)
    assert marker.exists()
    marker.unlink()
    assert os.environ[MARKER_ENV] == str(marker)
