"""The region preview of the modes without a canvas (class, whole image, error region) is a picture with
the region outlined, not a Plotly figure: a mode switch paints it at once, and the maps after it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from dashboard import figures, state
from explainers import regions

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def test_the_whole_image_mode_shows_its_region_as_a_picture() -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()  # draw mode: the canvas, no preview

    def uncaptioned() -> int:
        return sum(1 for e in at.get("image") if not any(i.caption for i in e.proto.imgs))

    on_canvas = uncaptioned()
    at.selectbox(key=state.REGION_MODE).set_value("image").run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert not [s for s in specs if any(t.get("type") == "image" for t in s.get("data", []))]
    assert uncaptioned() == on_canvas + 1  # the preview: one picture more than beside the canvas


def test_the_outline_is_drawn_where_the_region_ends() -> None:
    image = np.full((10, 20, 3), 100, np.uint8)
    inside = np.zeros((10, 20), bool)
    inside[2:8, 5:15] = True
    picture = figures.outlined(image, regions.outline_paths(inside), (80, 40))
    assert picture.shape == (40, 80, 3)
    assert (picture[20, 0] == 100).all() and (picture[20, 40] == 100).all()  # outside and inside: untouched
    border = picture[8:32, 18:22].reshape(-1, 3)  # the region's left edge, 4× enlarged
    assert (border == 255).all(axis=1).any() and (border == 0).all(axis=1).any()  # white over black


def test_map_pictures_are_sized_for_their_column_not_three_times_the_image() -> None:
    """A map picture is enlarged by whole pixels to `MAP_SIDE` at most once: the shipped 144² image 2×, a 512²
    model's image not at all (a fixed 3× made 1536² JPEGs to encode, send and decode at every stroke)."""
    import io

    from PIL import Image

    for side, expected in ((144, 288), (224, 448), (512, 512), (96, 288)):
        image = np.full((side, side, 3), 128, np.uint8)
        picture = Image.open(io.BytesIO(figures.map_picture(image, np.zeros((side, side), np.float32), [])))
        assert picture.size == (expected, expected), (side, picture.size)
