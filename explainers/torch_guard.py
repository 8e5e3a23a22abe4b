"""Keep a process that holds TensorFlow and PyTorch from crashing on triton's native library.

Checked with TensorFlow 2.21 and the CUDA build of torch 2.14.1 (triton 3.8): once TensorFlow is loaded,
loading `triton._C.libtriton` crashes the process with a segmentation fault; torchvision imports it
(through `torch._dynamo`) as soon as one of its models is built. Loaded the other way round (triton
before TensorFlow) both work. Triton compiles GPU kernels for `torch.compile`; this library runs
modules eagerly and never needs it, and torch treats a missing triton as "no triton".

`install()` (run by `import explainers`) adds an import hook that refuses `import triton` only when
TensorFlow is already loaded, so the crash becomes an ImportError torch handles. Costs nothing at
import time; a process that imports triton before TensorFlow keeps it.
"""

from __future__ import annotations

import importlib.abc
import sys


class _RefuseTritonAfterTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "triton" and "tensorflow" in sys.modules and "triton" not in sys.modules:
            raise ModuleNotFoundError(
                "triton is not loaded in a process that already holds TensorFlow (it crashes there; "
                "see explainers.torch_guard)", name=fullname)
        return None


def install() -> None:
    """Add the hook once (idempotent)."""
    if not any(isinstance(f, _RefuseTritonAfterTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _RefuseTritonAfterTensorFlow())
