"""The slow-map worker process yields the CPU to the page: its priority is lower than the server's."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from dashboard import worker


def test_the_worker_process_runs_at_a_lower_priority_than_the_page() -> None:
    context = multiprocessing.get_context("spawn")  # as compute._Dispatcher starts it
    queue = context.Queue()
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=worker.init,
                             initargs=(queue,)) as pool:
        niceness = pool.submit(os.nice, 0).result(timeout=120)
    here = os.nice(0)
    assert niceness == min(19, here + worker.NICENESS) > here
