"""The method registry, options objects, warning codes, export records and the cache helper."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers_models import random_image, strided_output_model, tiny_seg_model

import explainers
from explainers import ExplainerError, api, records, registry, results
from explainers.caching import LRU, PerModel
from explainers.methods import rise, xrai


@pytest.fixture(scope="module")
def model():
    return tiny_seg_model()


def _region() -> np.ndarray:
    region = np.zeros((16, 16), bool)
    region[4:10, 5:12] = True
    return region


def test_every_method_has_one_complete_record() -> None:
    assert registry.DEFAULT_METHODS == ("gradcam", "gradcam++", "xrai", "vinogradova")
    assert {"seg-xres-cam", "rise"} <= set(registry.ALL_METHODS)
    for name, method in registry.METHODS.items():
        assert method.name == name and method.label
        assert (method.make_cam is not None) == (method.family == registry.CAM)  # CAMs: shared pass, no run
        assert (method.run is not None) == (method.family != registry.CAM)
        assert (method.status is not None) == method.slow
        method.make_options()  # defaults are valid
    assert {m for m in registry.ALL_METHODS if not registry.get(m).slow} == set(registry.CAM_METHODS)  # shipped
    assert registry.get("rise").layer_free and registry.get("rise").slow
    assert not registry.get("seg-xres-cam").layer_free and not registry.get("seg-xres-cam").slow


def test_defaults_come_from_the_options_classes() -> None:
    assert registry.default("scorecam", "channels") == 64
    assert registry.default("xrai", "steps") == 100
    assert registry.default("integrated-gradients", "steps") == 50
    assert registry.default("smoothgrad", "samples") == 25
    assert registry.get("rise").defaults() == {"masks": 500, "cells": 8, "p": 0.5, "batch_size": None, "seed": 0}
    assert registry.get("xrai").status(registry.get("xrai").make_options({"steps": 7})) == "XRAI: 7 steps × 2 baselines…"


def test_options_accept_objects_dicts_and_refuse_unknown_fields() -> None:
    from explainers.methods.xrai import XRAIOptions

    xrai = registry.get("xrai")
    assert xrai.make_options({"steps": 8}) == XRAIOptions(steps=8)
    given = XRAIOptions(steps=9, algorithm="fast")
    assert xrai.make_options(given) is given
    with pytest.raises(ExplainerError, match="unknown option.*step\\b"):
        xrai.make_options({"step": 8})
    with pytest.raises(ExplainerError, match="algorithm"):
        XRAIOptions(algorithm="slow")
    with pytest.raises(ExplainerError, match="must be a XRAIOptions"):
        xrai.make_options(12)
    with pytest.raises(ExplainerError, match="unknown method"):
        registry.options_for(("gradcam",), {"grad-cam": {}})


def test_explanations_carry_options_and_warning_codes() -> None:
    strided = strided_output_model()
    out = api.explain(strided, random_image(16, seed=2), _region(), 1, "final_conv", ("gradcam", "gradcam++"))
    for e in out.values():
        assert e.codes() == (results.REGION_RESIZED,)
        assert e.warnings[0].message in e.note and e.description in e.note
    assert out["gradcam++"].options.score == "adapter"
    thin = np.zeros((16, 16), bool)
    thin[4, :] = True
    assert api.explain(strided, random_image(16), thin, 1, "conv1", ("gradcam",))["gradcam"].codes() == (
        results.REGION_TOUCHED,)


def test_records_use_one_key_rule(model) -> None:
    out = api.explain(model, random_image(16, seed=3), _region(), 1, "conv2", ("gradcam++", "integrated-gradients"),
                      options={"integrated-gradients": {"steps": 4}})
    arrays = records.map_arrays(out)
    assert set(arrays) == {"heatmap_gradcampp", "layer_map_gradcampp", "heatmap_integrated-gradients"}
    record = records.method_record(out["integrated-gradients"])
    assert record["options"] == {"steps": 4, "batch_size": 25}  # batch size as run
    assert record["label"] == "Integrated Gradients" and record["family"] == registry.ATTRIBUTION
    assert record["warnings"] == [] and record["layer"] is None


def test_score_choice_shows_how_much_gradcampp_depends_on_the_score(model) -> None:
    image, region = random_image(16, seed=7), _region()
    choice = explainers.score_choice(model, image, region, 1, "conv2")
    assert choice["adapter"].options.score == "adapter" and choice["region_sum"].options.score == "region_sum"
    assert -1.0 <= choice["rank_correlation"] <= 1.0
    assert "summed over the region" in choice["region_sum"].description


def test_per_model_cache_builds_once_and_forgets_dropped_models() -> None:
    class Thing:
        pass

    cache, built = PerModel(), []
    owner = Thing()
    for _ in range(3):
        assert cache.get(owner, "k", lambda: built.append(1) or "value") == "value"
    assert built == [1]
    del owner
    assert len(cache._store) == 0  # weak key: the entry went with the model


def test_lru_evicts_the_least_recently_used_and_is_thread_safe() -> None:
    store = LRU(2)
    store.put("a", 1)
    store.put("b", 2)
    assert store.get("a") == 1  # a is now the most recent
    store.put("c", 3)
    assert "b" not in store and store.get("a") == 1 and store.get("c") == 3
    big = LRU(50)
    threads = [threading.Thread(target=lambda i=i: [big.put((i, j), j) for j in range(200)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(big) == 50


def test_batch_cli_runs_the_new_methods_and_writes_the_shared_record(tmp_path) -> None:
    import json

    from PIL import Image

    from explainers import batch

    model_path = tmp_path / "tiny.keras"
    tiny_seg_model(size=16).save(model_path)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(random_image(16, seed=1)).save(images / "one.png")
    out = tmp_path / "out"
    argv = ["--model", str(model_path), "--images", str(images), "--out", str(out), "--region", "whole",
            "--layer", "conv2", "--method", "gradcam++", "--method", "seg-xres-cam", "--method", "rise"]
    assert batch.main(argv) == 0
    with np.load(out / "one.npz") as saved:
        assert {"heatmap_gradcampp", "layer_map_gradcampp", "heatmap_seg-xres-cam", "layer_map_seg-xres-cam",
                "heatmap_rise"} <= set(saved.files)
        assert "layer_map_rise" not in saved.files
    record = json.loads((out / "one.json").read_text())
    assert record["methods"]["rise"]["options"]["masks"] == registry.default("rise", "masks")
    assert set(record["methods"]["seg-xres-cam"]) == {"label", "family", "layer", "seconds", "options", "warnings",
                                                      "note"}


def test_traits_say_what_the_page_used_to_guess_from_names() -> None:
    """The records' traits give the page's former name lists (common units, region-sensitive, prepared
    methods, the Grad-CAM++ scale note, the Grad-CAM = Seg-Grad-CAM explanation)."""
    assert set(registry.common_units(registry.ALL_METHODS)) == {"gradcam", "hirescam", "layercam", "xgradcam"}
    assert {m for m in registry.ALL_METHODS if registry.get(m).region == "position-wise"} == {
        "hirescam", "layercam", "seg-xres-cam"}
    assert [m for m in registry.ALL_METHODS if registry.get(m).prepares] == ["xrai"]
    assert [m for m in registry.ALL_METHODS if registry.get(m).scale_dependent] == ["gradcam++"]
    assert "constant factor" in registry.why_same("vinogradova", "gradcam")
    assert registry.why_same("gradcam", "hirescam") is None
    assert registry.get("gradcam").differentiates and not registry.get("rise").differentiates
    assert not registry.get("scorecam").differentiates


def test_every_options_field_carries_its_interface_metadata() -> None:
    from explainers import options

    for name in registry.ALL_METHODS:
        for spec in options.specs(registry.get(name).options):
            assert spec.label and spec.help, (name, spec.name)
            assert spec.default == registry.default(name, spec.name)
            if spec.kind == "choice":
                assert spec.default in spec.choices
            elif spec.low is not None and spec.default is not None:
                assert spec.low <= spec.default <= (spec.high if spec.high is not None else spec.default)
    assert options.parse(xrai.XRAIOptions, "steps", "20", "XRAI") == 20
    assert options.parse(rise.RISEOptions, "batch_size", "auto", "RISE") is None
    with pytest.raises(ExplainerError, match="must be an integer"):
        options.parse(rise.RISEOptions, "masks", "many", "RISE")


def test_a_method_without_a_score_is_not_described_by_one(model) -> None:
    """A registered CAM that explains no score (like Eigen-CAM) is neither described as "of the adapter's
    region score" nor told its empty map lacks "the region score"."""
    from explainers.methods import cams

    eigen = registry.Method("no-score-cam", "Plain CAM", registry.CAM, False, False,
                            make_cam=cams.plain(cams.GradCAM), score=None)
    registry.register(eigen)
    try:
        out = api.explain(model, random_image(16, seed=3), _region(), 1, "conv2", ("no-score-cam",))["no-score-cam"]
        assert "score" not in out.description
        assert "score" not in api._zero_message(eigen, "conv2")
        assert "region score" in api._zero_message(registry.get("gradcam"), "conv2")
    finally:
        registry.unregister("no-score-cam")
    assert "no-score-cam" not in registry.ALL_METHODS
