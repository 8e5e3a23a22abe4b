"""Strings from users and files, made safe for the page: they must reach it as text, never as markup.

Why: class names (a labels file downloaded with a model, or typed), file names, layer names read from
a model file and the messages that quote them are interpolated into Streamlit markdown (captions,
errors, help texts) and, in a few places, into our own HTML. In HTML a name like
`<iframe srcdoc="<script>…">` would run a script; in markdown `![x](http://…)` would load an image
and `**x**` would restyle the text. `html` escapes for our own markup; `md` backslash-escapes, for
markdown, every character that can open markup (CommonMark defines a backslash-escaped punctuation
character as that literal character) and folds line breaks, so a name cannot start a heading, a list,
a link, an image, a tag, a formula or a Streamlit directive; plain punctuation such as `.`, `'`, `(`
and intraword `_` (`final_conv`) is left as it is, so messages stay readable in the source too.
`code` makes an inline code span for layer names.
"""

from __future__ import annotations

import html as _html
import re

_MARKUP = re.compile(r"([\\`*\[\]<>!|~$#]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
_LIST_START = re.compile(r"^(\s*|\s*\d+)((?<=\d)[.)]|(?<!\d)[-+=])")
_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029]+")


def md(text: object) -> str:
    """`text` as literal characters inside Streamlit markdown (captions, st.error, help=, labels)."""
    escaped = _MARKUP.sub(r"\\\1", _BREAKS.sub(" ", str(text)))
    return _LIST_START.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)


def html(text: object) -> str:
    """`text` as literal characters inside our own HTML (unsafe_allow_html is only for our markup)."""
    return _html.escape(str(text), quote=True)


def code(text: object) -> str:
    """`text` as an inline code span in markdown (layer names): inside one nothing is interpreted, so only
    a backtick run could end it early; the fence is one backtick longer than the longest run inside."""
    value = _BREAKS.sub(" ", str(text))
    longest = max((len(run) for run in re.findall("`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
