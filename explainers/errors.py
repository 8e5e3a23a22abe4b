"""The one error type the library raises on bad input.

Subclassing ValueError lets callers that already catch ValueError keep working, while the dashboard
can catch exactly this type and show its message: every message says what the user should change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class ExplainerError(ValueError):
    """Bad input to an explainer (model, image, region, layer, class, method, ...), with a fix in the text."""


_FRAMEWORKS = ("tensorflow", "keras", "torch", "tf_keras")


def _from_framework(error: BaseException) -> bool:
    """Raised by TensorFlow / Keras / torch themselves (their own error types, or a ValueError/TypeError
    whose innermost frame is in their code)?"""
    if type(error).__module__.split(".")[0] in _FRAMEWORKS:
        return type(error).__name__ != "ResourceExhaustedError"  # memory: callers say it their own way
    if not isinstance(error, ValueError | TypeError | RuntimeError):
        return False
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    path = tb.tb_frame.f_code.co_filename.replace("\\", "/") if tb is not None else ""
    return any(f"/{name}/" in path for name in _FRAMEWORKS) and "/explainers/" not in path


def _detail(error: BaseException) -> str:
    """The framework's own one-line reason: TensorFlow puts it after the traceback it embeds in the text
    ("ConcatOp : Dimension 2 in both shapes must be equal: ..."), Keras on its first line."""
    lines = [line.strip() for line in str(error).splitlines()]
    lines = [line.split(" [[")[0].split(" [Op:")[0].strip() for line in lines
             if line and not line.startswith(("[[", "File ", "Traceback", "Graph execution error", "Detected at node"))]
    return lines[-1] if type(error).__module__.startswith("tensorflow") and lines else (lines or [""])[0]


@contextlib.contextmanager
def framework_errors(size: tuple[int, int]) -> Iterator[None]:
    """Turn an error TensorFlow (or Keras, torch) raises while the network runs on an input of `size`
    into an ExplainerError whose sentence says what to change: no framework traceback reaches a user."""
    try:
        yield
    except ExplainerError:
        raise
    except Exception as error:
        if not _from_framework(error):
            raise
        detail = _detail(error)
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        h, w = size
        raise ExplainerError(
            f"The network failed on its {w}×{h} px input ({type(error).__name__}{': ' + detail if detail else ''}): "
            "choose a working "
            "size it accepts (explainers.set_working_size(model, longest=512, fit='pad'), the sidebar's working "
            "size, or the batch CLI's --working-size and --fit) or an image of the size it was trained on."
        ) from None
