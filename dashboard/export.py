"""Downloads: the comparison as a PNG (Pillow, no browser needed) and the maps as `.npz` + JSON.

The PNG is drawn with the same colour map and opacity as the page. The `.npz` holds the arrays
(maps, region mask, image, predicted labels); the JSON sidecar says how they were made.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dashboard import figures
from explainers import regions

XRAI_BATCH_SIZE = 50  # explainers.explain's default, which the page uses
TILE = 288  # pixel size of one map in the PNG
PAD = 12
TITLE_HEIGHT = 40


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def region_summary(region: np.ndarray) -> dict[str, Any]:
    """Bounding box (rows [top, bottom), cols [left, right)) and pixel count; the mask is in the npz."""
    region = np.asarray(region, dtype=bool)
    rows, cols = np.nonzero(region)
    if rows.size == 0:
        return {"shape": list(region.shape), "pixel_count": 0, "bbox": None}
    return {
        "shape": list(region.shape),
        "pixel_count": int(rows.size),
        "bbox": {"top": int(rows.min()), "left": int(cols.min()),
                 "bottom": int(rows.max()) + 1, "right": int(cols.max()) + 1},
    }


def settings_json(settings: Mapping[str, Any]) -> str:
    stamped = {"created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **settings}
    return json.dumps(stamped, indent=2, sort_keys=False, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def maps_npz(maps: Mapping[str, Any], region: np.ndarray, image: np.ndarray, labels: np.ndarray) -> bytes:
    """`heatmap_<method>` (H×W float32 in [0, 1]), `layer_map_<method>` when the method has one,
    plus `region` (bool), `image` (uint8) and `labels` (predicted classes)."""
    arrays: dict[str, np.ndarray] = {
        "region": np.asarray(region, dtype=bool),
        "image": np.asarray(image, dtype=np.uint8),
        "labels": np.asarray(labels),
    }
    for method, explanation in maps.items():
        key = method.replace("+", "p")
        arrays[f"heatmap_{key}"] = np.asarray(explanation.heatmap, dtype=np.float32)
        if getattr(explanation, "layer_map", None) is not None:
            arrays[f"layer_map_{key}"] = np.asarray(explanation.layer_map, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def comparison_png(image: np.ndarray, tiles: Sequence[tuple[str, np.ndarray]], paths: Sequence[np.ndarray],
                   caption: str) -> bytes:
    """Maps side by side over the image (same colours as the page), region outlined, colour bar and a
    caption line with the settings underneath."""
    n = max(1, len(tiles))
    width = PAD + n * (TILE + PAD)
    bar_height = 14
    height = TITLE_HEIGHT + TILE + PAD + bar_height + 20 + 28
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    title_font, small_font = _font(16), _font(12)
    h, w = image.shape[:2]
    scale_x, scale_y = TILE / w, TILE / h
    for k, (title, heatmap) in enumerate(tiles):
        x0 = PAD + k * (TILE + PAD)
        tile = Image.fromarray(figures.heat_over_image(image, heatmap)).resize((TILE, TILE), Image.Resampling.NEAREST)
        canvas.paste(tile, (x0, TITLE_HEIGHT))
        tile_pen = ImageDraw.Draw(canvas)
        for path in paths:
            points = [(x0 + (c + 0.5) * scale_x, TITLE_HEIGHT + (r + 0.5) * scale_y) for r, c in np.asarray(path)]
            if len(points) > 1:
                tile_pen.line(points, fill=(0, 0, 0), width=3)
                tile_pen.line(points, fill=(255, 255, 255), width=1)
        pen.text((x0 + TILE / 2, TITLE_HEIGHT / 2), title, fill="black", font=title_font, anchor="mm")
    # colour bar under the first tile: 0 … 1, shared by every map
    bar_y = TITLE_HEIGHT + TILE + PAD
    ramp = figures.lookup_table()[np.linspace(0, 255, TILE).astype(np.int64)]
    canvas.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (PAD, bar_y))
    pen.text((PAD, bar_y + bar_height + 2), "0", fill="black", font=small_font)
    pen.text((PAD + TILE, bar_y + bar_height + 2), "1", fill="black", font=small_font, anchor="ra")
    pen.text((PAD, height - 22), caption, fill=(60, 60, 60), font=small_font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def bundle(png: bytes, npz: bytes, settings: str, stem: str) -> bytes:
    """One zip with the picture, the arrays and the settings."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}.png", png)
        archive.writestr(f"{stem}.npz", npz)
        archive.writestr(f"{stem}.json", settings)
    return buffer.getvalue()


@dataclass(frozen=True)
class Files:
    png: bytes
    zip: bytes
    stem: str


def files(request: Any, results: Mapping[str, Any], image_choice: Mapping[str, Any], model_name: str,
          class_names: Sequence[str], labels: np.ndarray, region_how: str) -> Files:
    """The two downloads for the maps on screen (`request` is a `comparison.Request`)."""
    class_name = class_names[request.class_index]
    stem = f"segexplain_{_slug(image_choice['name'])}_{_slug(class_name)}_{request.layer}"
    settings = {
        "model": {"name": model_name, "cache_key": request.model_key, "classes": list(class_names)},
        "image": {"name": image_choice["name"], "source": image_choice["source"],
                  "sha256_prefix": image_choice["digest"],
                  "hashed": "SHA-256 of the decoded RGB pixels (before resizing) and their shape, first 16 hex digits",
                  "original_size_hw": list(image_choice["pixels"].shape[:2]),
                  "model_input_size_hw": list(request.image.shape[:2])},
        "region": {"how": region_how, **region_summary(request.region), "mask": "region array in the .npz"},
        "class": {"index": int(request.class_index), "name": class_name},
        "layer": request.layer,
        "target": request.target,
        "methods": {
            method: {"label": _label(method), "seconds": float(explanation.seconds),
                     "layer": explanation.layer, "note": getattr(explanation, "note", ""),
                     **({"steps": request.xrai_steps, "algorithm": request.xrai_algorithm,
                         "batch_size": XRAI_BATCH_SIZE, "baselines": "black and white"} if method == "xrai" else {})}
            for method, explanation in results.items()
        },
        "colour_scale": {"name": figures.COLORSCALE, "zmin": 0.0, "zmax": 1.0},
    }
    tiles = [(f"{_label(method)} ({explanation.seconds:.2f} s)", explanation.heatmap)
             for method, explanation in results.items()]
    caption = (f"{image_choice['name']} · class {class_name} · layer {request.layer} · target {request.target} · "
               f"{region_how}, {int(np.count_nonzero(request.region))} px")
    png = comparison_png(request.image, tiles, regions.outline_paths(request.region), caption)
    npz = maps_npz(results, request.region, request.image, labels)
    return Files(png=png, zip=bundle(png, npz, settings_json(settings), stem), stem=stem)


def _label(method: str) -> str:
    import explainers

    return explainers.METHOD_LABELS.get(method, method)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-") or "x"
