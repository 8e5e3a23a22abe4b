"""Issue 31 item 7: `--labels` records each image's IoU per class (its .json and summary.csv), with void
(255) pixels ignored, classes in neither map left empty, and a one-sentence note for a label file of the
wrong size or with a class the model lacks (the run goes on)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers_batch import cli_args, model_and_images, summary_rows
from PIL import Image

from explainers import batch

NAMES = ("bg", "=cap", "gills")  # a name a spreadsheet would read as a formula


def _independent_iou(truth: np.ndarray, predicted: np.ndarray) -> list[float]:
    keep = truth != 255
    out = []
    for c in range(len(NAMES)):
        t, p = (truth == c) & keep, (predicted == c) & keep
        union = (t | p).sum()
        out.append((t & p).sum() / union if union else math.nan)
    return out


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    model_path, images = model_and_images(root, (16, 16, 16, 16, 16))  # img4 has no label file
    labels = root / "labels"
    labels.mkdir()
    truth = (np.arange(256).reshape(16, 16) // 86).astype(np.uint8)  # classes 0, 1, 2 in bands
    truth[:3] = 255  # void rows
    palette = Image.fromarray(truth, mode="P")
    palette.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [255, 255, 255] * 253)
    palette.save(labels / "img0.png")  # a palette PNG: the index is the class
    only_bg = np.zeros((16, 16), np.uint8)
    Image.fromarray(only_bg, mode="L").save(labels / "img1.png")  # an index PNG with one class
    Image.fromarray(np.zeros((12, 16), np.uint8), mode="L").save(labels / "img2.png")  # wrong size
    Image.fromarray(np.full((16, 16), 7, np.uint8), mode="L").save(labels / "img3.png")  # class 7: not the model's
    out = root / "out"
    code = batch.main(cli_args(model_path, images, out, "--labels", str(labels), "--class-names", ",".join(NAMES)))
    assert code == 0
    return out, {"img0": truth, "img1": only_bg}


def test_records_hold_the_iou_of_each_class(labelled_run) -> None:
    out, truths = labelled_run
    for name, truth in truths.items():
        record = json.loads((out / f"{name}.json").read_text())
        with np.load(out / f"{name}.npz") as saved:
            predicted = saved["labels"]
            np.testing.assert_array_equal(saved["truth"], truth)
        expected = _independent_iou(truth, predicted)
        got = [record["class_iou"][f"iou_{n}"] for n in NAMES]
        for e, g in zip(expected, got, strict=True):
            assert (g is None) if math.isnan(e) else g == pytest.approx(e, abs=1e-6)
        defined = [e for e in expected if not math.isnan(e)]
        assert record["mean_iou"] == pytest.approx(np.mean(defined), abs=1e-6)
    record = json.loads((out / "img1.json").read_text())
    with np.load(out / "img1.npz") as saved:
        if not (saved["labels"] == 1).any():  # class 1 in neither map: undefined, not 0 or 1
            assert record["class_iou"]["iou_=cap"] is None


def test_bad_label_files_get_one_sentence_and_the_run_goes_on(labelled_run) -> None:
    out, _ = labelled_run
    size = json.loads((out / "img2.json").read_text())
    assert size["status"] == "ok" and "class_iou" not in size
    assert "16×12 pixels but the image is 16×16" in size["truth_note"]
    values = json.loads((out / "img3.json").read_text())
    assert "class 7" in values["truth_note"] and "3 classes" in values["truth_note"]
    missing = json.loads((out / "img4.json").read_text())
    assert missing["status"] == "ok" and missing["truth_note"] == "no ground truth: --labels holds no img4.png."


def test_summary_has_the_iou_columns(labelled_run) -> None:
    out, _ = labelled_run
    header = (out / batch.SUMMARY_FILE).read_text().splitlines()[0].split(",")
    assert header[-6:] == ["mean_iou", "iou_bg", "iou_=cap", "iou_gills", "truth_note", "note"]
    rows = {r["image"]: r for r in summary_rows(out)}
    for name in ("img0", "img1"):
        record = json.loads((out / f"{name}.json").read_text())
        row = rows[f"{name}.png"]
        assert float(row["mean_iou"]) == pytest.approx(record["mean_iou"])
        for n in NAMES:
            value = record["class_iou"][f"iou_{n}"]
            assert row[f"iou_{n}"] == "" if value is None else float(row[f"iou_{n}"]) == pytest.approx(value)
    assert rows["img2.png"]["mean_iou"] == "" and "16×12" in rows["img2.png"]["truth_note"]


def test_an_image_scored_before_the_iou_existed_is_redone_on_resume(tmp_path) -> None:
    model_path, images = model_and_images(tmp_path, (16,))
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").save(labels / "img0.png")
    argv = cli_args(model_path, images, tmp_path / "out", "--labels", str(labels), "--class-names", ",".join(NAMES))
    assert batch.main(argv) == 0
    path = tmp_path / "out" / "img0.json"
    record = json.loads(path.read_text())
    old = {k: v for k, v in record.items() if k not in ("mean_iou", "class_iou")}
    old["settings"] = {k: v for k, v in record["settings"].items() if k != "label_scores"}  # as an older run wrote it
    path.write_text(json.dumps(old))
    run_file = tmp_path / "out" / batch.RUN_FILE
    info = json.loads(run_file.read_text())
    info["settings"].pop("label_scores")
    run_file.write_text(json.dumps(info))
    assert batch.main(argv) == 0  # same command: no "other settings" refusal, the image is scored
    assert json.loads(path.read_text())["class_iou"] == record["class_iou"]
