"""The Models dialog's view-model: the catalogue's models on disk, their downloads, sizes and removals.

It wraps the :class:`~studio.worker.downloads.DownloadService` (one background thread, in order) and
keeps what the dialog shows between refreshes: each model's last status read from the cache folder, the
download size the hub announced, and the progress of a download. Its signals are the service's, emitted
after that state is updated (so a receiver asking :meth:`ModelManager.progress_of` or
:meth:`ModelManager.is_downloading` sees the news). The dialog needs nothing else from the engine or the
worker: a status is read by attribute (``id``, ``name``, ``repo``, ``revision``, ``downloaded``,
``partial``, ``size_on_disk``, ``path``, ``notes``; see :class:`studio.engine.model_store.ModelStatus`).

It also lists the OpenVINO cache (:class:`~studio.library.openvino_cache.OpenVinoCache`): the models
optimised for this CPU, which can take gigabytes the user never downloaded as such, so they can be seen
and removed here too. Removing one deletes one folder (milliseconds; it is made again on the model's next
use on OpenVINO), so it runs in the GUI thread, unlike the removal of a download, which waits for the
downloads before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from studio.library.display import first_line
from studio.library.openvino_cache import CachedModel, OpenVinoCache
from studio.viewmodel.properties import ViewModel
from studio.worker.downloads import DownloadService

if TYPE_CHECKING:
    from studio.engine.model_store import ModelStatus

__all__ = ["ModelManager"]


class ModelManager(ViewModel):
    """What is downloaded, how big, download (progress, cancel, resume), remove to the trash."""

    progress = Signal(str, object, object)  # model id, bytes done, bytes total (None: unknown)
    finished = Signal(str, str)  # model id, snapshot folder
    failed = Signal(str, str)  # model id, one-line message
    cancelled = Signal(str)  # model id
    removed = Signal(str, object)  # model id, bytes freed
    size_known = Signal(str, object)  # model id, download size in bytes (None: unknown, e.g. offline)
    openvino_changed = Signal()  # the OpenVINO cache's list changed (a model removed, or part of one)
    openvino_removed = Signal(str, object)  # the removed model's label, bytes freed
    openvino_failed = Signal(str)  # one line: why a model of the OpenVINO cache could not be removed

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        parent: QObject | None = None,
        *,
        openvino_cache: OpenVinoCache | None = None,
    ) -> None:
        super().__init__(parent)
        self.openvino_cache = openvino_cache if openvino_cache is not None else OpenVinoCache()
        self._service = DownloadService(cache_dir=cache_dir, parent=self)
        self._statuses: dict[str, ModelStatus] = {}
        self._sizes: dict[str, int | None] = {}
        self._progress: dict[str, tuple[int, int | None]] = {}
        service = self._service
        service.progress.connect(self._on_progress)
        service.finished.connect(self._on_finished)
        service.failed.connect(self._on_failed)
        service.cancelled.connect(self._on_cancelled)
        service.removed.connect(self._on_removed)
        service.size_known.connect(self._on_size)

    # ---------------------------------------------------------------------------------------- queries
    def statuses(self) -> list[ModelStatus]:
        """Every catalogue model with what is on disk now (reads the cache folder: milliseconds)."""
        statuses = self._service.statuses()
        self._statuses = {status.id: status for status in statuses}
        return statuses

    def status(self, model_id: str) -> ModelStatus | None:
        """The model's status as :meth:`statuses` last read it (None: not a catalogue model)."""
        return self._statuses.get(model_id)

    def is_downloading(self, model_id: str | None = None) -> bool:
        """Whether `model_id` (any model, when None) is being downloaded or waits to be."""
        return self._service.is_downloading(model_id)

    def progress_of(self, model_id: str) -> tuple[int, int | None] | None:
        """(bytes done, bytes total or None) of the model's download; None when none runs or waits."""
        return self._progress.get(model_id)

    def known_size(self, model_id: str) -> int | None:
        """The download size the hub announced (None: not asked, not answered yet, or unknown)."""
        return self._sizes.get(model_id)

    def openvino_models(self) -> list[CachedModel]:
        """The models optimised for this CPU, largest first (reads the cache folder: milliseconds)."""
        return self.openvino_cache.entries()

    def openvino_total_size(self) -> int:
        """Bytes the OpenVINO cache takes, IR and compiled blobs together."""
        return self.openvino_cache.total_size()

    # ---------------------------------------------------------------------------------------- actions
    def query_size(self, model_id: str, *, again: bool = False) -> bool:
        """Ask the hub how big the download is (once per model unless `again`); ``size_known`` answers.
        False when it was asked already, or the manager is shut down."""
        if model_id in self._sizes and not again:
            return False
        self._sizes.setdefault(model_id, None)
        return self._service.query_size(model_id) is not None

    def download(self, model_id: str) -> bool:
        """Start (or queue) a download; False when it is already downloading, or after shutdown."""
        started = self._service.download(model_id)
        if started:
            self._progress[model_id] = (0, self._sizes.get(model_id))
        return started

    def cancel(self, model_id: str) -> bool:
        """Stop the model's download (within one progress report); False when none runs or waits."""
        return self._service.cancel(model_id)

    def remove(self, model_id: str) -> bool:
        """Move the model's downloaded files to the trash, after any download before it; ``removed`` or
        ``failed`` follows. False after shutdown."""
        return self._service.remove(model_id) is not None

    def remove_openvino(self, folder: str | Path) -> int | None:
        """Delete one model's folder of the OpenVINO cache; the bytes freed, or None when it could not
        be. ``openvino_changed`` comes first either way (a removal that failed half-way changed the list
        too), then ``openvino_removed`` or ``openvino_failed`` (why), so a view that refreshes on the
        first keeps the message of the second."""
        folder = Path(folder)
        label = next((m.label for m in self.openvino_models() if m.folder == folder), folder.name)
        try:
            freed = self.openvino_cache.remove(folder)
        except (OSError, ValueError) as exc:  # in use (Windows), read-only, or not a folder of the cache
            self.openvino_changed.emit()
            self.openvino_failed.emit(f"Could not remove {label}: {first_line(exc)}")
            return None
        self.openvino_changed.emit()
        self.openvino_removed.emit(label, freed)
        return freed

    def shutdown(self, wait: bool = True) -> bool:
        """Cancel the downloads (what was fetched is kept) and stop the thread; True when it stopped."""
        return self._service.shutdown(wait)

    # --------------------------------------------------------------------------------------- service
    def _on_progress(self, model_id: str, done, total) -> None:
        self._progress[model_id] = (int(done), int(total) if total else None)
        self.progress.emit(model_id, done, total)

    def _on_finished(self, model_id: str, path: str) -> None:
        self._progress.pop(model_id, None)
        self.finished.emit(model_id, path)

    def _on_failed(self, model_id: str, message: str) -> None:
        self._progress.pop(model_id, None)
        self.failed.emit(model_id, message)

    def _on_cancelled(self, model_id: str) -> None:
        self._progress.pop(model_id, None)
        self.cancelled.emit(model_id)

    def _on_removed(self, model_id: str, freed) -> None:
        self.removed.emit(model_id, freed)

    def _on_size(self, model_id: str, size) -> None:
        self._sizes[model_id] = int(size) if size else None
        self.size_known.emit(model_id, size)
