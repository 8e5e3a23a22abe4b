"""Downloads: the comparison as a PNG (Pillow, no browser needed) and the maps as `.npz` + JSON.

The PNG is drawn with the same colour map as the page, at most `PER_ROW` maps per row.
The `.npz` holds the arrays (every map on screen, region mask, image, predicted labels and, when
section 6 scored the maps, their deletion/insertion curves); the JSON sidecar says how they were
made (including the faithfulness ranking when computed). The class overview of section 7 has a PNG
of its own (`overview_png`), one tile per class with that class's outline.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dashboard import compute, figures
from explainers import records, regions, registry

TILE = 288  # pixel size of one map in the PNG
PER_ROW = 4  # maps per row in the PNG (a wider picture than the two columns of the page)
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


def _key(method: str) -> str:
    return records.array_key(method)  # the batch CLI's rule: "+" → "p", hyphens stay


def maps_npz(maps: Mapping[str, Any], region: np.ndarray, image: np.ndarray, labels: np.ndarray,
             faithfulness: Mapping[str, Any] | None = None) -> bytes:
    """`heatmap_<method>` (H×W float32 in [0, 1]), `layer_map_<method>` when the method has one,
    plus `region` (bool), `image` (uint8) and `labels` (predicted classes). With `faithfulness`
    ({method: Faithfulness}, "random" included): `faithfulness_fractions` and per method
    `deletion_<method>` / `insertion_<method>` (region scores at those fractions).
    In the names, "+" becomes "p" (`heatmap_gradcampp`); hyphens stay (`heatmap_integrated-gradients`)."""
    arrays: dict[str, np.ndarray] = {
        "region": np.asarray(region, dtype=bool),
        "image": np.asarray(image, dtype=np.uint8),
        "labels": np.asarray(labels),
    }
    arrays.update(records.map_arrays(maps))
    for method, scores in (faithfulness or {}).items():
        arrays["faithfulness_fractions"] = np.asarray(scores.deletion.fractions, dtype=np.float32)
        arrays[f"deletion_{_key(method)}"] = np.asarray(scores.deletion.scores, dtype=np.float64)
        arrays[f"insertion_{_key(method)}"] = np.asarray(scores.insertion.scores, dtype=np.float64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def comparison_png(image: np.ndarray, tiles: Sequence[tuple[str, np.ndarray]], paths: Sequence[np.ndarray],
                   caption: str) -> bytes:
    """Maps over the image (same colours as the page, `PER_ROW` per row), region outlined, colour bar and a
    caption line with the settings underneath."""
    return tiles_png(image, [(title, heatmap, paths) for title, heatmap in tiles], caption)


def overview_png(image: np.ndarray, tiles: Sequence[tuple[str, np.ndarray, Sequence[np.ndarray]]],
                 caption: str) -> bytes:
    """The class overview: one tile per class (title, map, that class's outline), all in one row."""
    return tiles_png(image, tiles, caption, per_row=max(1, len(tiles)))


def tiles_png(image: np.ndarray, tiles: Sequence[tuple[str, np.ndarray, Sequence[np.ndarray]]], caption: str,
              per_row: int = PER_ROW) -> bytes:
    """Tiles of (title, map, outline paths) over the image, `per_row` per row, colour bar and caption."""
    n = max(1, len(tiles))
    columns = max(1, min(per_row, n))
    rows = -(-n // columns)
    width = PAD + columns * (TILE + PAD)
    bar_height = 14
    grid_height = rows * (TITLE_HEIGHT + TILE) + (rows - 1) * PAD
    height = grid_height + PAD + bar_height + 20 + 28
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    title_font, small_font = _font(16), _font(12)
    h, w = image.shape[:2]
    scale_x, scale_y = TILE / w, TILE / h
    for k, (title, heatmap, paths) in enumerate(tiles):
        x0 = PAD + (k % columns) * (TILE + PAD)
        y0 = (k // columns) * (TITLE_HEIGHT + TILE + PAD)
        tile = Image.fromarray(figures.heat_over_image(image, heatmap)).resize((TILE, TILE), Image.Resampling.NEAREST)
        canvas.paste(tile, (x0, y0 + TITLE_HEIGHT))
        for path in paths:
            points = [(x0 + (c + 0.5) * scale_x, y0 + TITLE_HEIGHT + (r + 0.5) * scale_y) for r, c in np.asarray(path)]
            if len(points) > 1:
                pen.line(points, fill=(0, 0, 0), width=3)
                pen.line(points, fill=(255, 255, 255), width=1)
        pen.text((x0 + TILE / 2, y0 + TITLE_HEIGHT / 2), title, fill="black", font=title_font, anchor="mm")
    # colour bar under the grid: 0 … 1, shared by every map
    bar_y = grid_height + PAD
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


def faithfulness_settings(faithfulness: Mapping[str, Any], ranking: Sequence[Mapping[str, Any]],
                          target: str, steps: int) -> dict[str, Any]:
    """The JSON record of section 6: how the maps were scored and the ranking table, best first (with the
    library's note when the memory budget made it score in smaller batches or at a smaller size)."""
    note = next((n for result in faithfulness.values() if (n := getattr(result, "note", ""))), "")
    record = {
        "score": (f"the adapter's region score: class {target} times the region mask, averaged over the whole "
                  "output grid (not over the region's pixels only)"),
        "target": target,
        "steps": int(steps),
        "removed_pixels_replaced_by": "a blurred copy of the image",
        "random_baseline": "uniform random map, seed 0",
        "ranking": [{"method": row["method"], "label": registry.label(row["method"]),
                     "insertion_minus_deletion": row["insertion_minus_deletion"],
                     "deletion_auc": row["deletion_auc"], "insertion_auc": row["insertion_auc"],
                     "average_drop_pct": row["average_drop_pct"],
                     "increase_in_confidence": bool(row["increase_in_confidence"])} for row in ranking],
        "curves": "faithfulness_fractions, deletion_<method>, insertion_<method> in the .npz",
        "methods": list(faithfulness),
    }
    if note:
        record["how_scored"] = note
    return record


def file_stem(image_name: str, class_name: str, layer: str, region: np.ndarray) -> str:
    """Download name: image, class, layer and the region (bounding box, pixel count and a short digest),
    so two exports of different regions never overwrite each other."""
    summary = region_summary(region)
    box = summary["bbox"]
    where = (f"r{box['top']}-{box['bottom']}c{box['left']}-{box['right']}" if box else "empty")
    digest = hashlib.sha256(np.packbits(np.asarray(region, dtype=bool)).tobytes()
                            + repr(np.shape(region)).encode()).hexdigest()[:8]
    return (f"segexplain_{_slug(image_name)}_{_slug(class_name)}_{layer}_{where}_{summary['pixel_count']}px_"
            f"{digest}")


def files(request: Any, results: Mapping[str, Any], image_choice: Mapping[str, Any], model_name: str,
          class_names: Sequence[str], labels: np.ndarray, region_how: str,
          faithfulness: Mapping[str, Any] | None = None, faithfulness_record: Mapping[str, Any] | None = None) -> Files:
    """The two downloads for the maps on screen (`request` is a `comparison.Request`); with section 6's
    scores (`faithfulness`, {method: Faithfulness}) and their record (`faithfulness_settings`)."""
    class_name = class_names[request.class_index]
    stem = file_stem(image_choice["name"], class_name, request.layer, request.region)
    settings = {
        "model": {"name": model_name, "cache_key": request.model_key, "classes": list(class_names)},
        "image": {"name": image_choice["name"], "source": image_choice["source"],
                  "sha256_prefix": image_choice["digest"],
                  "hashed": "SHA-256 of the decoded RGB pixels (before resizing) and their shape, first 16 hex digits",
                  "original_size_hw": list(image_choice["pixels"].shape[:2]),
                  "model_input_size_hw": list(request.image.shape[:2]),
                  **_batch_output(image_choice)},
        "region": {"how": region_how, **region_summary(request.region), "mask": "region array in the .npz"},
        "class": {"index": int(request.class_index), "name": class_name},
        "layer": request.layer,
        "target": request.target,
        "methods": records.method_records(results),
        "colour_scale": {"name": figures.COLORSCALE, "zmin": 0.0, "zmax": 1.0},
    }
    if faithfulness and faithfulness_record is not None:
        settings["faithfulness"] = dict(faithfulness_record)
    caption = (f"{image_choice['name']} · class {class_name} · layer {request.layer} · target {request.target} · "
               f"{region_how}, {int(np.count_nonzero(request.region))} px")
    faithfulness = faithfulness or None
    content = _content_key(results, request.region, request.image, labels, faithfulness)
    png, zipped = _rendered(content, settings, stem, caption, _results=results, _region=request.region,
                            _image=request.image, _labels=labels, _faithfulness=faithfulness)
    return Files(png=png, zip=zipped, stem=stem)


def _content_key(results: Mapping[str, Any], region: np.ndarray, image: np.ndarray, labels: np.ndarray,
                 faithfulness: Mapping[str, Any] | None) -> str:
    """SHA-256 of every array that goes into the downloads (a few milliseconds, unlike building them)."""
    arrays: list[tuple[str, Any]] = [("region", region), ("image", image), ("labels", labels)]
    for method, explanation in results.items():
        arrays += [(f"heatmap {method}", explanation.heatmap),
                   (f"layer_map {method}", getattr(explanation, "layer_map", None))]
    for method, scores in (faithfulness or {}).items():
        arrays += [(f"fractions {method}", scores.deletion.fractions), (f"deletion {method}", scores.deletion.scores),
                   (f"insertion {method}", scores.insertion.scores)]
    sha = hashlib.sha256()
    for name, value in arrays:
        sha.update(name.encode() + b"\0")
        if value is not None:
            value = np.ascontiguousarray(value)
            sha.update(repr((value.shape, value.dtype.str)).encode() + value.tobytes())
    return sha.hexdigest()


def _rendered(content_key: str, settings: dict[str, Any], stem: str, caption: str, *, _results: Mapping[str, Any],
              _region: np.ndarray, _image: np.ndarray, _labels: np.ndarray,
              _faithfulness: Mapping[str, Any] | None) -> tuple[bytes, bytes]:
    """The PNG and the zip, rebuilt only when a map, the arrays (`content_key`) or the settings change, not
    on every rerun (`compute.export_files`); the JSON's "created" stamp is therefore when the files were first
    built."""
    return compute.export_files(content_key, settings, stem, caption,
                                lambda: _render(settings, stem, caption, _results, _region, _image, _labels,
                                                _faithfulness))


def _render(settings: dict[str, Any], stem: str, caption: str, _results: Mapping[str, Any], _region: np.ndarray,
            _image: np.ndarray, _labels: np.ndarray, _faithfulness: Mapping[str, Any] | None) -> tuple[bytes, bytes]:
    tiles = [(f"{registry.label(method)} ({explanation.seconds:.2f} s)", explanation.heatmap)
             for method, explanation in _results.items()]
    png = comparison_png(_image, tiles, regions.outline_paths(_region), caption)
    npz = maps_npz(_results, _region, _image, _labels, _faithfulness)
    return png, bundle(png, npz, settings_json(settings), stem)


def _batch_output(image_choice: Mapping[str, Any]) -> dict[str, Any]:
    """Which batch run's output an image opened from the dataset page or the image browser is (the run folder's
    name, not its path on the server); nothing for other images."""
    if "batch_output" not in image_choice:
        return {}
    run, output = image_choice["batch_output"]
    return {"batch_output": {"run": Path(run).name, "output": output}}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-") or "x"


def overview_file(image: np.ndarray, maps: Mapping[int, Any], outlines: Mapping[int, Sequence[np.ndarray]],
                  class_names: Sequence[str], method: str, layer: str | None, target: str,
                  image_name: str) -> tuple[bytes, str]:
    """Section 7's download: the class overview as one PNG row, and its file name."""
    tiles = [(class_names[c], explanation.heatmap, outlines[c]) for c, explanation in maps.items()]
    where = f"layer {layer}" if layer else "layer-free"
    caption = (f"{image_name} · {registry.label(method)} · {where} · target {target} · region = every pixel predicted "
               "as the class")
    stem = f"segexplain_{_slug(image_name)}_overview_{_slug(method)}" + (f"_{layer}" if layer else "")
    return overview_png(image, tiles, caption), f"{stem}.png"
