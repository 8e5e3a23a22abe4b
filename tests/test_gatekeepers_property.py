"""Issue 29, property-based: the gatekeepers of untrusted input (model-file headers, zip directories, image
headers, class-name files) answer any input with their own one-sentence error or a valid result, never
with another exception, and quickly. Bounded: few examples, a deadline per example, no shrinking database."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import hostile_files as hf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from explainers.errors import ExplainerError
from explainers.images import check_image_file, decode_image
from explainers.model_files import Limits, ModelFileError, check_zip_directory, load_model_file
from models import class_names as cn

BOUNDED = settings(max_examples=40, deadline=3000, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> bytes:
    return hf.tiny_bytes(tmp_path_factory.mktemp("prop"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prop-files")


def _tail_edits():
    return st.lists(st.tuples(st.integers(1, 200), st.integers(0, 255)), min_size=1, max_size=6)


@BOUNDED
@given(edits=_tail_edits())
def test_model_files_damaged_near_their_headers_get_a_model_file_error(tiny, scratch, edits) -> None:
    data = bytearray(tiny)
    for back, value in edits:  # the end record and the central directory live at the end of a zip
        data[-back] = value
    path = scratch / "edited.keras"
    path.write_bytes(bytes(data))
    try:
        load_model_file(path)
    except ModelFileError as error:
        assert "\n" not in str(error) and str(error).endswith(".")


@BOUNDED
@given(prefix=st.sampled_from([b"PK\x03\x04", b"\x89HDF\r\n\x1a\n", b"", b"PK\x05\x06"]),
       body=st.binary(max_size=300), suffix=st.sampled_from([".keras", ".h5"]))
def test_arbitrary_bytes_as_a_model_file_get_a_model_file_error(scratch, prefix, body, suffix) -> None:
    path = scratch / f"noise{suffix}"
    path.write_bytes(prefix + body)
    with pytest.raises(ModelFileError):
        load_model_file(path)


@BOUNDED
@given(claimed=st.integers(0, 3000), real=st.integers(1, 1500), name_length=st.integers(0, 600))
def test_zip_directories_are_judged_from_their_bytes(scratch, claimed, real, name_length) -> None:
    entry = bytearray(46)
    entry[:4] = b"PK\x01\x02"
    struct.pack_into("<HHH", entry, 28, name_length, 0, 0)
    directory = (bytes(entry) + b"n" * name_length) * real
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, claimed & 0xFFFF, claimed & 0xFFFF, len(directory), 0, 0)
    path = scratch / "directory.zip"
    path.write_bytes(directory + end)
    limits = Limits(archive_members=1000)
    too_big = len(directory) > 1000 * 1024
    try:
        check_zip_directory(path, "x.keras", limits)
        accepted = True
    except ModelFileError:
        accepted = False
    assert accepted == (claimed == real and claimed <= 1000 and not too_big)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@BOUNDED
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1), keep=st.integers(24, 200))
def test_image_headers_declaring_any_size_are_checked_before_decoding(scratch, width, height, keep) -> None:
    data = bytearray(_png(2, 2))
    struct.pack_into(">II", data, 16, width, height)  # IHDR width, height (CRC now wrong: damage)
    data = bytes(data[:keep])
    path = scratch / "header.png"
    path.write_bytes(data)
    for check in (lambda: decode_image(data, max_pixels=10_000), lambda: check_image_file(path, max_pixels=10_000)):
        try:
            check()
        except ExplainerError as error:
            assert "\n" not in str(error)
        else:
            assert width * height <= 10_000


@BOUNDED
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_as_an_image_get_one_sentence(data) -> None:
    try:
        pixels = decode_image(data)
    except ExplainerError as error:
        assert "\n" not in str(error)
    else:
        assert pixels.dtype == np.uint8 and pixels.ndim == 3


_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30).map(
    str.strip).filter(lambda s: s and not s.startswith("#") and not s[0].isdigit())


@BOUNDED
@given(names=st.lists(_NAME, min_size=1, max_size=20, unique=True))
def test_class_name_files_give_back_their_names(names) -> None:
    assert cn.parse_labels("\n".join(names).encode(), "labels.txt") == names
    assert cn.parse_labels(json.dumps(names).encode(), "labels.json") == names
    assert cn.parse_labels(json.dumps({str(i): n for i, n in enumerate(names)}).encode(), "labels.json") == names


@BOUNDED
@given(data=st.binary(max_size=400), suffix=st.sampled_from(["labels.txt", "labels.json", "x.csv"]))
def test_arbitrary_class_name_files_get_a_class_names_error(data, suffix) -> None:
    try:
        names = cn.parse_labels(data, suffix)
    except cn.ClassNamesError as error:
        assert "\n" not in str(error)
    else:
        assert names and all(isinstance(n, str) and n for n in names)
