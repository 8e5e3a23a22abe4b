"""The slow maps' scheduler: jobs, the one worker process and the thread that feeds it.

Slow maps (XRAI, Score-CAM, the Integrated-Gradients family) are background jobs: started once per key,
never restarted or cancelled by a rerun. A new stroke, class or layer only starts the jobs whose inputs
changed; the others keep running (or are already stored) and the page polls them. The jobs run one at a
time in a worker process (`dashboard.worker`), so they do not hold up TensorFlow's operation pool in the
page's process; the job asked for most recently goes first (the map on screen before the ones of earlier
strokes). Where a process cannot be used (an unknown model source, a broken pool), the job runs in the
dispatcher thread instead, through the `run_here` function the owner gives the dispatcher.

A job's work is one `MapRequest` (`dashboard.map_request`: typed, picklable, and the map's cache identity), a
preparation's one `PrepareRequest`: they are what the worker receives, so no field can be sent in the wrong place. Nothing here imports streamlit: `dashboard.compute` owns the one dispatcher
of a server (a cached resource) and the store of finished maps, and is the page's way in.
"""

from __future__ import annotations

import contextlib
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

import explainers
from dashboard.map_request import MapRequest, PrepareRequest
from explainers import registry
from explainers.caching import LRU

# How each cached model was loaded, so the worker process can load the same one.
MODEL_SOURCES: dict[str, tuple] = {}


@dataclass
class Job:
    """A slow map being computed: `progress` in [0, 1], maybe an early `preview` (an Explanation with
    `preview` set: XRAI at fewer steps), then `result` (an Explanation) or `error`."""

    key: tuple
    label: str
    request: MapRequest | None = field(default=None, repr=False)
    model: Any = field(default=None, repr=False)  # for `run_here` only: never sent to the worker
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
LAST_RUN_SECONDS = LRU(64)  # `work_key(...)` → seconds the last job of those took (from the worker's start)


RunHere = Callable[..., Any]  # (key, model, request, progress=..., preview=...) → the map, in this process


class Dispatcher:
    """Pending jobs, the worker process and the thread that feeds it (one per server).

    `run_here` computes a job in this process when the worker cannot; `keep(key, map)` stores a
    finished map and `stored(key)` finds one (the owner's store: it outlives the jobs)."""

    def __init__(self, run_here: RunHere, keep: Callable[[tuple, Any], None],
                 stored: Callable[[tuple], Any | None]) -> None:
        self.run_here, self.keep, self.stored = run_here, keep, stored
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
        self.preparing: PrepareRequest | None = None  # the preparation to do when no job waits
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
                    preparation = self.preparing
                    self.preparing, self.preparing_now = None, preparation.work_key()
                    if self.waiting is not None:
                        self.waiting.clear()  # it may have been set to stop an older preparation
                else:
                    job.started, job.started_at = True, time.monotonic()
                    if self._next() is None and self.waiting is not None:
                        self.waiting.clear()
            if job is None:
                self._prepare(preparation)
            else:
                self._run(job)

    def _prepare(self, request: PrepareRequest) -> None:
        """`worker.prepare` in the worker process (best effort: a failure leaves it to the map's own job)."""
        from dashboard import worker

        try:
            if self.process_pool().submit(worker.prepare, request).result():
                self.prepared.put(request.work_key(), True)  # (stopped early for a map: asked again on a later rerun)
        except Exception as error:  # noqa: BLE001 (the map's job reports any real problem)
            print(f"segexplain: could not prepare the image for the slow maps ({type(error).__name__}: {error})")
        finally:
            with self.lock:
                self.preparing_now = None

    def _run(self, job: Job) -> None:
        request = job.request
        try:
            source = MODEL_SOURCES.get(request.model_key)
            result = None
            if self.use_process and source is not None:
                result = self._in_process(job, source)
            if result is None:
                early = (lambda _m, e: job.report(job.progress, e)) if job.wants_preview else None
                result = self.run_here(job.key, job.model, request, progress=lambda f, *_a, **_k: job.report(f),
                                       preview=early)
            self.keep(job.key, result)
            seconds = time.monotonic() - job.started_at
            TYPICAL_SECONDS.setdefault(job.label, deque(maxlen=3)).append(seconds)
            LAST_RUN_SECONDS.put(job.run_key, seconds)
            job.result, job.progress = result, 1.0
        except explainers.ExplainerError as error:
            job.error = str(error)
        except Exception as error:  # a crash in a worker must reach the page as a message, not vanish
            job.error = f"{job.label} failed: {type(error).__name__}: {error}"
        finally:
            job.request = job.model = None  # let the image and model go
            job.finished.set()

    def _in_process(self, job: Job, source: tuple) -> Any | None:
        """The job's Explanation from the worker process, or None when the process cannot be used."""
        from dashboard import worker

        return self.try_in_worker(job.report, worker.explain_one, source, job.request, job.wants_preview)

    def try_in_worker(self, report: Callable[[float, Any], None], function: Callable[..., Any], *args: Any,
                      after_drain: Callable[[], None] | None = None) -> Any | None:
        """`in_worker`, or None when the worker process cannot be used: from then on the caller's work (slow
        maps, the randomisation check) runs in the page's process (said once in the server log)."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self.in_worker(report, function, *args, after_drain=after_drain)
        except (BrokenProcessPool, OSError, EOFError, ImportError, RuntimeError, pickle.PicklingError) as error:
            self.use_process = False
            print(f"segexplain: the worker process is not used from now on ({type(error).__name__}: {error})")
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


def submit(dispatcher: Dispatcher, key: tuple, request: MapRequest, model: Any = None) -> Job:
    """The job computing `request`'s map for `key`: the stored one, the running or queued one, or a new one.

    Calling it again with the same key (any later rerun) returns the same job: nothing restarts. A
    preparation running in the worker (`prepare_worker`) is stopped for it unless it prepares exactly
    this job's model, image (`image_key`), method, target and options: then the job waits for it,
    which pays over the regions that follow (see docs/DESIGN.md, "A preparation and its own map")."""
    with dispatcher.lock:
        job = dispatcher.jobs.get(key)
        if job is not None and job.error is None:
            dispatcher.jobs.move_to_end(key)
            job.asked = time.monotonic()
            return job
        run_key = request.work_key()
        last = LAST_RUN_SECONDS.get(run_key)
        job = Job(key=key, label=registry.label(request.method), asked=time.monotonic(), run_key=run_key,
                  wants_preview=last is None or last >= PREVIEW_UNLESS_WITHIN)
        hit = dispatcher.stored(key)
        if hit is not None:
            job.result, job.progress, job.started = hit, 1.0, True
            job.finished.set()
        else:
            job.request, job.model = request, model
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


def waits_for_preparation(dispatcher: Dispatcher, job: Job) -> bool:
    """Whether `job`, not started yet, waits for the worker to finish preparing its own image (`submit`)."""
    with dispatcher.lock:
        return not job.started and dispatcher.preparing_now == job.run_key


def prepare(dispatcher: Dispatcher, model_key: str, image_key: str, image: np.ndarray, method: str, target: str,
            options: dict[str, Any]) -> None:
    """Let the worker do, while the user draws, what `method`'s maps will need of this image alone (XRAI:
    segments and forward passes, `worker.prepare`): asked once per model, image, target and options.

    It waits in the dispatcher's one slot for preparations (a newer one replaces it) and runs only
    when no map is waiting, so it never delays a map asked for already."""
    source = MODEL_SOURCES.get(model_key)
    if source is None or not dispatcher.use_process:
        return
    request = PrepareRequest(source=source, image=np.array(image), method=method, target=target,
                             options=dict(options), model_key=model_key, image_key=image_key)
    key = request.work_key()
    with dispatcher.wake:
        queued = dispatcher.preparing.work_key() if dispatcher.preparing else None
        if key in dispatcher.prepared or key in (dispatcher.preparing_now, queued):
            return
        if dispatcher.preparing_now is not None:
            dispatcher.stop_preparation()  # for another model, image or options: the user has moved on
        dispatcher.preparing = request
        dispatcher.wake.notify()


def warm(dispatcher: Dispatcher, model_key: str) -> None:
    """Start the worker process and load the model in it ahead of the first slow map (seconds saved)."""
    source = MODEL_SOURCES.get(model_key)
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
