"""Issue 29 (4) and (9): a zip central-directory bomb is refused before `zipfile` parses it; weights from
another model, a config with more layers than its weights and a 10,000-layer config get one sentence
saying what to change, early."""

from __future__ import annotations

import copy
import json
import struct
import time
import tracemalloc
import zipfile

import hostile_files as hf
import keras
import pytest
from keras import layers

from explainers import model_files
from explainers.model_files import ModelFileError, load_model_file


def directory_bomb(data: bytes, entries: int) -> bytes:
    """`data` (a zip) whose central directory repeats its first entry `entries` times while the end
    record still claims the original member count (zipfile parses every entry the directory holds)."""
    at = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack_from("<HII", data, at + 10)
    directory = data[offset:offset + size]
    first = 46 + sum(struct.unpack_from("<HHH", directory, 28))
    body = directory + directory[:first] * (entries - count)
    end = bytearray(data[at:at + 22])
    struct.pack_into("<HHII", end, 8, count, count, len(body), offset)
    return data[:offset] + body + bytes(end)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> bytes:
    return hf.tiny_bytes(tmp_path_factory.mktemp("limits"))


def test_a_central_directory_bomb_is_refused_before_zipfile_parses_it(tiny, tmp_path, monkeypatch) -> None:
    path = tmp_path / "bomb.keras"
    path.write_bytes(directory_bomb(tiny, 200_000))  # ~14 MB of directory, the end record claims 3 members
    opened = []
    real = zipfile.ZipFile
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: opened.append(a) or real(*a, **k))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=r"zip directory.*above the .* directory"):
            load_model_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert opened == [], "zipfile must not parse the directory"
    assert peak < 40 * 2**20 and time.perf_counter() - start < 5


def test_a_directory_holding_more_entries_than_claimed_is_damaged(tiny, tmp_path) -> None:
    path = tmp_path / "liar.keras"
    path.write_bytes(directory_bomb(tiny, 5))  # claims 3, holds 5: small, but a lie
    with pytest.raises(ModelFileError, match="holds 5 entries where its end record claims 3"):
        load_model_file(path)


def _net(conv1: tuple[int, int] = (8, 3), extra: bool = False) -> keras.Model:
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.Conv2D(conv1[0], conv1[1], padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    if extra:
        x = layers.Conv2D(8, 3, padding="same", activation="relu", name="extra")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="final_conv")(x)
    logits = layers.Conv2D(3, 1, name="logits")(x)
    return keras.Model(inputs, layers.Activation("softmax", name="softmax")(logits))


@pytest.mark.parametrize("case", ["smaller weights", "bigger weights", "more layers"])
def test_weights_that_do_not_fit_the_architecture_say_so(tiny, tmp_path, case) -> None:
    own = hf.members(tiny)
    if case == "more layers":
        config = hf.members(hf.keras_bytes(_net(extra=True), tmp_path, "extra.keras"))
        files = {**config, "model.weights.h5": own["model.weights.h5"]}
    else:
        other = hf.members(hf.keras_bytes(_net((64, 9) if case == "bigger weights" else (3, 5)), tmp_path, "o.keras"))
        files = {**own, "model.weights.h5": other["model.weights.h5"]}
    path = tmp_path / "mixed.keras"
    path.write_bytes(hf.zip_of(files))
    with pytest.raises(ModelFileError) as caught:
        load_model_file(path)
    message = str(caught.value)
    assert "holds weights that do not fit its architecture" in message and "save this model again" in message
    assert "ValueError" not in message and " M " not in message and message.count(". ") == 0


def _chain(data: bytes, count: int) -> bytes:
    """The tiny model's config with `count` linear Activation layers chained after its output."""
    files = hf.members(data)
    config = json.loads(files["config.json"])
    entries = config["config"]["layers"]
    template = next(entry for entry in entries if entry["class_name"] == "Activation")
    previous = template["name"]
    for k in range(count):
        entry = copy.deepcopy(template)
        entry["name"] = entry["config"]["name"] = f"act{k}"
        entry["config"]["activation"] = "linear"
        text = json.dumps(entry["inbound_nodes"]).replace('"logits"', json.dumps(previous))
        entry["inbound_nodes"] = json.loads(text)
        entries.append(entry)
        previous = entry["name"]
    config["config"]["output_layers"] = [[previous, 0, 0]]
    files["config.json"] = json.dumps(config)
    return hf.zip_of(files)


@pytest.mark.parametrize(("count", "words"), [(10_000, "has 10,007 layers, above the 5,000-layer limit"),
                                               (1_500, "chains 1,507 layers one after another")])
def test_very_deep_configs_are_refused_before_keras_builds_them(tiny, tmp_path, count, words) -> None:
    path = tmp_path / "deep.keras"
    path.write_bytes(_chain(tiny, count))
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=words):
        load_model_file(path)
    assert time.perf_counter() - start < 4, "refused from the config, before any layer is built"


def test_a_chain_within_the_limit_still_loads(tiny, tmp_path) -> None:
    path = tmp_path / "fine.keras"
    path.write_bytes(_chain(tiny, 40))
    assert len(load_model_file(path).layers) == 7 + 40
    assert model_files._longest_chain(json.loads(hf.members(path.read_bytes())["config.json"])["config"]["layers"]) == 47
