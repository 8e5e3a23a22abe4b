"""One entry for every model file a user may give (page, batch CLI, Ray workers): a PyTorch file
(`.onnx`, a transformers / smp folder as `.zip`) goes to `torch_files`, anything else to the Keras
loader in `model_files`. It sits above both, so neither imports the other (`torch_files` uses
`model_files`' archive checks and limits).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from explainers import model_files, torch_files


def load_any(path: str | Path, display_name: str | None = None, limits: model_files.Limits | None = None,
             preprocessing: Mapping[str, object] | None = None) -> Any:
    """The explainable model in the file; `preprocessing` (mean, std, input_size) is for PyTorch files
    without their own. Raises `model_files.ModelFileError` with one sentence for every refusal."""
    path = Path(path)
    name = display_name or path.name
    if torch_files.torch_suffix(name) or torch_files.torch_suffix(path.name):
        return torch_files.load_explainable(path, name, limits or model_files.Limits.from_env(),
                                            **(preprocessing or {}))
    return model_files.load_model_file(path, display_name=display_name, limits=limits)
