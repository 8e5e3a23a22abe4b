"""Batch mode: explain one region preset on every image of a folder, from the command line.

    python -m explainers.batch --model model.keras --images photos/ --method gradcam --method xrai \\
        --region class:cap --layer final_conv --out results/ --metrics --class-names background,cap,gills

Why: comparing methods on one image in the dashboard does not tell whether a pattern holds over a data
set; this writes, per image, `<name>.npz` (every method's heatmap and layer map, the region and the
predicted labels), `<name>.png` (the image with the region outlined, then one overlay per method),
`<name>.json` (what was run, timings and, with `--metrics`, the faithfulness numbers), and for the
whole run `summary.csv` (one row per image and method, plus the random baseline with `--metrics`).
A run is resumable: an image whose three files exist for the same methods, region and settings is not
recomputed (`--force` redoes it). Progress goes to stderr.

`--model` takes a `.keras` file, loaded with `keras.saving.load_model(compile=False, safe_mode=True)`:
the library never imports the application's `models` package, so the built-in network must first be
saved as a `.keras` file by the application. `--region` is `whole` (every pixel; the class is
`--class`, else the most frequent predicted class, not counting one named "background"), `class:N` or
`class:NAME` (every pixel predicted as that class; images without such pixels are listed as skipped).
Exit codes: 0 done, 1 some images failed, 2 bad command line (unknown method, bad region, unreadable
model, no images).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CSV_FIELDS = (
    "image", "status", "method", "class_index", "class_name", "region", "region_pixels", "layer", "seconds",
    "deletion_auc", "insertion_auc", "insertion_minus_deletion", "average_drop_pct", "increase_in_confidence",
    "note",
)
_RAMP = np.array(  # a dark-blue → red → yellow ramp for heatmap previews (value 0 … 1)
    [[0, 0, 80], [60, 0, 160], [200, 0, 90], [255, 90, 0], [255, 230, 40]], dtype=np.float32
)


class UsageError(Exception):
    """A command-line problem: reported on stderr with exit code 2."""


def parse_region(spec: str, class_names: Sequence[str]) -> tuple[str, int | None]:
    """`whole` → ("whole", None); `class:3` or `class:cap` → ("class", 3). Raises UsageError otherwise."""
    text = spec.strip()
    if text == "whole":
        return "whole", None
    kind, sep, value = text.partition(":")
    if kind != "class" or not sep or not value:
        raise UsageError(
            f"--region {spec!r} is not understood: use 'whole', 'class:<index>' (e.g. class:1) "
            "or 'class:<name>' (e.g. class:cap, with --class-names)."
        )
    return "class", parse_class(value, class_names, "--region")


def parse_class(value: str, class_names: Sequence[str], option: str) -> int:
    value = value.strip()
    if value.isdigit():
        return int(value)
    if value in class_names:
        return list(class_names).index(value)
    known = f"known names: {', '.join(class_names)}" if class_names else "pass --class-names to use names"
    raise UsageError(f"{option}: unknown class {value!r} ({known}); or give the class index.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explainers.batch",
        description="Explain a region preset on every image of a folder; write maps, previews and summary.csv.",
    )
    parser.add_argument("--model", required=True, help="a .keras segmentation model file")
    parser.add_argument("--images", required=True, type=Path, help="folder of PNG/JPEG/... images")
    parser.add_argument("--method", action="append", dest="methods", metavar="METHOD",
                        help="a method name from explainers.registry, e.g. gradcam, seg-xres-cam, rise (repeat for several); "
                             "default gradcam")
    parser.add_argument("--region", default="whole", help="whole | class:<index> | class:<name> (default whole)")
    parser.add_argument("--class", dest="class_", default=None,
                        help="class to explain for --region whole (index or name; default: most frequent)")
    parser.add_argument("--layer", default=None, help="layer for CAM methods (default: the model's default layer)")
    parser.add_argument("--target", default="logits", choices=("logits", "probabilities"),
                        help="score the maps explain (default logits)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--metrics", action="store_true", help="also compute faithfulness metrics")
    parser.add_argument("--metric-steps", type=int, default=20, help="deletion/insertion steps (default 20)")
    parser.add_argument("--metric-target", default="probabilities", choices=("logits", "probabilities"),
                        help="score the faithfulness metrics use (default probabilities)")
    parser.add_argument("--class-names", default="", help="comma-separated class names, in class-index order")
    parser.add_argument("--xrai-steps", type=int, default=100, help="XRAI integration steps (default 100)")
    parser.add_argument("--scorecam-channels", type=int, default=64, help="Score-CAM channel cap (default 64)")
    parser.add_argument("--force", action="store_true", help="recompute images whose outputs already exist")
    return parser


def _load_model(path_text: str):
    import keras

    if path_text == "default":
        raise UsageError(
            "--model default: the library does not load the application's built-in network; save it as a "
            ".keras file first (e.g. `python -m models.export`) and pass that file."
        )
    path = Path(path_text)
    if path.suffix != ".keras" or not path.is_file():
        raise UsageError(f"--model {path_text!r}: pass an existing .keras model file.")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for broken or unsafe archives
        raise UsageError(f"--model {path_text!r} could not be loaded: {error}".splitlines()[0]) from None
    from explainers import graph
    from explainers.errors import ExplainerError

    try:
        summary = graph.inspect_model(model)
    except ExplainerError as error:
        raise UsageError(f"--model {path_text!r}: {error}") from None
    return model, summary


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"--images {str(folder)!r} is not a folder.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"--images {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def _output_names(files: Sequence[Path]) -> dict[Path, str]:
    stems = [p.stem for p in files]
    return {p: p.stem if stems.count(p.stem) == 1 else p.name.replace(".", "_") for p in files}


def _colourise(heatmap: np.ndarray) -> np.ndarray:
    value = np.clip(np.nan_to_num(heatmap), 0, 1) * (len(_RAMP) - 1)
    low = np.floor(value).astype(int).clip(0, len(_RAMP) - 2)
    frac = (value - low)[..., None]
    return _RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac


def preview(image: np.ndarray, region: np.ndarray, maps: dict[str, np.ndarray], labels: dict[str, str]):
    """One PNG-ready PIL image: the image with the region outlined, then each map over the image."""
    from PIL import Image, ImageDraw

    from explainers import regions

    rgb = np.asarray(image, dtype=np.float32)[..., :3]
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    first = rgb.copy()
    first[regions.outline(region)] = (0, 255, 255)
    tiles = [(first, "image + region")]
    for name, heat in maps.items():
        tiles.append((0.45 * rgb + 0.55 * _colourise(heat), labels.get(name, name)))
    h, w = rgb.shape[:2]
    scale = max(1, int(np.ceil(160 / max(h, w))))
    caption = 14
    sheet = Image.new("RGB", (len(tiles) * w * scale, h * scale + caption), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, text) in enumerate(tiles):
        pic = Image.fromarray(np.clip(tile, 0, 255).astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
        sheet.paste(pic, (i * w * scale, caption))
        draw.text((i * w * scale + 2, 1), text[: max(4, w * scale // 7)], fill="black")
    return sheet


class _Progress:
    """A one-line text progress bar on stderr."""

    def __init__(self, total: int, stream=None, width: int = 30) -> None:
        self.total, self.width, self.stream = total, width, stream or sys.stderr
        self.start = time.perf_counter()

    def show(self, done: int, label: str) -> None:
        filled = int(self.width * done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {elapsed:6.1f}s {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _settings(args, methods, region_spec, class_names) -> dict:
    """Everything an output depends on: resuming skips an image only when all of it is unchanged."""
    return {
        "model_sha256": _file_digest(args.model), "class_names": list(class_names),
        "methods": list(methods), "region": region_spec, "class": args.class_, "layer": args.layer,
        "target": args.target, "metrics": bool(args.metrics), "metric_steps": args.metric_steps,
        "metric_target": args.metric_target,
        "xrai_steps": args.xrai_steps, "scorecam_channels": args.scorecam_channels,
    }


def _file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _explain_one(model, path: Path, out: Path, name: str, args, methods, region, class_names) -> dict:
    from explainers import api, faithfulness, records, regions, registry
    from explainers.images import decode_image

    image = api.fit_image(model, decode_image(path.read_bytes()))
    labels = api.predict(model, image).labels
    kind, class_index = region
    if kind == "whole":
        mask = regions.whole_image(labels.shape)
        if args.class_ is not None:
            class_index = parse_class(args.class_, class_names, "--class")
        else:
            ignore = [class_names.index("background")] if "background" in class_names else []
            class_index = regions.dominant_class(mask, labels, ignore=ignore)
    else:
        mask = labels == class_index
    class_name = class_names[class_index] if class_index < len(class_names) else str(class_index)
    record = {"image": path.name, "class_index": int(class_index), "class_name": class_name,
              "region": args.region, "region_pixels": int(mask.sum()), "rows": []}
    if not mask.any():
        record["status"] = f"skipped: no pixel is predicted as {class_name}"
        return record
    options = {"xrai": {"steps": args.xrai_steps}, "scorecam": {"channels": args.scorecam_channels}}
    explanations = api.explain(model, image, mask, class_index, args.layer, methods=methods, target=args.target,
                               options={m: o for m, o in options.items() if m in methods})
    arrays = {"region": mask, "labels": labels.astype(np.int16), **records.map_arrays(explanations)}
    record["methods"] = records.method_records(explanations)
    scores = {}
    if args.metrics:
        results = faithfulness.evaluate_explanations(model, image, mask, class_index, explanations,
                                                     steps=args.metric_steps, target=args.metric_target)
        scores = {row["method"]: row for row in faithfulness.ranking(results)}
    for method in [*explanations, *(["random"] if scores else [])]:
        e = explanations.get(method)
        row = {"method": method, "layer": e.layer if e else None, "seconds": e.seconds if e else None,
               "note": e.note if e else "random map: the chance baseline of the faithfulness metrics"}
        if method in scores:
            row.update({k: v for k, v in scores[method].items() if k != "method"})
        record["rows"].append(row)
    labels_text = {m: registry.label(m) for m in explanations}
    np.savez_compressed(out / f"{name}.npz", **arrays)
    preview(image, mask, {m: e.heatmap for m, e in explanations.items()}, labels_text).save(out / f"{name}.png")
    record["status"] = "ok"
    return record


def _csv_rows(record: dict) -> list[dict]:
    base = {k: record.get(k) for k in ("image", "status", "class_index", "class_name", "region", "region_pixels")}
    if not record.get("rows"):
        return [dict(base)]
    return [{**base, **row} for row in record["rows"]]


def _write_summary(out: Path, records: Sequence[dict]) -> None:
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            for row in _csv_rows(record):
                writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _done(out: Path, name: str, settings: dict) -> dict | None:
    """The saved record when this image's outputs exist for the same settings, else None."""
    meta = out / f"{name}.json"
    if not meta.is_file():
        return None
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("settings") != settings:
        return None
    if record.get("status") == "ok" and not ((out / f"{name}.npz").is_file() and (out / f"{name}.png").is_file()):
        return None
    return record if record.get("status", "").startswith(("ok", "skipped")) else None


def run(args) -> int:
    """Run the batch described by parsed arguments; returns the exit code (UsageError → caller)."""
    from explainers import registry
    from explainers.errors import ExplainerError

    methods = tuple(dict.fromkeys(args.methods or ["gradcam"]))
    unknown = [m for m in methods if m not in registry.ALL_METHODS]
    if unknown:
        raise UsageError(f"--method {', '.join(unknown)}: unknown; choose from {', '.join(registry.ALL_METHODS)}.")
    class_names = [c.strip() for c in args.class_names.split(",") if c.strip()]
    region = parse_region(args.region, class_names)
    if args.class_ is not None:
        parse_class(args.class_, class_names, "--class")
    if args.metric_steps < 1 or args.xrai_steps < 2 or args.scorecam_channels < 1:
        raise UsageError("--metric-steps must be ≥ 1, --xrai-steps ≥ 2 and --scorecam-channels ≥ 1.")
    files = _image_files(args.images)
    model, summary = _load_model(args.model)
    if class_names and len(class_names) != summary.num_classes:
        raise UsageError(f"--class-names lists {len(class_names)} names but the model has {summary.num_classes} classes.")
    wanted = [i for i in (region[1], parse_class(args.class_, class_names, "--class") if args.class_ else None)
              if i is not None]
    for index in wanted:
        if not 0 <= index < summary.num_classes:
            raise UsageError(f"Class {index} is out of range: the model has classes 0 to {summary.num_classes - 1}.")
    needs_layer = any(m not in registry.LAYER_FREE_METHODS for m in methods)
    if args.layer is not None and needs_layer:
        from explainers import graph

        try:
            graph.check_layer(model, args.layer)
        except ExplainerError as error:
            raise UsageError(f"--layer: {error}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    settings = _settings(args, methods, args.region, class_names)
    names = _output_names(files)
    records, failures = [], 0
    bar = _Progress(len(files))
    for i, path in enumerate(files):
        name = names[path]
        bar.show(i, path.name)
        record = None if args.force else _done(args.out, name, settings)
        if record is None:
            try:
                record = _explain_one(model, path, args.out, name, args, methods, region, class_names)
            except (ExplainerError, OSError) as error:  # one unreadable image must not stop the batch
                record = {"image": path.name, "region": args.region, "status": f"error: {error}", "rows": []}
                failures += 1
            record["settings"] = settings
            (args.out / f"{name}.json").write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
        records.append(record)
        _write_summary(args.out, records)
    bar.show(len(files), "done")
    bar.close()
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{parser.prog}: error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
