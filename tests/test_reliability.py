"""Reliability and safety (issue 8): hostile uploads, hostile models, degenerate numerics, fuzzed calls.

What is already covered elsewhere is not repeated here: the decoder's colour conversions and error
messages (test_images.py), the loader's refusals and the Lambda marker test (test_loader.py), threads
sharing one model (test_robustness.py). This file adds:

- the same situations *through the page* (Streamlit AppTest uploads the files with its own
  `file_uploader`): every refused file gives exactly one one-line message in the sidebar, and the
  previous image or model, every setting and the maps stay; converted images really replace the old one;
- the 40 MP limit is enforced before Pillow decodes a single pixel, and the upload cap is documented;
- models with a dynamic input size or a coarser output grid work from an upload, and the page says
  under each map when the region was resized to the output grid;
- degenerate numerics (zero gradients, saturated softmax, constant images, logits up to float32's
  limit and beyond) give finite maps, and every all-zero map says so, also on the page; Grad-CAM++
  matches a float64 evaluation of its textbook formula even at logits of 1e36;
- hypothesis over the gaps of the existing fuzz test: probabilities target, XRAI with 2-4 steps, the
  strided-output and the dynamic-size models.
"""

from __future__ import annotations

import io
import json
import struct
import tomllib
import zipfile
import zlib
from pathlib import Path

import helpers_models as hm
import keras
import numpy as np
import page_keys as keys
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from PIL import Image
from streamlit.testing.v1 import AppTest

import explainers
from dashboard import sidebar, state
from explainers import ExplainerError, images
from explainers.adapter import SegmentationAdapter
from explainers.results import ALL_ZERO, NON_FINITE, NON_FINITE_GRADIENTS, REGION_RESIZED, REGION_TOUCHED

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("finish_slow_maps")  # AppTest has no looks: each run waits for its slow maps

APP = str(ROOT / "dashboard" / "app.py")
MARKER_ENV = "SEGEXPLAIN_TEST_LAMBDA_MARKER"
CAMS = ("gradcam", "gradcam++", "vinogradova")
GRADIENT_METHODS = (*explainers.DEFAULT_METHODS, "hirescam", "layercam", "xgradcam", "integrated-gradients",
                    "smoothgrad", "guided-ig", "blur-ig")
CHEAP = {"options": {"xrai": {"steps": 4, "batch_size": 4}, "integrated-gradients": {"steps": 4, "batch_size": 4},
                     "guided-ig": {"steps": 4}, "blur-ig": {"steps": 4, "batch_size": 4},
                     "smoothgrad": {"samples": 2}, "scorecam": {"channels": 4}, "rise": {"masks": 8}}}


# ------------------------------------------------------------------------------------------------
# helpers


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A valid small JPEG whose start-of-frame segment is rewritten to declare another size."""
    data = bytearray(encode(Image.new("RGB", (8, 8), (90, 120, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_claiming_size(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (2, 2))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def huge_real_png() -> bytes:
    """A complete, valid 12000×12000 PNG (1-bit, so building it is cheap): 144 megapixels."""
    return encode(Image.new("1", (12000, 12000)), optimize=False)


def check_maps(result: dict, methods, shape) -> None:
    """Finite float32 maps in [0, 1] of the right shape; an all-zero map always says so in its note."""
    assert list(result) == list(methods)
    for method, explanation in result.items():
        heat = explanation.heatmap
        assert heat.shape == tuple(shape) and heat.dtype == np.float32, method
        assert np.all(np.isfinite(heat)), method
        assert heat.min() >= 0 and heat.max() <= 1, method
        assert (heat.max() == 0) == explanation.has(ALL_ZERO), (method, explanation.note)
        if explanation.layer_map is not None:
            assert np.all(np.isfinite(explanation.layer_map)), method


def scaled_logits_model(factor: float) -> keras.Model:
    """`tiny_seg_model` with its last (logits) conv multiplied by `factor`: logits of ~factor."""
    model = hm.tiny_seg_model()
    kernel, bias = model.get_layer("logits").get_weights()
    with np.errstate(over="ignore"):  # 1e39 is beyond float32: the weights themselves become ±inf
        model.get_layer("logits").set_weights([(kernel.astype(np.float64) * factor).astype(np.float32),
                                          (bias.astype(np.float64) * factor).astype(np.float32)])
    return model


def flat_class_model(classes=(1,)) -> keras.Model:
    """`tiny_seg_model` whose logits of `classes` do not depend on the input at all (zero kernel)."""
    model = hm.tiny_seg_model()
    kernel, bias = model.get_layer("logits").get_weights()
    kernel[..., list(classes)] = 0.0
    model.get_layer("logits").set_weights([kernel, bias])
    return model


def box(size: int = 16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[3:11, 4:12] = True
    return region


# ------------------------------------------------------------------------------------------------
# uploads, decoder level: the pixel limit comes before any decoding


def test_a_real_144_megapixel_png_is_refused_before_any_pixel_is_decoded(monkeypatch) -> None:
    payloads = (huge_real_png(), jpeg_claiming_size(12000, 12000), png_claiming_size(12000, 12000))

    def no_decoding(*args, **kwargs):
        raise AssertionError("Pillow was asked to decode pixels of an image above the limit")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    for payload in payloads:
        with pytest.raises(ExplainerError, match=r"12000×12000 pixels \(144\.0 MP\), above the 40 MP limit"):
            images.decode_image(payload)


def test_the_limits_are_documented_where_users_look() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    cap = config["server"]["maxUploadSize"]
    assert isinstance(cap, int) and 1 <= cap <= 200  # megabytes, for images and models alike
    readme = (ROOT / "README.md").read_text()
    usage = readme.split("## Using your own model and image", 1)[1].split("\n## ", 1)[0]
    assert ".streamlit/config.toml" in usage
    assert f"{images.MAX_PIXELS // 1_000_000} megapixels" in usage


# ------------------------------------------------------------------------------------------------
# uploads through the page (AppTest's file_uploader runs the real callbacks)


def _app(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    defaults = {keys.XRAI_STEPS: 2, keys.XRAI_ALGORITHM: "fast", state.REGION_MODE: "image",
                state.METHODS: ["gradcam", "vinogradova"]}
    for key, value in {**defaults, **session}.items():
        at.session_state[key] = value
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _settings(at: AppTest) -> dict:
    return {key: at.session_state[key] for key in (state.LAYER, state.TARGET, state.CLASS, state.METHODS,
                                                  state.REGION_MODE, keys.XRAI_STEPS)}


def _bad_images() -> dict[str, tuple[bytes, str]]:
    """name → (file bytes, words the one-line message must contain)."""
    noisy = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    png, jpeg = encode(noisy), encode(noisy, "JPEG")
    return {
        "notes.png": (b"this is a shopping list, not a picture\n" * 4, "not an image"),
        "empty.png": (b"", "empty"),
        "half.png": (png[: len(png) // 2], "damaged or truncated"),
        "half.jpg": (jpeg[: len(jpeg) // 2], "damaged or truncated"),
        "huge.png": (huge_real_png(), "above the 40 MP limit"),
        "huge.jpg": (jpeg_claiming_size(12000, 12000), "above the 40 MP limit"),
        "float.png": (encode(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF"), "floating-point"),
    }


@pytest.mark.slow
def test_refused_images_give_one_line_and_keep_the_image_and_every_setting() -> None:
    at = _app(**{state.TARGET: "probabilities"})
    at.run()
    _clean(at)
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    at.selectbox(key=state.CLASS).set_value(2).run()
    _clean(at)
    before_image = at.session_state[state.IMAGE_CHOICE]["digest"]
    before = _settings(at)
    before_maps = {m: e.heatmap.copy() for m, e in at.session_state[state.RESULTS].items()}
    assert set(before_maps) == {"gradcam", "vinogradova"}
    for name, (data, words) in _bad_images().items():
        at.file_uploader(key=state.IMAGE_UPLOAD).set_value((name, data, "image/png")).run()
        _clean(at)
        errors = [e.value for e in at.sidebar.error]
        assert len(errors) == 1, (name, errors)
        assert name in errors[0] and words in errors[0] and "\n" not in errors[0], (name, errors[0])
        assert at.session_state[state.IMAGE_CHOICE]["digest"] == before_image, name
        assert _settings(at) == before, name
        results = at.session_state[state.RESULTS]
        assert set(results) == set(before_maps), name
        for method, heat in before_maps.items():
            np.testing.assert_array_equal(results[method].heatmap, heat)
        assert not at.main.error, [e.value for e in at.main.error]


def _accepted_images() -> dict[str, tuple[bytes, np.ndarray]]:
    """name → (file bytes, the RGB pixels the page must end up with)."""
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    sixteen = (rng.integers(0, 65536, (30, 40))).astype(np.uint16)
    grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    palette = Image.fromarray(rgb).quantize(colors=16)
    rgba = np.dstack([rgb, np.full((30, 40), 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent top band: composited on white
    rgba_expected = rgb.copy()
    rgba_expected[:10] = 255
    frames = [Image.new("RGB", (40, 30), c) for c in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return {
        "sixteen-bit.png": (encode(Image.fromarray(sixteen)),
                            np.repeat(np.round(sixteen / 257.0).astype(np.uint8)[..., None], 3, axis=2)),
        "grey.png": (encode(Image.fromarray(grey)), np.repeat(grey[..., None], 3, axis=2)),
        "palette.png": (encode(palette), np.asarray(palette.convert("RGB"))),
        "rgba.png": (encode(Image.fromarray(rgba)), rgba_expected),
        # the uploader only offers .png/.jpg/.jpeg; an animated GIF saved under such a name gives frame 1
        "animated-gif.png": (gif, np.asarray(Image.open(io.BytesIO(gif)).convert("RGB"))),
    }


@pytest.mark.slow
def test_converted_images_replace_the_previous_one_and_keep_the_settings() -> None:
    at = _app()
    at.run()
    at.selectbox(key=state.LAYER).set_value("aggregation").run()
    _clean(at)
    before = _settings(at)
    for name, (data, expected) in _accepted_images().items():
        at.file_uploader(key=state.IMAGE_UPLOAD).set_value((name, data, "image/png")).run()
        _clean(at)
        assert not at.sidebar.error, (name, [e.value for e in at.sidebar.error])
        choice = at.session_state[state.IMAGE_CHOICE]
        assert choice["source"] == "upload" and choice["name"] == name
        assert choice["pixels"].dtype == np.uint8 and choice["pixels"].shape == (30, 40, 3), name
        np.testing.assert_array_equal(choice["pixels"], expected, err_msg=name)
        if name == "animated-gif.png":
            assert (choice["pixels"] == [250, 0, 0]).all()  # the first frame, not a later one
        after = _settings(at)
        assert {k: v for k, v in after.items() if k != state.CLASS} == {
            k: v for k, v in before.items() if k != state.CLASS}, name  # a new image may suggest a new class
        results = at.session_state[state.RESULTS]
        assert set(results) == {"gradcam", "vinogradova"}, name
        check_maps(results, ("gradcam", "vinogradova"), (144, 144))


# ------------------------------------------------------------------------------------------------
# models through the page


def lambda_model() -> keras.Model:
    """Its Lambda creates the file named by MARKER_ENV whenever it runs (the env var is set only while loading)."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Lambda(
        lambda t: t if not __import__("os").environ.get("SEGEXPLAIN_TEST_LAMBDA_MARKER")
        else (open(__import__("os").environ["SEGEXPLAIN_TEST_LAMBDA_MARKER"], "w").close() or t),
        name="payload",
    )(x)
    return keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="head")(x))


def keras_bytes(model: keras.Model, folder: Path, name: str = "model.keras") -> bytes:
    path = folder / name
    model.save(path)
    return path.read_bytes()


def zip_of(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def upload_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "uploads"
    monkeypatch.setattr(sidebar, "MODEL_DIR", folder)
    return folder


@pytest.mark.slow
def test_hostile_and_unusable_models_are_refused_in_one_line_and_nothing_runs(tmp_path, upload_dir,
                                                                              monkeypatch) -> None:
    tiny = keras_bytes(hm.tiny_seg_model(), tmp_path, "tiny.keras")
    files = {
        "payload.keras": (keras_bytes(lambda_model(), tmp_path, "payload.keras"), "Lambda layer"),
        "payload.h5": (None, "Lambda layer"),
        "photos.keras": (zip_of({"holiday.jpg": encode(Image.new("RGB", (4, 4)), "JPEG")}), "no config.json"),
        "fake-config.keras": (zip_of({"config.json": json.dumps({"hello": "world"}), "metadata.json": "{}"}),
                              "could not be read as a Keras model"),
        "cut.keras": (tiny[: len(tiny) // 2], "not a .keras archive"),
        "classifier.keras": (keras_bytes(hm.classifier_model(), tmp_path, "c.keras"), "classifier"),
        "two-outputs.keras": (keras_bytes(hm.two_output_model(), tmp_path, "o.keras"), "2 outputs"),
    }
    h5 = tmp_path / "payload.h5"
    lambda_model().save(h5)
    files["payload.h5"] = (h5.read_bytes(), "Lambda layer")
    marker = tmp_path / "lambda-ran"
    monkeypatch.setenv(MARKER_ENV, str(marker))

    at = _app()
    at.run()
    _clean(at)
    before_maps = {m: e.heatmap.copy() for m, e in at.session_state[state.RESULTS].items()}
    for name, (data, words) in files.items():
        at.file_uploader(key=state.MODEL_UPLOAD).set_value((name, data, "application/octet-stream")).run()
        _clean(at)
        errors = [e.value for e in at.sidebar.error]
        assert len(errors) == 1, (name, errors)
        assert name in errors[0] and words in errors[0] and "\n" not in errors[0], (name, errors[0])
        assert "previous model stays active" in errors[0]
        assert at.session_state[state.MODEL_CHOICE] == {"kind": "default"}, name
        assert not marker.exists(), f"{name}: the Lambda's code ran"
        results = at.session_state[state.RESULTS]
        for method, heat in before_maps.items():
            np.testing.assert_array_equal(results[method].heatmap, heat)


@pytest.mark.slow
def test_dynamic_size_model_explains_the_uploaded_image_at_its_own_size(tmp_path, upload_dir) -> None:
    at = _app(**{state.METHODS: ["gradcam", "gradcam++", "xrai", "vinogradova"]})
    at.run()
    image = np.random.default_rng(4).integers(0, 256, (36, 52, 3), dtype=np.uint8)
    at.file_uploader(key=state.IMAGE_UPLOAD).set_value(("odd.png", encode(Image.fromarray(image)), "image/png"))
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(
        ("dynamic.keras", keras_bytes(hm.dynamic_size_model(), tmp_path), "application/octet-stream"))
    at.run()
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.session_state[state.MODEL_CHOICE]["kind"] == "upload"
    results = at.session_state[state.RESULTS]
    check_maps(results, ("gradcam", "gradcam++", "xrai", "vinogradova"), (36, 52))


@pytest.mark.slow
def test_coarser_output_grid_is_said_under_every_map(tmp_path, upload_dir) -> None:
    at = _app(**{state.METHODS: ["gradcam", "gradcam++", "xrai", "vinogradova"]})
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(
        ("strided.keras", keras_bytes(hm.strided_output_model(), tmp_path), "application/octet-stream")).run()
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    results = at.session_state[state.RESULTS]
    check_maps(results, ("gradcam", "gradcam++", "xrai", "vinogradova"), (16, 16))
    for explanation in results.values():
        assert "8×8 output grid" in explanation.note
    captions = [c.value for c in at.main.caption if "output grid" in c.value]
    assert len(captions) == 4, [c.value for c in at.main.caption]
    assert all("resized to the model's 8×8 output grid" in c for c in captions)


@pytest.mark.slow
def test_all_zero_maps_carry_a_visible_warning_on_the_page(tmp_path, upload_dir) -> None:
    """A model whose outputs ignore the input: every gradient is zero, every map is zero and says so."""
    flat = flat_class_model(classes=(0, 1, 2))
    at = _app(**{state.METHODS: ["gradcam", "gradcam++", "xrai", "vinogradova"]})
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(
        ("flat.keras", keras_bytes(flat, tmp_path), "application/octet-stream")).run()
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    results = at.session_state[state.RESULTS]
    check_maps(results, ("gradcam", "gradcam++", "xrai", "vinogradova"), (16, 16))
    assert all(e.heatmap.max() == 0 for e in results.values())
    warnings_shown = [c.value for c in at.main.caption if "⚠️ all-zero map" in c.value]
    assert len(warnings_shown) == 4, [c.value for c in at.main.caption]
    assert not any(c.endswith("(e.g") for c in warnings_shown)  # sentences are not cut at "e.g."


# ------------------------------------------------------------------------------------------------
# numerics, library level


def test_a_class_whose_output_ignores_the_input_gives_zero_maps_with_notes() -> None:
    model = flat_class_model(classes=(1,))
    image = hm.random_image(16, seed=5)
    for target in ("logits", "probabilities"):
        out = explainers.explain(model, image, box(), 1, "final_conv", methods=GRADIENT_METHODS, target=target,
                                 **CHEAP)
        check_maps(out, GRADIENT_METHODS, (16, 16))
        if target == "logits":  # with probabilities the other classes still move p(class 1)
            assert all(e.heatmap.max() == 0 for e in out.values()), {m: e.note for m, e in out.items()}


def test_saturated_softmax_gives_zero_probability_maps_but_real_logit_maps() -> None:
    model = scaled_logits_model(1e8)  # softmax is exactly 0 or 1 in float32: its gradient vanishes
    image = hm.random_image(16, seed=6)
    probs = explainers.predict(model, image).probs
    assert np.isin(probs, (0.0, 1.0)).all()
    saturated = explainers.explain(model, image, box(), 0, "final_conv", methods=GRADIENT_METHODS,
                                   target="probabilities", **CHEAP)
    check_maps(saturated, GRADIENT_METHODS, (16, 16))
    assert saturated["gradcam"].heatmap.max() == 0 and "'logits' target" in saturated["gradcam"].note
    logits = explainers.explain(model, image, box(), 0, "final_conv", methods=CAMS, target="logits")
    check_maps(logits, CAMS, (16, 16))
    assert all(e.heatmap.max() == 1 for e in logits.values())


@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_images_give_finite_maps_and_notes_for_every_method(value) -> None:
    image = np.full((16, 16, 3), value, np.uint8)
    methods = explainers.api.ALL_METHODS
    out = explainers.explain(hm.tiny_seg_model(), image, box(), 1, "conv2", methods=methods, **CHEAP)
    check_maps(out, methods, (16, 16))
    assert out["xrai"].heatmap.max() == 0 and "constant image" in out["xrai"].note


def _gradcampp_float64(model, image, region, class_index, layer) -> np.ndarray:
    """Grad-CAM++ from its textbook closed form, evaluated in float64 (α = g²/(2g² + Σ_ab A_ab·g³))."""
    adapter = SegmentationAdapter(model, (layer,), "logits")
    x = tf.constant(image[None], tf.float32)
    mask = tf.constant(region[None], tf.float32)
    with tf.GradientTape() as tape:
        scores, acts = adapter(x, mask)
        score = scores[0, class_index]
    g = tape.gradient(score, acts).numpy()[0].astype(np.float64)
    a = acts.numpy()[0].astype(np.float64)
    spatial = a.sum(axis=(0, 1), keepdims=True)
    denominator = 2 * g**2 + spatial * g**3
    alpha = np.divide(g**2, denominator, out=np.zeros_like(g), where=(g != 0) & (denominator != 0))
    weights = (alpha * np.maximum(g, 0)).sum(axis=(0, 1))
    cam = np.maximum((a * weights).sum(-1), 0)
    return cam / cam.max() if cam.max() > 0 else cam


@pytest.mark.parametrize("factor", [1.0, 1e10, 1e20, 1e30, 1e36])
def test_gradcampp_never_overflows_and_matches_float64_at_huge_logits(factor) -> None:
    model = scaled_logits_model(factor)
    image = hm.random_image(16, seed=7)
    out = explainers.explain(model, image, box(), 1, "final_conv", methods=CAMS)
    check_maps(out, CAMS, (16, 16))
    layer_map = out["gradcam++"].layer_map
    assert np.all(np.isfinite(layer_map)) and layer_map.max() > 0
    reference = _gradcampp_float64(model, image, box(), 1, "final_conv")
    np.testing.assert_allclose(layer_map / layer_map.max(), reference, atol=2e-4)
    np.testing.assert_allclose(out["gradcam"].heatmap, out["vinogradova"].heatmap, atol=1e-4)


@pytest.mark.parametrize("factor", [1e38, 1e39])
def test_logits_at_and_beyond_float32_range_give_finite_maps_with_notes(factor) -> None:
    """At 1e39 the logits themselves are infinite and every gradient is NaN: XRAI used to crash in PAIR's
    region selection (KeyError: None); now the NaN gradients are set to 0 and every note says why."""
    model = scaled_logits_model(factor)
    image = hm.random_image(16, seed=8)
    methods = explainers.api.ALL_METHODS
    for target in ("logits", "probabilities"):
        out = explainers.explain(model, image, box(), 1, "final_conv", methods=methods, target=target, **CHEAP)
        check_maps(out, methods, (16, 16))
    if factor > 3.4e38:
        assert out["xrai"].has(NON_FINITE_GRADIENTS)
        assert out["gradcam"].has(NON_FINITE)


# ------------------------------------------------------------------------------------------------
# fuzz: the gaps of tests/test_robustness.py


_MODELS = {"tiny": hm.tiny_seg_model(), "strided": hm.strided_output_model(), "dynamic": hm.dynamic_size_model()}


@hst.composite
def _cases(draw):
    name = draw(hst.sampled_from(sorted(_MODELS)))
    height, width = (draw(hst.integers(6, 28)), draw(hst.integers(6, 28))) if name == "dynamic" else (16, 16)
    return {
        "name": name,
        "shape": (height, width),
        "seed": draw(hst.integers(0, 10_000)),
        "density": draw(hst.sampled_from([0.0, 0.02, 0.2, 0.7, 1.0])),
        "class_index": draw(hst.integers(-1, 3)),
        "target": draw(hst.sampled_from(explainers.api.TARGETS)),
        "methods": draw(hst.lists(hst.sampled_from(("gradcam", "gradcam++", "vinogradova", "xrai")),
                                  min_size=1, max_size=4, unique=True)),
        "xrai_steps": draw(hst.integers(2, 4)),
        "xrai_batch_size": draw(hst.integers(1, 5)),
        "algorithm": draw(hst.sampled_from(("full", "fast"))),
        "constant": draw(hst.booleans()),
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_cases())
def test_fuzzed_targets_xrai_settings_and_model_shapes(case) -> None:
    model = _MODELS[case["name"]]
    rng = np.random.default_rng(case["seed"])
    shape = case["shape"]
    image = (np.full((*shape, 3), case["seed"] % 256, np.uint8) if case["constant"]
             else rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    region = rng.random(shape) < case["density"]
    try:
        out = explainers.explain(model, image, region, case["class_index"], None, methods=case["methods"],
                                 target=case["target"],
                                 options={"xrai": {"steps": case["xrai_steps"], "batch_size": case["xrai_batch_size"],
                                                   "algorithm": case["algorithm"]}})
    except ExplainerError as error:
        assert not region.any() or not 0 <= case["class_index"] < 3, f"unexpected refusal: {error}"
        return
    assert region.any() and 0 <= case["class_index"] < 3
    check_maps(out, case["methods"], shape)
    if case["name"] == "strided":
        assert all(e.codes()[0] in (REGION_RESIZED, REGION_TOUCHED) and "8×8 output grid" in e.note
                   for e in out.values())
