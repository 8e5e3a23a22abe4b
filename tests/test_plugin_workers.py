"""A method registered from outside the package (`toy_method`: one module, one `registry.register`) runs where
the work is sent, not only in the process that registered it: in the dashboard's slow-map worker process (a slow
map's job and the Trust tab's randomisation check) and on the batch CLI's Ray actors. Each map equals
`explain()`'s in this process."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import types

import numpy as np
import pytest
from helpers_batch import cli_args, model_and_images
from helpers_models import random_image, tiny_seg_model

import explainers
from dashboard import compute, scheduler
from explainers import api, batch, registry

LAYER = "conv2"


@pytest.fixture
def no_page_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """As `scheduler.without_main_script`: a page script an earlier AppTest left as `__main__` is not run in
    the spawned worker."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


def _region(size: int = 16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[4:10, 3:12] = True
    return region


def test_the_registry_names_the_module_that_registered_a_method(toy) -> None:
    assert registry.REGISTERED_BY[toy.NAME] == "toy_method"
    (module, root), = registry.modules_for(("gradcam", toy.NAME, "xrai"))  # shipped methods need none
    assert module == "toy_method" and os.path.samefile(os.path.join(root, "toy_method.py"), toy.__file__)
    assert scheduler.MapRequest(toy.NAME, np.zeros((2, 2, 3)), np.ones((2, 2), bool), 1, LAYER, "logits",
                                {}).modules == ((module, root),)
    registry.unregister(toy.NAME)
    assert toy.NAME not in registry.REGISTERED_BY and registry.modules_for((toy.NAME,)) == ()
    registry.register(toy.METHOD)  # the fixture unregisters it


def test_a_registered_method_runs_in_the_slow_map_worker(toy, tmp_path, no_page_script,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A job through the dispatcher into the worker process, and the randomisation check there: the worker
    process starts knowing only the shipped methods."""
    model = tiny_seg_model()
    path = tmp_path / "tiny.keras"
    model.save(path)
    image, region = random_image(16, seed=4), _region()
    options = {"exponent": 3}
    expected = api.explain(model, image, region, 1, LAYER, (toy.NAME,), options={toy.NAME: options})[toy.NAME]

    def not_here(*_args, **_kwargs):
        raise AssertionError("the map was computed in the page's process, not in the worker")

    key = "test-plugin-worker"
    monkeypatch.setitem(scheduler.MODEL_SOURCES, key, ("upload", str(path), (), None))
    dispatcher = scheduler.Dispatcher(run_here=not_here, keep=lambda *_: None, stored=lambda _key: None)
    try:
        request = scheduler.MapRequest(method=toy.NAME, image=image, region=region, class_index=1, layer=LAYER,
                                       target="logits", options=options, model_key=key, image_key="i")
        job = scheduler.submit(dispatcher, ("plugin", 1), request, model)
        assert job.wait(300), "the worker did not finish the job"
        assert job.error is None, job.error
        np.testing.assert_allclose(job.result.heatmap, expected.heatmap, rtol=0, atol=1e-5)
        np.testing.assert_allclose(job.result.layer_map, expected.layer_map, rtol=0, atol=1e-5)
        assert job.result.options.exponent == 3

        check = explainers.randomization_check(model, image, region, 1, LAYER, (toy.NAME,), options={toy.NAME: options},
                                               max_steps=2, keep_maps=False)
        monkeypatch.setattr(compute, "_dispatcher", lambda: dispatcher)
        monkeypatch.setattr(explainers, "randomization_check", not_here)  # the worker has its own module
        result = compute.randomization(("plugin-trust", 1), None, image, region, 1, LAYER, (toy.NAME,), "logits",
                                       {toy.NAME: options}, 2, model_key=key)
        assert result.methods == (toy.NAME,)
        np.testing.assert_allclose(result.spearman[toy.NAME], check.spearman[toy.NAME], atol=1e-6)
    finally:
        if dispatcher.pool is not None:
            dispatcher.pool.shutdown(cancel_futures=True)


@pytest.fixture
def ray_tmp(monkeypatch: pytest.MonkeyPatch):
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    monkeypatch.setenv("SEGEXPLAIN_RAY_TMP", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_registered_method_runs_on_ray_actors(toy, tmp_path, ray_tmp) -> None:
    import ray

    model_path, images = model_and_images(tmp_path, (16, 16), seed=30)
    out = tmp_path / "ray"
    code = batch.main(cli_args(model_path, images, out, "--method", toy.NAME, "--method", "gradcam",
                               "--layer", LAYER, "--option", f"{toy.NAME}.exponent=3",
                               "--engine", "ray", "--workers", "1", "--batch-size", "2"))
    assert code == 0
    assert not ray.is_initialized()
    model = tiny_seg_model()
    for name in ("img0", "img1"):
        entry = json.loads((out / f"{name}.json").read_text())
        assert entry["status"] == "ok", entry["status"]
        assert entry["methods"][toy.NAME]["options"] == {"exponent": 3}
        with np.load(out / f"{name}.npz") as arrays:
            expected = api.explain(model, arrays["image"], arrays["region"], int(arrays["class_index"]), LAYER,
                                   (toy.NAME,), options={toy.NAME: {"exponent": 3}})[toy.NAME]
            np.testing.assert_allclose(arrays["heatmap_toy-cam"], expected.heatmap, rtol=0, atol=1e-5)
