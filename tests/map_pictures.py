"""The map pictures of the loop view as AppTest sees them: each map is one `st.html` element (a <figure> of
class `figures.MAP_CLASS`: the JPEG inline, its caption as a <figcaption>), so tests read the captions here."""

from __future__ import annotations

import html
import re

from dashboard import figures

_FIGURE = re.compile(r"<figure class='" + re.escape(figures.MAP_CLASS) + r"'.*?<figcaption[^>]*>(.*?)</figcaption>",
                     re.S)


def map_captions(node) -> list[str]:
    """The captions of the map pictures under `node` (an AppTest, a column, a container), in the order shown."""
    return [html.unescape(caption) for element in node.get("html") for caption in _FIGURE.findall(element.proto.body)]
