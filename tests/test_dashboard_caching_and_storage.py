"""Dashboard review fixes: exact cache keys for large regions, upload storage errors and clean-up,
export parameters read from the library, the export cache."""

from __future__ import annotations

import inspect
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import explainers
from dashboard import comparison, compute, export, figures, sidebar
from explainers import api
from explainers.methods import methods_input, scorecam

BIG = 1024  # 1024 × 1024 = 1,048,576 elements: Streamlit would hash such an array from a sample only


@dataclass
class FakeExplanation:
    heatmap: np.ndarray
    seconds: float = 0.5
    layer: str | None = "final_conv"
    note: str = ""
    layer_map: np.ndarray | None = None
    options: object = None


def _two_big_regions() -> tuple[np.ndarray, np.ndarray]:
    one = np.zeros((BIG, BIG), dtype=bool)
    one[100:900, 100:900] = True
    two = one.copy()
    two[500, 500] = two[501, 501] = two[502, 502] = False  # three pixels apart
    return one, two


def _request(region: np.ndarray, **changes) -> comparison.Request:
    fields = dict(model=None, model_key=f"test-{uuid.uuid4().hex}", image=np.zeros((8, 8, 3), np.uint8),
                  image_key="img", region=region, class_index=1, layer="final_conv", methods=("gradcam",),
                  target="logits", options={"xrai": {"steps": 4, "algorithm": "fast"}})
    return comparison.Request(**{**fields, **changes})


# ---------------------------------------------------------------------------------------------
# 1 · cache keys of the CAM maps and the sweep


def test_cam_maps_and_sweep_tell_apart_large_regions_a_few_pixels_apart(monkeypatch) -> None:
    one, two = _two_big_regions()
    assert compute.digest(one) != compute.digest(two)
    calls = []

    def fake_explain(model, image, region, class_index, layer, methods, target, options):
        calls.append(int(region.sum()))
        return {m: FakeExplanation(np.full((2, 2), region.sum(), np.float64)) for m in methods}

    def fake_sweep(model, image, region, class_index, target):
        calls.append(int(region.sum()))
        return {"final_conv": {"gradcam": FakeExplanation(region * float(region.sum()))}}

    monkeypatch.setattr(explainers, "explain", fake_explain)
    monkeypatch.setattr(explainers, "layer_sweep", fake_sweep)
    model_key = f"test-{uuid.uuid4().hex}"

    def cams(region: np.ndarray) -> list[compute.MapRequest]:
        return [_request(region, model_key=model_key).map_request("gradcam")]

    maps = [compute.cam_maps(cams(r), None)["gradcam"].heatmap[0, 0] for r in (one, two)]
    assert maps == [one.sum(), two.sum()]
    layers = [compute.sweep(model_key, "img", compute.digest(r), 1, "logits", np.zeros((8, 8, 3)), r, None)
              for r in (one, two)]
    assert [s.small["gradcam"]["final_conv"].max() for s in layers] == pytest.approx([one.sum(), two.sum()], abs=0.5)
    # and the same region again is a cache hit
    compute.cam_maps(cams(one.copy()), None)
    assert len(calls) == 4


def test_no_cached_compute_function_hashes_a_region_array() -> None:
    """Streamlit hashes every argument not named `_...`: arrays travel hash-excluded, next to the key that
    names them (the sweep's `region_key`; the CAMs' `MapRequest.key()`s, which hold the region's digest)."""
    parameters = inspect.signature(compute.sweep).parameters
    assert "region" not in parameters and "_region" in parameters and "region_key" in parameters
    assert list(inspect.signature(compute._cam_maps).parameters) == ["keys", "_requests", "_model"]
    request = _request(np.eye(4, dtype=bool)).map_request("gradcam")
    assert request.region_key == compute.digest(np.eye(4, dtype=bool)) and request.region_key in request.key()


def test_one_request_is_the_identity_of_a_map() -> None:
    """The CAMs' cache, a slow map's job and store, and the other stores key on `MapRequest`: every input of the
    map changes its key; the layer does not for a layer-free method."""
    region = np.eye(8, dtype=bool)
    base = _request(region, methods=("gradcam", "xrai"))
    key = base.map_request("gradcam").key()
    assert key == ("map", base.model_key, "img", compute.digest(region), 1, "logits", "gradcam", "final_conv")
    assert comparison.slow_key(base, "xrai") == base.map_request("xrai").key()
    assert comparison.settings_key(base, "xrai") == ("xrai", None, ("algorithm", "fast"), ("steps", 4))
    changes = {"model_key": "other", "image_key": "other", "region": ~region, "class_index": 2, "layer": "conv2",
               "target": "probabilities", "options": {"gradcam": {"x": 1}}}
    for name, value in changes.items():
        assert comparison.Request(**{**base.__dict__, name: value}).map_request("gradcam").key() != key, name
    assert comparison.Request(**{**base.__dict__, "layer": "conv2"}).map_request("xrai").key() == \
        base.map_request("xrai").key()  # layer-free


def test_region_key_is_the_digest_and_is_computed_once_per_region(monkeypatch) -> None:
    from dashboard import map_request

    one, two = _two_big_regions()
    request, other = _request(one), _request(two)
    counted = []
    digest = map_request.digest
    monkeypatch.setattr(map_request, "digest", lambda data: counted.append(1) or digest(data))
    keys = {comparison.slow_key(request, m) for m in ("xrai", "scorecam", "xrai")}
    assert len(keys) == 2 and len(counted) == 1
    assert comparison.region_key(request) == digest(one)
    assert comparison.region_key(other) == digest(two) != comparison.region_key(request)
    # a copy of a Request (as the tests build them) still works: the memo is not in `__dict__`
    assert comparison.Request(**{**request.__dict__, "layer": "aggregation"}).layer == "aggregation"


# ---------------------------------------------------------------------------------------------
# 2 · uploaded models on disk


def _left_behind(base: Path) -> list[Path]:
    """What an upload left under `base` besides the process's own (empty) upload folder, which stays until
    the process exits: another session may be storing into it (`uploads.forget`)."""
    return [p for p in base.rglob("*") if not (p.is_dir() and p.name.startswith("segexplain-uploads-")
                                               and not any(p.iterdir()))]


def test_refused_model_leaves_no_file_behind(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sidebar, "MODEL_DIR", tmp_path / "models")
    choice, message = sidebar.model_from_upload("broken.keras", b"not a zip archive")
    assert choice is None and "previous model stays active" in message and "\n" not in message
    assert _left_behind(tmp_path / "models") == []


def test_a_full_disk_gives_a_one_line_message_and_no_half_written_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sidebar, "MODEL_DIR", tmp_path / "models")

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    choice, message = sidebar.model_from_upload("big.keras", b"model bytes")
    assert choice is None
    assert message is not None and "\n" not in message and "big.keras" in message
    assert "No space left on device" in message and "previous model stays active" in message
    assert _left_behind(tmp_path / "models") == []


def test_an_unusable_upload_folder_gives_a_one_line_message(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setattr(sidebar, "MODEL_DIR", blocker / "models")
    choice, message = sidebar.model_from_upload("model.keras", b"model bytes")
    assert choice is None and message is not None and "\n" not in message
    assert "could not be stored" in message


# ---------------------------------------------------------------------------------------------
# 3 · the export's method parameters come from the library


def test_export_records_the_options_each_map_ran_with() -> None:
    from helpers_models import random_image, tiny_seg_model

    region = np.zeros((16, 16), bool)
    region[3:9, 4:12] = True
    image = random_image(16)
    out = api.explain(tiny_seg_model(), image, region, 1, "conv2", ("scorecam", "smoothgrad", "gradcam"),
                      options={"scorecam": {"channels": 3}})
    request = _request(region, image=image, layer="conv2", methods=tuple(out))
    choice = {"source": "dataset", "name": "scene-3 (run-7)", "digest": "img", "pixels": image,
              "batch_output": ("/srv/results/run-7", "scene-3")}  # opened from a batch run (dataset page)
    files = export.files(request, out, choice, "tiny", ["bg", "fg"], np.zeros((16, 16), np.int64), "drawing")
    settings = _npz_and_json(files)[1]
    assert settings["image"]["batch_output"] == {"run": "run-7", "output": "scene-3"}  # the folder's name only
    recorded = settings["methods"]
    record = recorded["scorecam"]
    assert record["options"] == {"channels": 3, "batch_size": scorecam.DEFAULT_BATCH_SIZE}  # resolved batch size
    assert recorded["smoothgrad"]["options"] == {
        "samples": methods_input.DEFAULT_SAMPLES, "noise": methods_input.DEFAULT_NOISE, "seed": 0}
    assert recorded["gradcam"]["options"] == {}
    assert record["label"] == "Score-CAM" and record["layer"] == "conv2"


# ---------------------------------------------------------------------------------------------
# 5 · the export is built once per content, and never served stale


def _files(request: comparison.Request, heat: float, channels: int = scorecam.DEFAULT_CHANNELS) -> export.Files:
    results = {"gradcam": FakeExplanation(np.full((8, 8), heat, np.float32)),
               "scorecam": FakeExplanation(np.full((8, 8), heat / 2, np.float32),
                                           options=scorecam.ScoreCAMOptions(channels=channels))}
    choice = {"source": "sample", "name": "test", "digest": "img", "pixels": request.image}
    return export.files(request, results, choice, "fake", ["bg", "cap"], np.zeros((8, 8), np.int64), "drawing")


def _npz_and_json(files: export.Files) -> tuple[dict, dict]:
    with zipfile.ZipFile(io.BytesIO(files.zip)) as archive:
        names = archive.namelist()
        arrays = np.load(io.BytesIO(archive.read(next(n for n in names if n.endswith(".npz")))))
        settings = json.loads(archive.read(next(n for n in names if n.endswith(".json"))))
        return dict(arrays), settings


def test_export_is_cached_but_follows_the_maps_and_settings(monkeypatch) -> None:
    region = np.zeros((8, 8), bool)
    region[2:5, 2:5] = True
    request = _request(region)
    built = []
    original = export.comparison_png
    monkeypatch.setattr(export, "comparison_png", lambda *a, **k: built.append(1) or original(*a, **k))
    first = _files(request, 0.25)
    again = _files(request, 0.25)
    assert again.zip == first.zip and again.png == first.png and len(built) == 1  # no rebuild on a rerun
    other_maps = _files(request, 0.75)  # same keys and settings, other maps: rebuilt
    assert len(built) == 2
    arrays, settings = _npz_and_json(other_maps)
    assert float(arrays["heatmap_gradcam"][0, 0]) == pytest.approx(0.75)
    assert settings["methods"]["scorecam"]["options"]["channels"] == scorecam.DEFAULT_CHANNELS
    assert "batch_output" not in settings["image"]  # a sample image: not from a batch run
    more_channels = _files(request, 0.75, channels=8)  # same maps, other options: rebuilt
    assert len(built) == 3 and _npz_and_json(more_channels)[1]["methods"]["scorecam"]["options"]["channels"] == 8


def test_lookup_table_is_computed_once_and_read_only() -> None:
    table = figures.lookup_table()
    assert table is figures.lookup_table() and table.shape == (256, 3) and not table.flags.writeable
