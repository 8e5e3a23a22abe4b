"""Issue 29: batch runs that never lose or mix work, and never read a hostile file whole.

Covers: huge files refused before reading (3), a free-size model checked at the size it runs at and
one image's ResourceExhausted not ending the run (2), the output-folder lock and the run identity (5),
a full disk (6), spreadsheet formulas in summary.csv (8), and the closing line naming skipped files."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers_batch import cli_args, model_and_images, summary_rows
from helpers_models import random_image
from PIL import Image

import explainers
from explainers import api, batch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    model_path, images = model_and_images(root, (16, 16, 16))
    return root, model_path, images


_args, _rows = cli_args, summary_rows


# ---- (3) files are checked before they are read


def test_a_3_gb_sparse_file_is_refused_without_reading_it(tmp_path) -> None:
    big = tmp_path / "huge.tif"
    with big.open("wb") as handle:
        handle.truncate(3 * 10**9)  # sparse: no disk space, but read_bytes() would allocate 3 GB
    item = {"image": big.name, "output": "huge", "path": str(big), "labels_path": None}
    tracemalloc.start()
    try:
        loaded = batch.read_item(item)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB allocated to refuse a file"
    assert loaded["data"] == b"" and "3.00 GB" in loaded["read_error"]


def test_a_header_declaring_too_many_pixels_is_refused_from_the_header(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGEXPLAIN_MAX_IMAGE_PIXELS", "1000")
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path)
    loaded = batch.read_item({"image": path.name, "output": "wide", "path": str(path), "labels_path": None})
    assert loaded["data"] == b"" and "0.001 MP limit" in loaded["read_error"]


# ---- (2) free-size models are checked at the size they run at; one image's memory error is one error


def _padding_model(path: Path, pad: int = 100) -> Path:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.ZeroPadding2D(pad, name="pad")(x)
    keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="head")(x)).save(path)
    return path


def test_a_free_size_model_is_refused_at_the_size_it_would_run_at(setup, tmp_path, monkeypatch, capsys) -> None:
    _, _, images = setup
    monkeypatch.setenv("SEGEXPLAIN_MAX_ACTIVATION_ELEMENTS", "170000")  # (16 + 200)² × 4 = 186,624 values
    model_path = _padding_model(tmp_path / "pad.keras")
    model = keras.saving.load_model(model_path)
    with pytest.raises(explainers.ExplainerError, match="layer 'pad' would hold 0.2 M values"):
        explainers.explain(model, random_image(16), np.ones((16, 16), bool), 0, "conv", methods=("gradcam",))
    with pytest.raises(explainers.ExplainerError, match="layer 'pad'"):
        explainers.predict(model, random_image(16))
    assert explainers.predict(model, random_image(4)).labels.shape == (4, 4)  # 204² × 4 = 166,464 fits
    out = tmp_path / "out"
    assert batch.main(_args(model_path, images, out, "--layer", "conv")) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    rows = _rows(out)
    assert len(rows) == 3 and all("layer 'pad' would hold" in r["status"] for r in rows)


def test_one_images_resource_exhausted_does_not_end_the_run(setup, tmp_path, monkeypatch) -> None:
    import tensorflow as tf

    _, model_path, images = setup
    real = api.explain
    seen = []

    def exhausted_once(model, image, *args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[9,9,9]")
        return real(model, image, *args, **kwargs)

    monkeypatch.setattr(api, "explain", exhausted_once)
    out = tmp_path / "out"
    assert batch.main(_args(model_path, images, out, "--layer", "conv2")) == 1
    rows = {r["image"]: r for r in _rows(out)}
    assert [r["status"] for r in rows.values()].count("ok") == 2
    assert rows["img1.png"]["status"] == f"error: {batch.OUT_OF_MEMORY}"
    assert "OOM" not in rows["img1.png"]["status"] and "\n" not in rows["img1.png"]["status"]


# ---- (5) one run per folder, one identity per folder


def test_a_second_run_on_the_same_folder_at_the_same_time_is_refused(setup, tmp_path, capsys) -> None:
    _, model_path, _ = setup
    images = tmp_path / "many"
    images.mkdir()
    for i in range(30):
        Image.fromarray(random_image(16, seed=300 + i)).save(images / f"s{i:02d}.png")
    out = tmp_path / "out"
    first = ["--method", "gradcam", "--method", "integrated-gradients", "--layer", "conv2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "explainers.batch", *_args(model_path, images, out, *first)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(out.glob("s*.json")) and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the first run must still be going"
        second = ["--method", "gradcam++", "--layer", "conv2"]
        assert batch.main(_args(model_path, images, out, *second)) == 2
        err = capsys.readouterr().err
        assert "is being written by another batch run (pid " in err
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rows = _rows(out)
    assert len(rows) == 60 and {r["method"] for r in rows} == {"gradcam", "integrated-gradients"}
    assert json.loads((out / batch.RUN_FILE).read_text())["methods"] == ["gradcam", "integrated-gradients"]
    # after the first run ended, a run with other settings says what differs and changes nothing
    before = (out / batch.RUN_FILE).read_bytes()
    assert batch.main(_args(model_path, images, out, "--method", "gradcam++", "--layer", "conv2")) == 2
    assert "(--method differs)" in capsys.readouterr().err
    assert (out / batch.RUN_FILE).read_bytes() == before and len(_rows(out)) == 60


# ---- (6) a full disk stops the run with one sentence and keeps what was written


def test_a_full_disk_stops_with_one_sentence_and_keeps_the_finished_images(setup, tmp_path, monkeypatch,
                                                                             capsys) -> None:
    _, model_path, images = setup
    out = tmp_path / "out"
    argv = _args(model_path, images, out, "--layer", "conv2")
    real_write = batch.atomic_write

    def disk_fills_at_img1(path: Path, data: bytes) -> None:
        if path.name.startswith("img1") or path.name == batch.SUMMARY_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(batch, "atomic_write", disk_fills_at_img1)
    assert batch.main(argv) == batch.EXIT_STOPPED
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Traceback" not in err and "No space left on device" in err and "run the same command again" in err
    assert err.count(". ") == 0  # one sentence
    settings = json.loads((out / "img0.json").read_text())["settings"]
    assert batch.done_record(out, "img0", settings, image="img0.png") is not None, "finished image kept intact"
    assert not (out / "img1.json").exists()
    monkeypatch.setattr(batch, "atomic_write", real_write)
    before = (out / "img0.npz").stat().st_mtime_ns
    assert batch.main(argv) == 0  # space again: resumes
    assert (out / "img0.npz").stat().st_mtime_ns == before and len(_rows(out)) == 3


# ---- (8) spreadsheet formulas in summary.csv; issue 32: the closing line names skipped files


def test_formula_like_names_are_neutralised_in_the_summary(setup, tmp_path, capsys) -> None:
    _, model_path, _ = setup
    images = tmp_path / "formulas"
    images.mkdir()
    names = ["=HYPERLINK(1,2).png", "+cmd.png", "-2+3.png", "@SUM(1).png", "plain.png"]
    for i, name in enumerate(names):
        Image.fromarray(random_image(16, seed=i)).save(images / name)
    (images / "readme.txt").write_text("not an image")
    (images / "notes.docx").write_bytes(b"PK")
    out = tmp_path / "out"
    assert batch.main(_args(model_path, images, out, "--layer", "conv2", "--method", "gradcam", "--metrics",
                            "--metric-steps", "3")) == 0
    stdout = capsys.readouterr().out
    assert "not images, left out: notes.docx, readme.txt" in stdout
    assert json.loads((out / batch.RUN_FILE).read_text())["skipped_files"] == ["notes.docx", "readme.txt"]
    with (out / "summary.csv").open(newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert {"'=HYPERLINK(1,2).png", "'+cmd.png", "'-2+3.png", "'@SUM(1).png", "plain.png"} <= set(cells)
    numbers = [float(r["insertion_minus_deletion"]) for r in _rows(out) if r["insertion_minus_deletion"]]
    assert numbers, "numeric columns stay numbers"


# ---- issue 32: batch previews use the page's colour map and carry a colour bar


def test_previews_use_the_pages_colour_map_with_a_colour_bar() -> None:
    import plotly.colors

    from dashboard import figures
    from explainers import colormap

    scale = plotly.colors.get_colorscale(figures.COLORSCALE)
    sampled = plotly.colors.sample_colorscale(scale, list(np.linspace(0, 1, 256)), colortype="tuple")
    plotly_table = np.clip(np.asarray(sampled) * 255 + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(colormap.lookup_table(), plotly_table)
    assert figures.lookup_table() is colormap.lookup_table()
    image = random_image(16)
    heat = np.tile(np.linspace(0, 1, 16), (16, 1))
    sheet = np.asarray(batch.preview(image, np.ones((16, 16), bool), {"gradcam": heat}, {}))
    scale_px = 10  # 16 px tiles are enlarged to 160 px
    tile = sheet[14:14 + 16 * scale_px:scale_px, 16 * scale_px::scale_px]
    np.testing.assert_array_equal(tile, figures.heat_over_image(image, heat))
    bar = sheet[14 + 16 * scale_px + 6, 14:-14]
    assert (np.abs(bar[0].astype(int) - colormap.lookup_table()[0]) <= 1).all()
    assert (np.abs(bar[-1].astype(int) - colormap.lookup_table()[255]) <= 1).all()
