"""The wait after an upload, in a real browser: first stroke on a newly uploaded model, later strokes and a
region-mode switch, each beside the library's own time for the same work.

Issue 31's targets: first stroke after an upload → the three CAM maps on screen ≤ 1.5 s; region-mode switch
≤ 0.5 s (median of `MODE_ROUNDS` switches to the whole image and as many back to the drawing). The model is a MobileNetV2 segmentation head (224², 21 classes, `weights=None`: nothing is
downloaded), saved to a temporary `.keras` file; with `--deeplab` a keras-hub DeepLabV3 (ResNet encoder built
from its constructor, random weights, free input size `(None, None, 3)`, 21 classes: `models.keras_hub_nets`);
or any `.keras` given with `--model`. For a model with a free input size the page first gets a 512×512 image
(a generated scene; the shipped samples are 144², and the working size is never above the image's own), and
the benchmark checks that the sidebar's working size is 512, setting it if not, so the network works at
512×512 on the page and in the library alike. The page runs under
`streamlit run` and is driven by Debian's Chromium at 1280×800 (`benchmarks.ui_latency` has the clock:
mouse-up or click → every CAM picture replaced, in the page's own `performance.now()`). The library's
figures come from this process: `explainers.explain` for the same three CAMs on a fresh load of the file
(tracing included) and again warm.

Run: `python -m benchmarks.upload_latency [--model FILE | --deeplab] [--write]` (`--write` puts the table
between this benchmark's markers in benchmarks/RESULTS.md; the DeepLabV3's table has markers of its own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.ui_latency import (
    ARGS,
    CAMS,
    CHROMIUM,
    CLOCK_JS,
    ROOT,
    engine_seconds,
    shown,
    stroke,
    wait_changed,
)

START, END = "<!-- upload_latency:start -->", "<!-- upload_latency:end -->"
DEEPLAB_START, DEEPLAB_END = "<!-- upload_latency:deeplabv3:start -->", "<!-- upload_latency:deeplabv3:end -->"
WORKING = 512  # a free-size model works at 512×512 (issue 31)
FIRST_STROKE_TARGET = 1.5
MODE_SWITCH_TARGET = 0.5  # median of each switch
MODE_ROUNDS = 3
STROKES = ((0.30, 0.40), (0.45, 0.50), (0.55, 0.35), (0.35, 0.60))


def mobilenet_head(path: Path) -> Path:
    """MobileNetV2 backbone (random weights) + 1×1 classifier + ×32 bilinear upsampling: 224², 21 classes."""
    import keras

    base = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), include_top=False)
    x = keras.layers.Conv2D(21, 1, name="head_logits")(base.output)
    x = keras.layers.UpSampling2D(32, interpolation="bilinear", name="upsample")(x)
    keras.Model(base.input, keras.layers.Activation("softmax", name="probs")(x)).save(path)
    return path


def deeplab(path: Path) -> Path:
    """keras-hub DeepLabV3 (ResNet encoder, random weights), free input size, 21 classes."""
    from models.keras_hub_nets import deeplabv3

    deeplabv3(num_classes=21).save(path)
    return path


def working_image(path: Path) -> Path:
    """A generated scene of WORKING × WORKING pixels as a PNG (what a free-size model is shown on the page)."""
    from PIL import Image

    from models.scenes import load_sample, sample_names

    Image.fromarray(load_sample(sample_names()[0], WORKING)[0]).save(path)
    return path


def takes_any_size(path: Path) -> bool:
    """Whether the model file's input size is free (loaded here once; the page and the library load it again)."""
    import explainers
    from models import load_user_model

    return None in tuple(explainers.inspect_model(load_user_model(path)).input_size)


def library_seconds(path: Path) -> dict[str, float]:
    """The same three CAMs through the library: on a fresh load (tracing included), then warm. A free-size
    model is run on the page's 512×512 scene at the working size 512 (pad), as the page does."""
    import numpy as np

    import explainers
    from explainers import working_size
    from models import load_user_model
    from models.scenes import load_sample, sample_names

    model = load_user_model(path)
    free = None in tuple(explainers.inspect_model(model).input_size)
    worked = None
    if free:
        explainers.set_working_size(model, WORKING, "pad")
        image = load_sample(sample_names()[0], WORKING)[0]
        size = image.shape[:2]
        worked = working_size.plan(model, size, (None, None)).size
    else:
        size = tuple(int(d) for d in model.input_shape[1:3])
        image = (np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8)
    region = np.zeros(size, bool)
    region[size[0] // 3: size[0] // 2, size[1] // 3: 2 * size[1] // 3] = True
    layer = explainers.default_layer(model)
    seconds = []
    for _ in range(6):  # the first traces the pass; the median of the five others is the warm figure
        start = time.perf_counter()
        explainers.explain(model, image, region, 0, layer, methods=CAMS)
        seconds.append(time.perf_counter() - start)
        region = np.roll(region, 7, axis=1)  # a new region each time, as a new stroke
    return {"cold": seconds[0], "warm": statistics.median(seconds[1:]), "layer": layer, "worked": worked}


def run(model_path: Path, image_path: Path | None = None) -> dict[str, float | list[float]]:
    """The page's figures; with `image_path` (free-size models) that image is uploaded before the model and the
    sidebar's working size is checked (set to WORKING if the page did not pick it)."""
    from e2e_server import StreamlitServer, choose
    from playwright.sync_api import sync_playwright

    from dashboard import state

    out: dict[str, float | list[float]] = {"strokes": [], "strokes_engine": []}
    with StreamlitServer(root=ROOT, startup_timeout=240) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(CLOCK_JS)
        page = context.new_page()
        page.set_default_timeout(240_000)
        page.goto(server.url, wait_until="domcontentloaded")
        page.get_by_text("Draw on the image to mark the region to explain").wait_for()
        stroke(page, 0.36, 0.42)  # the shipped model warm, as a user who looked at it first
        wait_changed(page, {}, timeout_ms=240_000)
        sidebar = page.locator("section[data-testid='stSidebar']")
        if image_path is not None:
            sidebar.locator("[data-testid=stFileUploader]").filter(has_text="upload an image").locator(
                "input[type='file']").set_input_files(str(image_path))
            page.get_by_text("The sample scenes are not in use while this image is active").wait_for()
            page.wait_for_timeout(3000)  # the shipped model's maps of the new image
        start = time.perf_counter()
        sidebar.locator("input[type='file']").first.set_input_files(str(model_path))
        page.get_by_text(f"Active: uploaded {model_path.name}").wait_for()
        page.get_by_text("Draw on the image to mark the region to explain").wait_for()
        out["load"] = time.perf_counter() - start
        if image_path is not None:
            out["working"] = working_size_on_page(page, sidebar)
        page.wait_for_timeout(3000)  # the user looks at the new page before drawing
        before = shown(page)
        stroke(page, *STROKES[0])
        first = wait_changed(page, before, timeout_ms=240_000)
        out["first_stroke"], out["first_stroke_engine"] = first.total, engine_seconds(page)
        print(f"first stroke after the upload: {first.total:.2f} s (engine {out['first_stroke_engine']:.2f} s)",
              flush=True)
        for x, y in STROKES[1:]:
            before = shown(page)
            stroke(page, x, y)
            timing = wait_changed(page, before)
            out["strokes"].append(timing.total)
            out["strokes_engine"].append(engine_seconds(page))
        print(f"later strokes: {', '.join(f'{t:.2f}' for t in out['strokes'])} s", flush=True)
        out["mode_image"], out["mode_draw"] = [], []
        for _ in range(MODE_ROUNDS):  # to the whole image and back to the drawing, a few times
            for mode in ("image", "draw"):
                before = shown(page)
                choose(page, "Region", state.REGION_MODE_LABELS[mode])
                timing = wait_changed(page, before)
                out[f"mode_{mode}"].append(timing.total)
                print(f"region mode → {state.REGION_MODE_LABELS[mode]}: {timing.total:.2f} s", flush=True)
                page.wait_for_timeout(1000)  # the user looks at the maps
        browser.close()
    return out


def working_size_on_page(page, sidebar) -> str:
    """The sidebar's longest side for the free-size model: checked, and set to WORKING if it is not."""
    sidebar.get_by_text("Working size (this model takes any size)").click()
    field = sidebar.locator("input[aria-label='Longest side (px)']")
    field.wait_for()
    value = field.input_value()
    if value == str(WORKING):
        note = f"{WORKING} (the page's own default; image {WORKING}×{WORKING})"
    else:
        field.fill(str(WORKING))
        field.press("Enter")
        page.wait_for_timeout(5000)  # the rerun at the new size
        note = f"{WORKING}, set by the benchmark (the page showed {value}; image {WORKING}×{WORKING})"
    sidebar.get_by_text("Working size (this model takes any size)").click()  # closed again
    print(f"working size on the page: {note}", flush=True)
    return note


def table(page: dict, library: dict, model_name: str, command: str = "") -> str:
    strokes = page["strokes"]
    rows = [
        ("model file load, upload → page ready", f"{page['load']:.2f} s", "—"),
        ("first stroke after the upload → 3 CAMs on screen", f"{page['first_stroke']:.2f} s "
         f"(engine {page['first_stroke_engine']:.2f} s)", f"{library['cold']:.2f} s (fresh load, tracing)"),
        (f"later strokes (median of {len(strokes)})", f"{statistics.median(strokes):.2f} s",
         f"{library['warm']:.3f} s (warm, median of 5)"),
        (f"region mode → Whole image (median of {len(page['mode_image'])}; worst)",
         f"{statistics.median(page['mode_image']):.2f} s ({max(page['mode_image']):.2f} s)", "—"),
        (f"region mode → back to Draw (median of {len(page['mode_draw'])}; worst)",
         f"{statistics.median(page['mode_draw']):.2f} s ({max(page['mode_draw']):.2f} s)", "—"),
    ]
    if "working" in page:
        worked = library["worked"]
        rows.insert(0, ("working size (longest side)", page["working"],
                        f"{worked[1]}×{worked[0]} (`set_working_size(model, {WORKING}, 'pad')`)"))
    lines = [f"## Waiting after an upload: {model_name}, layer `{library['layer']}`", "",
             "| action | page | library |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    switch = max(statistics.median(page["mode_image"]), statistics.median(page["mode_draw"]))
    lines += ["", f"- {'met' if page['first_stroke'] <= FIRST_STROKE_TARGET else '**missed**'}: first stroke after "
              f"an upload ≤ {FIRST_STROKE_TARGET} s",
              f"- {'met' if switch <= MODE_SWITCH_TARGET else '**missed**'}: region-mode switch ≤ {MODE_SWITCH_TARGET} s",
              "", f"Run: `python -m benchmarks.upload_latency{command} --write`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} on 2 cores (figures depend on it)."]
    return "\n".join(lines)


def write(text: str, path: Path = ROOT / "benchmarks" / "RESULTS.md", markers: tuple[str, str] = (START, END)) -> None:
    """The table between `markers`; new markers go right after this benchmark's first table (or at the end)."""
    start, end = markers
    content = path.read_text()
    block = f"{start}\n{text}\n{end}"
    if start in content and end in content:
        content = content[:content.index(start)] + block + content[content.index(end) + len(end):]
    elif END in content:
        at = content.index(END) + len(END)
        content = content[:at] + "\n\n" + block + content[at:]
    else:
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(content)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", type=Path, default=None, help="a .keras file (default: a MobileNetV2 head)")
    which.add_argument("--deeplab", action="store_true",
                       help="a keras-hub DeepLabV3 (free input size, 21 classes), worked at 512×512")
    parser.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if args.deeplab:
            model_path = deeplab(Path(folder) / "deeplabv3_keras_hub.keras")
            name = "keras-hub DeepLabV3 (small ResNet encoder, free input size, 21 classes), worked at 512×512"
        elif args.model is not None:
            model_path, name = args.model, args.model.name
        else:
            model_path, name = mobilenet_head(Path(folder) / "mobilenetv2_head.keras"), "MobileNetV2 head (224², 21 classes)"
        image_path = working_image(Path(folder) / f"scene_{WORKING}.png") if takes_any_size(model_path) else None
        page = run(model_path, image_path)
        library = library_seconds(model_path)
        text = table(page, library, name, " --deeplab" if args.deeplab else "")
    print(text)
    if args.write:
        write(text, markers=(DEEPLAB_START, DEEPLAB_END) if args.deeplab else (START, END))


if __name__ == "__main__":
    main()
