"""Procedural mushroom scenes with pixel labels: the default network's training data and image gallery.

Why procedural: the project ships a trained network without downloading anything, and exact labels
for cap, gills, stipe, ring and volva come for free. Scenes are drawn with plain NumPy arithmetic
(no trigonometry or other library maths on pixel arrays, only +, *, /, sqrt and floor, which are
exactly rounded everywhere) from a `numpy.random.Generator` keyed by (seed, scene index), so the
same seed gives the same pixels on every machine, and `generate(n, s)[:k] == generate(k, s)`.

Label values index `models.CLASS_NAMES`: 0 background, 1 cap, 2 gills, 3 stipe, 4 ring, 5 volva.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BACKGROUND, CAP, GILLS, STIPE, RING, VOLVA = range(6)

# Species: cap colours, allowed shapes, chance of ring and volva, stipe build. Colours are RGB.
SPECIES: dict[str, dict[str, Any]] = {
    "fly agaric": dict(cap="red", shapes=("convex", "flat"), ring=0.9, volva=0.9, stipe=(0.11, 0.15),
                       stipe_rgb=(236, 232, 218), gill_rgb=(240, 236, 222)),
    "destroying angel": dict(cap="white", shapes=("convex", "conical"), ring=0.9, volva=0.9,
                             stipe=(0.09, 0.13), stipe_rgb=(232, 230, 224), gill_rgb=(245, 243, 236)),
    "gemmed amanita": dict(cap="yellow", shapes=("convex", "flat"), ring=0.75, volva=0.75,
                           stipe=(0.09, 0.12), stipe_rgb=(238, 230, 200), gill_rgb=(246, 240, 220)),
    "parasol": dict(cap="brown", shapes=("flat", "conical", "convex"), ring=0.85, volva=0.0,
                    stipe=(0.06, 0.09), stipe_rgb=(200, 180, 150), gill_rgb=(236, 226, 206)),
    "honey fungus": dict(cap="brown", shapes=("convex", "flat"), ring=0.7, volva=0.0,
                         stipe=(0.08, 0.11), stipe_rgb=(214, 190, 140), gill_rgb=(226, 206, 160)),
    "bolete": dict(cap="brown", shapes=("convex",), ring=0.0, volva=0.0, stipe=(0.17, 0.24),
                   stipe_rgb=(214, 196, 160), gill_rgb=(214, 200, 110)),
    "chanterelle": dict(cap="yellow", shapes=("flat", "convex"), ring=0.0, volva=0.0,
                        stipe=(0.10, 0.14), stipe_rgb=(236, 186, 70), gill_rgb=(232, 176, 60)),
    "ink cap": dict(cap="white", shapes=("conical",), ring=0.15, volva=0.0, stipe=(0.07, 0.10),
                    stipe_rgb=(238, 236, 230), gill_rgb=(120, 110, 110)),
    "russula": dict(cap="red", shapes=("flat", "convex"), ring=0.0, volva=0.0, stipe=(0.12, 0.16),
                    stipe_rgb=(240, 238, 232), gill_rgb=(244, 240, 226)),
}
CAP_RGB = {
    "red": ((205, 35, 28), (225, 70, 30), (170, 25, 30)),
    "brown": ((128, 82, 45), (160, 110, 62), (96, 62, 38), (176, 138, 96)),
    "white": ((238, 234, 226), (226, 226, 214), (240, 236, 214)),
    "yellow": ((232, 190, 44), (240, 206, 80), (214, 160, 30)),
}
BACKGROUNDS = ("soil", "grass", "litter")


@dataclass(frozen=True)
class SampleSpec:
    """A named gallery scene: a fixed seed plus fixed choices that override the random ones."""

    description: str
    seed: int
    scene: Mapping[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Low-level drawing: windows of the canvas, masks from arithmetic, painting with labels.


class _Canvas:
    """Float RGB image plus label map being painted back to front (painter's algorithm)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rgb = np.zeros((size, size, 3), np.float32)
        self.labels = np.zeros((size, size), np.uint8)
        self.fine = np.zeros((size, size), np.float32)  # per-scene texture fields in [-1, 1]
        self.coarse = np.zeros((size, size), np.float32)

    def window(self, cx: float, cy: float, radius: float):
        """Pixel window around a point: slices and column/row coordinate grids (pixel centres)."""
        s = self.size
        y0, y1 = max(0, int(cy - radius)), min(s, int(cy + radius) + 2)
        x0, x1 = max(0, int(cx - radius)), min(s, int(cx + radius) + 2)
        if y0 >= y1 or x0 >= x1:
            return None
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
        return (slice(y0, y1), slice(x0, x1)), xs, ys

    def paint(self, sl, mask: np.ndarray, rgb: np.ndarray, label: int | None) -> None:
        """Paint `rgb` (3-vector or window-shaped H×W×3) where `mask`; write `label` there too."""
        if not mask.any():
            return
        region = self.rgb[sl]
        if rgb.ndim == 1:
            region[mask] = rgb
        else:
            region[mask] = rgb[mask]
        if label is not None:
            self.labels[sl][mask] = label


def _local(xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, angle: float):
    """Coordinates in a frame rotated by `angle` (radians): u to the right, v upwards."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    return dx * np.float32(c) + dy * np.float32(s), dx * np.float32(s) - dy * np.float32(c)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: a random grid bilinearly interpolated (size-independent draws)."""
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
    pos = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(cells / size)
    i = np.minimum(pos.astype(np.int64), cells - 1)
    t = pos - i
    t = t * t * (3 - 2 * t)  # smoothstep hides the grid
    rows = grid[i] * (1 - t)[:, None] + grid[i + 1] * t[:, None]
    return rows[:, i] * (1 - t)[None, :] + rows[:, i + 1] * t[None, :]


def _shade(rgb: tuple[float, float, float] | np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Colour times a per-pixel brightness factor: H×W×3."""
    return np.asarray(rgb, np.float32)[None, None, :] * factor[..., None]


def _jitter(rng: np.random.Generator, rgb, amount: float = 14.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.normal(0.0, amount, 3).astype(np.float32), 0, 255)


# ----------------------------------------------------------------------------------------------
# Scene pieces: background textures, distractors and occluders, mushrooms.


def _background(canvas: _Canvas, rng: np.random.Generator, kind: str) -> None:
    s = canvas.size
    low = _value_noise(rng, s, 3)
    mid = _value_noise(rng, s, 9)
    canvas.fine = _value_noise(rng, s, 36)
    canvas.coarse = mid
    if kind == "soil":
        base = _jitter(rng, ((92, 64, 42), (70, 52, 38), (110, 84, 60))[rng.integers(3)], 10)
        factor = 1 + 0.25 * low + 0.15 * mid + 0.12 * canvas.fine
        canvas.rgb[:] = _shade(base, factor)
        for _ in range(int(rng.integers(10, 40))):  # pebbles and crumbs
            _stone(canvas, rng, radius=rng.uniform(0.004, 0.015) * s, label=None)
    elif kind == "grass":
        base = _jitter(rng, ((70, 110, 45), (90, 125, 50), (60, 90, 40))[rng.integers(3)], 10)
        canvas.rgb[:] = _shade(base, 1 + 0.3 * low + 0.15 * mid + 0.1 * canvas.fine)
        for _ in range(int(rng.integers(40, 90))):
            _blade(canvas, rng, front=False)
    else:  # leaf litter
        base = _jitter(rng, (90, 66, 42), 10)
        canvas.rgb[:] = _shade(base, 1 + 0.25 * low + 0.15 * mid)
        for _ in range(int(rng.integers(25, 60))):
            _leaf(canvas, rng, scale=rng.uniform(0.04, 0.1) * s, label=None, autumn=True)


def _blade(canvas: _Canvas, rng: np.random.Generator, front: bool,
           at: tuple[float, float] | None = None) -> None:
    """A curved, tapering grass blade rooted at a random point; labelled background when in front."""
    s = canvas.size
    length = rng.uniform(0.12, 0.4) * s
    width = rng.uniform(0.006, 0.014) * s + 0.5
    x0, y0 = rng.uniform(0, s), rng.uniform(0.2 * s, 1.1 * s)
    if at is not None:
        x0, y0 = at
    angle = rng.uniform(-0.5, 0.5)
    bend = rng.uniform(-0.4, 0.4)
    green = _jitter(rng, ((80, 130, 50), (110, 150, 60), (60, 100, 40), (140, 150, 80))[rng.integers(4)], 12)
    win = canvas.window(x0, y0 - length / 2, length / 2 + width + abs(bend) * length)
    if win is None:
        return
    sl, xs, ys = win
    u, v = _local(xs, ys, x0, y0, angle)
    t = v / np.float32(length)
    centre = np.float32(bend * length) * t * t
    mask = (t >= 0) & (t <= 1) & (np.abs(u - centre) <= width * (1 - t))
    light = 0.85 + 0.3 * ((u - centre) / (width + 1e-3)) * 0.5 + 0.1 * canvas.fine[sl]
    canvas.paint(sl, mask, _shade(green, light), 0 if front else None)


def _leaf(canvas: _Canvas, rng: np.random.Generator, scale: float, label: int | None, autumn: bool,
          at: tuple[float, float] | None = None) -> None:
    """A pointed leaf with a midrib, in mushroom-like autumn colours (red, yellow, brown)."""
    s = canvas.size
    cx, cy = at if at is not None else (rng.uniform(0, s), rng.uniform(0, s))
    angle = rng.uniform(0, 2 * math.pi)
    half_len, half_wid = scale, scale * rng.uniform(0.3, 0.55)
    palette = ((170, 60, 30), (200, 150, 40), (120, 80, 40), (150, 100, 50), (190, 90, 40), (90, 60, 35))
    colour = _jitter(rng, palette[rng.integers(len(palette))] if autumn else (90, 130, 50), 16)
    win = canvas.window(cx, cy, half_len + 1)
    if win is None:
        return
    sl, xs, ys = win
    u, v = _local(xs, ys, cx, cy, angle)
    a = u / np.float32(half_len)
    mask = (np.abs(a) <= 1) & (np.abs(v) <= half_wid * (1 - a * a))
    light = 0.9 + 0.15 * v / np.float32(half_wid) + 0.08 * canvas.fine[sl]
    light = np.where(np.abs(v) < 0.6 + 0.02 * scale, light * 0.7, light)  # midrib
    canvas.paint(sl, mask, _shade(colour, light), label)


def _stone(canvas: _Canvas, rng: np.random.Generator, radius: float, label: int | None,
           at: tuple[float, float] | None = None) -> None:
    """A lit, rounded stone: grey to white, so it can pass for a white cap."""
    s = canvas.size
    cx, cy = at if at is not None else (rng.uniform(0, s), rng.uniform(0, s))
    a, b = radius, radius * rng.uniform(0.55, 1.0)
    colour = _jitter(rng, ((150, 148, 140), (200, 196, 186), (120, 116, 110), (225, 220, 210))[rng.integers(4)])
    win = canvas.window(cx, cy, a + 1)
    if win is None:
        return
    sl, xs, ys = win
    u, v = _local(xs, ys, cx, cy, rng.uniform(0, math.pi))
    nx, ny = u / np.float32(a), v / np.float32(b)
    r2 = nx * nx + ny * ny
    mask = r2 <= 1
    nz = np.sqrt(np.maximum(0, 1 - r2))
    light = 0.55 + 0.35 * nz + 0.2 * (ny - 0.5 * nx) * (1 - nz) + 0.05 * canvas.fine[sl]
    canvas.paint(sl, mask, _shade(colour, light), label)


def _berries(canvas: _Canvas, rng: np.random.Generator, label: int | None,
             at: tuple[float, float] | None = None) -> None:
    """A cluster of glossy red (sometimes dark) berries: small round red blobs like young caps."""
    s = canvas.size
    cx, cy = at if at is not None else (rng.uniform(0.1, 0.9) * s, rng.uniform(0.2, 0.95) * s)
    colour = _jitter(rng, ((200, 25, 30), (170, 20, 40), (60, 30, 70), (220, 60, 20))[rng.integers(4)], 10)
    for _ in range(int(rng.integers(2, 8))):
        r = rng.uniform(0.014, 0.03) * s + 0.8
        bx, by = cx + rng.normal(0, 0.03 * s), cy + rng.normal(0, 0.03 * s)
        win = canvas.window(bx, by, r + 1)
        if win is None:
            continue
        sl, xs, ys = win
        dx, dy = (xs - np.float32(bx)) / np.float32(r), (ys - np.float32(by)) / np.float32(r)
        r2 = dx * dx + dy * dy
        light = 0.6 + 0.4 * np.sqrt(np.maximum(0, 1 - r2))
        hx, hy = dx + 0.35, dy + 0.35
        light = np.where(hx * hx + hy * hy < 0.05, 1.8, light)  # specular glint
        canvas.paint(sl, r2 <= 1, np.clip(_shade(colour, light), 0, 255), label)


def _twig(canvas: _Canvas, rng: np.random.Generator) -> None:
    s = canvas.size
    x0, y0 = rng.uniform(0, s), rng.uniform(0.3 * s, s)
    length, width = rng.uniform(0.2, 0.6) * s, rng.uniform(0.008, 0.02) * s + 0.6
    angle = rng.uniform(0, 2 * math.pi)
    colour = _jitter(rng, (80, 58, 38), 10)
    win = canvas.window(x0, y0, length + width)
    if win is None:
        return
    sl, xs, ys = win
    u, v = _local(xs, ys, x0, y0, angle)
    mask = (v >= 0) & (v <= length) & (np.abs(u) <= width)
    canvas.paint(sl, mask, _shade(colour, 0.8 + 0.3 * u / np.float32(width) + 0.1 * canvas.fine[sl]), 0)


def _random_mushroom(rng: np.random.Generator, given: Mapping[str, Any]) -> dict[str, Any]:
    """All of one mushroom's parameters (in units of the image size), `given` ones kept."""
    species = given.get("species") or list(SPECIES)[rng.integers(len(SPECIES))]
    sp = SPECIES[species]
    m: dict[str, Any] = dict(species=species)
    m["x"] = rng.uniform(0.12, 0.88)
    m["y"] = rng.uniform(0.5, 0.95)
    m["height"] = rng.uniform(0.14, 0.36)  # stipe height, the mushroom's scale
    m["tilt"] = rng.normal(0, 0.18)
    m["shape"] = sp["shapes"][rng.integers(len(sp["shapes"]))]
    m["view"] = rng.uniform(-0.25, 0.45)  # > 0: seen from below (gills show); < 0: from above
    m["ring"] = bool(rng.random() < sp["ring"])
    m["volva"] = bool(rng.random() < sp["volva"])
    m["cap_rgb"] = CAP_RGB[sp["cap"]][rng.integers(len(CAP_RGB[sp["cap"]]))]
    m["cap_radius"] = rng.uniform(0.55, 1.0)  # relative to stipe height
    m["cap_height"] = rng.uniform(0.25, 0.55)  # relative to cap radius
    m["stipe_width"] = rng.uniform(*sp["stipe"])  # half-width relative to stipe height
    m["ring_at"] = rng.uniform(0.62, 0.82)
    m["spots"] = int(rng.integers(5, 16)) if sp["cap"] == "red" and species == "fly agaric" else 0
    m["seed"] = int(rng.integers(2**31))
    m.update({k: v for k, v in given.items() if k != "species"})
    return m


def _mushroom(canvas: _Canvas, m: Mapping[str, Any]) -> None:
    """Draw one mushroom standing at (x, y): gills, stipe, ring, volva, then the cap, back to front."""
    s = canvas.size
    rng = np.random.default_rng(m["seed"])
    sp = SPECIES[m["species"]]
    bx, by = m["x"] * s, m["y"] * s
    h = m["height"] * s
    radius = m["cap_radius"] * h
    cap_h = m["cap_height"] * radius * (0.45 if m["shape"] == "flat" else 1.0)
    if m["shape"] == "conical":
        cap_h = max(cap_h, 0.7 * radius)
    w_top = max(m["stipe_width"] * h, 1.0)
    w_base = w_top * (1.5 if m["volva"] or m["species"] == "bolete" else 1.15)
    win = canvas.window(bx, by - h / 2, h + cap_h + radius + 2)
    if win is None:
        return
    sl, xs, ys = win
    u, v = _local(xs, ys, bx, by, m["tilt"])
    fine, coarse = canvas.fine[sl], canvas.coarse[sl]
    rel = u / np.float32(radius)
    inside = np.maximum(0, 1 - rel * rel)
    lens = np.sqrt(inside)  # half-ellipse profile under and over the cap's rim
    vc = v - np.float32(h)  # height above the stipe top (the cap's rim line)

    under = np.float32(abs(m["view"]) * radius)
    if m["view"] > 0:  # gills: the underside between rim and stipe, radial lines toward the centre
        gills = (np.abs(rel) <= 1) & (vc <= 0) & (vc >= -under * lens)
        slope = u / (np.float32(radius * 0.15) - vc)
        stripe = slope * np.float32(6.0) - np.floor(slope * np.float32(6.0))
        light = 0.75 + 0.2 * np.abs(stripe - 0.5) * 2 - 0.25 * (vc / (under + 1e-3)) ** 2 + 0.05 * fine
        canvas.paint(sl, gills, _shade(_jitter(rng, sp["gill_rgb"], 8), light), GILLS)

    frac = np.clip(v / np.float32(h), 0, 1)
    half = w_top + (w_base - w_top) * (1 - frac) ** 2
    stipe = (v >= -1) & (v <= h + 1) & (np.abs(u) <= half)
    across = u / half
    light = 0.7 + 0.3 * np.sqrt(np.maximum(0, 1 - across * across)) + 0.06 * fine + 0.05 * coarse
    canvas.paint(sl, stipe, _shade(_jitter(rng, sp["stipe_rgb"], 8), light), STIPE)

    if m["ring"]:  # a flared skirt hanging from the stipe just below the cap
        top = m["ring_at"] * h
        thick = max(0.1 * h, 2.5)
        shadow = stipe & (v < top - thick) & (v >= top - 1.8 * thick)  # the skirt shades the stipe
        dark = 0.62 + 0.38 * np.clip((top - thick - v) / np.float32(0.8 * thick), 0, 1)
        canvas.rgb[sl][shadow] *= dark[shadow][:, None]
        t = np.clip((top - v) / np.float32(thick), 0, 1)
        w_ring = w_top * (1.1 + 0.8 * t) + 0.8
        ring = (v <= top) & (v >= top - thick) & (np.abs(u) <= w_ring)
        light = 1.0 - 0.35 * t + 0.05 * fine - 0.1 * np.abs(u / w_ring) ** 2
        colour = _jitter(rng, (240, 236, 220) if m["species"] != "honey fungus" else (230, 210, 150), 8)
        canvas.paint(sl, ring, _shade(colour, light), RING)

    if m["volva"]:  # a torn cup around the bulbous base, half buried
        cup_h = max(0.22 * h, 2.5)
        cup_w = w_base * 1.45 + 0.8
        cy = v / np.float32(cup_h)
        ax = u / np.float32(cup_w)
        teeth = 0.12 * np.abs((ax * 3.0) - np.floor(ax * 3.0) - 0.5)
        volva = (cy >= -0.15) & (cy <= 1 - teeth) & (ax * ax + (cy - 0.1) ** 2 * 0.6 <= 1)
        light = 0.8 + 0.15 * cy + 0.1 * fine - 0.1 * np.abs(ax)
        canvas.paint(sl, volva, _shade(_jitter(rng, (226, 220, 206), 10), light), VOLVA)

    # the cap, its upper profile by shape, plus its near underside when seen from above
    if m["shape"] == "convex":
        top_edge = np.float32(cap_h) * lens
    elif m["shape"] == "flat":
        top_edge = np.float32(cap_h) * np.sqrt(np.sqrt(inside))
    else:
        top_edge = np.float32(cap_h) * (1 - np.abs(rel)) * (0.6 + 0.4 * (1 - np.abs(rel)))
    bottom = -under * lens if m["view"] < 0 else np.float32(-1.0) * inside
    cap = (np.abs(rel) <= 1) & (vc <= top_edge) & (vc >= bottom)
    height = vc / np.float32(cap_h + 1e-3)
    light = 0.72 + 0.28 * np.clip(height, 0, 1) - 0.18 * np.abs(rel) ** 3 + 0.07 * fine + 0.05 * coarse
    colour = _shade(_jitter(rng, m["cap_rgb"], 10), light)
    for _ in range(m["spots"]):  # white warts (fly agaric)
        su, sv = rng.uniform(-0.8, 0.8) * radius, rng.uniform(0.1, 0.8) * cap_h
        sr = rng.uniform(0.05, 0.11) * radius + 0.6
        du, dv = u - np.float32(su), vc - np.float32(sv)
        colour[du * du + dv * dv <= sr * sr] = _jitter(rng, (238, 234, 222), 6)
    canvas.paint(sl, cap, colour, CAP)


def _lighting(canvas: _Canvas, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Directional light gradient, vignette, colour cast, sensor noise, sometimes defocus → uint8."""
    s = canvas.size
    pos = (np.arange(s, dtype=np.float32) + 0.5) / np.float32(s) - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    ramp = pos[None, :] * np.float32(math.cos(angle)) + pos[:, None] * np.float32(math.sin(angle))
    vignette = pos[None, :] ** 2 + pos[:, None] ** 2
    gain = rng.uniform(0.75, 1.2) * (1 + strength * rng.uniform(0.3, 1.0) * 2 * ramp - 0.5 * vignette)
    cast = (1 + rng.normal(0, 0.05, 3)).astype(np.float32)
    img = canvas.rgb * gain[..., None] * cast[None, None, :]
    if rng.random() < 0.25:  # slight defocus: 3×3 box blur written out as shifted sums
        p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        acc = np.zeros_like(img)
        for dy in range(3):
            for dx in range(3):
                acc += p[dy:dy + s, dx:dx + s]
        img = acc / np.float32(9)
    sigma = rng.uniform(1.0, 8.0)
    img = img + rng.normal(0, sigma, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _scene(rng: np.random.Generator, size: int, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One scene: background, distractors behind, mushrooms far to near, occluders in front, light."""
    canvas = _Canvas(size)
    kind = spec.get("background") or BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    _background(canvas, rng, kind)

    count = spec.get("count")
    if count is None:
        count = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15]))
    given = list(spec.get("mushrooms", ()))
    mushrooms = [_random_mushroom(rng, given[i] if i < len(given) else {}) for i in range(count)]

    n_behind = spec.get("distractors")
    n_behind = int(rng.integers(0, 6)) if n_behind is None else n_behind
    for _ in range(n_behind):
        pick = rng.random()
        if pick < 0.4:
            _leaf(canvas, rng, scale=rng.uniform(0.06, 0.14) * size, label=0, autumn=True)
        elif pick < 0.7:
            _stone(canvas, rng, radius=rng.uniform(0.03, 0.1) * size, label=0)
        else:
            _berries(canvas, rng, label=0)

    for m in sorted(mushrooms, key=lambda m: m["y"]):  # farther (higher up) first
        _mushroom(canvas, m)

    n_front = spec.get("occluders")
    n_front = int(rng.choice([0, 0, 1, 2, 4])) if n_front is None else n_front
    for _ in range(n_front):
        pick = rng.random()
        if pick < 0.5 and kind == "grass" or pick < 0.2:
            for _ in range(int(rng.integers(3, 12))):
                _blade(canvas, rng, front=True)
        elif pick < 0.75:
            _leaf(canvas, rng, scale=rng.uniform(0.05, 0.12) * size, label=0, autumn=True)
        else:
            _twig(canvas, rng)
    for m in mushrooms[:len(mushrooms) if spec.get("cover") else 0]:  # gallery only: hide them on purpose
        x, y, h = m["x"] * size, m["y"] * size, m["height"] * size
        for _ in range(int(spec["cover"])):
            _blade(canvas, rng, front=True, at=(x + rng.normal(0, 0.5 * h), y + rng.uniform(0, 0.1 * h)))
        for _ in range(int(spec["cover"]) // 4):
            at = (x + rng.normal(0, 0.4 * h), y - rng.uniform(0.2, 1.3) * h)
            _leaf(canvas, rng, scale=rng.uniform(0.3, 0.5) * h, label=0, autumn=True, at=at)
    image = _lighting(canvas, rng, spec.get("light", 0.3))
    return image, canvas.labels


def generate(count: int, seed: int, size: int = 144) -> tuple[np.ndarray, np.ndarray]:
    """`count` random scenes (uint8 N×H×W×3) and their labels (uint8 N×H×W), reproducible from `seed`."""
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.empty((count, size, size), np.uint8)
    for i in range(count):
        images[i], masks[i] = _scene(np.random.default_rng([seed, i]), size, {})
    return images, masks


# ----------------------------------------------------------------------------------------------
# The gallery: ordinary scenes first (the first one is the dashboard's default), then failure cases.

_FLY = dict(species="fly agaric", shape="convex", view=0.32, ring=True, volva=True, tilt=0.0)
SAMPLES: dict[str, SampleSpec] = {
    "fly agaric": SampleSpec(
        "One large fly agaric seen slightly from below: cap with white warts, gills, stipe, ring, volva.",
        seed=101,
        scene=dict(background="soil", count=1, distractors=1, occluders=0, light=0.2,
                   mushrooms=[dict(_FLY, x=0.5, y=0.9, height=0.36, cap_radius=0.95, cap_height=0.45,
                                   stipe_width=0.13, ring_at=0.72, spots=10)]),
    ),
    "two mushrooms": SampleSpec(
        "A white destroying angel (ring, volva) beside a brown bolete (no ring, no volva) on leaf litter.",
        seed=202,
        scene=dict(background="litter", count=2, distractors=2, occluders=0,
                   mushrooms=[dict(species="destroying angel", x=0.32, y=0.86, height=0.3, view=0.3,
                                   ring=True, volva=True, tilt=-0.12, shape="convex"),
                              dict(species="bolete", x=0.72, y=0.92, height=0.24, view=0.15, tilt=0.1)]),
    ),
    "group in grass": SampleSpec(
        "Four mushrooms of different species overlapping in grass, some blades in front.",
        seed=303,
        scene=dict(background="grass", count=4, occluders=1,
                   mushrooms=[dict(x=0.2, y=0.62, height=0.18), dict(x=0.42, y=0.8, height=0.26),
                              dict(x=0.66, y=0.7, height=0.22), dict(x=0.84, y=0.92, height=0.3)]),
    ),
    "parasol from above": SampleSpec(
        "A tilted parasol seen from above: its gills are hidden under the cap; ring on a slender stipe.",
        seed=404,
        scene=dict(background="litter", count=1, occluders=0,
                   mushrooms=[dict(species="parasol", shape="flat", view=-0.2, ring=True, x=0.5, y=0.9,
                                   height=0.42, tilt=0.25, cap_radius=0.8)]),
    ),
    "yellow caps": SampleSpec(
        "Two yellow-capped species: a gemmed amanita (ring, volva) and a chanterelle, on soil.",
        seed=505,
        scene=dict(background="soil", count=2, occluders=0,
                   mushrooms=[dict(species="gemmed amanita", x=0.35, y=0.88, height=0.3, view=0.25,
                                   ring=True, volva=True),
                              dict(species="chanterelle", x=0.72, y=0.78, height=0.22, view=0.3)]),
    ),
    "red look-alikes": SampleSpec(
        "A fly agaric among red berries, red leaves and white stones with mushroom-like colours.",
        seed=606,
        scene=dict(background="litter", count=1, distractors=8, occluders=1,
                   mushrooms=[dict(_FLY, x=0.55, y=0.85, height=0.26)]),
    ),
    "tiny mushroom": SampleSpec(
        "Failure case: one mushroom only a few pixels tall, far away; thin parts vanish at stride 8.",
        seed=707,
        scene=dict(background="soil", count=1, distractors=2, occluders=0,
                   mushrooms=[dict(species="fly agaric", x=0.45, y=0.6, height=0.06, view=0.2,
                                   ring=True, volva=True)]),
    ),
    "heavy occlusion": SampleSpec(
        "Failure case: a mushroom mostly hidden behind grass blades, leaves and a twig.",
        seed=808,
        scene=dict(background="grass", count=1, distractors=0, occluders=2, cover=16,
                   mushrooms=[dict(species="destroying angel", x=0.5, y=0.85, height=0.3, view=0.2,
                                   ring=True, volva=True)]),
    ),
    "distractors only": SampleSpec(
        "Hard case: no mushroom, only look-alikes (red berries, autumn leaves, pale stones); every pixel is background.",
        seed=909,
        scene=dict(background="litter", count=0, distractors=10, occluders=2),
    ),
    "no mushroom": SampleSpec(
        "Control case: bare soil and nothing else; any pixel predicted as a mushroom part is an error.",
        seed=1010,
        scene=dict(background="soil", count=0, distractors=0, occluders=0),
    ),
}


def sample_names() -> list[str]:
    """Gallery names in display order; the first is the default image."""
    return list(SAMPLES)


def sample_description(name: str) -> str:
    """One sentence saying what the sample shows (and, for failure cases, why it is hard)."""
    return _spec(name).description


def load_sample(name: str, size: int = 144) -> tuple[np.ndarray, np.ndarray]:
    """A gallery scene (uint8 H×W×3) and its ground-truth labels (uint8 H×W), drawn on the fly."""
    spec = _spec(name)
    return _scene(np.random.default_rng([spec.seed, 0]), size, spec.scene)


def _spec(name: str) -> SampleSpec:
    try:
        return SAMPLES[name]
    except KeyError:
        raise KeyError(f"Unknown sample {name!r}; choose one of {', '.join(SAMPLES)}.") from None


# ----------------------------------------------------------------------------------------------
# Command line: write generated scenes as files, so folder tools (the batch run) can use them.


def write_folder(out, count: int, seed: int = 0, size: int = 144) -> dict[str, Any]:
    """Write scene_<i>.png images to `out`/images and their label PNGs to `out`/labels; returns scenes.json.

    The index `i` and the seed reproduce a scene exactly: `generate(count, seed, size)[i]`."""
    import json
    from pathlib import Path

    from PIL import Image

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    images, labels = generate(count, seed, size)
    names = []
    for i in range(count):
        name = f"scene_{i:05d}.png"
        Image.fromarray(images[i]).save(out / "images" / name)
        Image.fromarray(labels[i], mode="L").save(out / "labels" / name)
        names.append(name)
    info = {"generator": "models.scenes.generate", "seed": seed, "count": count, "size": size,
            "class_names": list(_class_names()), "images": names}
    (out / "scenes.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def _class_names() -> tuple[str, ...]:
    from models import CLASS_NAMES

    return CLASS_NAMES


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m models.scenes",
        description="Write generated mushroom scenes (images/ and labels/ PNGs plus scenes.json) to a folder.")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--count", type=int, default=200, help="number of scenes (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--size", type=int, default=144, help="side in pixels (default 144, the shipped model's)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.size < 16:
        parser.error("--count must be ≥ 1 and --size ≥ 16.")
    info = write_folder(args.out, args.count, args.seed, args.size)
    print(f"{info['count']} scenes (seed {info['seed']}) in {args.out}/images, labels in {args.out}/labels")


if __name__ == "__main__":
    main()
