"""Presentation: class colours, overlays and the Plotly figures of the page.

Everything here only displays numbers computed by `explainers`; the colour map is shared with the
PNG export so the downloaded picture looks like the page.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from dashboard import safe_text
from explainers import colormap
from models import CLASS_COLORS

COLORSCALE = colormap.NAME  # one colour scale for every map, always over [0, 1] (explainers.colormap)
HEAT_OPACITY = 0.55  # maps are drawn over the image with this opacity
MASK_OPACITY = 0.45  # predicted-mask overlay on the canvas
OUTLINE_COLOR = "#ffffff"
MAP_HEIGHT = 300


# ---------------------------------------------------------------------------------------------
# Classes


def class_names(num_classes: int) -> list[str]:
    """The names of the model on screen (see `class_names_input`): mushroom names for the shipped network only."""
    from dashboard import class_names_input

    return class_names_input.current_names(num_classes)


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """The shipped network's colours for it; else colours well apart for up to 150+ classes (`palette`)."""
    from dashboard import class_names_input, palette

    if num_classes == len(CLASS_COLORS) and class_names_input.is_shipped_model():
        return [tuple(c) for c in CLASS_COLORS]
    return palette.distinct_colors(num_classes)


def legend_html(names: Sequence[str], colors: Sequence[tuple[int, int, int]], shares: Sequence[float]) -> str:
    """A compact legend on one wrapping line: colour swatch, class name, share of the image's pixels."""
    items = []
    for name, (r, g, b), share in zip(names, colors, shares, strict=True):
        swatch = (f"<span style='display:inline-block;width:0.85em;height:0.85em;margin-right:0.3em;"
                  f"vertical-align:middle;background:rgb({r},{g},{b});border:1px solid #555'></span>")
        text = f"{safe_text.html(name)} {100 * share:.1f} %"
        items.append(f"<span style='white-space:nowrap;margin-right:0.9em'>{swatch}{text}</span>")
    return ("<div style='font-size:0.82em;line-height:1.6' title='predicted class: share of the pixels'>"
            + "".join(items) + "</div>")


def mask_overlay(image: np.ndarray, labels: np.ndarray, colors: Sequence[tuple[int, int, int]],
                 opacity: float = MASK_OPACITY, skip: Sequence[int] = (0,)) -> np.ndarray:
    """The image with the predicted classes painted over it (classes in `skip` left unpainted, and so are
    values that name no class, such as a ground truth's void pixels: `hatch_void` draws those)."""
    palette = np.asarray(colors, dtype=np.float32)
    alpha = np.full(len(colors), opacity, dtype=np.float32)
    alpha[[k for k in skip if k < len(colors)]] = 0.0
    lab = np.asarray(labels, dtype=np.int64)
    outside = (lab < 0) | (lab >= len(colors))
    if outside.any():
        lab = np.where(outside, 0, lab)
    a = np.where(outside, 0.0, alpha[lab])[..., None]
    out = image.astype(np.float32) * (1 - a) + palette[lab] * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to (width, height): pixels stay visible as blocks."""
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.NEAREST))


# ---------------------------------------------------------------------------------------------
# Colour map (shared with the PNG export)


def lookup_table() -> np.ndarray:
    """256 RGB entries of COLORSCALE, for colouring maps outside Plotly (the library's `colormap`, which the
    batch previews use too; read-only)."""
    return colormap.lookup_table()


def heat_over_image(image: np.ndarray, heatmap: np.ndarray, opacity: float = HEAT_OPACITY) -> np.ndarray:
    """The image with the map in COLORSCALE over it, as the page shows it (the library's `colormap`, which
    the batch previews use too)."""
    return colormap.heat_over_image(image, heatmap, opacity)


def map_image(image: np.ndarray, heatmap: np.ndarray, paths: Sequence[np.ndarray], opacity: float = HEAT_OPACITY,
              scale: int = 3) -> np.ndarray:
    """One map over the image as an RGB picture `scale`× the image (pixels as blocks), region outlined.

    A picture rather than a Plotly figure: the page shows it at its column's width whatever the
    screen, and building it costs about a millisecond."""
    over = heat_over_image(image, heatmap, opacity)
    h, w = over.shape[:2]
    return outlined(over, paths, (w * scale, h * scale))


def outlined(image: np.ndarray, paths: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """`image` enlarged to `size` (width, height; pixels as blocks) with the region's outline drawn on it,
    black under white so it shows on any colour."""
    h, w = image.shape[:2]
    picture = Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.NEAREST)
    sx, sy = size[0] / w, size[1] / h
    pen = ImageDraw.Draw(picture)
    for path in paths:
        points = [((c + 0.5) * sx, (r + 0.5) * sy) for r, c in np.asarray(path)]
        if len(points) > 1:
            pen.line(points, fill=(0, 0, 0), width=max(3, round(sx) + 1))
            pen.line(points, fill=(255, 255, 255), width=max(1, round(sx) // 2))
    return np.asarray(picture)


MAP_QUALITY = 90  # JPEG quality of a map picture: 288×288 ~15-35 kB and ~1 ms (st.image's quality 100: ~100 kB)
MAP_CLASS = "segexplain-map"  # class of a map's <figure> (tests and benchmarks find the pictures by it)


MAP_SIDE = 288  # a map picture's longest side is at least this (px): a map column is ~270 px wide at 1280 px


def map_scale(shape: tuple[int, ...]) -> int:
    """The whole-pixel enlargement that brings an image of `shape` (height, width, ...) to `MAP_SIDE` on its
    longest side: 2 for the shipped 144² network, 1 (not enlarged) from 288 px up. A fixed 3× made a 512²
    model's maps 1536² JPEGs (~10× the pixels the column shows) to encode, send and decode at every stroke."""
    return max(1, -(-MAP_SIDE // max(int(shape[0]), int(shape[1]))))


def map_picture(image: np.ndarray, heatmap: np.ndarray, paths: Sequence[np.ndarray],
                opacity: float = HEAT_OPACITY, scale: int | None = None) -> bytes:
    """`map_image` as JPEG bytes (`MAP_QUALITY`), for `map_html`, enlarged `scale`× (default `map_scale`)."""
    scale = map_scale(image.shape) if scale is None else scale
    buffer = io.BytesIO()
    Image.fromarray(map_image(image, heatmap, paths, opacity, scale)).save(buffer, format="JPEG", quality=MAP_QUALITY)
    return buffer.getvalue()


def map_html(picture: bytes, caption: str) -> str:
    """One map: the picture (JPEG bytes) inline as a data URI at the column's width, its caption under it as
    text (escaped here: it may quote a layer name). Inline, so the browser paints it with the element that
    brings it, without a media request per map (`st.image`: the picture came 80-90 ms after its element)."""
    data = base64.b64encode(picture).decode("ascii")
    text = safe_text.html(caption)
    return (f"<figure class='{MAP_CLASS}' style='margin:0'>"
            f"<img src='data:image/jpeg;base64,{data}' alt='{text}' style='width:100%;display:block'>"
            f"<figcaption style='font-size:0.875rem;opacity:0.6;text-align:center;line-height:1.4;"
            f"margin-top:0.25rem;overflow-wrap:anywhere'>{text}</figcaption></figure>")


def colorbar_html(label: str) -> str:
    """The colour scale as a thin CSS gradient strip with its end labels (no chart to build)."""
    stops = ", ".join(f"rgb({r},{g},{b}) {100 * k / 8:.1f}%" for k, (r, g, b) in
                      enumerate(lookup_table()[np.linspace(0, 255, 9).astype(int)].tolist()))
    return (f"<div style='font-size:0.8em;line-height:1.2'><div style='height:0.7em;border-radius:2px;"
            f"background:linear-gradient(to right, {stops})'></div>"
            f"<div style='display:flex;justify-content:space-between'><span>0</span><span>{safe_text.html(label)}</span>"
            "<span>1</span></div></div>")


# ---------------------------------------------------------------------------------------------
# Plotly figures


def png_data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _outline_traces(paths: Sequence[np.ndarray], show_legend: bool = False) -> list[go.Scatter]:
    """Region outline: one polyline per contour ((row, col) → x = col, y = row), dark under light."""
    traces = []
    for k, path in enumerate(paths):
        path = np.asarray(path)
        for color, width in (("rgba(0,0,0,0.7)", 3.5), (OUTLINE_COLOR, 1.5)):
            traces.append(go.Scatter(
                x=path[:, 1], y=path[:, 0], mode="lines", line=dict(color=color, width=width),
                hoverinfo="skip", showlegend=show_legend and k == 0 and color == OUTLINE_COLOR,
                name="region",
            ))
    return traces


def _heatmap_trace(heatmap: np.ndarray, name: str, opacity: float = HEAT_OPACITY, **kwargs) -> go.Heatmap:
    return go.Heatmap(
        z=np.round(np.asarray(heatmap, dtype=np.float32), 4),
        zmin=0.0, zmax=1.0, colorscale=COLORSCALE, showscale=False, opacity=opacity, name=name,
        hovertemplate="row %{y}, col %{x}<br>value %{z:.3f}<extra>" + name + "</extra>", **kwargs,
    )


def _image_axes(fig: go.Figure, height: int, width: int) -> None:
    """Pixel axes: row 0 at the top, square pixels, no ticks."""
    fig.update_xaxes(range=[-0.5, width - 0.5], showticklabels=False, showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(range=[height - 0.5, -0.5], showticklabels=False, showgrid=False, zeroline=False,
                     scaleanchor="x", constrain="domain")


def map_figure(image: np.ndarray, heatmap: np.ndarray, paths: Sequence[np.ndarray], title: str,
               name: str, height: int = MAP_HEIGHT) -> go.Figure:
    """One method's map over the image, colour scale fixed to [0, 1], region outline on top."""
    h, w = heatmap.shape
    fig = go.Figure()
    fig.add_trace(go.Image(source=png_data_uri(image), hoverinfo="skip"))  # under the map
    fig.add_trace(_heatmap_trace(heatmap, safe_text.html(name)))
    for trace in _outline_traces(paths):
        fig.add_trace(trace)
    fig.update_layout(
        title=dict(text=safe_text.html(title), x=0.5, xanchor="center", font=dict(size=14)),
        height=height, margin=dict(l=4, r=4, t=40, b=4), showlegend=False, hovermode="closest",
    )
    _image_axes(fig, h, w)
    return fig


def sweep_picture(image: np.ndarray, small: np.ndarray, paths: Sequence[np.ndarray], size: int = 112,
              under: np.ndarray | None = None) -> bytes:
    """One layer's shrunk map over the image, enlarged in whole pixels to about `size` on its longest side,
    the region outlined, as JPEG bytes: the sweep shows one such picture per layer, encoded once. JPEG, not
    PNG: a noisy map over a photo is ~37 kB and 1.5 ms as PNG, ~10 kB and 0.1 ms as JPEG (155 of them per region).
    `under`: the image already reduced to the map's size (the same for every layer of a stage)."""
    h, w = small.shape
    if under is None:
        under = reduced(image, (h, w))
    scale = max(1, round(size / max(h, w)))
    picture = Image.fromarray(heat_over_image(under, small)).resize((w * scale, h * scale), Image.Resampling.NEAREST)
    sx, sy = w * scale / image.shape[1], h * scale / image.shape[0]
    pen = ImageDraw.Draw(picture)
    for path in paths:
        points = [((c + 0.5) * sx, (r + 0.5) * sy) for r, c in np.asarray(path)]
        if len(points) > 1:
            pen.line(points, fill=(255, 255, 255), width=1)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def reduced(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The image at (h, w) by box averaging: what a shrunk map is drawn over."""
    h, w = shape
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)[..., :3]).resize((w, h), Image.Resampling.BOX))


def sweep_pictures(image: np.ndarray, smalls: Mapping[str, np.ndarray | None], paths: Sequence[np.ndarray],
               size: int = 112) -> dict[str, bytes | None]:
    """`sweep_picture` for every layer (None stays None), the image reduced once per map size."""
    unders: dict[tuple[int, int], np.ndarray] = {}
    for small in smalls.values():
        if small is not None and small.shape not in unders:
            unders[small.shape] = reduced(image, small.shape)

    return {layer: None if small is None else sweep_picture(image, small, paths, size, unders[small.shape])
            for layer, small in smalls.items()}


def picture_row_html(pictures: Sequence[bytes | None], columns: int, empty: str) -> str:
    """One row of the sweep's pictures (JPEG bytes; None: a cell saying `empty`) as inline images in a grid
    of `columns` equal cells, spaced like `st.columns(columns, gap="small")` so each sits above its button."""
    cells = []
    for picture in pictures:
        if picture is None:
            cells.append(f"<div style='aspect-ratio:1;display:flex;align-items:center;justify-content:center;"
                         f"color:#888;font-size:0.8em;background:#f4f4f4'>{safe_text.html(empty)}</div>")
        else:
            data = base64.b64encode(picture).decode("ascii")
            cells.append(f"<img src='data:image/jpeg;base64,{data}' style='width:100%;display:block' alt=''>")
    return (f"<div style='display:grid;grid-template-columns:repeat({columns},minmax(0,1fr));gap:1rem'>"
            + "".join(cells) + "</div>")


def depth_figure(layers: Sequence[str], shares: Mapping[str, np.ndarray], chance: float,
                 stages: Sequence[tuple[str, int]], selected: str | None = None, height: int = 300) -> go.Figure:
    """The share of each method's attribution inside the drawn region, layer by layer in forward order
    (one line per method; the region's share of the image dashed: a map spread evenly). `stages` are
    (label, index of the stage's first layer); layer names reach hover text escaped."""
    palette = plotly.colors.qualitative.Plotly
    x = np.arange(len(layers))
    names = [safe_text.html(name) for name in layers]
    fig = go.Figure()
    for k, (method_label, values) in enumerate(shares.items()):
        fig.add_trace(go.Scatter(
            x=x, y=np.asarray(values, dtype=float), mode="lines+markers", name=safe_text.html(method_label),
            customdata=names, marker=dict(size=4), line=dict(color=palette[k % len(palette)], width=2),
            hovertemplate="%{customdata}: %{y:.0%}<extra>" + safe_text.html(method_label) + "</extra>"))
    # shapes and notes set in one go: `add_vline` re-validates the layout each time (0.3 s for ten)
    shapes = [dict(type="line", xref="paper", x0=0, x1=1, y0=chance, y1=chance,
                   line=dict(color=BASELINE_COLOR, width=1.5, dash="dash"))]
    notes = [dict(xref="paper", x=0, y=chance, yanchor="bottom", xanchor="left", showarrow=False,
                  text=f"region's share of the image ({chance:.0%})", font=dict(size=10, color=BASELINE_COLOR))]
    for label, start in stages:
        if start > 0:
            shapes.append(dict(type="line", yref="paper", y0=0, y1=1, x0=start - 0.5, x1=start - 0.5,
                               line=dict(color="#bbbbbb", width=1)))
        notes.append(dict(x=start - 0.5, y=1.0, yref="paper", text=safe_text.html(label), showarrow=False,
                          xanchor="left", yanchor="bottom", font=dict(size=10, color="#666666")))
    if selected in layers:
        at = list(layers).index(selected)
        shapes.append(dict(type="line", yref="paper", y0=0, y1=1, x0=at, x1=at,
                           line=dict(color="#222222", width=1, dash="dot")))
    fig.update_layout(shapes=shapes, annotations=notes)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
                      title=dict(text="Share of the attribution inside the drawn region, by depth", x=0,
                                 xanchor="left", font=dict(size=14), pad=dict(b=18)),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.35, x=0))
    fig.update_xaxes(title="layer (forward order)", range=[-0.5, len(layers) - 0.5])
    fig.update_yaxes(title="share in region", tickformat=".0%", range=[0, 1.02])
    return fig


# ---------------------------------------------------------------------------------------------
# Faithfulness curves (section 6).

CURVE_HEIGHT = 340
BASELINE_COLOR = "#7f7f7f"


def curves_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, x_title: str,
                  y_title: str, baseline: str = "random", height: int = CURVE_HEIGHT) -> go.Figure:
    """One line per map (score against the fraction of pixels), the chance baseline dashed and grey."""
    palette = plotly.colors.qualitative.Plotly
    fig = go.Figure()
    k = 0
    for name, (fractions, scores) in curves.items():
        if name == baseline:
            line = dict(color=BASELINE_COLOR, width=2, dash="dash")
        else:
            line = dict(color=palette[k % len(palette)], width=2)
            k += 1
        fig.add_trace(go.Scatter(
            x=np.asarray(fractions, dtype=float), y=np.asarray(scores, dtype=float), mode="lines", name=name,
            line=line, hovertemplate="%{x:.0%}: %{y:.3f}<extra>" + name + "</extra>",
        ))
    fig.update_layout(
        # the title at the left: the toolbar Plotly shows on hover sits at the top right
        title=dict(text=title, x=0, xanchor="left", xref="paper", font=dict(size=14)), height=height,
        margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
        legend=dict(orientation="v", yanchor="top", y=1, x=1.02, font=dict(size=11)),
    )
    fig.update_xaxes(title=x_title, tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title=y_title)
    return fig


# ---------------------------------------------------------------------------------------------
# Segmentation quality: error overlays and thumbnails. Colours only; the codes and
# counts come from `explainers.quality`.

ERROR_COLORS = {
    "correct": (40, 175, 80),  # green
    "false positive": (255, 140, 0),  # orange: predicted as the class, something else in truth
    "false negative": (30, 110, 255),  # blue: the class in truth, predicted as something else
    "wrong": (235, 20, 20),  # red: any misclassified pixel (all-class view)
}
ERROR_OPACITY = 0.7


def _paint(image: np.ndarray, where: Mapping[str, np.ndarray], opacity: float) -> np.ndarray:
    out = image.astype(np.float32)
    for name, mask in where.items():
        color = np.asarray(ERROR_COLORS[name], dtype=np.float32)
        out[mask] = out[mask] * (1 - opacity) + color * opacity
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


VOID_HATCH = ((105, 105, 105), (215, 215, 215))  # dark and light grey stripes: a ground truth's void pixels
VOID_STRIPE = 3  # stripe width in pixels of the picture as shown


def hatch_void(picture: np.ndarray, void: np.ndarray) -> np.ndarray:
    """`picture` (already at the size it is shown) with the pixels of the bool mask `void` (any size, brought
    to the picture's by nearest neighbour, as `enlarge` does) drawn as grey diagonal stripes: void (255) is
    neither a class nor an error, so it gets no class or error colour."""
    void = np.asarray(void, dtype=bool)
    if not void.any():
        return picture
    height, width = picture.shape[:2]
    if void.shape != (height, width):
        void = np.asarray(Image.fromarray(void.astype(np.uint8) * 255).resize((width, height),
                                                                               Image.Resampling.NEAREST)) > 0
    rows, cols = np.indices((height, width))
    dark = ((rows + cols) // VOID_STRIPE) % 2 == 0
    out = np.array(picture, copy=True)
    out[void & dark] = VOID_HATCH[0]
    out[void & ~dark] = VOID_HATCH[1]
    return out


def error_overlay(image: np.ndarray, codes: np.ndarray, opacity: float = ERROR_OPACITY) -> np.ndarray:
    """One class's `quality.error_codes` painted over the image (unrelated and void pixels left as they are)."""
    from explainers import quality

    codes = np.asarray(codes)
    return _paint(image, {"correct": codes == quality.TRUE_POSITIVE,
                          "false positive": codes == quality.FALSE_POSITIVE,
                          "false negative": codes == quality.FALSE_NEGATIVE}, opacity)


def confusion_overlay(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, background: int | None = 0,
                      opacity: float = ERROR_OPACITY) -> np.ndarray:
    """All classes: misclassified pixels red, correctly segmented objects green (background left clear; void
    pixels of the truth, `quality.void_pixels`, are never wrong and left clear too)."""
    from explainers import quality

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    scored = ~quality.void_pixels(truth)
    right = (truth == predicted) & scored
    if background is not None:
        right = right & (truth != background)
    return _paint(image, {"correct": right, "wrong": (truth != predicted) & scored}, opacity)


def error_legend_html(names: Sequence[str]) -> str:
    """Swatches of the error colours in `names` (keys of ERROR_COLORS, or `quality.VOID_NAME`: grey stripes
    as `hatch_void` draws them), in one line."""
    from explainers import quality

    items = []
    for name in names:
        if name == quality.VOID_NAME:
            (r, g, b), (r2, g2, b2) = VOID_HATCH
            fill = f"repeating-linear-gradient(45deg,rgb({r},{g},{b}) 0 2px,rgb({r2},{g2},{b2}) 2px 4px)"
        else:
            r, g, b = ERROR_COLORS[name]
            fill = f"rgb({r},{g},{b})"
        items.append(f"<span style='display:inline-block;width:0.9em;height:0.9em;margin:0 0.3em 0 0.8em;"
                     f"vertical-align:middle;background:{fill};border:1px solid #555'></span>{safe_text.html(name)}")
    return "<div style='font-size:0.9em'>" + "".join(items) + "</div>"


def thumbnail_uri(image: np.ndarray, size: int = 72) -> str:
    """A small PNG data URI (e.g. for an image column of a table)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    small = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                          Image.Resampling.BILINEAR)
    return png_data_uri(np.asarray(small))
