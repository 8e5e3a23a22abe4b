"""Working size of free-size models (issue 31, item 1): a size the network accepts, maps on the image as
given, and TensorFlow's errors as one ExplainerError sentence."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers_models import free_size_skip_model
from PIL import Image

import explainers
from explainers import batch, engine, working_size
from explainers.working_size import WorkingSize, plan_for


@pytest.fixture(scope="module")
def model():
    return free_size_skip_model()


def _photo(height: int = 300, width: int = 451) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_stride_comes_from_the_model(model) -> None:
    assert working_size.output_stride(model) == 4


@pytest.mark.parametrize("fit", working_size.FITS)
def test_an_odd_photo_explains_at_a_stride_multiple_with_maps_at_its_own_size(model, fit) -> None:
    explainers.set_working_size(model, 512, fit)
    image = _photo()
    plan = working_size.plan(model, image.shape[:2], (None, None))
    assert plan.size[0] % 4 == 0 and plan.size[1] % 4 == 0 and max(plan.size) <= 452
    assert explainers.predict(model, image).labels.shape == (300, 451)
    region = np.zeros((300, 451), bool)
    region[100:200, 150:300] = True
    maps = explainers.explain(model, image, region, 1, methods=("gradcam", "integrated-gradients"),
                              options={"integrated-gradients": {"steps": 4}})
    for explanation in maps.values():
        assert explanation.heatmap.shape == (300, 451) and np.isfinite(explanation.heatmap).all()
    explainers.set_working_size(model)


def test_without_a_working_size_tensorflow_fails_and_says_what_to_change(model) -> None:
    explainers.set_working_size(model, None)  # the image's own size, as before: TensorFlow's Concat fails
    try:
        with pytest.raises(explainers.ExplainerError, match="working size") as caught:
            explainers.predict(model, _photo())
        assert "ConcatOp" in str(caught.value) and "Traceback" not in str(caught.value)
        with pytest.raises(explainers.ExplainerError, match="working size"):
            explainers.explain(model, _photo(), np.ones((300, 451), bool), 0, methods=("gradcam",))
    finally:
        explainers.set_working_size(model)


def test_a_forced_tensorflow_error_becomes_an_explainer_error(model, monkeypatch) -> None:
    runner = engine.of(model)

    def failing(*_args, **_kwargs):
        raise tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [1,75,113] vs. [1,76,116]")

    monkeypatch.setattr(type(runner), "predict", failing)
    with pytest.raises(explainers.ExplainerError, match="Incompatible shapes"):
        explainers.predict(model, _photo(64, 64))


def test_plans_keep_the_aspect_and_never_exceed_the_image() -> None:
    pad = plan_for((300, 451), 16, WorkingSize(512, "pad"))
    assert pad.scaled == (300, 451) and pad.size == (304, 464)  # never above the image's own longest side
    small = plan_for((300, 451), 16, WorkingSize(128, "stretch"))
    assert small.size == (80, 128)
    crop = plan_for((300, 451), 32, WorkingSize(512, "crop"))
    assert crop.size == (288, 448) and crop.scaled == (300, 451)
    heat = np.ones(crop.size, np.float32)
    back = crop.to_image(heat)
    assert back.shape == (300, 451) and back[0, 0] == 0 and back[150, 225] == pytest.approx(1.0)
    tiny = plan_for((5, 9), 8, WorkingSize(512, "crop"))
    assert tiny.size == (8, 8) and tiny.scaled[0] >= 8


def test_the_batch_cli_takes_a_working_size_and_fit(model, tmp_path, capsys) -> None:
    model_path = tmp_path / "free.keras"
    model.save(model_path)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_photo(30, 45)).save(images / "odd.png")
    out = tmp_path / "out"
    code = batch.main(["--model", str(model_path), "--images", str(images), "--out", str(out), "--method", "gradcam",
                       "--layer", "dec1", "--working-size", "32", "--fit", "crop"])
    assert code == 0, capsys.readouterr().err
    with np.load(out / "odd.npz") as saved:
        assert saved["heatmap_gradcam"].shape == (30, 45)
    assert batch.main(["--model", str(model_path), "--images", str(images), "--out", str(tmp_path / "bad"),
                       "--working-size", "-1"]) == 2


def test_faithfulness_scores_an_odd_photo_at_the_working_size(model) -> None:
    from explainers import faithfulness

    image = _photo(30, 45)
    region = np.zeros((30, 45), bool)
    region[5:20, 10:30] = True
    maps = explainers.explain(model, image, region, 1, methods=("gradcam",))
    result = faithfulness.evaluate_explanations(model, image, region, 1, maps, steps=3)
    assert np.isfinite(result["gradcam"].deletion.auc) and np.isfinite(result["gradcam"].insertion.auc)


@pytest.mark.slow
def test_a_saved_keras_hub_deeplabv3_explains_an_ordinary_photo(tmp_path) -> None:
    """Issue 31 item 1 as reported: a keras-hub DeepLabV3 saved with a free input size, loaded in safe mode,
    and a 451×300 photo (TensorFlow's Concat got 75×113 and 76×116 at the photo's own size). With the library's
    own working-size choice, the prediction and a Grad-CAM map lie on the photo as given."""
    pytest.importorskip("keras_hub")
    from models import load_user_model
    from models.keras_hub_nets import deeplabv3

    deeplabv3(num_classes=4).save(tmp_path / "deeplab.keras")
    model = load_user_model(tmp_path / "deeplab.keras")
    assert explainers.inspect_model(model).input_size == (None, None)
    image = _photo()  # 300 rows × 451 columns
    plan = working_size.plan(model, image.shape[:2], (None, None))
    assert plan.size != (300, 451) and plan.size[0] % plan.stride == 0 and plan.size[1] % plan.stride == 0
    prediction = explainers.predict(model, image)
    assert prediction.labels.shape == (300, 451) and np.isfinite(prediction.probs).all()
    region = np.zeros((300, 451), bool)
    region[80:220, 120:330] = True
    maps = explainers.explain(model, image, region, 1, "stack1_block0_out", methods=("gradcam",))
    heatmap = maps["gradcam"].heatmap
    assert heatmap.shape == (300, 451) and np.isfinite(heatmap).all()
