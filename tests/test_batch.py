"""The batch command line: outputs, summary rows, resuming, and clear usage errors with exit code 2."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_models import random_image, tiny_seg_model
from PIL import Image

from explainers import api, batch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    model_path = root / "tiny.keras"
    tiny_seg_model(size=16).save(model_path)
    images = root / "images"
    images.mkdir()
    for i, size in enumerate((16, 16, 24)):  # the third is resized to the model's input size
        Image.fromarray(random_image(size, seed=i)).save(images / f"img{i}.png")
    (images / "notes.txt").write_text("not an image")
    return root, model_path, images


def _args(model_path, images, out, *extra) -> list[str]:
    return ["--model", str(model_path), "--images", str(images), "--out", str(out), *extra]


def _rows(out: Path) -> list[dict]:
    with (out / "summary.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_outputs_rows_and_resume(setup, monkeypatch, capsys) -> None:
    root, model_path, images = setup
    out = root / "out_whole"
    argv = _args(model_path, images, out, "--method", "gradcam", "--method", "integrated-gradients",
                 "--region", "whole", "--layer", "conv2", "--metrics", "--metric-steps", "4",
                 "--class-names", "background,cap,gills")
    assert batch.main(argv) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "[#" in err
    for i in range(3):
        assert (out / f"img{i}.png").is_file() and (out / f"img{i}.json").is_file()
        with np.load(out / f"img{i}.npz") as saved:
            assert {"heatmap_gradcam", "heatmap_integrated-gradients", "layer_map_gradcam", "region",
                    "labels"} <= set(saved.files)
            assert saved["heatmap_gradcam"].shape == (16, 16) and saved["region"].all()
    rows = _rows(out)
    assert len(rows) == 9  # 3 images × (2 methods + the random baseline)
    assert {r["method"] for r in rows} == {"gradcam", "integrated-gradients", "random"}
    assert all(r["status"] == "ok" and r["deletion_auc"] and r["insertion_auc"] for r in rows)
    assert {r["class_name"] for r in rows} <= {"cap", "gills", "background"}
    with Image.open(out / "img0.png") as preview:  # image + 2 overlays side by side, under a caption line
        assert preview.width == 3 * (preview.height - 14)

    calls = []
    real_explain = api.explain

    def counting(*args, **kwargs):
        calls.append(args)
        return real_explain(*args, **kwargs)

    monkeypatch.setattr(api, "explain", counting)
    before = (out / "img1.npz").stat().st_mtime_ns
    assert batch.main(argv) == 0
    assert calls == [] and (out / "img1.npz").stat().st_mtime_ns == before
    assert _rows(out) == rows
    assert batch.main([*argv, "--force"]) == 0
    assert len(calls) == 3
    assert batch.main([*argv[:-2], "--class-names", "background,cap,gills", "--metric-steps", "5"]) == 0
    assert len(calls) == 6  # other settings: recomputed


def test_class_region_skips_images_without_the_class(setup) -> None:
    root, model_path, images = setup
    out = root / "out_class"
    predicted = set()
    model = tiny_seg_model(size=16)
    for path in sorted(images.glob("*.png")):
        image = api.fit_image(model, np.asarray(Image.open(path)))
        predicted.update(np.unique(api.predict(model, image).labels).tolist())
    absent = next((c for c in range(3) if c not in predicted), None)
    target = absent if absent is not None else sorted(predicted)[0]
    code = batch.main(_args(model_path, images, out, "--region", f"class:{target}", "--class-names", "a,b,c"))
    assert code == 0
    rows = _rows(out)
    assert len(rows) == 3
    if absent is not None:
        assert all(r["status"].startswith("skipped") for r in rows)
    assert all(r["region"] == f"class:{target}" for r in rows)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--region", "cls:1"], "--region 'cls:1' is not understood"),
        (["--region", "class:"], "not understood"),
        (["--region", "class:stem", "--class-names", "a,b,c"], "unknown class 'stem'"),
        (["--region", "class:7"], "out of range"),
        (["--method", "lime"], "lime"),
        (["--layer", "nope"], "--layer"),
        (["--class-names", "a,b"], "2 names"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(setup, capsys, extra, words) -> None:
    root, model_path, images = setup
    assert batch.main(_args(model_path, images, root / "out_bad", *extra)) == 2
    assert words in capsys.readouterr().err


def test_model_argument_errors(setup, capsys) -> None:
    root, _, images = setup
    assert batch.main(_args("default", images, root / "o")) == 2
    assert "models.export" in capsys.readouterr().err
    assert batch.main(_args(root / "missing.keras", images, root / "o")) == 2
    assert ".keras" in capsys.readouterr().err
    assert batch.main(_args(root / "tiny.keras", root / "nowhere", root / "o")) == 2
    assert "not a folder" in capsys.readouterr().err


def test_region_parser() -> None:
    assert batch.parse_region("whole", []) == ("whole", None)
    assert batch.parse_region("class:2", []) == ("class", 2)
    assert batch.parse_region("class:cap", ["background", "cap"]) == ("class", 1)
    with pytest.raises(batch.UsageError, match="--class-names"):
        batch.parse_region("class:cap", [])


def test_python_dash_m_exit_code(setup) -> None:
    root, model_path, images = setup
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "explainers.batch", *_args(model_path, images, root / "o2", "--region", "half")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert done.returncode == 2
    assert "--region 'half' is not understood" in done.stderr


def test_a_damaged_image_is_reported_and_the_rest_done(setup) -> None:
    root, model_path, _ = setup
    images = root / "mixed"
    images.mkdir()
    Image.fromarray(random_image(16, seed=5)).save(images / "good.png")
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = root / "out_mixed"
    assert batch.main(_args(model_path, images, out)) == 1
    rows = {r["image"]: r for r in _rows(out)}
    assert rows["good.png"]["status"] == "ok" and rows["good.png"]["method"] == "gradcam"
    assert rows["bad.png"]["status"].startswith("error: ") and "not an image" in rows["bad.png"]["status"]
    assert (out / "good.npz").is_file() and not (out / "bad.npz").exists()


def test_resume_recomputes_for_another_model_in_the_same_folder(setup, monkeypatch, tmp_path) -> None:
    root, model_path, images = setup
    other = tmp_path / "other.keras"
    tiny_seg_model(size=16, seed=1).save(other)
    out = tmp_path / "out"
    options = ["--method", "gradcam", "--region", "whole", "--layer", "conv2"]
    assert batch.main(_args(model_path, images, out, *options)) == 0
    first = np.load(out / "img0.npz")["heatmap_gradcam"]
    calls = []
    real_explain = api.explain
    monkeypatch.setattr(api, "explain", lambda *a, **k: calls.append(a) or real_explain(*a, **k))
    assert batch.main(_args(other, images, out, *options)) == 0
    assert len(calls) == 3, "outputs of a different model must not be reused"
    assert not np.allclose(np.load(out / "img0.npz")["heatmap_gradcam"], first)
