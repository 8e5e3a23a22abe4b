"""The one export format of maps: array names and the per-method record, for the dashboard and the batch CLI.

Arrays: `heatmap_<key>` (H×W float32 in [0, 1]) and `layer_map_<key>` (the layer's grid, when the
method has one), with key = the method name with "+" replaced by "p" (gradcam++ → gradcampp; hyphens
stay). The record of a method: its label, family, layer, seconds, options as run (from the registry's
options object, batch sizes resolved), warnings as {code, message}, and the human-readable note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explainers import registry
from explainers.options import as_dict


def array_key(method: str) -> str:
    """The method's part of array names: "+" → "p" (gradcam++ → gradcampp)."""
    return method.replace("+", "p")


def map_arrays(explanations: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """`heatmap_<key>` and, where the method has one, `layer_map_<key>` of every Explanation."""
    arrays: dict[str, np.ndarray] = {}
    for method, explanation in explanations.items():
        key = array_key(method)
        arrays[f"heatmap_{key}"] = np.asarray(explanation.heatmap, dtype=np.float32)
        if getattr(explanation, "layer_map", None) is not None:
            arrays[f"layer_map_{key}"] = np.asarray(explanation.layer_map, dtype=np.float32)
    return arrays


def method_record(explanation: Any, name: str | None = None) -> dict[str, Any]:
    """Everything needed to redo one map: what ran, where, with which options, and what to know about it."""
    name = name or explanation.method
    method = registry.METHODS.get(name)
    return {
        "label": registry.label(name),
        "family": method.family if method else None,
        "layer": explanation.layer,
        "seconds": float(explanation.seconds),
        "options": as_dict(getattr(explanation, "options", None)),
        "warnings": [{"code": w.code, "message": w.message} for w in getattr(explanation, "warnings", ())],
        "note": getattr(explanation, "note", ""),
    }


def method_records(explanations: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {method: method_record(explanation, method) for method, explanation in explanations.items()}
