"""Issue 30's proof: a method registered from a test module (`toy_method`: one module, one `register`
call) is found by `explainers.explain`, the batch CLI's `--option`, the export and the page's settings;
and no method name is written as a string literal in `dashboard/`."""

from __future__ import annotations

import ast
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import page_keys as keys
import pytest
from helpers_batch import cli_args, model_and_images
from helpers_models import random_image, tiny_seg_model
from streamlit.testing.v1 import AppTest

from dashboard import state
from explainers import ExplainerError, api, batch, registry

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")


def _region(size: int = 16) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[4:10, 3:12] = True
    return region


def test_explain_runs_the_toy_method_with_its_option(toy) -> None:
    model, image = tiny_seg_model(), random_image(16, seed=4)
    out = api.explain(model, image, _region(), 1, "conv2", ("gradcam", toy.NAME), options={toy.NAME: {"exponent": 3}})
    assert out[toy.NAME].options.exponent == 3
    assert "Toy CAM (test plug-in) of" in out[toy.NAME].description
    plain = api.explain(model, image, _region(), 1, "conv2", (toy.NAME,))[toy.NAME]
    np.testing.assert_allclose(plain.heatmap, out["gradcam"].heatmap, atol=1e-5)  # exponent 1 is Grad-CAM
    assert toy.NAME in registry.CAM_METHODS and toy.NAME in api.layer_sweep(model, image, _region(), 1, ["conv2"],
                                                                           (toy.NAME,))["conv2"]
    with pytest.raises(ExplainerError, match="must be 1 or 3"):
        api.explain(model, image, _region(), 1, "conv2", (toy.NAME,), options={toy.NAME: {"exponent": 2}})


def test_the_public_method_lists_follow_the_registry(toy) -> None:
    """`explainers.ALL_METHODS`, `api.ALL_METHODS` and `api.CAM_METHODS` are read from the registry when asked
    for: a method registered after `explainers` was imported is in them, and gone once unregistered."""
    import explainers

    lists = {"explainers.ALL_METHODS": lambda: explainers.ALL_METHODS, "api.ALL_METHODS": lambda: api.ALL_METHODS,
             "api.CAM_METHODS": lambda: api.CAM_METHODS}
    assert [name for name, read in lists.items() if toy.NAME not in read()] == []
    assert toy.NAME not in api.LAYER_FREE_METHODS and toy.NAME not in explainers.DEFAULT_METHODS
    assert explainers.METHOD_LABELS[toy.NAME] == "Toy CAM (test plug-in)"
    registry.unregister(toy.NAME)
    assert [name for name, read in lists.items() if toy.NAME in read()] == []
    assert tuple(explainers.ALL_METHODS) == tuple(registry.METHODS)


def test_register_refuses_a_taken_name_and_a_method_that_cannot_run(toy) -> None:
    with pytest.raises(ExplainerError, match="registered already"):
        registry.register(toy.METHOD)
    with pytest.raises(ExplainerError, match="needs make_cam"):
        registry.register(registry.Method("toy-2", "Toy 2", registry.CAM, False, False))
    with pytest.raises(ExplainerError, match="shipped method"):
        registry.unregister(registry.DEFAULT_METHODS[0])


def test_cli_option_reaches_the_toy_method_and_bad_ones_are_usage_errors(toy, tmp_path, capsys) -> None:
    model_path, images = model_and_images(tmp_path, (16,))
    out = tmp_path / "out"
    args = cli_args(model_path, images, out, "--method", toy.NAME, "--layer", "conv2",
                    "--option", f"{toy.NAME}.exponent=3")
    assert batch.main(args) == 0
    entry = json.loads((out / "img0.json").read_text())
    assert json.loads((out / "run.json").read_text())["settings"]["method_options"] == {toy.NAME: {"exponent": 3}}
    assert [row["method"] for row in entry["rows"]] == [toy.NAME]
    assert entry["methods"][toy.NAME]["options"] == {"exponent": 3}  # the options as run
    for bad, words in ((f"{toy.NAME}.exponent=2", "must be 1 or 3"), (f"{toy.NAME}.exponent=two", "an integer"),
                       (f"{toy.NAME}.power=3", "unknown option 'power'"), ("nope.steps=3", "Unknown method 'nope'"),
                       (f"{toy.NAME}=3", "is not METHOD.FIELD=VALUE")):
        assert batch.main(cli_args(model_path, images, tmp_path / "bad", "--method", toy.NAME,
                                   "--option", bad)) == 2
        err = capsys.readouterr().err
        assert "--option" in err and words in err, err


def test_cli_options_of_every_shipped_method_and_the_old_flags() -> None:
    given = registry.options_from_text(["rise.masks=40", "rise.p=0.25", "xrai.batch_size=auto",
                                        "seg-xres-cam.pool_size=3", "xrai.algorithm=fast"])
    assert given == {"rise": {"masks": 40, "p": 0.25}, "xrai": {"batch_size": None, "algorithm": "fast"},
                     "seg-xres-cam": {"pool_size": 3}}
    parser = batch._parser()
    args = parser.parse_args(["--model", "m", "--images", "i", "--out", "o", "--xrai-steps", "7",
                              "--option", "xrai.algorithm=fast"])
    assert batch.method_options(args) == {"xrai": {"algorithm": "fast", "steps": 7}}


def test_export_records_the_toy_options_as_run(toy) -> None:
    from dashboard import comparison, export

    model, image = tiny_seg_model(), random_image(16, seed=4)
    results = api.explain(model, image, _region(), 1, "conv2", (toy.NAME,), options={toy.NAME: {"exponent": 3}})
    request = comparison.Request(model=None, model_key="m", image=image, image_key="abc", region=_region(),
                                 class_index=1, layer="conv2", methods=(toy.NAME,), target="logits",
                                 options={toy.NAME: {"exponent": 3}})
    choice = {"source": "sample", "name": "toy", "digest": "abc", "pixels": image}
    files = export.files(request, results, choice, "tiny", ["a", "b", "c"], np.zeros((16, 16), np.int64), "drawing")
    with zipfile.ZipFile(io.BytesIO(files.zip)) as archive:
        settings = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith(".json"))))
    assert settings["methods"][toy.NAME]["options"] == {"exponent": 3}
    assert settings["methods"][toy.NAME]["label"] == "Toy CAM (test plug-in)"


@pytest.mark.slow
def test_the_page_draws_the_toy_setting_and_uses_it(toy, finish_slow_maps) -> None:
    region = np.zeros((144, 144), bool)
    region[40:72, 45:100] = True
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in {**keys.cheap_xrai(), state.INJECTED_REGION: region,
                       state.METHODS: ["gradcam", toy.NAME]}.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    key = state.option_key(toy.NAME, "exponent")
    assert at.number_input(key=key).label == "Toy CAM toy exponent"
    assert at.session_state[state.RESULTS][toy.NAME].options.exponent == 1
    at.number_input(key=key).set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[state.RESULTS][toy.NAME].options.exponent == 3


def string_literals(folder: Path) -> dict[str, list[str]]:
    """file name → its string constants (f-string parts included), for the method-name check."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.name] = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return found


def method_literals(folder: Path) -> list[tuple[str, str]]:
    names = set(registry.ALL_METHODS)
    return [(file, text) for file, texts in string_literals(folder).items() for text in texts if text in names]


def test_no_method_name_is_written_in_dashboard() -> None:
    """Per-method knowledge lives in the registry records: the page names no method itself."""
    assert method_literals(ROOT / "dashboard") == []
