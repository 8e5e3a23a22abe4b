"""Trust numbers over a data set: the batch CLI's --metrics columns and dataset_analysis' trust table,
checked against NumPy computations on the saved maps written here."""

from __future__ import annotations

import csv

import numpy as np
from helpers_models import random_image, tiny_seg_model
from PIL import Image

from explainers import batch, dataset_analysis


def _rows(out):
    with (out / "summary.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_metrics_add_localisation_and_randomisation_per_method_and_the_dataset_table(tmp_path) -> None:
    model_path = tmp_path / "tiny.keras"
    tiny_seg_model(size=16).save(model_path)
    images, labels, out = tmp_path / "images", tmp_path / "labels", tmp_path / "out"
    images.mkdir()
    labels.mkdir()
    for i in range(3):
        Image.fromarray(random_image(16, seed=i)).save(images / f"img{i}.png")
        truth = np.zeros((16, 16), np.uint8)
        truth[2 + i:9 + i, 3:12] = 1
        Image.fromarray(truth, mode="L").save(labels / f"img{i}.png")
    argv = ["--model", str(model_path), "--images", str(images), "--out", str(out), "--labels", str(labels),
            "--method", "gradcam", "--method", "hirescam", "--region", "whole", "--class", "1", "--layer", "conv2",
            "--metrics", "--metric-steps", "4", "--randomization-steps", "2", "--class-names", "bg,cap,gills"]
    assert batch.main(argv) == 0
    rows = _rows(out)
    assert {r["method"] for r in rows} == {"gradcam", "hirescam", "random"}
    for row in rows:
        name = row["output"]
        with np.load(out / f"{name}.npz") as saved:
            target = saved["truth"] == 1
            if row["method"] == "random":
                assert 0.0 <= float(row["mass_accuracy"]) <= 1.0
            else:
                heat = np.maximum(saved[f"heatmap_{row['method']}"].astype(np.float64), 0)
                expected = heat[target].sum() / heat.sum() if heat.sum() else 0.0
                assert abs(float(row["mass_accuracy"]) - expected) < 1e-9
                peak = heat == heat.max()
                assert abs(float(row["pointing_game"]) - (peak & target).sum() / peak.sum()) < 1e-9
        for column in ("randomization_rho_min", "randomization_rho_last", "randomization_ssim_last"):
            assert -1.0 <= float(row[column]) <= 1.0
        assert float(row["randomization_rho_min"]) <= float(row["randomization_rho_last"]) + 1e-12

    table = {r["method"]: r for r in dataset_analysis.analyse([out])["tables"]["trust"]}
    assert list(table) == ["gradcam", "hirescam", "random"]
    for method, entry in table.items():
        mine = [r for r in rows if r["method"] == method]
        assert entry["images"] == 3
        for column in dataset_analysis.TRUST_COLUMNS:
            assert abs(entry[column] - np.mean([float(r[column]) for r in mine])) < 1e-9
        rhos = [float(r["randomization_rho_min"]) for r in mine]
        assert entry["barely_changes_share"] == np.mean([r >= 0.5 for r in rhos])
    written = dataset_analysis.write_tables(dataset_analysis.analyse([out]), tmp_path / "analysis")
    assert tmp_path / "analysis" / "trust.csv" in written
