"""Our two Streamlit components v2 (`wake`, `settle`), declared from the files in `dashboard/frontend/`.

The drawing canvas is streamlit-drawable-canvas (see `canvas.py`), not one of ours.

Inline HTML, CSS and JavaScript (no build step, no iframe, no package manifest): `stem`.js and
`stem`.css are read once and the component is declared once per server process."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

FRONTEND = Path(__file__).with_name("frontend")


@functools.cache
def declare(stem: str, root_class: str) -> Any:
    """The component `segexplain.<stem>` whose HTML is one empty div of `root_class`."""
    import streamlit as st

    return st.components.v2.component(
        f"segexplain.{stem}",
        html=f'<div class="{root_class}"></div>',
        css=(FRONTEND / f"{stem}.css").read_text(encoding="utf-8"),
        js=(FRONTEND / f"{stem}.js").read_text(encoding="utf-8"),
        isolate_styles=True,
    )
