"""`python -m models.scenes --out DIR`: the generated scenes as files, pixel for pixel `generate`'s output."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from models import CLASS_NAMES, scenes


def test_written_scenes_equal_the_generator(tmp_path) -> None:
    scenes.main(["--out", str(tmp_path), "--count", "3", "--seed", "5", "--size", "32"])
    images, labels = scenes.generate(3, 5, 32)
    info = json.loads((tmp_path / "scenes.json").read_text())
    assert info["seed"] == 5 and info["count"] == 3 and info["class_names"] == list(CLASS_NAMES)
    for i, name in enumerate(info["images"]):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "images" / name)), images[i])
        with Image.open(tmp_path / "labels" / name) as label:
            assert label.mode == "L"
            np.testing.assert_array_equal(np.asarray(label), labels[i])
