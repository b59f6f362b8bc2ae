"""The one way the app runs work off the GUI thread: a :class:`TaskPool`.

Every background job of the app (the engine's generations, the gallery's catalogue writes, thumbnails,
model downloads, image decoding, loading the tokenizer) is a plain function submitted to a pool. The
function runs on one of the pool's Python threads and gets a :class:`TaskContext`: it asks
``context.cancelled`` (or calls ``context.check()``) between units of work, and hands results and
progress to the GUI thread with ``context.report(callback, *args)``. Reports are delivered in the
thread that made the pool, in the order they were made; the task's own return value goes to
``on_result``, its exception to ``on_error``, a cancel to ``on_cancelled``, after every report.

Why Python threads (``concurrent.futures``) and not ``QThreadPool``: Qt waits for its pool in C++
destructors while Python may hold the GIL there, and a task that needs the GIL to finish would
deadlock the exit. Why not ``QThread`` + ``moveToThread``: a worker object with its own event loop is
only needed to receive signals, and a pool's queue already orders the work.

One pool with one thread keeps everything it runs on that single thread for the pool's life
(``ThreadPoolExecutor`` never retires an idle thread): the engine's pool is the single owner of torch,
the gallery's the single owner of its SQLite connection.

One way to stop: :meth:`TaskPool.shutdown` cancels every task (queued ones never start), waits for the
running ones up to a timeout, and delivers their last reports. A task that does not stop in time (a
model still loading from disk cannot be interrupted) finishes on its own; its later reports are dropped.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal, Slot

from studio.engine.errors import Cancelled

__all__ = ["Task", "TaskContext", "TaskPool"]

log = logging.getLogger(__name__)

Callback = Callable[..., Any]


class _Relay(QObject):
    """Carries reports from pool threads to the pool's owner thread (a queued connection).

    Parentless and referenced by every running task, so it outlives a pool deleted while its threads
    still report; once the pool is shut down it drops what arrives.
    """

    delivered = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.delivered.connect(self._deliver)

    @Slot(object)
    def _deliver(self, call: tuple[Callback, tuple]) -> None:
        if self.closed:
            return
        callback, args = call
        _call(callback, *args)


def _call(callback: Callback, *args: Any) -> None:
    """Call a receiver; a faulty one is logged and must not stop the next reports (or a shutdown)."""
    try:
        callback(*args)
    except Exception:  # noqa: BLE001
        log.exception("a background task's report failed in %s", getattr(callback, "__qualname__", callback))


class TaskContext:
    """What a running task sees: its cancel flag and a way to report to the GUI thread."""

    def __init__(self, relay: _Relay, cancel: threading.Event) -> None:
        self._relay = relay
        self.cancel_event = cancel

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the task was cancelled (call it between units of work)."""
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")

    def report(self, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` in the pool's owner thread, after the reports made before it."""
        self._relay.delivered.emit((callback, args))


class Task:
    """A handle on submitted work: cancel it, ask whether it is over."""

    def __init__(self, task_id: int, cancel: threading.Event) -> None:
        self.id = task_id
        self._cancel = cancel
        self.future: concurrent.futures.Future | None = None
        self._dropped: Callable[[], Any] = lambda: None  # what a shutdown calls if it never started

    def cancel(self) -> None:
        """Ask the task to stop; a task still queued never starts (``on_cancelled`` follows)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def cancel_event(self) -> threading.Event:
        """The flag itself, for code below the worker layer that takes a ``threading.Event``."""
        return self._cancel

    def done(self) -> bool:
        return self.future is not None and self.future.done()


class TaskPool(QObject):
    """Threads that run submitted functions; results come back in the thread that made the pool."""

    _ids = itertools.count(1)

    def __init__(self, name: str, threads: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._relay = _Relay()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix=name)
        self._tasks: dict[int, Task] = {}
        self._closed = False
        self._stopped: bool | None = None
        app = QCoreApplication.instance()
        if app is not None:  # quitting without an explicit shutdown still stops the work
            app.aboutToQuit.connect(self.shutdown)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_result: Callback | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
        on_cancelled: Callable[[], Any] | None = None,
        cancel: threading.Event | None = None,
    ) -> Task | None:
        """Run ``fn(context, *args)`` on a pool thread; None once the pool is shut down.

        Exactly one of ``on_result(value)``, ``on_error(exception)`` or ``on_cancelled()`` follows, in
        this thread. A task raising :class:`Cancelled`, or cancelled before it starts, is cancelled.
        """
        if self._closed:
            return None
        task = Task(next(self._ids), cancel or threading.Event())
        self._tasks[task.id] = task
        context = TaskContext(self._relay, task.cancel_event)

        def finish(callback: Callback | None, *values: Any) -> None:
            self._tasks.pop(task.id, None)
            if callback is not None:
                callback(*values)

        def run() -> None:
            try:
                if task.cancelled:
                    raise Cancelled("cancelled before it started")
                value = fn(context, *args)
            except Cancelled:
                context.report(finish, on_cancelled)
            except BaseException as exc:  # noqa: BLE001 - one task's failure (SystemExit too), reported
                if on_error is None:
                    log.warning("background task %s failed", getattr(fn, "__qualname__", fn), exc_info=True)
                context.report(finish, on_error, exc)
            else:
                if on_result is None:
                    context.report(finish, None)
                else:
                    context.report(finish, on_result, value)

        task.future = self._executor.submit(run)
        task._dropped = lambda: _call(finish, on_cancelled)
        return task

    def pending(self) -> int:
        """Tasks submitted and not yet reported finished."""
        return len(self._tasks)

    def flush(self) -> None:
        """Deliver the reports already made, now (tests; a shutdown's last reports)."""
        QCoreApplication.sendPostedEvents(self._relay, QEvent.Type.MetaCall)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every task, wait for the running ones, deliver their reports; True when all stopped.

        Safe to call more than once. Tasks not yet started are dropped (their ``on_cancelled`` runs).
        """
        if self._stopped is not None:
            return self._stopped
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        # Not the futures the executor just cancelled: no thread will ever mark them "notified", and
        # concurrent.futures.wait() counts a cancelled future as done only then (it would wait them out).
        futures = [t.future for t in tasks if t.future is not None and not t.future.cancelled()]
        _done, running = concurrent.futures.wait(futures, timeout=max(0, timeout_ms) / 1000)
        stopped = not running
        if not stopped:
            log.warning("%s: %d task(s) did not stop within %d ms", self.name, len(running), timeout_ms)
        self.flush()
        for task in tasks:  # dropped before starting: they never ran, so never reported
            if task.future is not None and task.future.cancelled():
                task._dropped()
        self._relay.closed = True
        self._stopped = stopped
        return stopped
