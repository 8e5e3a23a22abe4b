"""The per-image work of a batch run, the same in every engine (local, Ray): load the model file,
read an image's bytes, explain it, and return its record, arrays and preview as bytes; nothing here
writes a file. `explainers.batch` (the CLI: plan, store, resume, summary) and `explainers.ray_engine`
both import this module and neither imports the other's internals, so there is no import circle.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PREVIEW_BAR = 26  # pixels under the preview's tiles: the colour bar (the page's colour map) and its labels


class UsageError(Exception):
    """A command-line problem: reported on stderr with exit code 2."""


class EngineLost(Exception):
    """The engine stopped for good (a lost Ray cluster); the message is a clause: "the Ray cluster at X was
    lost (ActorDiedError)"."""


def parse_class(value: str, class_names: Sequence[str], option: str) -> int:
    value = value.strip()
    if value.isdigit():
        return int(value)
    if value in class_names:
        return list(class_names).index(value)
    known = (f"known names: {', '.join(class_names)}" if class_names
             else "the model file stores none: pass --class-names to use names")
    raise UsageError(f"{option}: unknown class {value!r} ({known}); or give the class index.")


def load_model(path_text: str | os.PathLike, preprocessing: dict | None = None):
    """The one place a model file is loaded (driver and every Ray worker): safe mode, checked."""
    path_text = str(path_text)
    if path_text == "default":
        raise UsageError(
            "--model default: the library does not load the application's built-in network; save it as a "
            ".keras file first (e.g. `python -m models.export`) and pass that file."
        )
    from explainers import graph, model_file_loader, model_files

    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"--model {path_text!r}: pass an existing .keras model file.")
    try:  # the archive, config, sizes and code carriers are checked before Keras builds anything
        model = model_file_loader.load_any(path, preprocessing=preprocessing)
    except model_files.ModelFileError as error:
        raise UsageError(f"--model: {error}") from None
    return model, graph.inspect_model(model)


def set_working_size(model, options: dict[str, Any]) -> None:
    """--working-size and --fit for a free-size model (fixed-size models ignore them)."""
    from explainers import working_size

    longest, fit = options.get("working_size", (working_size.DEFAULT_LONGEST, working_size.DEFAULT_FIT))
    working_size.set_working_size(model, longest or None, fit)


def preview(image: np.ndarray, region: np.ndarray, maps: dict[str, np.ndarray], labels: dict[str, str]):
    """One PNG-ready PIL image: the image with the region outlined, then each map over the image in the
    page's colour map (`explainers.colormap`), and under them a colour bar from 0 to 1."""
    from PIL import Image, ImageDraw

    from explainers import colormap, regions

    rgb = np.asarray(image, dtype=np.float32)[..., :3]
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    first = rgb.copy()
    first[regions.outline(region)] = (0, 255, 255)
    tiles = [(first, "image + region")]
    for name, heat in maps.items():
        tiles.append((colormap.heat_over_image(rgb, heat), labels.get(name, name)))
    h, w = rgb.shape[:2]
    scale = max(1, int(np.ceil(160 / max(h, w))))
    caption = 14
    width = len(tiles) * w * scale
    sheet = Image.new("RGB", (width, h * scale + caption + PREVIEW_BAR), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, text) in enumerate(tiles):
        pic = Image.fromarray(np.clip(tile, 0, 255).astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
        sheet.paste(pic, (i * w * scale, caption))
        draw.text((i * w * scale + 2, 1), text[: max(4, w * scale // 7)], fill="black")
    top, left, right = h * scale + caption + 2, 14, width - 14
    ramp = colormap.colorize(np.linspace(0.0, 1.0, max(right - left, 2))[None, :].repeat(8, axis=0))
    sheet.paste(Image.fromarray(ramp), (left, top))
    draw.text((2, top - 1), "0", fill="black")
    draw.text((right + 3, top - 1), "1", fill="black")
    draw.text((left, top + 10), "map value (each map ÷ its maximum)"[: max(4, (right - left) // 6)], fill="black")
    return sheet


def _decode_labels(data: bytes, image_shape: tuple[int, int], grid: tuple[int, int],
                   num_classes: int) -> tuple[np.ndarray | None, str]:
    """A label PNG (index or palette: one class index per pixel; 255 = void) checked against the image as
    given (`label_scores.label_problem`), then on the prediction's grid; or None and one sentence why not."""
    from PIL import Image, UnidentifiedImageError

    from explainers import label_scores, regions

    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.mode not in ("L", "P", "I", "I;16"):
                return None, (f"ground truth ignored: the label PNG is in colour mode {picture.mode}, not a label "
                              "map (save it as an 8-bit index or palette PNG).")
            truth = np.asarray(picture).astype(np.int64)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        return None, f"ground truth ignored: {error}"
    problem = label_scores.label_problem(truth, image_shape, num_classes)
    if problem:
        return None, problem
    return regions.resample_nearest(truth, grid).astype(np.int16), ""


OUT_OF_MEMORY = ("this image ran out of memory in the model: use a smaller image, fewer or cheaper methods, or "
                 "a machine with more memory")


class Worker:
    """Holds one loaded model and turns one image's bytes into its outputs (bytes), writing nothing."""

    def __init__(self, model_path: str | os.PathLike, options: dict[str, Any]) -> None:
        from explainers import registry

        # methods registered from outside the package by the process that planned the run (a Ray actor
        # starts without them): their modules, by name (`registry.modules_for`)
        registry.import_modules(options.get("method_modules", ()))
        self.model, self.summary = load_model(model_path, options.get("preprocessing"))
        set_working_size(self.model, options)
        self.options = options

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        """`item`: image, output, data (image bytes), truth (label bytes or None) → record, npz, png bytes."""
        from explainers.errors import ExplainerError

        try:
            return _explain_one(self.model, self.summary, item, self.options)
        except (ExplainerError, OSError, ValueError) as error:  # one unreadable image must not stop the batch
            return self._failed(item, str(error))
        except MemoryError:
            return self._failed(item, OUT_OF_MEMORY)
        except Exception as error:  # TensorFlow's ResourceExhaustedError is an OpError, not a MemoryError
            if type(error).__name__ != "ResourceExhaustedError":
                raise
            return self._failed(item, OUT_OF_MEMORY)

    def _failed(self, item: dict[str, Any], message: str) -> dict[str, Any]:
        return {"record": {"image": item["image"], "output": item["output"], "region": self.options["region_spec"],
                           "status": f"error: {message}", "rows": []}, "npz": None, "png": None}


def _explain_one(model, summary, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The only call into `explainers.explain` of the batch run."""
    from explainers import api, faithfulness, records, regions, registry
    from explainers.images import decode_image

    class_names = options["class_names"]
    given = decode_image(item["data"])
    image = api.fit_image(model, given)
    labels = api.predict(model, image).labels
    kind, class_index = options["region"]
    if kind == "whole":
        mask = regions.whole_image(labels.shape)
        if options["class"] is not None:
            class_index = parse_class(options["class"], class_names, "--class")
        else:
            ignore = [class_names.index("background")] if "background" in class_names else []
            class_index = regions.dominant_class(mask, labels, ignore=ignore)
    else:
        mask = labels == class_index
    class_name = class_names[class_index] if class_index < len(class_names) else str(class_index)
    record: dict[str, Any] = {"image": item["image"], "output": item["output"], "class_index": int(class_index),
                              "class_name": class_name, "region": options["region_spec"],
                              "region_pixels": int(mask.sum()), "rows": []}
    truth, truth_note = (None, item.get("truth_error", ""))
    if item.get("truth") is not None:
        truth, truth_note = _decode_labels(item["truth"], given.shape[:2], labels.shape, summary.num_classes)
    record["ground_truth"] = truth is not None
    if truth_note:
        record["truth_note"] = truth_note
    if truth is not None:  # before the skip below: a skipped image is still scored
        from explainers import label_scores

        names = list(class_names) + [str(i) for i in range(len(class_names), summary.num_classes)]
        record.update(label_scores.image_scores(truth, labels, names))
    if not mask.any():
        record["status"] = f"skipped: no pixel is predicted as {class_name}"
        return {"record": record, "npz": None, "png": None}
    methods = options["methods"]
    method_options = options.get("method_options") or {"xrai": {"steps": options["xrai_steps"]},
                                                        "scorecam": {"channels": options["scorecam_channels"]}}
    explanations = api.explain(model, image, mask, class_index, options["layer"], methods=methods,
                               target=options["target"],
                               options={m: o for m, o in method_options.items() if m in methods})
    arrays = {"region": mask, "labels": labels.astype(np.int16), "image": image,
              "class_index": np.int16(class_index)}
    if truth is not None:
        arrays["truth"] = truth
    arrays.update(records.map_arrays(explanations))
    record["methods"] = records.method_records(explanations)
    scores = {}
    if options["metrics"]:
        results = faithfulness.evaluate_explanations(model, image, mask, class_index, explanations,
                                                     steps=options["metric_steps"], target=options["metric_target"])
        scores = {row["method"]: row for row in faithfulness.ranking(results)}
        from explainers import trust  # randomisation check and localisation columns (issue 34)

        extra = trust.image_rows(model, image, mask, class_index, explanations, truth, layer=options["layer"],
                                 target=options["target"], steps=options.get("randomization_steps", 0),
                                 options={m: o for m, o in method_options.items() if m in methods})
        scores = {m: {**scores.get(m, {"method": m}), **extra.get(m, {})} for m in {*scores, *extra}}
    for method in [*explanations, *(["random"] if scores else [])]:
        e = explanations.get(method)
        row = {"method": method, "layer": e.layer if e else None, "seconds": e.seconds if e else None,
               "note": e.note if e else "random map: the chance baseline of the faithfulness metrics"}
        if method in scores:
            row.update({k: v for k, v in scores[method].items() if k != "method"})
        record["rows"].append(row)
    labels_text = {m: registry.label(m) for m in explanations}
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    png = io.BytesIO()
    preview(image, mask, {m: e.heatmap for m, e in explanations.items()}, labels_text).save(png, format="PNG")
    record["status"] = "ok"
    return {"record": record, "npz": npz.getvalue(), "png": png.getvalue()}


def read_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item with its image (and label) bytes read from disk; a missing file becomes an error record later."""
    from explainers.errors import ExplainerError
    from explainers.images import check_image_file

    loaded = dict(item)
    try:  # size and header first: a 3 GB file named .tif is refused without reading it
        check_image_file(item["path"])
        loaded["data"] = Path(item["path"]).read_bytes()
    except ExplainerError as error:
        loaded["data"] = b""
        loaded["read_error"] = str(error)
    except OSError as error:
        loaded["data"] = b""
        loaded["read_error"] = f"the file cannot be read ({error.strerror or error})"
    loaded["truth"] = None
    if item.get("labels_path"):
        try:
            check_image_file(item["labels_path"])
            loaded["truth"] = Path(item["labels_path"]).read_bytes()
        except (ExplainerError, OSError) as error:
            loaded["truth_error"] = f"ground truth ignored: {getattr(error, 'strerror', None) or error}"
    return loaded


def process_item(worker: Worker, item: dict[str, Any]) -> dict[str, Any]:
    """Read and explain one item (what each engine does per image)."""
    loaded = read_item(item) if "data" not in item else item
    if loaded.get("read_error"):
        return {"record": {"image": item["image"], "output": item["output"], "region": worker.options["region_spec"],
                           "status": f"error: {loaded['read_error']}", "rows": []}, "npz": None, "png": None}
    return worker.process(loaded)


def local_engine(model_path: Path, options: dict[str, Any], items: Sequence[dict[str, Any]], **_) -> Iterator[dict]:
    """Every item in this process, in order, with one model."""
    if not items:
        return
    worker = Worker(model_path, options)
    for item in items:
        yield process_item(worker, item)
