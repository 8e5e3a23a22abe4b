"""segexplain's library: attribution maps for a drawn region of a segmentation network's output.

Submodules written elsewhere (`regions`, `images`, `metrics`, ...) are imported by their users
directly, so importing this package stays light and never fails because of them. The list of methods,
their labels and options is `explainers.registry`.
"""

from explainers.api import (
    ALL_METHODS,
    METHOD_LABELS,
    METHODS,
    class_overview,
    explain,
    fit_image,
    layer_sweep,
    predict,
    score_choice,
)
from explainers.errors import ExplainerError
from explainers.graph import LayerInfo, ModelSummary, default_layer, explainable_layers, inspect_model
from explainers.results import Explanation, MapWarning, Prediction

__all__ = [
    "ALL_METHODS",
    "METHODS",
    "METHOD_LABELS",
    "ExplainerError",
    "Explanation",
    "LayerInfo",
    "MapWarning",
    "ModelSummary",
    "Prediction",
    "class_overview",
    "default_layer",
    "explain",
    "explainable_layers",
    "fit_image",
    "inspect_model",
    "layer_sweep",
    "predict",
    "score_choice",
]
