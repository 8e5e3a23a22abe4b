"""The Ray engine of the batch run: the same per-image work as the local engine, on Ray actors.

Why actors: a Keras model takes seconds to load and its compiled gradient functions are built on the
first call, so each actor loads the model once (from bytes put in Ray's object store, so a remote
cluster needs no shared disk) and then explains batches of images. The driver reads the images,
keeps at most two batches in flight per actor, and receives each image's outputs as bytes; it alone
writes files (atomically, see `explainers.batch.store`), so a killed run loses only what was in flight
and a rerun redoes exactly that.

A lost worker costs nothing but time: actors restart (`MAX_RESTARTS`) and Ray retries the batch that
was running on the restarted actor (`max_task_retries`); a batch that still fails is sent to another
actor, up to `ATTEMPTS` times in all. A lost cluster (the head gone, the connection cut, no actor
left) ends the engine with `batch_work.EngineLost`, one sentence; the batch CLI keeps what was stored and a
rerun resumes.

`address=None` starts a private local Ray (`workers` CPUs, no dashboard) and shuts it down at the
end; `"auto"` or `"ray://HOST:PORT"` joins an existing cluster, whose nodes need this package and
TensorFlow installed (or reachable through `py_modules`, which this module sets for remote clusters).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

PACKAGE_HINT = "pip install 'ray[data]'  (or: pip install 'segexplain[ray]')"
MAX_RESTARTS = 3  # restarts of one actor (a killed worker process) before its batches go elsewhere
ATTEMPTS = 3  # tries of one batch, across actors
PIN_ENV = "SEGEXPLAIN_PIN_ONE_CORE"  # "1": each actor on one core, TensorFlow on one thread (benchmarks)


def require_ray():
    """The `ray` module, or a usage error naming the package to install."""
    try:
        import ray
    except ImportError:
        from explainers.batch_work import UsageError

        raise UsageError(f"--engine ray needs the Ray package, which is not installed: {PACKAGE_HINT}.") from None
    return ray


class RayWorker:
    """Actor body: one model per actor, loaded from bytes through the batch run's loader (`batch_work`)."""

    def __init__(self, model_bytes: bytes, options: dict[str, Any], suffix: str = ".keras",
                 core: int | None = None) -> None:
        from explainers import batch_work

        if os.environ.get(PIN_ENV) == "1":
            pin_to_one_core(core)

        self._folder = tempfile.mkdtemp(prefix="segexplain-ray-model-")
        path = Path(self._folder) / f"model{suffix}"
        path.write_bytes(model_bytes)
        self.worker = batch_work.Worker(path, options)

    def process(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        from explainers import batch_work

        return [batch_work.process_item(self.worker, item) for item in items]

    def ready(self) -> bool:
        return True


def pin_to_one_core(core: int | None = None) -> int:
    """Run this process on one core (`os.sched_setaffinity`) and TensorFlow on one thread, so that a
    scaling figure compares one core with n cores. `core` defaults to a core chosen by pid. Returns it."""
    import tensorflow as tf

    cores = sorted(os.sched_getaffinity(0))
    core = cores[(os.getpid() if core is None else core) % len(cores)]
    os.sched_setaffinity(0, {core})
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started its pools: the affinity alone still holds it to one core
        pass
    return core


def _check_reachable(address: str) -> None:
    """A `HOST:PORT` (or `ray://HOST:PORT`) address nobody listens on: a usage error at once (Ray itself
    retries for minutes)."""
    import socket

    from explainers.batch_work import UsageError

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as error:
        raise UsageError(f"--address {address!r}: no Ray cluster answers there ({error.strerror or type(error).__name__}); "
                         "start it with `ray start --head` or check the address.") from None


def death_cause(error: Exception) -> str:
    """Ray's reason for an actor's death in a few words: its last `SomethingError: ...` line, shortened.

    Ray's message runs to pages (tracebacks, actor ids); the user needs the reason, e.g. that the worker
    ran out of memory or could not import a package."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Killed)\b", line)]
    cause = (named or lines or [type(error).__name__])[-1]
    if getattr(error, "actor_init_failed", False):
        cause = f"the worker could not start: {cause}"
    return cause if len(cause) <= 200 else cause[:197] + "..."


def _init(ray, address: str | None, workers: int | None, temp_dir: str | None) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    package_root = str(Path(__file__).resolve().parents[1])
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    for name in (PIN_ENV, "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if address is None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 _temp_dir=temp_dir or os.environ.get("SEGEXPLAIN_RAY_TMP"), runtime_env={"env_vars": env},
                 configure_logging=False)
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False,
                     runtime_env={"env_vars": env, "py_modules": [str(Path(__file__).resolve().parent)]})
        except (ConnectionError, RuntimeError, ValueError) as error:
            from explainers.batch_work import UsageError

            raise UsageError(f"--address {address!r}: no Ray cluster could be joined there "
                             f"({type(error).__name__}); start it with `ray start --head` or check the address.") from None
    return True


def ray_engine(model_path: Path, options: dict[str, Any], items: Sequence[dict[str, Any]], *,
               address: str | None = None, workers: int | None = None, batch_size: int = 4,
               temp_dir: str | None = None, **_) -> Iterator[dict[str, Any]]:
    """Yield each item's result (as `batch_work.process_item` makes it) as soon as its batch is done."""
    from explainers import batch_work

    if not items:
        return
    ray = require_ray()
    from explainers import registry

    # an actor knows the shipped methods only: it imports the modules that registered the others here, by name
    options = {**options, "method_modules": registry.modules_for(options.get("methods", ()))}
    started = _init(ray, address, workers, temp_dir)
    where = f"the Ray cluster at {address}" if address else "the local Ray"
    actors = []
    try:
        try:
            if workers is None:
                workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            workers = max(1, min(workers, -(-len(items) // batch_size)))
            model_ref = ray.put(Path(model_path).read_bytes())
        except ray.exceptions.RayError as error:
            raise batch_work.EngineLost(f"{where} was lost ({type(error).__name__})") from None
        actor_class = ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(RayWorker)
        suffix = Path(model_path).suffix.lower()
        actors = [actor_class.remote(model_ref, options, suffix, index) for index in range(workers)]
        batches = [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
        queue = [(index, 1) for index in range(len(batches))]  # (batch, attempt)
        in_flight: dict = {}
        load = dict.fromkeys(range(len(actors)), 0)
        dead: set[int] = set()
        while queue or in_flight:
            for index, actor in enumerate(actors):
                while index not in dead and load[index] < 2 and queue:
                    number, attempt = queue.pop(0)
                    loaded = [batch_work.read_item(item) for item in batches[number]]
                    in_flight[actor.process.remote(loaded)] = (index, number, attempt)
                    load[index] += 1
            if not in_flight:
                raise batch_work.EngineLost(f"{where} has no worker left (every actor died {MAX_RESTARTS + 1} times)")
            try:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
            except ray.exceptions.RayError as error:
                raise batch_work.EngineLost(f"{where} was lost ({type(error).__name__})") from None
            for ref in ready:
                index, number, attempt = in_flight.pop(ref)
                load[index] -= 1
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    # the actor died more often than it may restart: its batch goes to another actor
                    dead.add(index)
                    if attempt >= ATTEMPTS or len(dead) == len(actors):
                        raise batch_work.EngineLost(f"{where} kept losing its workers (a batch failed {attempt} times; "
                                               f"{death_cause(error)})") from None
                    queue.insert(0, (number, attempt + 1))
                    continue
                except ray.exceptions.RayTaskError as error:  # our code failed on the worker: that batch only
                    cause = type(getattr(error, "cause", None) or error).__name__
                    results = [{"record": {"image": item["image"], "output": item["output"],
                                           "region": options["region_spec"], "rows": [],
                                           "status": f"error: the worker failed on this image ({cause})"},
                                "npz": None, "png": None} for item in batches[number]]
                except ray.exceptions.RayError as error:
                    raise batch_work.EngineLost(f"{where} was lost ({type(error).__name__})") from None
                yield from results
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):  # the cluster may be gone already
                ray.kill(actor)
        if started:
            ray.shutdown()
