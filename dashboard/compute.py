"""Cached calls into `models` and `explainers`: the only place the page asks for numbers.

Nothing here computes anything itself; it decides what is remembered between reruns:

- models: `st.cache_resource` (one object shared by all sessions), an uploaded model keyed by the
  SHA-256 of its file;
- arrays and maps: `st.cache_data`, keyed by the model key, the image digest, the region's digest,
  the class, the layer, the methods and the target. Models, images and region masks are passed as
  hash-excluded `_arguments` next to the key that identifies them, so Streamlit never hashes a Keras
  model, and never hashes a large array either (it hashes arrays of 500,000 elements or more from a
  random sample of their elements, so two regions a few pixels apart could share a cache entry).
- the slow maps (XRAI, Score-CAM, the Integrated-Gradients family): background jobs (`slow_job`) in
  one worker thread, started once per key and never restarted by a rerun; the page polls their
  progress. Their results live in a small store of their own (`stored`), not `st.cache_data`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import time
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

import explainers
import models
from explainers import depth_profile, regions
from explainers.caching import LRU
from models import scenes


def digest(data: bytes | np.ndarray) -> str:
    """Short content hash used as a cache key and in the export's settings."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes() + repr((data.shape, data.dtype.str)).encode()
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Models


def default_model_key() -> str:
    """Changes when the shipped weights file changes (e.g. after retraining), so the cache follows."""
    try:
        from models import pspnet

        stat = pspnet.WEIGHTS_PATH.stat()
        return f"default:{stat.st_size}:{int(stat.st_mtime)}"
    except (ImportError, AttributeError, OSError):
        return "default"


@st.cache_resource(show_spinner="Loading the default model…", max_entries=2)
def default_model(model_key: str) -> Any:
    _MODEL_SOURCES[model_key] = ("default",)
    return models.load_default()


def note_upload_source(model_key: str, path: Any, preprocessing: dict | None = None) -> None:
    """Where the slow-map worker process finds an uploaded model (the session's own stored file), and the
    mean/std the user set for a PyTorch file (the worker loads the file with them)."""
    settings = tuple(sorted((k, tuple(v)) for k, v in (preprocessing or {}).items()))
    _MODEL_SOURCES[model_key] = ("upload", str(path), settings, None)  # see `worker._model`


def with_working_size(model_key: str, model: Any, longest: int, fit: str) -> str:
    """Apply the page's working size to a free-size model; the key of the model at that size (every cache and
    the slow-map worker follow it: the worker's source carries the size)."""
    explainers.set_working_size(model, longest, fit)
    key = f"{model_key}|work:{longest}:{fit}"
    if model_key in _MODEL_SOURCES:
        base = _MODEL_SOURCES[model_key]
        _MODEL_SOURCES[key] = (*base[:3], (longest, fit)) if base[0] == "upload" else base
    return key


@st.cache_data(show_spinner=False, max_entries=16)
def layer_table(model_key: str, _model: Any) -> tuple[list[Any], str]:
    """Explainable layers (forward order) and the default layer of a model."""
    return list(explainers.explainable_layers(_model)), explainers.default_layer(_model)


# ---------------------------------------------------------------------------------------------
# Images and predictions


@st.cache_data(show_spinner=False, max_entries=32)
def sample(name: str) -> np.ndarray:
    image, _truth = scenes.load_sample(name)
    return image


@st.cache_data(show_spinner=False, max_entries=64)
def fitted(model_key: str, image_key: str, _pixels: np.ndarray, _model: Any) -> np.ndarray:
    """The image resized to the model's input size (what every map is computed on)."""
    return np.asarray(explainers.fit_image(_model, _pixels))


@st.cache_data(show_spinner=False, max_entries=64)
def prediction(model_key: str, image_key: str, _image: np.ndarray, _model: Any) -> Any:
    return explainers.predict(_model, _image)


# ---------------------------------------------------------------------------------------------
# Maps


@st.cache_data(show_spinner=False, max_entries=256)
def cam_maps(
    model_key: str,
    image_key: str,
    region_key: str,
    class_index: int,
    layer: str,
    methods: tuple[str, ...],
    target: str,
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...],
    _image: np.ndarray,
    _region: np.ndarray,
    _model: Any,
) -> dict[str, Any]:
    """The gradient CAMs in one call; `region_key` is `digest(_region)`, `options` ((method, ((option,
    value), ...)), ...) those set by the page (e.g. Seg-XRes-CAM's pool size)."""
    return dict(explainers.explain(_model, _image, _region, class_index, layer, methods=methods, target=target,
                                   options={method: dict(items) for method, items in options}))


SWEEP_SIZE = 112  # longest side of each sweep map kept for the page (its pictures are drawn from these)


@st.cache_data(show_spinner=False, max_entries=32)
def sweep(
    model_key: str,
    image_key: str,
    region_key: str,
    class_index: int,
    target: str,
    _image: np.ndarray,
    _region: np.ndarray,
    _model: Any,
) -> explainers.DepthProfile:
    """Grad-CAM and Grad-CAM++ at every explainable layer from one library call (one compiled pass),
    kept as the page needs it: each map shrunk to `SWEEP_SIZE`, its region share and whether it is
    flat (`explainers.depth_profile`). The full-size maps are not cached: for a 156-layer model at
    224² they are 65 MB per region. `region_key` is `digest(_region)`."""
    by_layer = explainers.layer_sweep(_model, _image, _region, class_index, target=target)
    return depth_profile.profile(by_layer, _region, SWEEP_SIZE)


@st.cache_data(show_spinner=False, max_entries=64)
def score_choice(model_key: str, image_key: str, region_key: str, class_index: int, layer: str, target: str,
                 _image: np.ndarray, _region: np.ndarray, _model: Any) -> float:
    """Rank correlation of Grad-CAM++ on the adapter mean and on the region sum (how much the score matters)."""
    return float(explainers.score_choice(_model, _image, _region, class_index, layer, target=target)["rank_correlation"])


def agreement(maps: dict[str, np.ndarray]) -> list[dict]:
    """The agreement table of `maps`, computed once per set of maps (a rerun with the same maps reuses it)."""
    return _agreement(tuple((name, digest(np.asarray(m))) for name, m in maps.items()), maps)


@st.cache_data(show_spinner=False, max_entries=64)
def _agreement(key: tuple, _maps: dict[str, np.ndarray]) -> list[dict]:
    from explainers import metrics

    return metrics.agreement_table(_maps)


def outline(region: np.ndarray) -> list[np.ndarray]:
    return regions.outline_paths(region)


# ---------------------------------------------------------------------------------------------
# The slow maps (XRAI, Score-CAM, the Integrated-Gradients family) and the faithfulness scores report
# progress to the page while they run, so they live in a store of their own rather than
# `st.cache_data` (a cache hit would replay their progress bars);
# the class overview draws nothing while it runs and is an ordinary `st.cache_data` entry.

_SLOW_STORE_SIZE = 128


@st.cache_resource(show_spinner=False)
def _slow_store() -> LRU:
    return LRU(_SLOW_STORE_SIZE)


def stored(key: tuple) -> Any | None:
    """The value computed earlier for `key` by `slow_map` or `faithfulness`, or None."""
    return _slow_store().get(key)


def _keep(key: tuple, value: Any) -> None:
    _slow_store().put(key, value)


def slow_map(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    layer: str | None,
    method: str,
    target: str,
    options: dict[str, Any],
    progress: Callable[..., None] | None = None,
    preview: Callable[[str, Any], None] | None = None,
) -> Any:
    """One slow method's Explanation (`options`: a dict of its options fields), once per `key`;
    `progress` and `preview` are `explainers.explain`'s."""
    hit = stored(key)
    if hit is not None:
        return hit
    kwargs: dict[str, Any] = dict(methods=(method,), target=target, options={method: options})
    if progress is not None:
        kwargs["progress"] = progress
    if preview is not None:
        kwargs["preview"] = preview
    result = explainers.explain(model, image, region, class_index, layer, **kwargs)[method]
    _keep(key, result)
    return result


# ---------------------------------------------------------------------------------------------
# Slow maps as background jobs: started once per key, never restarted or cancelled by a rerun. A
# new stroke, class or layer only starts the jobs whose inputs changed; the others keep running (or
# are already stored) and the page polls them. The jobs run one at a time in a worker process
# (`dashboard.worker`), so they do not hold up TensorFlow's operation pool in the page's process; the
# job asked for most recently goes first (the map on screen before the ones of earlier strokes).
# Where a process cannot be used (an unknown model source, a broken pool), the job runs in the
# dispatcher thread instead.

# How each cached model was loaded, so the worker process can load the same one.
_MODEL_SOURCES: dict[str, tuple] = {}


@dataclass
class Job:
    """A slow map being computed: `progress` in [0, 1], maybe an early `preview` (an Explanation with
    `preview` set: XRAI at fewer steps), then `result` (an Explanation) or `error`."""

    key: tuple
    label: str
    args: tuple = field(default=(), repr=False)
    progress: float = 0.0
    started: bool = False
    result: Any = None
    error: str | None = None
    asked: float = 0.0  # when the page last asked for it (the most recent goes first)
    run_key: tuple = ()  # model, image, method, target and options: what its run time says something about
    started_at: float = 0.0  # time.monotonic() when the worker took it
    reported_at: float = 0.0  # time.monotonic() of the last progress report
    preview: Any = None
    wants_preview: bool = True  # whether the worker is asked for the method's preview (see `slow_job`)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def report(self, fraction: float, preview: Any = None) -> None:
        self.progress = float(min(max(fraction, 0.0), 1.0))
        self.reported_at = time.monotonic()
        if preview is not None and self.preview is None:
            self.preview = preview
            TYPICAL_PREVIEW_SECONDS.setdefault(self.label, deque(maxlen=3)).append(self.reported_at - self.started_at)

    def until_preview(self, now: float | None = None) -> float | None:
        """Expected seconds until this job's preview arrives (by the quickest of the last previews of the
        same method), or None when it has one, is done, or its method has given none in this server.

        A job not started yet is usually about to be (the dispatcher takes it within milliseconds of the
        stroke): its preview is expected the usual time from now, not after the whole run's estimate
        (which made a look fall after the preview, then show it seconds late)."""
        runs = TYPICAL_PREVIEW_SECONDS.get(self.label)
        if self.done or self.preview is not None or not self.wants_preview or not runs:
            return None
        if not self.started:
            return min(runs)
        elapsed = (time.monotonic() if now is None else now) - self.started_at
        return max(min(runs) - elapsed, 0.0)

    def remaining(self, now: float | None = None) -> float:
        """Expected seconds until the job is done.

        The best guess is the quickest of the last runs of the same method in this server (XRAI on one
        model takes about the same time for any region), or the job's own rate up to its last progress
        report when that says less (the reports are few and the first batches slow, so the rate alone
        is pessimistic). A job far past every estimate is given a tenth of its elapsed time more."""
        if self.done:
            return 0.0
        typical = self.typical()
        if not self.started:
            return typical if typical is not None else FIRST_GUESS_SECONDS
        elapsed = max((time.monotonic() if now is None else now) - self.started_at, 0.0)
        by_rate = None
        if self.progress > 0.0:
            by_rate = (self.reported_at - self.started_at) / self.progress - elapsed
        if typical is not None and typical > elapsed:
            # a slow cold run (the worker loading the model) must not hold back the next warm one
            return typical - elapsed if by_rate is None else max(min(typical - elapsed, by_rate), 0.0)
        if typical is not None and elapsed < 1.25 * typical:
            return OVERDUE_SECONDS  # a little past its usual time: it is about to end
        guess = by_rate if by_rate is not None else FIRST_GUESS_SECONDS - elapsed
        return max(guess, 0.1 * elapsed)

    def typical(self) -> float | None:
        """Seconds of the quickest of the last runs of this method in this server (None before any)."""
        runs = TYPICAL_SECONDS.get(self.label)
        return min(runs) if runs else None

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)


_JOBS_SIZE = 64
FIRST_GUESS_SECONDS = 2.0
OVERDUE_SECONDS = 0.25
DRAIN_SECONDS = 0.05  # how often the dispatcher takes the worker's progress and preview messages
TYPICAL_SECONDS: dict[str, deque] = {}  # label → seconds of its last few finished runs in this server
TYPICAL_PREVIEW_SECONDS: dict[str, deque] = {}  # label → seconds from start to preview of its last few runs
# A preview costs the full map its own region selection and a look and a picture more, taken from the
# worker's CPU (on a 2-core machine the exact XRAI came 0.4 s later on screen with one): worth it only
# when the full map is far away. A job gets one unless the last run of its method on the same model,
# image, target and options took less than this many seconds.
PREVIEW_UNLESS_WITHIN = 4.0
LAST_RUN_SECONDS = LRU(64)  # `_work_key(...)` → seconds the last job of those took (from the worker's start)


class _Dispatcher:
    """Pending jobs, the worker process and the thread that feeds it (one per server)."""

    def __init__(self) -> None:
        self.jobs: OrderedDict[tuple, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.pool: ProcessPoolExecutor | None = None
        self.queue: Any = None
        self.use_process = True
        self.ids = itertools.count(1)
        # job id → what takes that job's progress messages (either thread may read the worker's queue)
        self.routes: dict[int, Callable[[float, Any], None]] = {}
        # the last preparation `prepare_worker` had the worker do: asked once per visit of an image (the worker
        # answers at once when its kept passes are all still there, and lays in again what was evicted)
        self.prepared = LRU(1)
        self.preparing: tuple | None = None  # (key, args) of the preparation to do when no job waits
        self.waiting: Any = None  # the worker's Event: set while a job waits (a preparation then stops)
        self.preparing_now: tuple | None = None  # the key of the preparation the worker is doing
        self.thread = threading.Thread(target=self._loop, name="slow-maps", daemon=True)
        self.thread.start()  # last: the loop reads the fields above

    def stop_preparation(self) -> None:
        """A preparation running in the worker stops at its next batch (the passes laid in so far stay)."""
        if self.waiting is not None:
            self.waiting.set()

    def _next(self) -> Job | None:
        pending = [j for j in self.jobs.values() if not j.started and not j.done]
        return max(pending, key=lambda j: j.asked) if pending else None

    def _loop(self) -> None:
        while True:
            with self.wake:
                job = self._next()
                while job is None and self.preparing is None:
                    self.wake.wait()
                    job = self._next()
                if job is None:
                    key, args = self.preparing
                    self.preparing, self.preparing_now = None, key
                    if self.waiting is not None:
                        self.waiting.clear()  # it may have been set to stop an older preparation
                else:
                    job.started, job.started_at = True, time.monotonic()
                    if self._next() is None and self.waiting is not None:
                        self.waiting.clear()
            if job is None:
                self._prepare(key, args)
            else:
                self._run(job)

    def _prepare(self, key: tuple, args: tuple) -> None:
        """`worker.prepare` in the worker process (best effort: a failure leaves it to the map's own job)."""
        from dashboard import worker

        try:
            if self.process_pool().submit(worker.prepare, *args).result():
                self.prepared.put(key, True)  # (stopped early for a map: asked again on a later rerun)
        except Exception as error:  # noqa: BLE001 (the map's job reports any real problem)
            print(f"segexplain: could not prepare the image for the slow maps ({type(error).__name__}: {error})")
        finally:
            with self.lock:
                self.preparing_now = None

    def _run(self, job: Job) -> None:
        model, image, region, class_index, layer, method, target, options, model_key = job.args
        try:
            source = _MODEL_SOURCES.get(model_key)
            result = None
            if self.use_process and source is not None:
                result = self._in_process(job, source)
            if result is None:
                early = (lambda _m, e: job.report(job.progress, e)) if job.wants_preview else None
                result = slow_map(job.key, model, image, region, class_index, layer, method, target, options,
                                  progress=lambda f, *_a, **_k: job.report(f), preview=early)
            _keep(job.key, result)
            seconds = time.monotonic() - job.started_at
            TYPICAL_SECONDS.setdefault(job.label, deque(maxlen=3)).append(seconds)
            LAST_RUN_SECONDS.put(job.run_key, seconds)
            job.result, job.progress = result, 1.0
        except explainers.ExplainerError as error:
            job.error = str(error)
        except Exception as error:  # a crash in a worker must reach the page as a message, not vanish
            job.error = f"{label_of(method)} failed: {type(error).__name__}: {error}"
        finally:
            job.args = ()  # let the image and model go
            job.finished.set()

    def _in_process(self, job: Job, source: tuple) -> Any | None:
        """The job's Explanation from the worker process, or None when the process cannot be used."""
        from concurrent.futures.process import BrokenProcessPool

        from dashboard import worker

        _model, image, region, class_index, layer, method, target, options, _key = job.args
        try:
            return self.in_worker(job.report, worker.explain_one, source, np.asarray(image), np.asarray(region),
                                  int(class_index), layer, method, target, dict(options), job.wants_preview)
        except (BrokenProcessPool, OSError, EOFError, ImportError, RuntimeError, pickle.PicklingError) as error:
            self.use_process = False  # from now on in this thread (said once in the server log)
            print(f"segexplain: slow maps run in the page's process ({type(error).__name__}: {error})")
            self.pool = None
            return None

    def process_pool(self) -> ProcessPoolExecutor:
        """The one worker process (`dashboard.worker`), started on first use."""
        from dashboard import worker

        if self.pool is None:
            context = multiprocessing.get_context("spawn")
            self.queue = context.Queue()
            self.waiting = context.Event()
            pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=worker.init,
                                       initargs=(self.queue, self.waiting))
            with without_main_script():
                pool.submit(os.getpid)  # starts the process now, while no main script is named
            self.pool = pool
        return self.pool

    def in_worker(self, report: Callable[[float, Any], None], function: Callable[..., Any], *args: Any,
                  after_drain: Callable[[], None] | None = None) -> Any:
        """`function(job_id, *args)` in the worker process, its progress messages handed to `report` (in
        whichever thread drains them: keep it thread-safe) until it returns; its exception is raised here.
        `after_drain` is called in this thread after each look at the queue."""
        job_id = next(self.ids)
        self.routes[job_id] = report
        try:
            future = self.process_pool().submit(function, job_id, *args)
            while True:
                try:
                    return future.result(timeout=DRAIN_SECONDS)
                except FutureTimeout:
                    pass
                finally:
                    self._drain()
                    if after_drain is not None:
                        after_drain()
        finally:
            self.routes.pop(job_id, None)

    def _drain(self) -> None:
        """Hand every waiting progress message to its job's route (another job's messages are not lost)."""
        try:
            while True:
                sent_id, fraction, preview = self.queue.get_nowait()
                route = self.routes.get(sent_id)
                if route is not None:
                    route(fraction, preview)
        except (queue.Empty, OSError, EOFError, ValueError):
            return


@contextlib.contextmanager
def without_main_script() -> Iterator[None]:
    """Within the block, `__main__` names no script file, so a process spawned there imports none.

    Why: Streamlit installs the page's script as `sys.modules["__main__"]`, and a "spawn" child first
    runs the parent's main script (as `__mp_main__`): the worker ran the whole page, in bare mode,
    before its first job (the default model loaded, hundreds of warnings in the server log)."""
    page = sys.modules.get("__main__")
    placeholder = types.ModuleType("__main__")
    sys.modules["__main__"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("__main__") is placeholder:  # a script run that began meanwhile installed its own
            sys.modules["__main__"] = page


@st.cache_resource(show_spinner=False)
def _dispatcher() -> _Dispatcher:
    return _Dispatcher()


def label_of(method: str) -> str:
    return explainers.METHOD_LABELS.get(method, method)


def slow_job(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    layer: str | None,
    method: str,
    target: str,
    options: dict[str, Any],
    model_key: str | None = None,
    image_key: str | None = None,
) -> Job:
    """The job computing `method`'s map for `key`: the stored one, the running or queued one, or a new one.

    Calling it again with the same key (any later rerun) returns the same job: nothing restarts. A
    preparation running in the worker (`prepare_worker`) is stopped for it unless it prepares exactly
    this job's model, image (`image_key`), method, target and options: then the job waits for it,
    which pays over the regions that follow (see docs/DESIGN.md, "A preparation and its own map")."""
    dispatcher = _dispatcher()
    with dispatcher.lock:
        job = dispatcher.jobs.get(key)
        if job is not None and job.error is None:
            dispatcher.jobs.move_to_end(key)
            job.asked = time.monotonic()
            return job
        run_key = _work_key(model_key, image_key, method, target, options)
        last = LAST_RUN_SECONDS.get(run_key)
        job = Job(key=key, label=label_of(method), asked=time.monotonic(), run_key=run_key,
                  wants_preview=last is None or last >= PREVIEW_UNLESS_WITHIN)
        hit = stored(key)
        if hit is not None:
            job.result, job.progress, job.started = hit, 1.0, True
            job.finished.set()
        else:
            job.args = (model, np.array(image), np.array(region), int(class_index), layer, method, target,
                        dict(options), model_key)
        dispatcher.jobs[key] = job
        while len(dispatcher.jobs) > _JOBS_SIZE:
            oldest_key, oldest = next(iter(dispatcher.jobs.items()))
            if not oldest.done:
                break  # never drop a job that is still to run
            dispatcher.jobs.pop(oldest_key)
        if hit is None:
            if dispatcher.preparing_now != run_key:
                dispatcher.stop_preparation()  # a preparation for other maps stops at its next batch
            dispatcher.wake.notify()
    return job


def waits_for_preparation(job: Job) -> bool:
    """Whether `job`, not started yet, waits for the worker to finish preparing its own image (`slow_job`)."""
    dispatcher = _dispatcher()
    with dispatcher.lock:
        return not job.started and dispatcher.preparing_now == job.run_key


def _work_key(model_key: str | None, image_key: str | None, method: str, target: str,
              options: dict[str, Any]) -> tuple:
    """What a preparation serves and what a run's time says something about: model, image, method,
    target and options."""
    return (model_key, image_key, method, target, tuple(sorted(options.items())))


def prepare_worker(model_key: str, image_key: str, image: np.ndarray, method: str, target: str,
                   options: dict[str, Any]) -> None:
    """Let the worker do, while the user draws, what `method`'s maps will need of this image alone (XRAI:
    segments and forward passes, `worker.prepare`): asked once per model, image, target and options.

    It waits in the dispatcher's one slot for preparations (a newer one replaces it) and runs only
    when no map is waiting, so it never delays a map asked for already."""
    dispatcher = _dispatcher()
    source = _MODEL_SOURCES.get(model_key)
    if source is None or not dispatcher.use_process:
        return
    key = _work_key(model_key, image_key, method, target, options)
    with dispatcher.wake:
        queued = dispatcher.preparing[0] if dispatcher.preparing else None
        if key in dispatcher.prepared or key in (dispatcher.preparing_now, queued):
            return
        if dispatcher.preparing_now is not None:
            dispatcher.stop_preparation()  # for another model, image or options: the user has moved on
        dispatcher.preparing = (key, (source, np.array(image), method, target, dict(options)))
        dispatcher.wake.notify()


def warm_worker(model_key: str) -> None:
    """Start the worker process and load the model in it ahead of the first slow map (seconds saved)."""
    dispatcher = _dispatcher()
    source = _MODEL_SOURCES.get(model_key)
    if source is None or not dispatcher.use_process:
        return
    with dispatcher.lock:
        if getattr(dispatcher, "warmed", None) == source:
            return
        dispatcher.warmed = source
    from dashboard import worker

    try:
        dispatcher.process_pool().submit(worker.warm, source)
    except (OSError, RuntimeError):
        dispatcher.use_process = False


def faithfulness(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    heatmaps: dict[str, np.ndarray],
    steps: int,
    target: str,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Deletion/insertion curves, Average Drop and Increase in Confidence of every map plus the random
    baseline (`explainers.faithfulness.evaluate_explanations`), once per `key`.

    One library call for all maps (the blurred image and full-image score are shared); the random
    map comes last, from the library's own seeded baseline."""
    hit = stored(key)
    if hit is not None:
        return hit
    from explainers import faithfulness as faith

    results = faith.evaluate_explanations(model, image, region, class_index, heatmaps, steps=steps, target=target,
                                          random_baseline=True, progress=progress)
    _keep(key, results)
    return results


def faithfulness_ranking(results: dict[str, Any]) -> list[dict]:
    from explainers import faithfulness as faith

    return faith.ranking(results)


@st.cache_data(show_spinner=False, max_entries=32)
def class_overview(
    model_key: str,
    image_key: str,
    method: str,
    layer: str | None,
    target: str,
    options: tuple[tuple[str, Any], ...],
    _image: np.ndarray,
    _model: Any,
) -> dict[int, Any]:
    """`method`'s map for every predicted class, its whole predicted area as the region."""
    return dict(explainers.class_overview(_model, _image, method=method, layer=layer, target=target,
                                          options={method: dict(options)}))


def class_region(labels: np.ndarray, class_index: int) -> np.ndarray:
    return regions.from_class(labels, class_index)


def randomization(
    key: tuple,
    model: Any,
    image: np.ndarray,
    region: np.ndarray,
    class_index: int,
    layer: str | None,
    methods: tuple[str, ...],
    target: str,
    options: dict[str, Any],
    steps: int,
    progress: Callable[[float], None] | None = None,
    model_key: str | None = None,
) -> Any:
    """The randomisation check of `methods` (`explainers.randomization_check`, the Trust tab), once per `key`;
    kept in the slow-map store because it reports progress while it runs.

    It runs in the slow-map worker process when the model can be loaded there (`model_key` names its
    source), as the slow maps do: its copy of the network and its dozens of maps then take neither the
    page process's memory nor its TensorFlow threads. `progress` is still called in this (the page's)
    thread, from the fractions the worker sends. Without a worker it runs here."""
    hit = stored(key)
    if hit is not None:
        return hit
    result = _randomization_in_worker(model_key, image, region, class_index, layer, methods, target, options,
                                      steps, progress)
    if result is None:
        result = explainers.randomization_check(model, image, region, class_index, layer, methods, target=target,
                                                options=options, max_steps=steps, keep_maps=False,
                                                progress=progress)
    _keep(key, result)
    return result


def _randomization_in_worker(model_key: str | None, image: np.ndarray, region: np.ndarray, class_index: int,
                             layer: str | None, methods: tuple[str, ...], target: str, options: dict[str, Any],
                             steps: int, progress: Callable[[float], None] | None) -> Any | None:
    """The check's result from the worker process, or None when it cannot run there."""
    from concurrent.futures.process import BrokenProcessPool

    from dashboard import worker

    source = _MODEL_SOURCES.get(model_key) if model_key is not None else None
    dispatcher = _dispatcher()
    if source is None or not dispatcher.use_process:
        return None
    latest: list[float] = []  # filled by whichever thread drains the queue; shown from this thread only
    shown = [-1.0]

    def report(fraction: float, _preview: Any = None) -> None:
        latest.append(float(fraction))

    def show() -> None:
        if progress is not None and latest and latest[-1] != shown[0]:
            shown[0] = latest[-1]
            progress(shown[0])

    try:
        return dispatcher.in_worker(report, worker.randomize, source, np.asarray(image), np.asarray(region),
                                    int(class_index), layer, tuple(methods), target, dict(options), int(steps),
                                    after_drain=show)
    except (BrokenProcessPool, OSError, EOFError, ImportError, RuntimeError, pickle.PicklingError) as error:
        print(f"segexplain: the randomisation check runs in the page's process ({type(error).__name__}: {error})")
        return None
