"""The batch command line: outputs, summary rows, resuming, and clear usage errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_batch import cli_args, model_and_images, summary_rows
from helpers_models import random_image, tiny_seg_model
from PIL import Image

from explainers import api, batch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    model_path, images = model_and_images(root, (16, 16, 24))  # the third is resized to the model's input size
    (images / "notes.txt").write_text("not an image")
    return root, model_path, images


_args, _rows = cli_args, summary_rows


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
        assert preview.width == 3 * (preview.height - 14 - batch.PREVIEW_BAR)

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
    other = [*argv[:-2], "--class-names", "background,cap,gills", "--metric-steps", "5"]
    assert batch.main(other) == 2  # other settings: refused, the earlier results stay
    assert len(calls) == 3 and len(_rows(out)) == 9
    assert batch.main([*other, "--force"]) == 0
    assert len(calls) == 6  # other settings, replacing deliberately: recomputed


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
    assert batch.main(_args(other, images, out, *options)) == 2, "another model's run must not replace this one"
    assert calls == []
    assert batch.main(_args(other, images, out, *options, "--force")) == 0
    assert len(calls) == 3, "outputs of a different model must not be reused"
    assert not np.allclose(np.load(out / "img0.npz")["heatmap_gradcam"], first)


# ---- Inputs are never overwritten, names never collide, files are atomic, resume trusts only intact files


def _image_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_overlapping_images_and_out_are_refused(setup, capsys, tmp_path, where) -> None:
    root, model_path, _ = setup
    images = tmp_path / "pics"
    images.mkdir()
    Image.fromarray(random_image(16, seed=1)).save(images / "x.png")
    before = _image_bytes(images)
    if where == "same":
        out = images
    elif where == "inside":
        out = images / "results"
    else:  # the images folder inside the output folder
        out, images = tmp_path, images
    assert batch.main(_args(model_path, images, out)) == 2
    assert "overlaps --images" in capsys.readouterr().err
    assert _image_bytes(tmp_path / "pics") == before
    assert not (tmp_path / "pics" / "results").exists() and not (tmp_path / "pics" / "x.json").exists()


def test_bad_out_folders_are_usage_errors(setup, capsys, tmp_path) -> None:
    root, model_path, images = setup
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    for out, words in ((a_file / "sub", "cannot be created"), (a_file, "is a file"),
                       (Path("/proc/segexplain-out"), "cannot be created")):
        assert batch.main(_args(model_path, images, out)) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


def test_bad_out_from_the_command_line_exits_2_without_traceback(setup, tmp_path) -> None:
    _, model_path, images = setup
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "explainers.batch", *_args(model_path, images, blocker / "o")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "cannot be created" in done.stderr


def test_output_names_are_unique_safe_short_and_stable() -> None:
    files = [Path(n) for n in ("a.b.png", "a.b.jpg", "a_b_png.gif", "plain.png", "x" * 251 + ".png",
                               "we/ird.png", "spa ce.png", "run.png", "summary.png")]
    names = batch.output_names(files)
    assert len(set(names.values())) == len(files)
    assert names[Path("plain.png")] == "plain" and names[Path("a_b_png.gif")] == "a_b_png"
    assert names[Path("a.b.png")] != names[Path("a.b.jpg")] and "a_b_png" in names[Path("a.b.png")]
    assert all(len(n.encode()) <= batch.MAX_NAME_BYTES and "/" not in n and " " not in n for n in names.values())
    assert batch.output_names(files) == names  # deterministic
    more = batch.output_names([*files, Path("new.png")])
    assert all(more[p] == names[p] for p in files), "adding an image must not rename the others"


def test_colliding_and_long_names_are_all_explained(setup, tmp_path) -> None:
    _, model_path, _ = setup
    images = tmp_path / "pics"
    images.mkdir()
    long_stem = "l" * 251
    for i, name in enumerate(("a.b.png", "a.b.jpg", "a_b_png.gif", f"{long_stem}.png")):
        Image.fromarray(random_image(16, seed=10 + i)).save(images / name)
    out = tmp_path / "out"
    assert batch.main(_args(model_path, images, out, "--method", "gradcam", "--method", "gradcam++")) == 0
    rows = _rows(out)
    assert sorted(r["image"] for r in rows) == sorted(2 * ["a.b.png", "a.b.jpg", "a_b_png.gif", f"{long_stem}.png"])
    assert len({(r["image"], r["method"]) for r in rows}) == len(rows) == 8
    assert all(r["status"] == "ok" for r in rows)
    outputs = {r["image"]: r["output"] for r in rows}
    assert len(set(outputs.values())) == 4
    for image, name in outputs.items():
        with np.load(out / f"{name}.npz") as saved:  # each image's own maps, under the gradcam++ → gradcampp key
            assert {"heatmap_gradcam", "heatmap_gradcampp", "image"} <= set(saved.files)
            fitted = api.fit_image(tiny_seg_model(size=16), np.asarray(Image.open(images / image).convert("RGB")))
            np.testing.assert_array_equal(saved["image"], fitted)
    assert not list(out.glob(".*.tmp")), "no temporary file stays behind"


def test_resume_redoes_truncated_or_damaged_outputs_only(setup, monkeypatch, tmp_path) -> None:
    _, model_path, images = setup
    out = tmp_path / "out"
    argv = _args(model_path, images, out, "--method", "gradcam")
    assert batch.main(argv) == 0
    first = _rows(out)
    npz = out / "img1.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])  # a killed writer's leftover
    (out / "img2.json").write_text('{"image": "img2.png", "sta')  # a half-written manifest entry
    calls = []
    real_explain = api.explain
    monkeypatch.setattr(api, "explain", lambda *a, **k: calls.append(a) or real_explain(*a, **k))
    keep = (out / "img0.npz").stat().st_mtime_ns
    assert batch.main(argv) == 0
    assert len(calls) == 2 and (out / "img0.npz").stat().st_mtime_ns == keep
    with np.load(npz) as saved:
        assert saved["heatmap_gradcam"].shape == (16, 16)
    assert [(r["image"], r["method"], r["status"]) for r in _rows(out)] == [
        (r["image"], r["method"], r["status"]) for r in first]
    (out / "img0.png").write_bytes(b"not the preview")  # same size check fails, digest fails
    calls.clear()
    assert batch.main(argv) == 0
    assert len(calls) == 1


def test_ground_truth_and_run_record(setup, tmp_path) -> None:
    _, model_path, images = setup
    labels = tmp_path / "labels"
    labels.mkdir()
    truth = (np.arange(16 * 16).reshape(16, 16) % 3).astype(np.uint8)
    Image.fromarray(truth, mode="L").save(labels / "img0.png")
    Image.fromarray(np.full((16, 16), 9, np.uint8), mode="L").save(labels / "img1.png")  # class 9: not this model's
    out = tmp_path / "out"
    assert batch.main(_args(model_path, images, out, "--labels", str(labels), "--class-names", "bg,cap,gills")) == 0
    with np.load(out / "img0.npz") as saved:
        np.testing.assert_array_equal(saved["truth"], truth)
    with np.load(out / "img1.npz") as saved:
        assert "truth" not in saved.files
    assert "class 9" in json.loads((out / "img1.json").read_text())["truth_note"]
    info = json.loads((out / batch.RUN_FILE).read_text())
    assert info["class_names"] == ["bg", "cap", "gills"] and info["outputs"]["img2.png"] == "img2"
    assert info["labels"] == str(labels.resolve())


def test_killed_run_resumes_to_the_same_summary(setup, tmp_path) -> None:
    import signal
    import time

    _, model_path, _ = setup
    images = tmp_path / "many"
    images.mkdir()
    for i in range(40):
        Image.fromarray(random_image(16, seed=100 + i)).save(images / f"s{i:02d}.png")
    options = ["--method", "gradcam", "--method", "integrated-gradients", "--metrics", "--metric-steps", "4"]
    full = tmp_path / "full"
    assert batch.main(_args(model_path, images, full, *options)) == 0
    out = tmp_path / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "explainers.batch", *_args(model_path, images, out, *options)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("s*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("s*.json")}
    assert 3 <= len(done_before) < 40, "the run must be killed midway"
    assert batch.main(_args(model_path, images, out, *options)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("s*.json") if p.name in done_before} == done_before

    def comparable(folder):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(folder)]

    assert comparable(out) == comparable(full)
    assert len(comparable(out)) == 40 * 3
