"""Model downloads and removals off the GUI thread, for the model manager.

One background thread does one thing at a time, in order (a removal queued behind a download waits for
it). Progress, results and failures come back as signals, delivered in the GUI thread. A cancel is a
``threading.Event`` the download's progress callback checks, so it stops within one progress report.
Files already fetched stay in the Hugging Face cache and the next download skips them; the file cut off
by the cancel starts over (huggingface_hub 2.x keeps no partial files).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.engine.errors import Cancelled, first_line

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
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-downloads")
        self._cancels: dict[str, threading.Event] = {}
        self._closed = False

    # ---------------------------------------------------------------------------------------- queries
    def statuses(self):
        """Every catalogue model with what is on disk (reads the cache folder: milliseconds)."""
        from studio.engine.model_store import model_statuses

        return model_statuses(self._cache_dir)

    def is_downloading(self, model_id: str | None = None) -> bool:
        return bool(self._cancels) if model_id is None else model_id in self._cancels

    # ---------------------------------------------------------------------------------------- actions
    def query_size(self, model_id: str) -> Future | None:
        """Ask the hub how big the download is; `size_known` answers (None when offline)."""
        return self._submit(self._size_task, model_id)

    def download(self, model_id: str) -> bool:
        """Start (or queue) a download; False when this model is already being downloaded."""
        if self._closed or model_id in self._cancels:
            return False
        self._cancels[model_id] = threading.Event()
        self._submit(self._download_task, model_id, self._cancels[model_id])
        return True

    def cancel(self, model_id: str) -> bool:
        event = self._cancels.get(model_id)
        if event is None:
            return False
        event.set()
        return True

    def remove(self, model_id: str) -> Future | None:
        """Move the model's downloaded files to the trash (after any download in progress)."""
        return self._submit(self._remove_task, model_id)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel downloads (their partial files stay, to resume) and stop the thread."""
        self._closed = True
        for event in self._cancels.values():
            event.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # ---------------------------------------------------------------------------------- in the thread
    def _submit(self, fn, *args) -> Future | None:
        if self._closed:
            return None
        return self._pool.submit(fn, *args)

    def _size_task(self, model_id: str) -> None:
        from studio.engine.model_store import download_size

        try:
            size = download_size(model_id, cache_dir=self._cache_dir)
        except Exception:  # noqa: BLE001 - a size is a nicety: unknown, never an error
            log.debug("download size of %s unknown", model_id, exc_info=True)
            size = None
        self.size_known.emit(model_id, size)

    def _download_task(self, model_id: str, cancel: threading.Event) -> None:
        from studio.engine.model_store import download_model

        last = [0.0]

        def on_progress(progress) -> None:  # download_model checks `cancel` before each report
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or (progress.total and progress.done >= progress.total):
                last[0] = now
                self.progress.emit(model_id, int(progress.done), progress.total)

        try:
            if cancel.is_set():
                raise Cancelled("download cancelled")
            path = download_model(model_id, on_progress=on_progress, cancel=cancel, cache_dir=self._cache_dir)
        except Cancelled:
            self._cancels.pop(model_id, None)  # before the signal: its receivers ask is_downloading()
            self.cancelled.emit(model_id)
        except Exception as exc:  # noqa: BLE001 - one line for the dialog, never a traceback
            self._cancels.pop(model_id, None)
            self.failed.emit(model_id, first_line(exc))
        else:
            self._cancels.pop(model_id, None)
            self.finished.emit(model_id, str(path))

    def _remove_task(self, model_id: str) -> None:
        from studio.engine.model_store import remove_model

        try:
            freed = remove_model(model_id, cache_dir=self._cache_dir)
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(model_id, first_line(exc))
        else:
            self.removed.emit(model_id, freed)
