"""Dataset analysis against numbers worked out by hand on a two-image results folder built in the test."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from explainers import batch
from explainers import dataset_analysis as da

NAMES = ["bg", "cap", "stipe"]


def _write(folder: Path) -> Path:
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"class_names": NAMES, "methods": ["gradcam", "gradcam++"],
                                                 "outputs": {"a.png": "a", "b.png": "b", "c.png": "c"}}))
    np.savez(folder / "a.npz", labels=np.array([[0, 1, 1], [2, 2, 0]], np.int16),
             truth=np.array([[1, 1, 1], [0, 0, 0]], np.int16),
             heatmap_gradcam=np.array([[1, 2, 0], [0, 1, 0]], np.float32),
             heatmap_gradcampp=np.array([[0, 1, 1], [0, 0, 0]], np.float32))
    np.savez(folder / "b.npz", labels=np.ones((2, 3), np.int16),
             heatmap_gradcam=np.array([[0, 0, 0], [0, 0, 3]], np.float32),
             heatmap_gradcampp=np.zeros((2, 3), np.float32))
    for name in ("a", "b"):
        (folder / f"{name}.json").write_text(json.dumps({"image": f"{name}.png", "output": name, "status": "ok",
                                                         "class_index": 1}))
    (folder / "c.json").write_text(json.dumps({"image": "c.png", "output": "c", "status": "skipped: no cap"}))
    with (folder / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "status", "method", "deletion_auc", "insertion_auc"])
        writer.writeheader()
        for image, method, d, i in (("a.png", "gradcam", .2, .8), ("a.png", "random", .5, .4),
                                    ("b.png", "gradcam", .6, .3), ("b.png", "random", .5, .5),
                                    ("a.png", "gradcam++", .1, .9)):
            writer.writerow({"image": image, "status": "ok", "method": method, "deletion_auc": d, "insertion_auc": i})
        writer.writerow({"image": "c.png", "status": "skipped: no cap"})
    return folder


@pytest.fixture
def result(tmp_path):
    return da.analyse([_write(tmp_path / "run")])


def test_class_shares_by_hand() -> None:
    labels = np.array([[0, 1, 1], [2, 2, 0]])
    np.testing.assert_allclose(da.class_shares(np.array([[1, 2, 0], [0, 1, 0]]), labels, 3), [.25, .5, .25])
    np.testing.assert_allclose(da.class_shares(np.array([[-5, 2, 0], [0, 2, 0]]), labels, 3), [0, .5, .5])
    assert np.isnan(da.class_shares(np.zeros((2, 3)), labels, 3)).all()


def test_context_matrix_by_hand(result) -> None:
    rows = result["tables"]["context_matrix"]
    grad = da.matrix(rows, "gradcam", "predicted", 3)
    np.testing.assert_allclose(grad[1], [0.125, 0.75, 0.125])  # mean of (¼, ½, ¼) and (0, 1, 0)
    assert np.isnan(grad[0]).all() and np.isnan(grad[2]).all()  # no image explained bg or stipe
    np.testing.assert_allclose(da.matrix(rows, "gradcam++", "predicted", 3)[1], [0, 1, 0])  # b's zero map left out
    np.testing.assert_allclose(da.matrix(rows, "gradcam", "labelled", 3)[1], [0.25, 0.75, 0])  # only a has truth
    counts = {(r["method"], r["source"]): r["images"] for r in rows if r["class"] == 1}
    assert counts == {("gradcam", "predicted"): 2, ("gradcam++", "predicted"): 1, ("gradcam", "labelled"): 1,
                      ("gradcam++", "labelled"): 1}
    top = da.top_images(result["tables"]["image_shares"], "gradcam", "predicted", 1, 1)
    assert [r["image"] for r in top] == ["b.png", "a.png"]


def test_disagreement_and_outside_by_hand(result) -> None:
    first, second = result["tables"]["disagreement"]
    assert first["image"] == "a.png"
    assert first["mean_correlation"] == pytest.approx(1 / math.sqrt(10))  # worked out on paper
    assert first["disagreement"] == pytest.approx(1 - 1 / math.sqrt(10))
    assert second["image"] == "b.png" and math.isnan(second["disagreement"])  # a constant map has no correlation
    outside = {(r["image"], r["method"]): (r["outside_share"], r["mostly_outside"]) for r in result["tables"]["outside"]}
    assert outside == {("a.png", "gradcam"): (0.5, False), ("a.png", "gradcam++"): (0.0, False),
                       ("b.png", "gradcam"): (0.0, False)}


def test_faithfulness_against_random_by_hand(result) -> None:
    table = {r["method"]: r for r in result["tables"]["faithfulness"]}
    grad = table["gradcam"]
    assert grad["images"] == 2
    assert grad["deletion_mean"] == pytest.approx(0.4) and grad["insertion_median"] == pytest.approx(0.55)
    assert grad["beats_random_deletion"] == 0.5 and grad["beats_random_insertion"] == 0.5
    assert grad["deletion_minus_random"] == pytest.approx(-0.1)
    assert grad["insertion_minus_random"] == pytest.approx(0.1)
    assert table["gradcam++"]["beats_random_deletion"] == 1.0
    assert "beats_random_deletion" not in table["random"]


def test_written_tables_read_back(result, tmp_path) -> None:
    paths = da.write_tables(result, tmp_path / "analysis")
    assert {p.name for p in paths} >= {f"{t}.csv" for t in da.TABLES}
    rows = da.read_table(tmp_path / "analysis", "context_matrix")
    np.testing.assert_allclose(da.matrix(rows, "gradcam", "predicted", 3)[1], [0.125, 0.75, 0.125])
    import importlib.util

    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow.parquet as parquet

        assert parquet.read_table(tmp_path / "analysis" / "context_matrix.parquet").num_rows == len(rows)


def test_not_a_results_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match="run.json"):
        da.read_run(tmp_path)


def test_a_real_batch_run_gives_rows_that_sum_to_one(tmp_path) -> None:
    from helpers_models import random_image, tiny_seg_model
    from PIL import Image

    model_path = tmp_path / "tiny.keras"
    tiny_seg_model(size=16).save(model_path)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(4):
        Image.fromarray(random_image(16, seed=i)).save(images / f"i{i}.png")
        Image.fromarray((np.arange(256).reshape(16, 16) // 86).astype(np.uint8), mode="L").save(labels / f"i{i}.png")
    out = tmp_path / "out"
    assert batch.main(["--model", str(model_path), "--images", str(images), "--out", str(out), "--labels", str(labels),
                       "--method", "gradcam", "--method", "layercam", "--class-names", ",".join(NAMES)]) == 0
    assert da.main([str(out)]) == 0
    rows = da.read_table(out / "analysis", "context_matrix")
    for method in ("gradcam", "layercam"):
        for source in da.SOURCES:
            m = da.matrix(rows, method, source, 3)
            explained = ~np.isnan(m).all(axis=1)
            assert explained.any()
            np.testing.assert_allclose(np.nansum(m[explained], axis=1), 1.0, atol=1e-9)
    shares = da.read_table(out / "analysis", "image_shares")
    one = next(r for r in shares if r["image"] == "i0.png" and r["method"] == "gradcam" and r["source"] == "labelled"
               and r["class"] == 0)
    with np.load(out / "i0.npz") as saved:  # independent recomputation of one cell
        heat, truth = saved["heatmap_gradcam"].astype(np.float64), saved["truth"]
    assert one["share"] == pytest.approx(heat[truth == 0].sum() / heat.sum())
