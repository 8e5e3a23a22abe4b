"""The drawing canvas: the only module that touches `streamlit_drawable_canvas`.

The component can only be imported inside a running app (or AppTest), so the import happens inside
`draw`. What the page needs from a drawing is returned as plain arrays and numbers; turning them into
a region is `explainers.regions`' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

STROKE_COLOR = "#ffffff"
FILL_COLOR = "rgba(255, 255, 255, 0.35)"
POINT_RADIUS = 4


@dataclass(frozen=True)
class Drawing:
    """What the user drew: `rgba` at canvas size (alpha > 0 = drawn; None before any drawing) and the
    centres (x, y) of the points placed in point mode, in canvas pixels, oldest first."""

    rgba: np.ndarray | None
    points: list[tuple[float, float]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.rgba is None or not bool((self.rgba[..., 3] > 0).any())


def draw(background: np.ndarray, key: str, tool: str, stroke_width: int) -> Drawing:
    """Show the canvas over `background` (uint8 RGB at canvas size) and return the current drawing.

    The toolbar of the component gives undo, redo and clear; a new `key` gives an empty canvas.
    """
    from streamlit_drawable_canvas import st_canvas  # only importable inside a running app

    height, width = background.shape[:2]
    result = st_canvas(
        fill_color=FILL_COLOR,
        stroke_width=stroke_width,
        stroke_color=STROKE_COLOR,
        background_image=Image.fromarray(background),
        update_streamlit=True,
        height=height,
        width=width,
        drawing_mode=tool,
        point_display_radius=POINT_RADIUS,
        return_image_data=True,
        key=key,
    )
    rgba = result.image_data
    if rgba is not None:
        rgba = np.asarray(rgba)
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            rgba = None
    return Drawing(rgba=rgba, points=point_centres(result.json_data))


def point_centres(json_data: dict | None) -> list[tuple[float, float]]:
    """Centres (x, y) of the circles the point tool placed, from the canvas' Fabric.js JSON.

    Fabric reports `left`/`top` of the bounding box (stroke included) for the origin it names, so the
    centre is the origin plus half the box when the origin is "left"/"top".
    """
    centres: list[tuple[float, float]] = []
    for obj in (json_data or {}).get("objects", []) or []:
        if str(obj.get("type", "")).lower() != "circle":
            continue
        centres.append((_centre(obj, "left", "originX", "width", "scaleX"),
                        _centre(obj, "top", "originY", "height", "scaleY")))
    return centres


def _centre(obj: dict, pos: str, origin: str, size: str, scale: str) -> float:
    extent = (float(obj.get(size, 0)) + float(obj.get("strokeWidth", 0) or 0)) * float(obj.get(scale, 1) or 1)
    shift = {"left": 0.5, "top": 0.5, "center": 0.0, "right": -0.5, "bottom": -0.5}.get(obj.get(origin, "left"), 0.5)
    return float(obj.get(pos, 0)) + shift * extent
