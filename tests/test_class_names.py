"""Class names of foreign models (labels files, typed text, model-file metadata) and distinct colours."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from helpers_models import tiny_seg_model

from dashboard import figures, palette
from models import CLASS_NAMES
from models import class_names as cn


def test_text_labels_plain_and_indexed() -> None:
    assert cn.parse_labels(b"background\nroad\n\ncar\n", "labels.txt") == ["background", "road", "car"]
    assert cn.parse_labels("# ADE-style\n1 wall\n0 sky\n2: floor\n", "x.txt") == ["sky", "wall", "floor"]
    assert cn.parse_labels("\ufeffa\nb", "x.txt") == ["a", "b"]  # a BOM from Windows editors
    with pytest.raises(cn.ClassNamesError, match="without gaps"):
        cn.parse_labels("0 a\n2 b\n", "x.txt")
    with pytest.raises(cn.ClassNamesError, match="twice"):
        cn.parse_labels("a\nb\na\n", "x.txt")
    with pytest.raises(cn.ClassNamesError, match="UTF-8"):
        cn.parse_labels(b"\xff\xfe\x00bad", "x.txt")


@pytest.mark.parametrize(
    "payload",
    [
        ["bg", "cat", "dog"],
        {"0": "bg", "1": "cat", "2": "dog"},
        {"id2label": {"2": "dog", "0": "bg", "1": "cat"}},
        {"class_names": ["bg", "cat", "dog"]},
    ],
)
def test_json_labels(payload) -> None:
    assert cn.parse_labels(json.dumps(payload).encode(), "labels.json") == ["bg", "cat", "dog"]


def test_bad_json_is_one_sentence() -> None:
    for data in (b"{not json", b"42", b'{"a": 1}'):
        with pytest.raises(cn.ClassNamesError) as info:
            cn.parse_labels(data, "labels.json")
        assert str(info.value).count(". ") == 0


def test_typed_names() -> None:
    assert cn.parse_typed("bg, road , car") == ["bg", "road", "car"]
    assert cn.parse_typed("bg\nroad, with comma\n") == ["bg", "road, with comma"]
    with pytest.raises(cn.ClassNamesError, match="empty"):
        cn.parse_typed("a,,b")


def test_resolve_order_and_fallback() -> None:
    assert cn.resolve(3, given=["a", "b", "c"], stored=["x", "y", "z"]) == (["a", "b", "c"], "given by you")
    names, source = cn.resolve(3, given=["a", "b"], stored=["x", "y", "z"])
    assert names == ["x", "y", "z"] and "2 names given by you do not match" in source
    assert cn.resolve(4) == (["class 0", "class 1", "class 2", "class 3"], "numbered")
    assert cn.resolve(6, shipped=CLASS_NAMES)[0] == list(CLASS_NAMES)
    assert cn.resolve(6)[0][0] == "class 0"  # a foreign 6-class model does not get mushroom names


def test_names_stored_in_a_keras_file(tmp_path) -> None:
    path = tmp_path / "m.keras"
    tiny_seg_model().save(path)
    assert cn.names_from_model_file(path) is None  # Keras itself stores none
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["metadata.json"])
    meta["class_names"] = ["bg", "cat", "dog"]
    members["metadata.json"] = json.dumps(meta).encode()
    tagged = tmp_path / "tagged.keras"
    with zipfile.ZipFile(tagged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert cn.names_from_model_file(tagged) == ["bg", "cat", "dog"]
    assert cn.names_from_model_file(tmp_path / "missing.keras") is None


def test_figures_give_mushroom_names_to_the_shipped_model_only() -> None:
    assert figures.class_names(6) == list(CLASS_NAMES)  # outside a run: the shipped network
    assert figures.class_names(4) == ["class 0", "class 1", "class 2", "class 3"]


@pytest.mark.parametrize("count", [19, 21, 150])
def test_colours_are_distinct_for_large_heads(count: int) -> None:
    colours = palette.distinct_colors(count)
    assert len(colours) == count and len(set(colours)) == count
    assert all(0 <= v <= 255 for colour in colours for v in colour)
    lab = palette.srgb_to_lab(np.array(colours))
    distances = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 10.0  # CIELAB ΔE: about 2.3 is just noticeable
    assert palette.distinct_colors(count + 5)[:count] == colours  # stable as the head grows


def test_lab_conversion_reference_points() -> None:
    np.testing.assert_allclose(palette.srgb_to_lab(np.array([255, 255, 255])), [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(palette.srgb_to_lab(np.array([0, 0, 0])), [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(palette.srgb_to_lab(np.array([255, 0, 0])), [53.24, 80.09, 67.20], atol=0.1)
