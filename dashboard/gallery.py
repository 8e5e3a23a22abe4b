"""The sample gallery: every scene with its description (failure cases included), one click to use."""

from __future__ import annotations

import streamlit as st

from dashboard import compute, sidebar, state
from models import scenes

COLUMNS = 5
THUMBNAIL = 120


def show() -> None:
    names = scenes.sample_names()
    current = state.get(state.IMAGE_CHOICE) or {}
    for start in range(0, len(names), COLUMNS):
        for column, name in zip(st.columns(COLUMNS), names[start:start + COLUMNS], strict=False):
            with column:
                st.image(compute.sample(name), width=THUMBNAIL)
                active = current.get("source") == "sample" and current.get("name") == name
                st.button(f"{'✓ ' if active else ''}{name}", key=f"gallery-{name}", on_click=sidebar.choose_sample,
                          args=(name,), disabled=active, width="stretch")
                st.caption(scenes.sample_description(name))
