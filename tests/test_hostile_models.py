"""Hostile model files: every one is refused with its real reason in one sentence, no uploaded code runs,
and a refused file costs less than 500 MB of memory above the baseline.

The files are built on the fly (none downloaded). Each case is loaded twice: in this process (the
message, and whether a marker file appeared) and, all together, in one child process that reports
its peak RSS (`ru_maxrss`) after each load, so the memory figure is a real high-water mark of a
process that only did the loading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import helpers_models as hm
import hostile_files as hf
import keras
import numpy as np
import pytest

from explainers import model_files
from explainers.model_files import Limits, ModelFileError, load_model_file
from models.loader import ModelLoadError, load_user_model

ROOT = Path(__file__).resolve().parents[1]
MEMORY_BUDGET_MB = 500


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith((".", ")")), message
    assert message.rstrip(".").count(". ") == 0, message


# ------------------------------------------------------------------------------------------------
# the cases: file name → (bytes, words of the message)


def _cases(folder: Path) -> dict[str, tuple[bytes, str]]:
    tiny = hf.tiny_bytes(folder)
    cases: dict[str, tuple[bytes, str]] = {}

    def conv_layer(config: dict) -> dict:
        return next(layer for layer in hf.layer_configs(config) if layer["class_name"] == "Conv2D")

    # serialised code
    cases["payload.keras"] = (hf.keras_bytes(hf.lambda_model(), folder, "payload.keras"), "Lambda layer")
    cases["payload.h5"] = (hf.h5_path(hf.lambda_model(), folder, "payload.h5").read_bytes(), "Lambda layer")

    # sizes declared in headers
    cases["padded-config.keras"] = (hf.declare_size(tiny, "config.json", 1_950_000_000), "above the")
    cases["padded-weights.keras"] = (hf.declare_size(tiny, "model.weights.h5", 1_900_000_000),
                                     "unpacks to 1.90 GB, above the 1.00 GB archive limit")
    files = hf.members(tiny)
    real_pad = dict(files, **{"config.json": files["config.json"] + b" " * 20_000_000})
    cases["real-padded-config.keras"] = (hf.zip_of(real_pad, zipfile.ZIP_DEFLATED),
                                         "20.0 MB config, above the 16.0 MB config limit")
    cases["assets-bomb.keras"] = (hf.zip_of({**files, "assets/pad.bin": b"\0" * 80_000_000}, zipfile.ZIP_DEFLATED),
                                  "of metadata and assets, above the 64.0 MB asset limit")
    cases["stray-member.keras"] = (hf.zip_of({**files, "run_me.py": "print('hi')"}), "never has")
    cases["many-members.keras"] = (hf.many_members(20_000), "20,001 archive members, above the 1,000-member")
    cases["slip.keras"] = (hf.zip_of({**files, "../../escape.txt": "x"}), "outside the archive")
    lying = bytearray(tiny)
    with zipfile.ZipFile(folder / "tiny-source.keras") as archive:
        info = archive.getinfo("config.json")
    cases["short-header.keras"] = (hf.declare_size(bytes(lying), "config.json", info.file_size - 10), "damaged")

    # declared architecture
    def widen(config: dict) -> None:  # a consistent config: the layers' recorded input shapes are dropped
        for layer in hf.layer_configs(config):
            layer.pop("build_config", None)
            if layer["config"].get("name") == "wide_conv":
                layer["config"]["filters"] = 20_000
            if layer["config"].get("name") == "wide_dense":
                layer["config"]["units"] = 20_000

    wide = hf.keras_bytes(hf.wide_dense_model(), folder, "wide.keras")
    cases["dense-20k.keras"] = (hf.edit_config(wide, widen), "declares 400.1 M parameters, above the 150.0 M")
    cases["input-4096.keras"] = (hf.keras_bytes(hf.big_input_model(4096), folder, "big.keras"),
                                 "takes 4096×4096 pixel inputs (16.8 MP), above the 2.1 MP input limit")
    cases["upsampling-bomb.keras"] = (hf.keras_bytes(hf.upsampling_bomb_model(), folder, "bomb.keras"),
                                      "layer output of 536.9 M values per image")

    # malformed configs and tricks
    def class_name_to(value):
        def edit(config: dict) -> None:
            conv_layer(config)["class_name"] = value
        return edit

    cases["class-list.keras"] = (hf.edit_config(tiny, class_name_to(["Conv2D"])), "class_name that is a list")
    cases["class-dict.keras"] = (hf.edit_config(tiny, class_name_to({"x": 1})), "class_name that is a dict")

    def nested_class_list(config: dict) -> None:
        conv_layer(config)["config"]["kernel_initializer"]["class_name"] = ["GlorotUniform"]

    cases["nested-class-list.keras"] = (hf.edit_config(tiny, nested_class_list), "class_name that is a list")

    def tfsm(config: dict) -> None:
        layer = conv_layer(config)
        layer.update(class_name="TFSMLayer", module="keras.layers", registered_name=None)
        layer["config"] = {"filepath": "/srv/some/saved_model", "call_endpoint": "serve", "name": "conv1"}

    cases["tfsm.keras"] = (hf.edit_config(tiny, tfsm), "TFSMLayer")

    def torch(config: dict) -> None:
        layer = conv_layer(config)
        layer.update(class_name="TorchModuleWrapper", module="keras.layers", registered_name=None)
        layer["config"] = {"module": "gASVAAAA", "name": "conv1"}

    cases["torch.keras"] = (hf.edit_config(tiny, torch), "TorchModuleWrapper")

    def registered(config: dict) -> None:
        conv_layer(config)["registered_name"] = "builtins>eval"

    cases["registered-name.keras"] = (hf.edit_config(tiny, registered), "registers it as 'builtins>eval'")

    def foreign_module(config: dict) -> None:
        conv_layer(config)["config"]["kernel_initializer"].update(module="os", class_name="system",
                                                                  registered_name=None)

    cases["module-os.keras"] = (hf.edit_config(tiny, foreign_module), "Python module 'os'")

    def custom(config: dict) -> None:
        conv_layer(config).update(class_name="FancyConv", module="my_layers", registered_name="my_layers>FancyConv")

    cases["custom.keras"] = (hf.edit_config(tiny, custom), "custom object Keras does not know")
    deep = hf.zip_of({**files, "config.json": hf.nested_json(100_000)})
    cases["deep-json.keras"] = (deep, "damaged")
    cases["list-config.keras"] = (hf.zip_of({**files, "config.json": "[1, 2, 3]"}), "malformed model config")
    cases["picture.keras"] = (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a .keras archive")

    # weights inside .keras
    def extra_dataset(handle: h5py.File) -> None:
        handle.create_dataset("padding", shape=(4000, 4000), dtype="f4")  # declared, never written

    cases["padded-weights-h5.keras"] = (hf.with_weights_member(tiny, extra_dataset, folder),
                                        "holds weights that do not fit its architecture (a weight of 16,000,000 values")
    secret = folder / "secret.h5"
    with h5py.File(secret, "w") as handle:
        handle["data"] = np.arange(10)

    def external_link(handle: h5py.File) -> None:
        handle["stolen"] = h5py.ExternalLink(str(secret), "/data")

    cases["external-link.keras"] = (hf.with_weights_member(tiny, external_link, folder), "HDF5 external link")

    # legacy .h5
    tiny_h5 = hf.h5_path(hm.tiny_seg_model(), folder, "tiny-source.h5")
    raw = folder / "raw.bin"
    raw.write_bytes(np.arange(64, dtype="f4").tobytes())

    def external_storage(handle: h5py.File) -> None:
        handle.create_dataset("outside", shape=(64,), dtype="f4", external=[(str(raw), 0, 256)])

    def virtual(handle: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(10,), dtype="i8")
        layout[:] = h5py.VirtualSource(str(secret), "data", shape=(10,))
        handle.create_virtual_dataset("virtual", layout)

    def huge_kernel(handle: h5py.File) -> None:
        handle.create_dataset("model_weights/huge", shape=(31_000, 31_000), dtype="f4")  # 3.84 GB declared

    def h5_class_list(config: dict) -> None:
        conv_layer(config)["class_name"] = ["Conv2D"]

    for name, edit, words in (
        ("external-storage.h5", external_storage, "HDF5 external storage"),
        ("virtual.h5", virtual, "HDF5 virtual dataset"),
        ("external-link.h5", external_link, "HDF5 external link"),
        ("huge-kernel.h5", huge_kernel, "declares 3.84 GB of weights, above the 1.00 GB size limit"),
        ("class-list.h5", hf.set_h5_config(h5_class_list), "class_name that is a list"),
    ):
        target = hf.edit_h5(tiny_h5, folder / f"edit-{name}", edit)
        cases[name] = (target.read_bytes(), words)
        target.unlink()
    big = folder / "big-config.h5"
    with h5py.File(big, "w", libver="latest") as handle:  # attributes above 64 KB need the newer format
        handle.attrs["model_config"] = " " * 20_000_000
    cases["big-config.h5"] = (big.read_bytes(), "20.0 MB config, above the 16.0 MB config limit")
    return cases


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("hostile")
    build = folder / "build"
    build.mkdir()
    out = {}
    for name, (data, words) in _cases(build).items():
        path = folder / name
        path.write_bytes(data)
        out[name] = (path, words)
    return out


@pytest.fixture(scope="module")
def hostile(built) -> dict[str, Path]:
    return {name: path for name, (path, _w) in built.items()}


@pytest.fixture(scope="module")
def words(built) -> dict[str, str]:
    return {name: w for name, (_p, w) in built.items()}


CASE_NAMES = (
    "payload.keras", "payload.h5", "padded-config.keras", "padded-weights.keras", "real-padded-config.keras",
    "assets-bomb.keras", "stray-member.keras", "many-members.keras", "slip.keras", "short-header.keras",
    "dense-20k.keras", "input-4096.keras", "upsampling-bomb.keras", "class-list.keras", "class-dict.keras",
    "nested-class-list.keras", "tfsm.keras", "torch.keras", "registered-name.keras", "module-os.keras",
    "custom.keras", "deep-json.keras", "list-config.keras", "picture.keras", "padded-weights-h5.keras",
    "external-link.keras", "external-storage.h5", "virtual.h5", "external-link.h5", "huge-kernel.h5",
    "class-list.h5", "big-config.h5",
)


_CHILD = textwrap.dedent("""
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, sys.argv[1])
    from models.loader import load_user_model
    def status(field):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    def reset_peak():  # Linux: writing 5 to clear_refs sets the peak RSS (VmHWM) back to the current RSS
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    load_user_model(sys.argv[2])  # warm-up: TensorFlow, Keras and h5py fully imported and used once
    out = {"cases": {}}
    for path in sys.argv[3:]:
        reset_peak()
        base = status("VmRSS")
        try:
            if path == "CONTROL":  # proves the measurement sees a 200 MB allocation
                import numpy
                block = numpy.ones(50_000_000, numpy.float32)
                del block
                raise ValueError("control")
            load_user_model(path)
            message = None
        except Exception as error:
            message = type(error).__name__ + ": " + str(error)
        out["cases"][os.path.basename(path)] = {"message": message, "base_mb": base,
                                                "peak_above_base_mb": status("VmHWM") - base}
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def child_run(hostile, tmp_path_factory) -> dict:
    """All refused files loaded in one fresh process; for each, its peak RSS (VmHWM, reset before the
    file) above its RSS just before the file."""
    folder = tmp_path_factory.mktemp("child")
    warm = folder / "warm.keras"
    hm.tiny_seg_model().save(warm)
    marker = folder / "marker"
    env = dict(os.environ, **{hf.MARKER_ENV: str(marker)})
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(warm),
                           "CONTROL", *(str(hostile[name]) for name in CASE_NAMES)],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, done.stderr[-3000:]
    result = json.loads(line[len("RESULT"):])
    result["marker_written"] = marker.exists()
    peaks = {name: round(case["peak_above_base_mb"]) for name, case in result["cases"].items()}
    print(f"peak RSS above the RSS before each file (MB): {peaks}")
    return result


# ------------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_model_is_refused_with_its_reason(name, hostile, words, tmp_path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(hf.MARKER_ENV, str(marker))
    with pytest.raises(ModelLoadError) as info:
        load_user_model(hostile[name], display_name=name)
    message = str(info.value)
    assert words[name] in message, message
    assert f"'{name}'" in message or name in message, message
    assert str(hostile[name].parent) not in message  # no server path
    assert_one_sentence(message)
    assert not marker.exists(), f"{name}: uploaded code ran"


def test_the_memory_measurement_sees_a_200_mb_allocation(child_run) -> None:
    assert 180 < child_run["cases"]["CONTROL"]["peak_above_base_mb"] < 260, child_run["cases"]["CONTROL"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_model_costs_under_500_mb_and_runs_no_code(name, child_run, words) -> None:
    case = child_run["cases"][name]
    assert case["message"] is not None and case["message"].startswith("ModelFileError"), case
    assert words[name] in case["message"], case["message"]
    assert case["peak_above_base_mb"] < MEMORY_BUDGET_MB, case
    assert not child_run["marker_written"]


def test_limit_messages_name_the_variable_and_it_changes_the_limit(hostile, monkeypatch) -> None:
    monkeypatch.setenv("SEGEXPLAIN_MAX_INPUT_PIXELS", str(4096 * 4096))
    limits = Limits.from_env()
    assert limits.input_pixels == 4096 * 4096
    with pytest.raises(ModelFileError, match="SEGEXPLAIN_MAX_INPUT_PIXELS"):
        load_model_file(hostile["input-4096.keras"], limits=Limits())
    model = load_model_file(hostile["input-4096.keras"])  # the raised limit lets the same file in
    assert tuple(model.inputs[0].shape) == (None, 4096, 4096, 3)
    monkeypatch.setenv("SEGEXPLAIN_MAX_PARAMETERS", "banana")
    with pytest.raises(ModelFileError, match="SEGEXPLAIN_MAX_PARAMETERS='banana' is not a number"):
        Limits.from_env()


def test_the_member_count_is_read_before_the_central_directory(hostile, monkeypatch) -> None:
    def no_parsing(*args, **kwargs):
        raise AssertionError("the archive's central directory was parsed")

    monkeypatch.setattr(zipfile.ZipFile, "__init__", no_parsing)
    with pytest.raises(ModelFileError, match="archive members"):
        load_model_file(hostile["many-members.keras"])


def test_dry_build_allocates_no_weight_for_a_20k_dense(hostile, monkeypatch) -> None:
    """The parameter count comes from a build whose variables have no values."""
    created = []
    original = keras.Variable.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self._value is not None)

    monkeypatch.setattr(keras.Variable, "__init__", spy)
    with pytest.raises(ModelFileError, match="400.1 M parameters"):
        load_model_file(hostile["dense-20k.keras"])
    assert created and not any(created)


def test_resource_exhausted_says_the_server_ran_out_of_memory(tmp_path, monkeypatch) -> None:
    import tensorflow as tf

    path = tmp_path / "fine.keras"
    hm.tiny_seg_model().save(path)

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[20000,20000]")

    monkeypatch.setattr(keras.saving, "load_model", exhausted)
    with pytest.raises(ModelFileError, match="ran out of memory while loading 'fine.keras'") as info:
        load_model_file(path)
    assert_one_sentence(str(info.value))


@pytest.mark.parametrize("name", ["MODEL.KERAS", "UNET.H5", ".keras", "Net.Keras", "legacy.HDF5"])
def test_upper_case_and_bare_suffixes_load(name, tmp_path) -> None:
    model = hm.tiny_seg_model()
    lower = tmp_path / ("source.keras" if name.lower().endswith(".keras") else "source.h5")
    model.save(lower)
    path = tmp_path / name
    lower.rename(path)
    loaded = load_user_model(path)
    image = hm.random_image(16, seed=1)[None].astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(image)), np.asarray(model(image)), atol=1e-5)
    assert path.exists() and not list(tmp_path.glob("model.*"))


def test_the_real_files_are_not_padded(hostile) -> None:
    """The suite stays cheap: no file it builds is bigger than a few MB on disk."""
    assert max(path.stat().st_size for path in hostile.values()) < 30_000_000
    assert sorted(hostile) == sorted(CASE_NAMES)


def test_scan_config_finds_code_anywhere_and_is_a_module_function() -> None:
    config = {"class_name": "Functional", "config": {"layers": [{"class_name": "Dense", "config": {
        "kernel_initializer": {"class_name": "Lambda", "config": {}}}}]}}
    with pytest.raises(ModelFileError, match="Lambda layer"):
        model_files.scan_config(config, "x.keras")


def test_an_h5_with_too_many_objects_is_refused_before_its_walk_ends(tmp_path) -> None:
    path = tmp_path / "crowded.h5"
    hm.tiny_seg_model().save(path)
    with h5py.File(path, "a") as handle:
        for index in range(1_500):
            handle.create_group(f"crowd/{index}")
    with pytest.raises(ModelFileError, match=r"more than 1,000 HDF5 objects.*SEGEXPLAIN_MAX_ARCHIVE_MEMBERS") as info:
        load_model_file(path, limits=Limits(archive_members=10))
    assert_one_sentence(str(info.value))
    assert isinstance(load_model_file(path), keras.Model)  # the default limit lets a normal count through
