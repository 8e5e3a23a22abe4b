"""When a running slow map's cell looks at its job again (`scheduler.Job.remaining`, `wake.next_look`).

The cell no longer polls on a fixed beat: it looks once the job should be done. These tests pin the
estimate to its rules: the quickest recent run of the same method first, the job's own rate past it,
and never a rush of looks for a job that is late."""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest

from dashboard import components, scheduler, wake


@pytest.fixture(autouse=True)
def _no_history(monkeypatch):
    monkeypatch.setattr(scheduler, "TYPICAL_SECONDS", {})


def _job(label: str = "XRAI", started_at: float = 100.0, progress: float = 0.0, reported_at: float = 0.0):
    job = scheduler.Job(key=("k",), label=label, started=True, started_at=started_at)
    job.progress, job.reported_at = progress, reported_at
    return job


def test_before_any_run_of_the_method_the_rate_so_far_says() -> None:
    job = _job(progress=0.25, reported_at=101.0)  # a quarter done one second in
    assert job.typical() is None
    assert job.remaining(now=101.5) == pytest.approx(4.0 - 1.5)
    assert _job().remaining(now=100.5) == pytest.approx(scheduler.FIRST_GUESS_SECONDS - 0.5)


def test_the_quickest_of_the_last_three_runs_is_the_guess() -> None:
    scheduler.TYPICAL_SECONDS["XRAI"] = deque([12.0, 3.5, 3.8], maxlen=3)  # the first one loaded the model
    job = _job(progress=0.2, reported_at=101.5)  # its slow first batch would predict 7.5 s
    assert job.typical() == 3.5
    assert job.remaining(now=101.0) == pytest.approx(2.5)
    queued = scheduler.Job(key=("q",), label="XRAI")
    assert queued.remaining() == 3.5


def test_a_job_not_yet_taken_expects_its_preview_the_usual_time_from_now(monkeypatch) -> None:
    """The cell is often drawn a few milliseconds before the dispatcher takes the job: its look must come at
    the preview's usual time, not at the end of the whole run (which showed the preview seconds late)."""
    monkeypatch.setattr(scheduler, "TYPICAL_PREVIEW_SECONDS", {"XRAI": deque([0.9, 0.6], maxlen=3)})
    scheduler.TYPICAL_SECONDS["XRAI"] = deque([3.4], maxlen=3)
    queued = scheduler.Job(key=("q",), label="XRAI")
    assert queued.until_preview() == 0.6 < queued.remaining()
    running = _job()
    assert running.until_preview(now=100.25) == pytest.approx(0.35)
    running.preview = object()
    assert running.until_preview(now=100.25) is None
    assert scheduler.Job(key=("n",), label="Score-CAM").until_preview() is None  # no preview seen for it


def test_a_cold_first_run_does_not_hold_back_a_warm_job_that_reports_a_quicker_rate() -> None:
    scheduler.TYPICAL_SECONDS["XRAI"] = deque([12.0])  # the only run so far loaded the model first
    job = _job(progress=0.8, reported_at=103.2)  # 4 s in all at its rate
    assert job.remaining(now=103.5) == pytest.approx(0.5)


def test_a_job_a_little_late_is_looked_at_again_soon_and_a_very_late_one_less_often() -> None:
    scheduler.TYPICAL_SECONDS["XRAI"] = deque([4.0])
    job = _job(progress=0.6, reported_at=102.0)  # its rate says 3.33 s in all, but it is not done at 4.2 s
    assert job.remaining(now=104.2) == scheduler.OVERDUE_SECONDS
    late = _job(progress=0.9, reported_at=119.0)  # 20 s in, five times its usual time
    assert late.remaining(now=120.0) == pytest.approx(0.1 * 20.0)  # its rate says 1.1 s: the floor wins


def test_a_finished_job_has_nothing_remaining() -> None:
    job = _job(progress=1.0, reported_at=103.0)
    job.result = object()
    assert job.remaining(now=200.0) == 0.0


def test_progress_reports_are_clamped_and_timed() -> None:
    job = _job()
    job.report(1.7)
    assert job.progress == 1.0 and job.reported_at > 0.0
    job.report(-1.0)
    assert job.progress == 0.0


@pytest.mark.parametrize(("remaining", "look"), [
    (2.0, 2.0 + wake.MARGIN),
    (0.0, wake.SOONEST),  # never faster than a rerun
    (60.0, wake.LATEST),  # a bad guess cannot stall the cell for long
])
def test_the_next_look_is_about_the_expected_end_within_bounds(remaining, look) -> None:
    assert wake.next_look(remaining) == pytest.approx(look)


def test_the_wake_frontend_triggers_once_per_render_and_clears_its_timer() -> None:
    """The JavaScript keeps one timer per cell (a rerun replaces it) and sends the trigger Python registers."""
    source = (components.FRONTEND / "wake.js").read_text(encoding="utf-8")
    assert 'setTriggerValue("tick"' in source
    assert "clearTimeout(timers.get(parentElement))" in source
    assert "setInterval" not in source


def test_a_waiting_look_ends_when_the_job_does(monkeypatch) -> None:

    monkeypatch.setattr(wake, "_rerun_pending", lambda: (lambda: False))
    done = threading.Event()
    threading.Timer(0.1, done.set).start()
    started = time.monotonic()
    assert wake.wait_for(done.wait, 2.0)
    assert 0.09 <= time.monotonic() - started < 0.5


def test_a_waiting_look_gives_way_to_a_rerun_the_user_asked_for(monkeypatch) -> None:
    asked = [False]
    monkeypatch.setattr(wake, "_rerun_pending", lambda: (lambda: asked[0]))

    threading.Timer(0.1, lambda: asked.__setitem__(0, True)).start()
    started = time.monotonic()
    assert not wake.wait_for(threading.Event().wait, 2.0)
    assert time.monotonic() - started < 0.1 + 5 * wake.WAIT_STEP


def test_a_look_does_not_wait_where_streamlit_cannot_say_whether_a_rerun_is_asked_for(monkeypatch) -> None:

    monkeypatch.setattr(wake, "_rerun_pending", lambda: None)
    started = time.monotonic()
    assert not wake.wait_for(threading.Event().wait, 2.0)
    assert time.monotonic() - started < 0.05


def test_outside_a_script_run_streamlit_cannot_say_whether_a_rerun_is_asked_for() -> None:
    assert wake._rerun_pending() is None
