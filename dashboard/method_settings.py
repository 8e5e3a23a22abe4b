"""Every method's own settings, drawn from its options fields' metadata (`explainers.options.specs`).

No method is named here: the widgets of the methods on screen come from their records, one per field
the metadata puts on the page, keyed by `state.option_key(method, field)` (the only place the keys are
made); `current` reads them back as the `options={method: {field: value}}` mapping a request carries.
Fields kept off the page (batch sizes, seeds) run with the library's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from dashboard import state
from explainers import options as opts
from explainers import registry


def page_specs(method: str) -> tuple[opts.Spec, ...]:
    """The fields of `method` the page shows (none for a method without options)."""
    return tuple(s for s in opts.specs(registry.get(method).options) if s.page)


def defaults() -> dict[str, Any]:
    """Session key → default of every page setting of every registered method."""
    return {state.option_key(name, spec.name): spec.default
            for name in registry.ALL_METHODS for spec in page_specs(name)}


def current(methods: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """{method: {field: value}} of the page settings (as the widgets hold them, before they are drawn) of
    `methods` (default every registered method); methods without page settings are left out."""
    chosen = registry.ALL_METHODS if methods is None else methods
    out = {}
    for name in chosen:
        specs = page_specs(name) if name in registry.METHODS else ()
        if specs:
            out[name] = {spec.name: state.get_option(name, spec.name, spec.default) for spec in specs}
    return out


def show(methods: Sequence[str]) -> None:
    """An expander with one widget per page setting of the chosen `methods`, two per row (it sits in the
    left column, too narrow for three labels side by side)."""
    fields = [(name, spec) for name in methods if name in registry.METHODS for spec in page_specs(name)]
    if not fields:
        return
    with st.expander("Method settings", expanded=False):
        for start in range(0, len(fields), 2):
            for column, (name, spec) in zip(st.columns(2), fields[start:start + 2], strict=False):
                with column:
                    _widget(name, spec)


def _widget(method: str, spec: opts.Spec) -> None:
    record = registry.get(method)
    label = spec.label if record.short_label in spec.label else f"{record.short_label} {spec.label}"
    help_text = f"{spec.help} {spec.default} is the library's default."
    key = state.option_key(method, spec.name)
    if spec.kind == "choice":
        st.selectbox(label, spec.choices, key=key, help=help_text)
    elif spec.kind == "float":
        st.number_input(label, min_value=spec.low, max_value=spec.high, step=spec.step or 0.01, key=key,
                        help=help_text)
    else:
        st.number_input(label, min_value=None if spec.low is None else int(spec.low),
                        max_value=None if spec.high is None else int(spec.high), step=int(spec.step or 1), key=key,
                        help=help_text)
