"""The gallery's state and actions: :class:`GalleryBrowser`, the view-model behind the gallery page.

It owns the library service (:class:`~studio.worker.gallery.GalleryService`: the catalogue, scans, folder
watching, thumbnails), the grid's rows (:class:`~studio.viewmodel.gallery_items.GalleryModel`) and their
selection (a ``QItemSelectionModel`` the grid shows), the filters, the details of the selected image, the
thumbnail size, and deleting with undo. The page (:class:`studio.ui.gallery_view.GalleryView`) binds its
widgets to the properties, shows what the signals say, and calls the methods; nothing here knows a widget.

Deleting and undo: a file cannot be taken back out of the desktop's trash portably (send2trash only
puts files in), so a delete happens in two steps. The row is hidden at once; the file itself is sent
to the trash only when the next delete happens, :attr:`GalleryBrowser.undo_ms` later, or when the
library shuts down (:meth:`GalleryBrowser.commit_delete`). Until then :meth:`GalleryBrowser.undo_delete`
brings the row back, and the file was never touched. Only the last delete can be undone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import (
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QObject,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage, QPixmap

from studio.library.display import printable
from studio.library.gallery import GalleryImage, Query, ScanReport
from studio.library.gallery_queries import SORTS
from studio.library.metadata import ImageMetadata, read_metadata
from studio.viewmodel.gallery_details import ImageDetails, describe_image, file_name
from studio.viewmodel.gallery_items import ICON_SIZE, IMAGE_ROLE, PAGE_SIZE, GalleryModel
from studio.viewmodel.properties import Property, ViewModel, between, one_of
from studio.worker.gallery import DEBOUNCE_MS, POLL_MS, GalleryService

__all__ = [
    "DATE_RANGES",
    "ICON_SIZE",
    "ICON_STEP",
    "MAX_ICON_SIZE",
    "MIN_ICON_SIZE",
    "SORTS",
    "GalleryBrowser",
    "ImageDetails",
    "clamp_icon_size",
]

log = logging.getLogger(__name__)

MIN_ICON_SIZE = 64
MAX_ICON_SIZE = 320
ICON_STEP = 16
"""One zoom step (Ctrl++ / Ctrl+-), and the size slider's."""
SEARCH_DEBOUNCE_MS = 200
REFRESH_DEBOUNCE_MS = 100
UNDO_MS = 10_000
DATE_RANGES = ("any", "today", "7d", "30d", "custom")
"""The date filter's choices: any time, today, the last 7 or 30 days, from date_from to date_to."""


def clamp_icon_size(size: int) -> int:
    return max(MIN_ICON_SIZE, min(MAX_ICON_SIZE, int(size)))


@dataclass
class _PendingDelete:
    image: GalleryImage
    row: int


class GalleryBrowser(ViewModel):
    """The gallery page's view-model. Use from the GUI thread; see the module docstring."""

    # --- the filters (the query the grid shows)
    search_text = Property("", doc="Words to find in prompts; applied after a pause (see apply_filters).")
    model_filter = Property(None, kind=str, doc="Only images made with this model (None: every model).")
    date_range = Property("any", check=one_of(DATE_RANGES))
    date_from = Property(None, kind=date, doc="First day of the custom date range (local time).")
    date_to = Property(None, kind=date, doc="Last day of the custom date range.")
    favourites_only = Property(False)
    sort = Property("newest", check=one_of(SORTS))
    # --- the grid
    icon_size = Property(
        ICON_SIZE, persist=True, key="gallery_icon_size", check=clamp_icon_size, doc="Thumbnail size (logical pixels, longest side)."
    )
    # --- the selected image's marks (editing them saves them)
    rating = Property(0, check=between(0, 5))
    favourite = Property(False)
    # --- what the page shows
    count_text = Property("", doc="How many images the query finds, and whether one waits for its undo.")
    scanning = Property(False, doc="A scan runs: its progress is shown.")
    can_undo = Property(False, doc="A delete can be undone (its file is not in the trash yet).")
    undo_ms = Property(UNDO_MS, check=between(0, 24 * 3600 * 1000), doc="How long a delete can be undone.")

    message = Signal(str)  # for the status bar (the service's messages too)
    catalogue_rebuilt = Signal(object)  # RecoveryReport: a damaged catalogue was moved aside and rebuilt
    scan_started = Signal()
    scan_progress = Signal(int, int)  # done, total
    scan_finished = Signal(object)  # ScanReport
    scan_failed = Signal(str)
    current_changed = Signal(object)  # GalleryImage | None: the selected image
    details_changed = Signal(object)  # ImageDetails | None
    preview_changed = Signal(object)  # QPixmap | None: the selected image (its thumbnail until decoded)
    model_names_changed = Signal(list)  # the model filter's choices (str)
    reveal = Signal(int)  # a row to scroll into view
    rows_reset = Signal()  # a refresh re-read the rows in a new order: the view puts its scroll position back
    reuse_parameters = Signal(object)  # dict of GenerationRequest fields (read_metadata(...).to_request_fields())
    reuse_seed = Signal(int)
    send_to_canvas = Signal(str)  # path

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        thumbnail_dir: str | os.PathLike[str],
        *,
        parent: QObject | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        thumbnail_threads: int | None = None,
        scan_on_start: bool = False,
        poll_ms: int = POLL_MS,
        page_size: int = PAGE_SIZE,
        icon_size: int = ICON_SIZE,
        undo_ms: int = UNDO_MS,
        search_debounce_ms: int = SEARCH_DEBOUNCE_MS,
    ):
        super().__init__(parent)
        self._service = GalleryService(
            db_path,
            thumbnail_dir,
            parent=self,
            debounce_ms=debounce_ms,
            thumbnail_threads=thumbnail_threads,
            scan_on_start=scan_on_start,
            poll_ms=poll_ms,
        )
        self._closed = False
        self._pending: _PendingDelete | None = None
        self._current_meta: tuple[Path, ImageMetadata | None] | None = None
        self._preview: QPixmap | None = None
        self._model_names: list[str] = []
        self._scan_stopped = False
        today = date.today()
        self.date_from, self.date_to = today - timedelta(days=7), today
        self.icon_size = icon_size
        self.undo_ms = max(0, int(undo_ms))

        self.model = GalleryModel(self._service, page_size=page_size, icon_size=self.icon_size, parent=self)
        """The grid's rows."""
        self.selection = QItemSelectionModel(self.model, self)
        """Which row is selected (the grid shows this selection model)."""

        self._search_timer = QTimer(self, singleShot=True, interval=max(0, int(search_debounce_ms)))
        self._search_timer.timeout.connect(self.apply_filters)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_DEBOUNCE_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._undo_timer = QTimer(self, singleShot=True, interval=self.undo_ms)
        self._undo_timer.timeout.connect(self.commit_delete)

        self.search_text_changed.connect(lambda _text: self._search_timer.start())
        for name in ("model_filter", "date_range", "date_from", "date_to", "favourites_only", "sort"):
            getattr(self, f"{name}_changed").connect(lambda _value: self.apply_filters())
        self.icon_size_changed.connect(self.model.set_icon_size)
        self.undo_ms_changed.connect(self._undo_timer.setInterval)
        self.rating_changed.connect(self._rating_edited)
        self.favourite_changed.connect(self._favourite_edited)

        self.selection.currentChanged.connect(lambda _current, _previous: self._show_current())
        self.model.failed.connect(self.message)
        self.model.modelReset.connect(self._show_current)
        self.model.rowsRemoved.connect(lambda *_: self._show_current())
        self.model.dataChanged.connect(self._on_data_changed)

        svc = self._service
        svc.scan_started.connect(self._on_scan_started)
        svc.scan_progress.connect(self._on_scan_progress)
        svc.scan_finished.connect(self._on_scan_finished)
        svc.scan_failed.connect(self._on_scan_failed)
        svc.library_changed.connect(self._refresh_timer.start)
        svc.folders_changed.connect(self._refresh_timer.start)
        svc.image_changed.connect(self._on_image_changed)
        svc.preview_ready.connect(self._on_preview_ready)
        svc.preview_failed.connect(self._on_preview_failed)
        svc.message.connect(self.message)
        svc.catalogue_rebuilt.connect(self.catalogue_rebuilt)
        svc.shutting_down.connect(self._on_shutting_down)
        self.reload()

    @property
    def service(self) -> GalleryService:
        """The library service this browser made (its catalogue, scans, thumbnails)."""
        return self._service

    # --------------------------------------------------------------------------- the library
    def ensure_folder(self, path: str | os.PathLike[str]) -> Path:
        """Keep `path` (the app's output folder) in the library: added and scanned if missing, never removed."""
        return self._service.ensure_folder(path)

    def add_folder(self, path: str | os.PathLike[str]) -> Path:
        """Add a folder to the library and scan it."""
        folder = self._service.add_folder(path)
        self.message.emit(f"Adding {printable(folder)} to the gallery…")
        return folder

    def remove_folder(self, path: str | os.PathLike[str]) -> bool:
        """Take a folder out of the library (its files are left alone); False for the output folder."""
        removed = self._service.remove_folder(path)
        if removed:
            self.message.emit(f"{printable(path)} removed from the gallery (its files are left alone)")
        return removed

    def folders(self) -> list[Path]:
        return self._service.folders()

    def is_pinned(self, path: str | os.PathLike[str]) -> bool:
        """Is `path` the output folder, which always stays in the library?"""
        return self._service.is_pinned(path)

    def scan(self, folders: Iterable[str | os.PathLike[str]] | None = None) -> None:
        """Look for new, changed and removed files (every folder, or these)."""
        self._service.scan(folders)

    def stop_scan(self) -> None:
        """Stop scanning; what was found so far is kept."""
        if self._service.is_scanning():
            self._scan_stopped = True
            self._service.cancel_scan()

    def check_for_changes(self) -> bool:
        """Show at once what another process (``studio gallery scan``) catalogued meanwhile."""
        return self._service.check_for_changes()

    def index_paths(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Catalogue these files now (a just-saved image) rather than when the file watcher settles."""
        self._service.index_paths(paths)

    def image_at_path(self, path: str | os.PathLike[str]) -> GalleryImage | None:
        """The catalogue's image at `path` (None when it has none)."""
        return self._service.gallery().get_by_path(path)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Send a pending delete to the trash and stop the library's threads; True when they stopped in time."""
        return self._service.shutdown(timeout_ms)

    # ------------------------------------------------------------------------------ filters
    def current_query(self) -> Query:
        date_from, date_to = self._date_bounds()
        return Query(
            text=self.search_text.strip(),
            model=self.model_filter,
            date_from=date_from,
            date_to=date_to,
            favourites_only=self.favourites_only,
            sort=self.sort,
        )

    def apply_filters(self) -> None:
        """Show what the filters describe now (the search text is applied by itself after a pause)."""
        if self._closed:
            return
        self._search_timer.stop()
        keep = self.current_image()
        self.model.set_query(self.current_query())
        if keep is not None:
            self.select_image(keep.id)
        self._update_count()

    def reload(self) -> None:
        """Read the model names and the rows afresh."""
        self.reload_models()
        self.apply_filters()

    def refresh(self) -> None:
        """The library changed: re-read rows, model names and the count, keeping the selection."""
        if self._closed:
            return
        keep = self.current_image()
        if self.model.refresh():
            if keep is not None:
                self.select_image(keep.id, scroll=False)
            self.rows_reset.emit()
        self.reload_models()
        self._update_count()

    def model_names(self) -> list[str]:
        """The model filter's choices: every model the catalogue names."""
        return list(self._model_names)

    def reload_models(self) -> None:
        if self._closed:
            return
        try:
            models = self._service.gallery().models()
        except Exception:  # noqa: BLE001 - the filter just keeps its old entries
            log.debug("listing models failed", exc_info=True)
            return
        if models == self._model_names:
            return
        self._model_names = models
        self.model_names_changed.emit(list(models))
        if self.model_filter is not None and self.model_filter not in models:
            self.model_filter = None  # the model's last image went away: show all

    def _date_bounds(self) -> tuple[float | None, float | None]:
        key = self.date_range
        midnight = datetime.combine(date.today(), datetime.min.time()).timestamp()
        if key == "today":
            return midnight, None
        if key == "7d":
            return time.time() - 7 * 86400, None
        if key == "30d":
            return time.time() - 30 * 86400, None
        if key == "custom":
            start = self.date_from or date.today()
            end = self.date_to or date.today()
            return (
                datetime.combine(start, datetime.min.time()).timestamp(),
                datetime.combine(end, datetime.max.time()).timestamp(),
            )
        return None, None

    def _update_count(self) -> None:
        if self._closed:
            return
        try:
            count = self._service.gallery().count(self.model.query())
        except Exception:  # noqa: BLE001
            self.count_text = ""
            return
        text = f"{count:,} image{'s' if count != 1 else ''}"
        if self._pending is not None:
            text += " (1 deleted, Ctrl+Z to undo)"
        self.count_text = text

    # ---------------------------------------------------------------------------- icon size
    def zoom_in(self) -> None:
        """Larger thumbnails by one step."""
        self.icon_size = self.icon_size + ICON_STEP

    def zoom_out(self) -> None:
        """Smaller thumbnails by one step."""
        self.icon_size = self.icon_size - ICON_STEP

    def reset_icon_size(self) -> None:
        """The default thumbnail size."""
        self.icon_size = ICON_SIZE

    # ---------------------------------------------------------------------------- selection
    def current_image(self) -> GalleryImage | None:
        index = self.selection.currentIndex()
        return index.data(IMAGE_ROLE) if index.isValid() else None

    def has_selection(self) -> bool:
        return self.selection.currentIndex().isValid() or self.selection.hasSelection()

    def select_image(self, image_id: int, *, scroll: bool = True) -> bool:
        row = self.model.row_of(image_id)
        if row is None:
            return False
        self.select_row(row, scroll=scroll)
        return True

    def select_row(self, row: int, *, scroll: bool = True) -> None:
        index = self.model.index(row)
        if index.isValid():
            self.selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            if scroll:
                self.reveal.emit(row)

    def select_path(self, path: str | Path) -> bool:
        """Select the image at `path` if it is among the rows loaded (e.g. one just generated)."""
        image = self._service.gallery().get_by_path(path)
        return image is not None and self.select_image(image.id)

    def clear_selection(self) -> None:
        """Select nothing (also no current row): the details say so."""
        self.selection.clear()

    def current_details(self) -> ImageDetails | None:
        image = self.current_image()
        if image is None or self._current_meta is None or self._current_meta[0] != image.path:
            return None
        return describe_image(image, self._current_meta[1])

    def preview(self) -> QPixmap | None:
        """The selected image as shown now: decoded, or its thumbnail until then (None: nothing yet)."""
        return self._preview

    def _show_current(self) -> None:
        image = self.current_image()
        self.current_changed.emit(image)
        if image is None:
            self._current_meta = None
            self.rating, self.favourite = 0, False
            self._set_preview(None)
            self.details_changed.emit(None)
            return
        same = self._current_meta is not None and self._current_meta[0] == image.path
        meta = self._current_meta[1] if same and self._current_meta else _metadata(image.path)
        self._current_meta = (image.path, meta)
        self.rating, self.favourite = int(image.rating or 0), bool(image.favourite)
        self.details_changed.emit(describe_image(image, meta))
        if not same:
            self._set_preview(self.model.cached_pixmap(image))  # the thumbnail until the image is decoded
            self._service.request_preview(image.path)

    def _set_preview(self, pixmap: QPixmap | None) -> None:
        if pixmap is self._preview:
            return
        self._preview = pixmap
        self.preview_changed.emit(pixmap)

    def _on_preview_ready(self, path: str, image: QImage) -> None:
        current = self.current_image()
        if current is not None and str(current.path) == path:
            self._set_preview(QPixmap.fromImage(image))

    def _on_preview_failed(self, path: str, why: str) -> None:
        current = self.current_image()
        if current is not None and str(current.path) == path:
            self.message.emit(printable(why))

    def _on_data_changed(self, top: QModelIndex, bottom: QModelIndex, roles=()) -> None:
        current = self.selection.currentIndex()
        if not current.isValid() or not top.row() <= current.row() <= bottom.row():
            return
        if list(roles) == [Qt.ItemDataRole.DecorationRole]:
            image = current.data(IMAGE_ROLE)
            if self._preview is None and image is not None:
                self._set_preview(self.model.cached_pixmap(image))
            return
        self._show_current()

    # ---------------------------------------------------------------------------------- actions
    def _require_current(self) -> GalleryImage | None:
        image = self.current_image()
        if image is None:
            self.message.emit("No image selected")
        return image

    def reuse_current_parameters(self) -> bool:
        """Hand the selected image's generation parameters to the generator (``reuse_parameters``)."""
        image = self._require_current()
        if image is None:
            return False
        meta = _metadata(image.path)
        fields = meta.reuse_fields() if meta is not None else {}
        if not fields:
            self.message.emit(f"{file_name(image.path)} holds no generation parameters")
            return False
        self.reuse_parameters.emit(fields)
        self.message.emit(f"Parameters of {file_name(image.path)} restored")
        return True

    def reuse_current_seed(self) -> bool:
        image = self._require_current()
        if image is None:
            return False
        seed = image.seed
        if seed is None:
            meta = _metadata(image.path)
            seed = meta.seed if meta is not None else None
        if seed is None:
            self.message.emit(f"{file_name(image.path)} records no seed")
            return False
        self.reuse_seed.emit(int(seed))
        self.message.emit(f"Seed {seed} fixed")
        return True

    def send_current_to_canvas(self) -> bool:
        image = self._require_current()
        if image is not None:
            self.send_to_canvas.emit(str(image.path))
        return image is not None

    def copy_image(self) -> bool:
        """The selected image's pixels (and its file) to the clipboard."""
        image = self._require_current()
        if image is None:
            return False
        pixels = QImage(str(image.path))
        if pixels.isNull():
            self.message.emit(f"Cannot read {file_name(image.path)} (moved or deleted?)")
            return False
        mime = QMimeData()
        mime.setImageData(pixels)
        mime.setUrls([QUrl.fromLocalFile(str(image.path))])
        QGuiApplication.clipboard().setMimeData(mime)
        self.message.emit(f"Copied {file_name(image.path)}")
        return True

    def copy_prompt(self) -> bool:
        """The selected image's prompt to the clipboard, exactly as the file has it."""
        image = self._require_current()
        if image is None:
            return False
        prompt = image.prompt
        if not prompt:
            meta = _metadata(image.path)
            prompt = meta.prompt if meta is not None else None
        if not prompt:
            self.message.emit(f"{file_name(image.path)} records no prompt")
            return False
        QGuiApplication.clipboard().setText(prompt)
        self.message.emit("Prompt copied")
        return True

    def open_folder(self) -> bool:
        """Show the selected image's folder in the desktop's file manager."""
        image = self._require_current()
        if image is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(image.path.parent)))
        return image is not None

    def rate_current(self, stars: int) -> None:
        image = self._require_current()
        if image is not None:
            self._service.set_rating(image.id, stars)

    def toggle_favourite(self) -> None:
        image = self._require_current()
        if image is not None:
            self._service.set_favourite(image.id, not image.favourite)

    def _rating_edited(self, value: int) -> None:
        image = self.current_image()
        if image is not None and value != image.rating:
            self._service.set_rating(image.id, value)

    def _favourite_edited(self, on: bool) -> None:
        image = self.current_image()
        if image is not None and on != image.favourite:
            self._service.set_favourite(image.id, on)

    def _on_image_changed(self, _image_id: int) -> None:
        query = self.model.query()
        if query.favourites_only or query.sort == "rating":
            self._refresh_timer.start()  # the row may leave the results or move

    # ---------------------------------------------------------------------------- delete, undo
    def delete_current(self) -> bool:
        """Hide the selected image now; it goes to the trash on the next delete, after the undo window
        or at shutdown (see the module docstring)."""
        image = self._require_current()
        if image is None:
            return False
        if self._pending is not None:
            self.commit_delete()
        row = self.model.row_of(image.id)
        self._pending = _PendingDelete(image, row if row is not None else 0)
        self.model.hide(image)
        if self.model.rowCount():
            self.select_row(min(self._pending.row, self.model.rowCount() - 1))
        self._undo_timer.start()
        self.can_undo = True
        self._update_count()
        seconds = max(1, round(self._undo_timer.interval() / 1000))
        self.message.emit(
            f"{file_name(image.path)} deleted: Ctrl+Z brings it back (it goes to the trash in {seconds} s)"
        )
        return True

    def undo_delete(self) -> bool:
        """Bring back the last deleted image, if it has not gone to the trash yet."""
        pending, self._pending = self._pending, None
        self._undo_timer.stop()
        self.can_undo = False
        if pending is None:
            self.message.emit("Nothing to undo")
            return False
        self.model.unhide(pending.image.id)
        self.select_image(pending.image.id)
        self._update_count()
        self.message.emit(f"{file_name(pending.image.path)} restored")
        return True

    def pending_delete(self) -> Path | None:
        """The file deleted but not yet in the trash (undo still possible)."""
        return self._pending.image.path if self._pending is not None else None

    def commit_delete(self) -> bool:
        """Send a pending delete's file to the trash now (no undo any more); False when that failed (the
        row comes back, and a message says why)."""
        pending, self._pending = self._pending, None
        self._undo_timer.stop()
        self.can_undo = False
        if pending is None:
            return True
        error = self._service.trash(pending.image.path)
        if error:
            self.message.emit(error)
            if not self._closed:
                self.model.unhide(pending.image.id)
            return False
        self.model.release(pending.image.id)
        if not self._closed:
            self._update_count()
        return True

    # ------------------------------------------------------------------------------------ scans
    def _set_scanning(self, on: bool) -> None:
        self.scanning = on
        if not on:
            self._scan_stopped = False

    def _on_scan_started(self) -> None:
        self._set_scanning(True)
        self.scan_started.emit()

    def _on_scan_progress(self, done: int, total: int) -> None:
        self._set_scanning(True)
        self.scan_progress.emit(done, total)

    def _on_scan_finished(self, report: ScanReport) -> None:
        self.message.emit("Scan stopped" if self._scan_stopped else report.describe())
        self._set_scanning(self._service.is_scanning())
        self._refresh_timer.start()
        self.scan_finished.emit(report)

    def _on_scan_failed(self, why: str) -> None:
        if why != "cancelled":
            self.message.emit(printable(f"Library scan failed: {why}"))
        self._set_scanning(self._service.is_scanning())
        self.scan_failed.emit(why)

    # ---------------------------------------------------------------------------------- shutdown
    def _on_shutting_down(self) -> None:
        """The library is shutting down: a pending delete goes to the trash, nothing more is asked."""
        if self._closed:
            return
        self.commit_delete()
        self._closed = True
        for timer in (self._search_timer, self._refresh_timer, self._undo_timer):
            timer.stop()
        self.model.close()


def _metadata(path: Path) -> ImageMetadata | None:
    try:
        return read_metadata(path)
    except Exception:  # noqa: BLE001 - unreadable, moved, or not ours: show what the index knows
        log.debug("reading metadata of %s failed", path, exc_info=True)
        return None
