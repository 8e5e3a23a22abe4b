"""The Ray engine of the batch run: the same per-image work as the local engine, on Ray actors.

Why actors: a Keras model takes seconds to load and its compiled gradient functions are built on the
first call, so each actor loads the model once (from bytes put in Ray's object store, so a remote
cluster needs no shared disk) and then explains batches of images. The driver reads the images,
keeps at most two batches in flight per actor, and receives each image's outputs as bytes; it alone
writes files (atomically, see `explainers.batch.store`), so a killed run loses only what was in flight
and a rerun redoes exactly that.

`address=None` starts a private local Ray (`workers` CPUs, no dashboard) and shuts it down at the
end; `"auto"` or `"ray://HOST:PORT"` joins an existing cluster, whose nodes need this package and
TensorFlow installed (or reachable through `py_modules`, which this module sets for remote clusters).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

PACKAGE_HINT = "pip install 'ray[data]'  (or: pip install 'segexplain[ray]')"


def require_ray():
    """The `ray` module, or a usage error naming the package to install."""
    try:
        import ray
    except ImportError:
        from explainers.batch import UsageError

        raise UsageError(f"--engine ray needs the Ray package, which is not installed: {PACKAGE_HINT}.") from None
    return ray


class RayWorker:
    """Actor body: one model per actor, loaded from bytes through the batch module's loader."""

    def __init__(self, model_bytes: bytes, options: dict[str, Any], suffix: str = ".keras") -> None:
        from explainers import batch

        self._folder = tempfile.mkdtemp(prefix="segexplain-ray-model-")
        path = Path(self._folder) / f"model{suffix}"
        path.write_bytes(model_bytes)
        self.worker = batch.Worker(path, options)

    def process(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        from explainers import batch

        return [batch.process_item(self.worker, item) for item in items]

    def ready(self) -> bool:
        return True


def _init(ray, address: str | None, workers: int | None, temp_dir: str | None) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    package_root = str(Path(__file__).resolve().parents[1])
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    if address is None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 _temp_dir=temp_dir or os.environ.get("SEGEXPLAIN_RAY_TMP"), runtime_env={"env_vars": env},
                 configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"env_vars": env, "py_modules": [str(Path(__file__).resolve().parent)]})
    return True


def ray_engine(model_path: Path, options: dict[str, Any], items: Sequence[dict[str, Any]], *,
               address: str | None = None, workers: int | None = None, batch_size: int = 4,
               temp_dir: str | None = None, **_) -> Iterator[dict[str, Any]]:
    """Yield each item's result (as `batch.process_item` makes it) as soon as its batch is done."""
    from explainers import batch

    if not items:
        return
    ray = require_ray()
    started = _init(ray, address, workers, temp_dir)
    actors = []
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = max(1, min(workers, -(-len(items) // batch_size)))
        model_ref = ray.put(Path(model_path).read_bytes())
        actor_class = ray.remote(num_cpus=1)(RayWorker)
        suffix = Path(model_path).suffix.lower()
        actors = [actor_class.remote(model_ref, options, suffix) for _ in range(workers)]
        batches = [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
        next_batch, in_flight = 0, {}
        load = dict.fromkeys(range(len(actors)), 0)
        while next_batch < len(batches) or in_flight:
            for index, actor in enumerate(actors):
                while load[index] < 2 and next_batch < len(batches):
                    loaded = [batch.read_item(item) for item in batches[next_batch]]
                    in_flight[actor.process.remote(loaded)] = index
                    load[index] += 1
                    next_batch += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                load[in_flight.pop(ref)] -= 1
                yield from ray.get(ref)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
