"""Class names travel with a model file (issue 31, item 6): `models.export` stores them, and the batch CLI
and the sidebar use them (given > stored > numbered)."""

from __future__ import annotations

from pathlib import Path

from helpers_models import conv_bn_relu_unet
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import class_names_input, compute, state
from explainers import batch, stored_names
from models import CLASS_NAMES
from models.export import export
from models.scenes import load_sample, sample_names

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def test_exported_model_runs_the_readme_batch_example_without_class_names(tmp_path, capsys) -> None:
    model_path = export(tmp_path / "default.keras")
    assert stored_names.read(model_path) == list(CLASS_NAMES)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(load_sample(sample_names()[0])[0]).save(images / "scene.png")
    out = tmp_path / "out"
    code = batch.main(["--model", str(model_path), "--images", str(images), "--out", str(out),
                       "--method", "gradcam", "--region", "class:cap", "--layer", "final_conv"])
    assert code == 0, capsys.readouterr().err
    rows = (out / "summary.csv").read_text()
    assert "cap" in rows and "ok" in rows
    # given names still win over the stored ones
    code = batch.main(["--model", str(model_path), "--images", str(images), "--out", str(tmp_path / "given"),
                       "--method", "gradcam", "--region", "class:hat",
                       "--class-names", "bg,hat,gills,stipe,ring,volva"])
    assert code == 0, capsys.readouterr().err


def test_an_uploaded_file_with_stored_names_shows_them(tmp_path) -> None:
    path = tmp_path / "unet4.keras"
    conv_bn_relu_unet(48, 4).save(path)
    stored_names.write(path, ["sky", "road", "car", "tree"])
    data = path.read_bytes()
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).set_value(("unet4.keras", data, "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[state.MODEL_CHOICE]["key"] == f"upload:{compute.digest(data)}"
    current = at.session_state[class_names_input.CURRENT]
    assert current["names"] == ["sky", "road", "car", "tree"]
    assert current["source"] == "stored in the model file"
    captions = [c.value for c in at.sidebar.caption]
    assert any(text.startswith("Names: stored in the model file") and "road" in text for text in captions), captions
    assert at.selectbox(key=state.CLASS).format_func(1) == "road"
