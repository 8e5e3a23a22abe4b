"""segexplain's library: attribution maps for a drawn region of a segmentation network's output.

Submodules written elsewhere (`regions`, `images`, `metrics`, ...) are imported by their users
directly, so importing this package stays light and never fails because of them. The list of methods,
their labels and options is `explainers.registry`.

Importing it asks TensorFlow for its oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS=1`) unless the
environment already says otherwise. TensorFlow turns them on by itself only on some CPUs: on an AMD
EPYC (AVX2) host it left them off, and a batch of 50 adapter gradients on the shipped model took
2.15 s instead of 1.16 s (XRAI 11.2 s instead of 5.0 s). The variable is read when TensorFlow loads,
so this only takes effect when `explainers` is imported first; `onednn_enabled()` tells.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from explainers import torch_guard  # noqa: E402

torch_guard.install()  # TensorFlow, then triton (torchvision) crashed the process: see torch_guard

from explainers.api import (  # noqa: E402
    DEFAULT_METHODS,
    METHOD_LABELS,
    class_overview,
    explain,
    fit_image,
    layer_sweep,
    predict,
    prepare_image,
    score_choice,
)
from explainers.depth_profile import DepthProfile, region_share  # noqa: E402
from explainers.errors import ExplainerError  # noqa: E402
from explainers.graph import (  # noqa: E402
    LayerInfo,
    ModelSummary,
    answers_region,
    default_layer,
    explainable_layers,
    inspect_model,
)
from explainers.randomization import RandomizationResult, randomization_check  # noqa: E402
from explainers.results import Explanation, MapWarning, Prediction  # noqa: E402
from explainers.torch_engine import TorchModel, from_torch  # noqa: E402
from explainers.working_size import set_working_size  # noqa: E402  (imports torch only when called)


def __getattr__(name: str) -> tuple[str, ...]:
    """`explainers.ALL_METHODS`: every method registered now (read from `registry` each time, so a method
    added by `registry.register` after this import is in it)."""
    if name == "ALL_METHODS":
        from explainers import registry

        return registry.ALL_METHODS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels in this process (None: this TensorFlow does not say).

    Benchmarks print it beside their times, since it halves the gradients' time on some hosts."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own check; not public API
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


__all__ = [
    "ALL_METHODS",
    "DEFAULT_METHODS",
    "DepthProfile",
    "METHOD_LABELS",
    "ExplainerError",
    "Explanation",
    "LayerInfo",
    "MapWarning",
    "ModelSummary",
    "Prediction",
    "RandomizationResult",
    "TorchModel",
    "answers_region",
    "class_overview",
    "default_layer",
    "explain",
    "explainable_layers",
    "fit_image",
    "from_torch",
    "inspect_model",
    "layer_sweep",
    "onednn_enabled",
    "predict",
    "prepare_image",
    "randomization_check",
    "region_share",
    "score_choice",
    "set_working_size",
]
