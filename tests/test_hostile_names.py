"""Issue 29 (1): strings from users and files reach the page as text, never as markup.

Class names (typed or from a labels file), the uploaded model's file name and its layer names are
hostile here: an `<iframe srcdoc>` with a script, a `<style>`, a `<b>`, a markdown image and bold.
The page's elements are rendered as the browser would (markdown-it, raw HTML on where the element allows
it) and no tag or markup from those strings may come out."""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import Path

import keras
import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import figures, layout, safe_text, sidebar, state

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")

SCRIPT = '<iframe srcdoc="<script>parent.window.__pwned=1</script>">'
HOSTILE = [SCRIPT, "<style>*{display:none}</style>", "<b>BOLDTAG</b>", "![PIXEL](http://127.0.0.1:9/t.png)",
           "**STARBOLD**", "[LINK](http://127.0.0.1:9/)"]
BAD_TAGS = {"iframe", "style", "script", "img", "a", "b"}
BAD_TEXT = ("<strong>STARBOLD</strong>", "<em>STARBOLD</em>", "<strong>LAYERBOLD</strong>", "<em>LAYEREM</em>")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def _tags(html_text: str) -> set[str]:
    parser = _Tags()
    parser.feed(html_text)
    return set(parser.tags)


def _rendered(markdown_text: str, allow_html: bool) -> str:
    return MarkdownIt("commonmark", {"html": allow_html}).render(markdown_text)


def _assert_text_only(markdown_text: str, allow_html: bool, where: str) -> None:
    rendered = _rendered(markdown_text, allow_html)
    bad = _tags(rendered) & BAD_TAGS
    assert not bad, f"{where} emits {bad}: {markdown_text!r}"
    assert not any(t in rendered for t in BAD_TEXT), f"{where} renders markup from a name: {markdown_text!r}"


def test_our_html_snippets_escape_names() -> None:
    html_text = figures.legend_html(HOSTILE, [(1, 2, 3)] * len(HOSTILE), [0.1] * len(HOSTILE))
    assert _tags(html_text) <= {"div", "span"}
    assert "&lt;iframe" in html_text
    assert _tags(figures.colorbar_html(SCRIPT)) <= {"div", "span"}


def test_plotly_labels_from_files_are_escaped_and_a_click_still_finds_its_cell() -> None:
    """Plotly draws tags (<a href>, <b>) in axis labels, titles and hover text: names from a run's files
    must arrive escaped, in the dataset page's matrix and the Trust tab's curves."""
    import numpy as np
    from streamlit.testing.v1 import AppTest

    from dashboard import dataset_view

    names = [SCRIPT, "<b>BOLDTAG</b>", "cap"]
    fig = dataset_view.matrix_figure(np.full((3, 3), 0.5), names, np.array([4, 5, 6]), f"title {SCRIPT}")
    shown = [*fig.data[0].x, *fig.data[0].y, fig.layout.title.text]
    assert not any(_tags(label) for label in shown), shown

    def click_cell() -> None:  # the callback as the page runs it, with a Plotly click on the middle cell
        import streamlit as st

        from dashboard import dataset_view

        names = ['<iframe srcdoc="<script>parent.window.__pwned=1</script>">', "<b>BOLDTAG</b>", "cap"]
        xs, ys = dataset_view._axis_labels(names, [4, 5, 6])
        st.session_state[dataset_view.CHART] = {"selection": {"points": [{"x": xs[1], "y": ys[0]}]}}
        dataset_view._apply_click(names, [4, 5, 6])
        st.write(st.session_state[dataset_view.CELL_ON], st.session_state[dataset_view.CELL_CLASS])

    at = AppTest.from_function(click_cell).run()
    assert not at.exception and at.session_state[dataset_view.CELL_ON] == 1
    assert at.session_state[dataset_view.CELL_CLASS] == 0


@pytest.mark.parametrize("name", [*HOSTILE, "final_conv", "a`b``c", "- list", "1. item", "# head", "$x^2$"])
def test_markdown_and_code_escapes_give_the_literal_text(name) -> None:
    for text, wrapped in ((safe_text.md(name), f"x {safe_text.md(name)} y"),
                          (safe_text.code(name), f"x {safe_text.code(name)} y")):
        rendered = _rendered(wrapped, allow_html=True)
        assert not (_tags(rendered) - {"p", "code"}), (name, text, rendered)
        plain = MarkdownIt("commonmark").parse(wrapped)[1].children
        literal = "".join(t.content for t in plain if t.type in ("text", "code_inline"))
        assert literal.replace("x ", "", 1).rsplit(" y", 1)[0].strip() == name.strip(), (name, text, literal)


def _png(size: int = 24) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _hostile_layer_model(tmp_path: Path) -> bytes:
    """A small segmentation net whose layers carry markdown in their names (TensorFlow's scope names allow
    letters, digits and `_.\\/>-` only, so emphasis is what a layer name can carry)."""
    inputs = keras.Input((24, 24, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="_LAYEREM_")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="__LAYERBOLD__")(x)
    logits = keras.layers.Conv2D(3, 1, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="softmax")(logits))
    path = tmp_path / "hostile.keras"
    model.save(path)
    return path.read_bytes()


def _elements(at: AppTest):
    for kind in ("markdown", "caption", "error", "warning", "info", "success"):
        yield from ((kind, element) for element in getattr(at, kind))


@pytest.mark.slow
def test_hostile_names_on_the_page_are_text(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sidebar, "MODEL_DIR", tmp_path / "uploads")
    at = AppTest.from_file(APP, default_timeout=240)
    for key, value in {state.REGION_MODE: "image", state.METHODS: ["gradcam"]}.items():
        at.session_state[key] = value
    at.run()
    file_name = "<b>FILETAG<b> ![FILEPIC](http:x.png).keras"
    at.file_uploader(key=state.MODEL_UPLOAD).set_value((file_name, _hostile_layer_model(tmp_path),
                                                        "application/octet-stream")).run()
    at.file_uploader(key=state.IMAGE_UPLOAD).set_value(("<style>x<style>.png", _png(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    typed = next(t for t in at.text_area if t.key and t.key.startswith("class_names_text_"))
    typed.set_value("\n".join(HOSTILE[:3])).run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(at.session_state["class_names"]["names"]) == HOSTILE[:3]
    # a second round with the other names, and a layer whose name carries markup chosen
    typed = next(t for t in at.text_area if t.key and t.key.startswith("class_names_text_"))
    typed.set_value("\n".join(HOSTILE[3:])).run()
    at.session_state[state.LAYER] = "__LAYERBOLD__"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    seen = 0
    for kind, element in _elements(at):
        if element.value.strip() == layout.CSS.strip():  # our own markup
            continue
        allow_html = bool(getattr(element.proto, "allow_html", False))
        _assert_text_only(element.value, allow_html, kind)
        seen += any(marker in element.value for marker in ("STARBOLD", "PIXEL", "LINK", "FILETAG", "LAYERBOLD"))
    assert seen >= 3, "the hostile names should be on the page (as text)"
    for widget in (*at.selectbox, *at.text_area, *at.file_uploader, *at.button):
        if getattr(widget.proto, "help", ""):
            _assert_text_only(widget.proto.help, False, f"help of {widget.label}")
