"""The batch CLI on PyTorch files: an ONNX export explained with --mean/--std gives the original module's
maps; a pickle is refused with exit code 2 and its payload never runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hostile_torch_files as ht
import numpy as np
from PIL import Image

import explainers

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explainers.batch", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=400)


def test_cli_explains_an_onnx_file_like_the_original_module(tmp_path):
    net = ht.small_seg()
    model_path = ht.export_onnx(net, tmp_path / "net.onnx")
    images = tmp_path / "images"
    images.mkdir()
    image = (np.random.default_rng(3).random((48, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(images / "a.png")
    out = tmp_path / "out"
    result = _run("--model", str(model_path), "--images", str(images), "--method", "gradcam", "--layer",
                  "backbone.4", "--region", "class:1", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
                  "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("mean (0.500, 0.500, 0.500) from your setting") == 1  # said once, not per load
    saved = np.load(out / "a.npz")
    original = explainers.from_torch(net, input_size=(48, 64), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    labels = explainers.predict(original, image).labels
    expected = explainers.explain(original, image, labels == 1, 1, "backbone.4", methods=("gradcam",))
    assert np.abs(saved["heatmap_gradcam"] - expected["gradcam"].heatmap).max() < 1e-4


def test_cli_refuses_a_pickle_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    model_path = ht.pickle_pt(tmp_path, marker)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "a.png")
    result = _run("--model", str(model_path), "--images", str(images), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "pickle" in result.stderr and "torch.onnx.export" in result.stderr
    assert not marker.exists()
