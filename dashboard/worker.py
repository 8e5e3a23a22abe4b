"""The process that computes the slow maps (XRAI, Score-CAM, the Integrated-Gradients family) and the
Trust tab's randomisation check.

Why a process and not a thread: TensorFlow runs the operations of every thread of a process on one
shared pool, so a batch of 50 XRAI gradients queued ahead of a stroke's Grad-CAM made the CAM pass
wait seconds behind it. In a process of its own the slow map competes for the CPU through the
operating system's scheduler instead, and the fast maps stay fast. Nothing here imports streamlit;
the page talks to this module through `dashboard.scheduler`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

_QUEUE: Any = None
_WAITING: Any = None  # an Event the page sets while a map waits for this process (see `prepare`)
_MODELS: dict[tuple, Any] = {}


NICENESS = 15  # how much lower than the page the worker's CPU priority is (0..19)


def init(queue: Any, waiting: Any = None) -> None:
    """Pool initializer: remember where progress goes; keep TensorFlow quiet; yield the CPU to the page.

    The worker runs at a lower priority (`NICENESS`): when a stroke's CAM pass, its pictures and the
    page's script want the two cores, they get them, and the slow map takes the rest. Without it the
    worker's TensorFlow threads (which spin while they wait for work) slowed the page's NumPy and
    Python work several times over."""
    global _QUEUE, _WAITING
    _QUEUE, _WAITING = queue, waiting
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(OSError, AttributeError):  # not on every platform
        os.nice(NICENESS)


def _model(source: tuple) -> Any:
    """The model named by `source`: ("default",) or ("upload", path, mean/std items, working size or None),
    loaded once per process; a free-size model's working size (longest side, fit), when the page set one,
    is applied to it."""
    if source[0] == "upload" and source[3] is not None:
        from explainers import set_working_size

        model = _model((*source[:3], None))
        set_working_size(model, *source[3])
        return model
    if source not in _MODELS:
        import models
        from explainers import forward_cache

        _MODELS.clear()  # one model at a time: a new one replaces the old
        kept = forward_cache.active()
        if kept is None:
            kept = forward_cache.enable()  # see `prepare`
        kept.clear()  # the old model's passes are of no use to the new one
        _MODELS[source] = (models.load_default() if source[0] == "default" else
                           models.load_user_model(source[1], preprocessing=dict(source[2]) or None))
    return _MODELS[source]


def warm(source: tuple) -> bool:
    """Load the model ahead of the first job (TensorFlow's import and the model take seconds)."""
    return _model(source) is not None


def prepare(request: Any) -> bool:
    """Do ahead of any region what `request.method` needs of its image alone (`request`: a
    `map_request.PrepareRequest`; `explainers.prepare_image`: XRAI's segments and its integration points'
    forward passes, kept in this process's `forward_cache`), so XRAI for a region drawn later costs only its
    backward passes. False when it could not be done (the map's own job then says why, or it stopped early
    because a map was waiting: the passes laid in so far stay)."""
    import explainers

    stop = None if _WAITING is None else _WAITING.is_set
    r = request
    try:
        explainers.registry.import_modules(r.modules or ())
        return explainers.prepare_image(_model(r.source), r.image, (r.method,), target=r.target,
                                        options={r.method: r.options}, stop=stop)
    except explainers.ExplainerError:
        return False


def explain_one(job_id: int, source: tuple, request: Any, preview: bool = True) -> Any:
    """One slow map's Explanation (`request`: a `scheduler.MapRequest`); progress goes to the queue as
    (job_id, fraction, None), and, if `preview`, a method's early map (XRAI's preview) as
    (job_id, fraction so far, Explanation). A method registered from outside the package is registered here
    first, by importing the module that registered it in the page's process (`request.modules`)."""
    import explainers

    explainers.registry.import_modules(request.modules or ())

    done = [0.0]

    def report(fraction: float, *_args: Any, **_kwargs: Any) -> None:
        done[0] = float(fraction)
        _send((job_id, done[0], None))

    def early(_method: str, explanation: Any) -> None:
        _send((job_id, done[0], explanation))

    r = request
    return explainers.explain(_model(source), r.image, r.region, r.class_index, r.layer, methods=(r.method,),
                              target=r.target, progress=report, preview=early if preview else None,
                              options={r.method: r.options})[r.method]


def randomize(job_id: int, source: tuple, image: Any, region: Any, class_index: int, layer: str | None,
              methods: tuple[str, ...], target: str, options: dict[str, Any], steps: int, modules: tuple = ()) -> Any:
    """The Trust tab's randomisation check (`explainers.randomization_check`) on this process's copy of the
    model; progress goes to the queue as (job_id, fraction, None). `modules`: those that registered methods
    from outside the package in the page's process (`registry.modules_for`), imported here first."""
    import explainers

    explainers.registry.import_modules(modules)

    return explainers.randomization_check(_model(source), image, region, class_index, layer, methods, target=target,
                                          options=options, max_steps=steps, keep_maps=False,
                                          progress=lambda f, *_a, **_k: _send((job_id, float(f), None)))


def _send(message: tuple) -> None:
    if _QUEUE is not None:
        with contextlib.suppress(Exception):  # a full or closed queue only costs the progress bar (or the preview)
            _QUEUE.put_nowait(message)
