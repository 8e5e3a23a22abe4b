"""Hostile model and image files, built on the fly and small on disk.

Big *declared* sizes come from rewritten headers (a zip member whose header claims 1.95 GB, an HDF5
dataset whose shape claims 3.84 GB but whose data was never written), never from gigabytes on disk.
Models whose code would run write the file named by MARKER_ENV (set only while the tests load them).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import helpers_models as hm
import keras
from keras import layers

MARKER_ENV = "SEGEXPLAIN_TEST_LAMBDA_MARKER"


def keras_bytes(model: keras.Model, folder: Path, name: str = "model.keras") -> bytes:
    path = folder / name
    model.save(path)
    return path.read_bytes()


def h5_path(model: keras.Model, folder: Path, name: str) -> Path:
    path = folder / name
    model.save(path)
    return path


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zip_of(files: dict[str, bytes | str], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def edit_config(data: bytes, edit: Callable[[dict], None]) -> bytes:
    """A .keras archive with `edit(config)` applied to its config.json."""
    files = members(data)
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    return zip_of(files)


def layer_configs(config: dict) -> list[dict]:
    return config["config"]["layers"]


def declare_size(data: bytes, member: str, size: int) -> bytes:
    """Rewrite both zip headers of a stored `member` to declare `size` uncompressed bytes."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    struct.pack_into("<I", out, info.header_offset + 22, size)  # local header: uncompressed size
    name = member.encode()
    at = 0
    while True:  # the central-directory entry whose file name is `member`
        at = out.find(b"PK\x01\x02", at)
        if at < 0:
            raise ValueError(member)
        length = struct.unpack_from("<H", out, at + 28)[0]
        if bytes(out[at + 46 : at + 46 + length]) == name:
            struct.pack_into("<I", out, at + 24, size)
            break
        at += 4
    return bytes(out)


def lambda_model(size: int = 16) -> keras.Model:
    """Its Lambda creates the file named by MARKER_ENV whenever it runs."""
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.Lambda(
        lambda t: t if not __import__("os").environ.get("SEGEXPLAIN_TEST_LAMBDA_MARKER")
        else (open(__import__("os").environ["SEGEXPLAIN_TEST_LAMBDA_MARKER"], "w").close() or t),
        name="payload",
    )(x)
    return keras.Model(inputs, layers.Conv2D(2, 1, activation="softmax", name="head")(x))


def wide_dense_model() -> keras.Model:
    """Conv (7 filters) → per-pixel Dense (9 units): config numbers are rewritten to 20,000."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(7, 1, name="wide_conv")(inputs)
    x = layers.Dense(9, name="wide_dense")(x)
    return keras.Model(inputs, layers.Conv2D(2, 1, name="head")(x))


def big_input_model(side: int = 4096) -> keras.Model:
    inputs = keras.Input((side, side, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    return keras.Model(inputs, layers.Conv2D(2, 1, activation="softmax", name="head")(x))


def upsampling_bomb_model() -> keras.Model:
    """A 16² input upsampled ×512 with 8 channels: 537 M values in one layer output, 200 weights."""
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 1, name="conv")(inputs)
    x = layers.UpSampling2D(512, name="blow_up")(x)
    return keras.Model(inputs, layers.Conv2D(2, 1, activation="softmax", name="head")(x))


def with_weights_member(data: bytes, edit: Callable[[h5py.File], None], folder: Path) -> bytes:
    """A .keras archive whose model.weights.h5 was opened and changed by `edit`."""
    files = members(data)
    path = folder / "weights-edit.h5"
    path.write_bytes(files["model.weights.h5"])
    with h5py.File(path, "a") as handle:
        edit(handle)
    files["model.weights.h5"] = path.read_bytes()
    path.unlink()
    return zip_of(files)


def edit_h5(source: Path, target: Path, edit: Callable[[h5py.File], None]) -> Path:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "a") as handle:
        edit(handle)
    return target


def set_h5_config(edit: Callable[[dict], None]) -> Callable[[h5py.File], None]:
    def apply(handle: h5py.File) -> None:
        config = json.loads(handle.attrs["model_config"])
        edit(config)
        handle.attrs["model_config"] = json.dumps(config)

    return apply


def many_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
        for index in range(count):
            archive.writestr(f"assets/{index}", b"")
    return buffer.getvalue()


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def tiny_bytes(folder: Path) -> bytes:
    return keras_bytes(hm.tiny_seg_model(), folder, "tiny-source.keras")
