"""Model downloads and removals off the GUI thread, for the model manager.

One background thread (a 1-thread :class:`~studio.worker.tasks.TaskPool`) does one thing at a time, in
order (a removal queued behind a download waits for it). Progress, results and failures come back as
signals, emitted in the GUI thread. A cancel is the task's ``threading.Event``, which the download checks
before each progress report, so it stops within one report; a download cancelled while still queued never
starts. Files already fetched stay in the Hugging Face cache and the next download skips them; the file
cut off by the cancel starts over (huggingface_hub 2.x keeps no partial files).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.engine.errors import first_line
from studio.worker.tasks import Task, TaskContext, TaskPool

__all__ = ["DownloadService"]

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.2


class DownloadService(QObject):
    """The model manager's hands: statuses (fast, here), downloads and removals (in the background)."""

    progress = Signal(str, object, object)  # model id, bytes done, bytes total (None: unknown)
    finished = Signal(str, str)  # model id, snapshot folder
    failed = Signal(str, str)  # model id, one-line message
    cancelled = Signal(str)  # model id
    removed = Signal(str, object)  # model id, bytes freed
    size_known = Signal(str, object)  # model id, download size in bytes (None: unknown, e.g. offline)

    def __init__(self, cache_dir: str | Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._cache_dir = cache_dir
        self._pool = TaskPool("studio-downloads", threads=1, parent=self)
        self._cancels: dict[str, threading.Event] = {}

    # ---------------------------------------------------------------------------------------- queries
    def statuses(self):
        """Every catalogue model with what is on disk (reads the cache folder: milliseconds)."""
        from studio.engine.model_store import model_statuses

        return model_statuses(self._cache_dir)

    def is_downloading(self, model_id: str | None = None) -> bool:
        """Whether `model_id` (any model, when None) is being downloaded or waits to be."""
        return bool(self._cancels) if model_id is None else model_id in self._cancels

    # ---------------------------------------------------------------------------------------- actions
    def query_size(self, model_id: str) -> Task | None:
        """Ask the hub how big the download is; `size_known` answers (None when offline)."""
        return self._pool.submit(self._size_task, model_id, on_result=lambda size: self.size_known.emit(model_id, size))

    def download(self, model_id: str) -> bool:
        """Start (or queue) a download; False when this model is already being downloaded."""
        if self._pool.closed or model_id in self._cancels:
            return False
        cancel = threading.Event()

        def over(signal, *args) -> None:
            self._cancels.pop(model_id, None)  # before the signal: its receivers ask is_downloading()
            signal.emit(model_id, *args)

        task = self._pool.submit(
            self._download_task,
            model_id,
            cancel=cancel,
            on_result=lambda path: over(self.finished, str(path)),
            on_error=lambda exc: over(self.failed, first_line(exc)),
            on_cancelled=lambda: over(self.cancelled),
        )
        if task is None:
            return False
        self._cancels[model_id] = cancel
        return True

    def cancel(self, model_id: str) -> bool:
        event = self._cancels.get(model_id)
        if event is None:
            return False
        event.set()
        return True

    def remove(self, model_id: str) -> Task | None:
        """Move the model's downloaded files to the trash (after any download in progress)."""
        return self._pool.submit(
            self._remove_task,
            model_id,
            on_result=lambda freed: self.removed.emit(model_id, freed),
            on_error=lambda exc: self.failed.emit(model_id, first_line(exc)),
        )

    def shutdown(self, wait: bool = True) -> bool:
        """Cancel downloads (what was fetched stays, to resume) and stop the thread; True when it stopped.

        `wait`: wait (up to ten seconds) for the download in progress to notice its cancel.
        """
        return self._pool.shutdown(10_000 if wait else 0)

    # ---------------------------------------------------------------------------------- in the thread
    def _size_task(self, _context: TaskContext, model_id: str) -> int | None:
        from studio.engine.model_store import download_size

        try:
            return download_size(model_id, cache_dir=self._cache_dir)
        except Exception:  # noqa: BLE001 - a size is a nicety: unknown, never an error
            log.debug("download size of %s unknown", model_id, exc_info=True)
            return None

    def _download_task(self, context: TaskContext, model_id: str) -> Path:
        from studio.engine.model_store import download_model

        last = [0.0]

        def on_progress(progress) -> None:  # download_model checks the cancel before each report
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or (progress.total and progress.done >= progress.total):
                last[0] = now
                context.report(self.progress.emit, model_id, int(progress.done), progress.total)

        context.check()
        return download_model(model_id, on_progress=on_progress, cancel=context.cancel_event, cache_dir=self._cache_dir)

    def _remove_task(self, _context: TaskContext, model_id: str) -> int:
        from studio.engine.model_store import remove_model

        return remove_model(model_id, cache_dir=self._cache_dir)
