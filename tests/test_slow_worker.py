"""The slow-map worker process yields the CPU to the page: its priority is lower than the server's."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from dashboard import map_request, scheduler, worker


@pytest.fixture(autouse=True)
def _no_page_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests start worker processes themselves: like the dispatcher (`scheduler.without_main_script`),
    with no main script named, so a page script an earlier AppTest left as `__main__` is not run in them."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


def _preparation(image, options: dict) -> map_request.PrepareRequest:
    return map_request.PrepareRequest(source=("default",), image=image, method="xrai", target="logits",
                                      options=options)


def _kept_counts() -> tuple[int, int]:
    """(hits, misses) of the worker process's kept forward passes (`explainers.forward_cache`), read in that
    process: pickled by reference, so the worker imports this test module to run it."""
    from explainers import forward_cache

    kept = forward_cache.active()
    return (kept.hits, kept.misses) if kept is not None else (0, 0)


def test_the_worker_process_runs_at_a_lower_priority_than_the_page() -> None:
    context = multiprocessing.get_context("spawn")  # as scheduler.Dispatcher starts it
    queue = context.Queue()
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=worker.init,
                             initargs=(queue,)) as pool:
        niceness = pool.submit(os.nice, 0).result(timeout=120)
    here = os.nice(0)
    assert niceness == min(19, here + worker.NICENESS) > here


def test_the_worker_sends_xrais_preview_before_its_map() -> None:
    """The preview crosses the process boundary as a queue message; the map that follows is the full one."""
    import numpy as np

    from models.scenes import load_sample, sample_names

    image, _ = load_sample(sample_names()[0])
    region = np.zeros(image.shape[:2], bool)
    region[40:72, 45:100] = True
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=worker.init,
                             initargs=(queue,)) as pool:
        final = pool.submit(worker.explain_one, 7, ("default",),
                            _request(image, region, {"steps": 16, "batch_size": 8})).result(timeout=300)
        messages = []  # read before the pool shuts down: the worker cannot exit with its messages unread
        while len(messages) < 100:
            try:
                messages.append(queue.get(timeout=5))
            except Exception:  # the queue is empty
                break
    assert messages and all(job_id == 7 for job_id, _f, _p in messages)
    previews = [p for _j, _f, p in messages if p is not None]
    assert len(previews) == 1 and previews[0].preview and previews[0].options.steps == 4
    fractions = [f for _j, f, _p in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert not final.preview and final.options.steps == 16


def test_xrai_after_the_worker_prepared_the_image_reuses_its_forward_passes() -> None:
    """`worker.prepare` (asked by the page while the user draws) lays in every forward pass the region's
    XRAI job then asks for: the job's gradient batches all reuse one, and none is computed afresh."""
    image, region = _scene(1, (30, 90, 20, 70))
    options = {"steps": 16, "batch_size": 8}
    with _pool() as (pool, queue):
        assert pool.submit(worker.prepare, _preparation(image, options)).result(timeout=300)
        hits, laid_in = pool.submit(_kept_counts).result(timeout=60)
        final = pool.submit(worker.explain_one, 3, ("default",), _request(image, region, options)).result(timeout=300)
        after = pool.submit(_kept_counts).result(timeout=60)
        _drain(queue)  # the worker cannot exit with its progress messages unread
    assert hits == 0 and laid_in > 0
    assert after == (laid_in, laid_in), "the job computed a forward pass the preparation should have laid in"
    assert not final.preview and final.options.steps == 16


def test_a_job_without_preview_reuses_the_same_passes_and_a_second_preparation_lays_in_nothing() -> None:
    """The page asks for no preview once XRAI is quick on an image: that job finds the very batches the
    preparation kept (a preview or none asks for the same ones), and preparing the same image again (the
    page asks once per visit of an image) computes no forward pass while they are all still kept."""
    image, region = _scene(2, (50, 100, 30, 80))
    options = {"steps": 16, "batch_size": 8}
    with _pool() as (pool, queue):
        assert pool.submit(worker.prepare, _preparation(image, options)).result(timeout=300)
        _hits, laid_in = pool.submit(_kept_counts).result(timeout=60)
        assert pool.submit(worker.prepare, _preparation(image, options)).result(timeout=300)
        again = pool.submit(_kept_counts).result(timeout=60)
        final = pool.submit(worker.explain_one, 4, ("default",), _request(image, region, options),
                            False).result(timeout=300)
        after = pool.submit(_kept_counts).result(timeout=60)
        messages = _drain(queue)
    assert again == (0, laid_in), "preparing a prepared image again computed forward passes"
    assert after == (laid_in, laid_in)
    assert not final.preview and not [p for _j, _f, p in messages if p is not None]


def _scene(index: int, box: tuple[int, int, int, int]):
    """A sample scene and a box region (top, bottom, left, right) on it."""
    import numpy as np

    from models.scenes import load_sample, sample_names

    image, _ = load_sample(sample_names()[index])
    region = np.zeros(image.shape[:2], bool)
    top, bottom, left, right = box
    region[top:bottom, left:right] = True
    return image, region


def _request(image, region, options) -> scheduler.MapRequest:
    """XRAI for class 1 on the logits, as the page's jobs send it."""
    return scheduler.MapRequest(method="xrai", image=image, region=region, class_index=1, layer=None,
                                target="logits", options=options)


@contextlib.contextmanager
def _pool():
    """One worker process started as the dispatcher starts it, and its progress queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=worker.init,
                             initargs=(queue,)) as pool:
        yield pool, queue


def _drain(queue) -> list:
    messages = []
    while True:
        try:
            messages.append(queue.get(timeout=2))
        except Exception:  # the queue is empty
            return messages


def test_the_worker_process_does_not_run_the_page_script(tmp_path, monkeypatch) -> None:
    """Streamlit installs the page's script as `__main__`; a spawned child would run it first (the whole
    page, in bare mode). The dispatcher starts its worker with no main script named."""
    import sys
    import types

    from dashboard import compute

    mark = tmp_path / "ran.txt"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(mark)!r}, 'a').write(__name__)\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)  # as during a Streamlit script run
    dispatcher = scheduler.Dispatcher(run_here=compute._run_here, keep=compute._keep, stored=compute.stored)
    try:
        assert dispatcher.process_pool().submit(os.getpid).result(timeout=120) != os.getpid()
    finally:
        dispatcher.pool.shutdown()
    assert not mark.exists(), "the worker process ran the page's script"
    assert sys.modules["__main__"] is page
