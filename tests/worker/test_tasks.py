"""TaskPool, the one background-work abstraction, with a real Qt event loop and real threads (no mocks).

Tasks that must block wait on a ``threading.Event`` with a timeout, so a failing test fails instead of
hanging.
"""

from __future__ import annotations

import threading
import time

import pytest

from studio.engine.errors import Cancelled
from studio.worker.tasks import TaskPool

WAIT_MS = 5000
WAIT_S = WAIT_MS / 1000


@pytest.fixture
def pool(qapp):
    pool = TaskPool("test-pool", threads=1)
    yield pool
    pool.shutdown(WAIT_MS)


class Recorder:
    """Callbacks that note what they got and on which thread."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.threads: set[int] = set()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def callback(*args):
            self.threads.add(threading.get_ident())
            self.events.append((name, *args))

        return callback

    def names(self) -> list[str]:
        return [event[0] for event in self.events]


def finished(recorder: Recorder):
    return lambda: bool(recorder.events) and recorder.events[-1][0] in ("result", "error", "cancelled")


def submit(pool: TaskPool, fn, *args, recorder: Recorder, **kwargs):
    return pool.submit(
        fn, *args, on_result=recorder.result, on_error=recorder.error, on_cancelled=recorder.cancelled, **kwargs
    )


# --------------------------------------------------------------------------------- results, in order


def test_the_result_arrives_in_the_gui_thread_after_every_report(qtbot, pool):
    seen = Recorder()
    ran_on: list[int] = []

    def work(context, count):
        ran_on.append(threading.get_ident())
        for i in range(count):
            context.report(seen.report, i)
        return "done"

    task = submit(pool, work, 50, recorder=seen)
    assert task is not None and pool.pending() == 1
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.events == [("report", i) for i in range(50)] + [("result", "done")]
    assert seen.threads == {threading.get_ident()}  # every callback in the GUI thread
    assert ran_on and ran_on[0] != threading.get_ident()  # the work itself off it
    assert task.done() and pool.pending() == 0


def test_an_error_goes_to_on_error_in_the_gui_thread(qtbot, pool):
    seen = Recorder()

    def work(context):
        context.report(seen.report, "before")
        raise ValueError("bad input")

    submit(pool, work, recorder=seen)
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.names() == ["report", "error"]
    assert isinstance(seen.events[1][1], ValueError) and str(seen.events[1][1]) == "bad input"
    assert seen.threads == {threading.get_ident()}
    assert pool.pending() == 0


def test_an_error_without_on_error_is_logged_and_the_pool_goes_on(qtbot, pool, caplog):
    def fail(_context):
        raise RuntimeError("nobody listens")

    pool.submit(fail)
    results: list[int] = []
    pool.submit(lambda _context: 7, on_result=results.append)
    qtbot.waitUntil(lambda: results == [7], timeout=WAIT_MS)
    assert "nobody listens" in caplog.text
    assert pool.pending() == 0


def test_system_exit_in_a_task_is_its_error_not_a_lost_task(qtbot, pool):
    seen = Recorder()

    def work(_context):
        raise SystemExit(3)

    submit(pool, work, recorder=seen)
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.names() == ["error"] and isinstance(seen.events[0][1], SystemExit)
    assert pool.pending() == 0


def test_a_task_without_callbacks_finishes_quietly(qtbot, pool):
    pool.submit(lambda _context: 1)
    qtbot.waitUntil(lambda: pool.pending() == 0, timeout=WAIT_MS)


def test_a_faulty_receiver_does_not_stop_the_next_reports(qtbot, pool, caplog):
    seen = Recorder()

    def broken(_value):
        raise KeyError("receiver bug")

    def work(context):
        context.report(broken, 1)
        context.report(seen.report, 2)
        return 3

    submit(pool, work, recorder=seen)
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.events == [("report", 2), ("result", 3)]
    assert "receiver bug" in caplog.text


# ------------------------------------------------------------------------------------------- cancel


def test_a_running_task_stops_at_its_next_check(qtbot, pool):
    seen = Recorder()
    started = threading.Event()

    def work(context):
        started.set()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            context.check()
            time.sleep(0.005)
        return "ran to the end"

    task = submit(pool, work, recorder=seen)
    assert started.wait(WAIT_S)
    task.cancel()
    assert task.cancelled
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.events == [("cancelled",)]


def test_a_queued_task_cancelled_never_runs(qtbot, pool):
    first, second = Recorder(), Recorder()
    release = threading.Event()
    ran: list[str] = []

    def blocker(_context):
        release.wait(WAIT_S)
        return "first"

    def never(_context):
        ran.append("second")

    submit(pool, blocker, recorder=first)
    queued = submit(pool, never, recorder=second)
    queued.cancel()  # while it waits behind the first
    release.set()
    qtbot.waitUntil(lambda: finished(first)() and finished(second)(), timeout=WAIT_MS)
    assert first.events == [("result", "first")]
    assert second.events == [("cancelled",)] and ran == []


def test_a_cancel_event_given_by_the_caller_is_the_tasks_flag(qtbot, pool):
    seen = Recorder()
    flag = threading.Event()
    flag.set()  # cancelled before it was even submitted
    task = submit(pool, lambda _context: "ran", recorder=seen, cancel=flag)
    assert task.cancel_event is flag and task.cancelled
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.events == [("cancelled",)]


def test_cancelled_raised_by_the_work_is_a_cancel_not_an_error(qtbot, pool):
    seen = Recorder()

    def work(_context):
        raise Cancelled("the download stopped")

    submit(pool, work, recorder=seen)
    qtbot.waitUntil(finished(seen), timeout=WAIT_MS)
    assert seen.events == [("cancelled",)]


# ------------------------------------------------------------------------------------------ threads


def test_a_one_thread_pool_runs_everything_on_one_thread_in_order(qtbot, pool):
    threads: list[int] = []
    order: list[int] = []
    for i in range(20):
        pool.submit(lambda _context, i=i: (threads.append(threading.get_ident()), order.append(i)))
    qtbot.waitUntil(lambda: pool.pending() == 0, timeout=WAIT_MS)
    assert order == list(range(20))
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    pool.submit(lambda _context: threads.append(threading.get_ident()))  # later, after an idle spell
    qtbot.waitUntil(lambda: pool.pending() == 0, timeout=WAIT_MS)
    assert set(threads) == {threads[0]}


def test_a_pool_with_several_threads_runs_tasks_side_by_side(qtbot, qapp):
    pool = TaskPool("test-wide", threads=2)
    barrier = threading.Barrier(2, timeout=WAIT_S)  # each waits for the other: only if both run at once
    results: list[int] = []
    for _ in range(2):
        pool.submit(lambda _context: barrier.wait(), on_result=results.append)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=WAIT_MS)
    assert sorted(results) == [0, 1]
    assert pool.shutdown(WAIT_MS)


# ----------------------------------------------------------------------------------------- shutdown


def test_shutdown_cancels_waits_and_delivers_the_last_reports(qapp):
    pool = TaskPool("test-shutdown", threads=1)
    running, queued = Recorder(), Recorder()
    started = threading.Event()
    ran: list[str] = []

    def work(context):
        started.set()
        while not context.cancelled:
            time.sleep(0.005)
        context.report(running.report, "last words")
        context.check()
        return "never"

    submit(pool, work, recorder=running)
    submit(pool, lambda _context: ran.append("queued"), recorder=queued)
    assert started.wait(WAIT_S)
    begun = time.monotonic()
    assert pool.shutdown(WAIT_MS) is True
    assert time.monotonic() - begun < WAIT_S / 2  # the dropped task is not waited for until the timeout
    # Delivered by shutdown itself, before it returned: no event loop ran in between.
    assert running.events == [("report", "last words"), ("cancelled",)]
    assert queued.events == [("cancelled",)] and ran == []
    assert running.threads | queued.threads == {threading.get_ident()}
    assert pool.pending() == 0 and pool.closed


def test_shutdown_returns_false_when_a_task_does_not_stop_in_time(qtbot, qapp):
    pool = TaskPool("test-stuck", threads=1)
    seen = Recorder()
    started, release = threading.Event(), threading.Event()

    def stuck(context):  # ignores its cancel flag, as a model loading from disk would
        started.set()
        release.wait(WAIT_S)
        context.report(seen.report, "too late")
        return "too late"

    task = submit(pool, stuck, recorder=seen)
    assert started.wait(WAIT_S)
    begun = time.monotonic()
    assert pool.shutdown(100) is False
    assert time.monotonic() - begun < 2  # it waited for the timeout, not for the task
    assert pool.shutdown() is False  # asked again: the same answer, without waiting again
    release.set()
    task.future.result(timeout=WAIT_S)  # the task finishes on its own...
    qtbot.wait(50)
    assert seen.events == []  # ...and its reports are dropped


def test_submit_after_shutdown_returns_none(qapp):
    pool = TaskPool("test-closed", threads=1)
    assert pool.shutdown() is True
    assert pool.submit(lambda _context: 1) is None
    assert pool.shutdown() is True


def test_a_faulty_on_cancelled_does_not_break_the_shutdown(qapp, caplog):
    pool = TaskPool("test-faulty", threads=1)
    started = threading.Event()

    def broken():
        raise KeyError("receiver bug")

    def work(context):
        started.set()
        while not context.cancelled:
            time.sleep(0.005)

    pool.submit(work)
    pool.submit(lambda _context: None, on_cancelled=broken)  # queued: dropped by the shutdown
    assert started.wait(WAIT_S)
    assert pool.shutdown(WAIT_MS) is True
    assert "receiver bug" in caplog.text
    assert pool.submit(lambda _context: 1) is None
    assert pool.pending() == 0
