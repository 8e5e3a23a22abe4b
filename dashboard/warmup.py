"""Trace a model's CAM pass while the user looks at the page, so the first stroke does not pay for it.

The gradient CAMs share one compiled TensorFlow pass per (model, layers, target, CAMs); tracing it takes
seconds on a real backbone (6 s for a MobileNetV2 head on these machines) and the first stroke after an
upload used to wait for it. While no region is marked, the page asks for the pass of the layer, CAMs
and target on screen to be run once on a box in the image's middle in a daemon thread; the page's own
call then finds it traced (the library keeps the pass per model object). The result is thrown away.
Each combination is warmed once per process; a failure is only logged (the page's own call reports it).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

import explainers
from explainers import layer_split, registry

LOG = logging.getLogger(__name__)
KEEP = 64  # combinations remembered (a new model or layer adds one)
_STARTED: OrderedDict[tuple, threading.Thread] = OrderedDict()
_LOCK = threading.Lock()


def centre_box(shape: tuple[int, int]) -> np.ndarray:
    """A region over the middle ninth of the image: a non-empty score for any class."""
    h, w = shape
    region = np.zeros((h, w), bool)
    region[h // 3: max(h // 3 + 1, 2 * h // 3), w // 3: max(w // 3 + 1, 2 * w // 3)] = True
    return region


def start(model_key: str, model: Any, image: np.ndarray, layer: str, cams: tuple[str, ...], target: str,
          options: dict[str, dict[str, Any]]) -> threading.Thread | None:
    """Warm the pass for this combination in the background, once; the thread, or None if already asked."""
    if not cams:
        return None
    key = (model_key, id(model), layer, cams, target, tuple(sorted((m, tuple(sorted(o.items())))
                                                                   for m, o in options.items())))
    with _LOCK:
        if key in _STARTED:
            return None
        thread = threading.Thread(target=_run, args=(model, np.asarray(image), layer, cams, target, options),
                                  daemon=True, name="segexplain-warmup")
        _STARTED[key] = thread
        while len(_STARTED) > KEEP:
            _STARTED.popitem(last=False)
    thread.start()
    return thread


def start_on_load(model_key: str, model: Any, methods: list[str] | tuple[str, ...] | None, target: str
                  ) -> threading.Thread | None:
    """Right after a model is loaded, before the page has even predicted: its default layer on a grey image
    of its input size (the trace does not depend on the pixels). A free-size model waits for the page's
    image (`start` from the loop). `methods` None: the default ones (a model can be uploaded before the
    session's first run has drawn the method picker)."""
    try:
        h, w = explainers.inspect_model(model).input_size
        layer = explainers.default_layer(model)
    except explainers.ExplainerError:
        return None
    if h is None or w is None:
        return None
    cams = tuple(m for m in (registry.DEFAULT_METHODS if methods is None else methods) if m in registry.CAM_METHODS)
    return start(model_key, model, np.full((int(h), int(w), 3), 128, np.uint8), layer, cams, target, {})


def _run(model: Any, image: np.ndarray, layer: str, cams: tuple[str, ...], target: str,
         options: dict[str, dict[str, Any]]) -> None:
    try:
        with layer_split.used():  # as the page's own call (`compute._cam_maps`): the same functions traced
            explainers.explain(model, image, centre_box(image.shape[:2]), 0, layer, methods=cams, target=target,
                               options=options)
    except Exception:  # noqa: BLE001  (the page's own call says what is wrong, in its words)
        LOG.info("warming the CAM pass failed", exc_info=True)
