"""The Qt bridge to the image library: a gallery thread, folder watching and a thumbnail pool.

Threads and what each owns:

* The GUI thread owns :class:`GalleryService`, a :class:`~studio.library.gallery.Gallery` for queries
  (:meth:`GalleryService.gallery`) and for the two marks only the catalogue knows (rating, favourite:
  one-row writes, which the library supports from the GUI thread while a scan runs, since a scan holds
  the write lock only to commit a batch), and the ``QFileSystemWatcher``.
* A one-thread :class:`~studio.worker.tasks.TaskPool` (the gallery thread) runs a
  :class:`~studio.worker.gallery_writer.GalleryWriter` with its own ``Gallery`` (sqlite3 objects stay in
  the thread that made them, and a one-thread pool never changes thread). Every other write is submitted
  to it, in order: scans, folder changes, indexing of changed files, forgetting trashed files. Writes
  submitted before a shutdown still happen (the shutdown waits for them, then closes the database in that
  thread); scans and indexing do not.
* A small :class:`~studio.worker.tasks.TaskPool` makes thumbnails (via
  :class:`~studio.library.thumbnails.ThumbnailCache`) and decodes them into QImages; a one-thread pool
  decodes the selected image for the detail pane. Thumbnail requests are served newest first, so the rows
  on screen come before the ones scrolled past.

Folder watching: the writer keeps a snapshot of every library folder (file name -> size, mtime) and
asks the GUI thread to watch those directories. A change notification marks the directory dirty; after
a short quiet time (debounced) the writer compares the directory with its snapshot and calls
``Gallery.index_file`` for the files that appeared, changed or went away, then ``library_changed`` is
emitted. A file still being written (not readable yet) is looked at again a few times.

Other writers: the catalogue is one SQLite file, and another process may write it too (``studio
gallery scan`` in a terminal, a second window). The GUI thread asks SQLite every :data:`POLL_MS`
whether any other connection committed (:meth:`~studio.library.gallery.Gallery.data_version`: one
header read, no table touched) and emits ``library_changed`` when one did, so those images appear by
themselves; folders another process added or removed are then watched or dropped like our own. The
same poll shows a long scan's batches as they are committed, not only when it ends.

A damaged catalogue (:class:`~studio.library.gallery.CatalogueDamagedError`, found on opening, by the
first reads, or by any query or task later) is rebuilt by itself, once a session: the GUI thread swaps
its Gallery for an empty in-memory stand-in and closes the file, the gallery thread closes its own
connection and moves the file aside (:func:`~studio.library.gallery_repair.rebuild_damaged`, keeping the
folders), then the GUI opens the fresh catalogue, says once what happened and where the old file is
(``message``), and rescans. Every connection is closed before the move because SQLite deletes a ``-wal``
by name when the last connection to a file closes; none of them writes to the damaged file as it closes
(no ``PRAGMA optimize``). The repair names the file found damaged (its st_dev/st_ino): should
``studio gallery repair`` in a terminal have rebuilt it meanwhile, that new catalogue is used, not moved
aside too, and the two never repair at once (a lock beside the file). The view's queries go through
:class:`~studio.worker.gallery_reader.CatalogueReader`, which answers empty rather than raise while the
repair runs. The app stays up whatever the file holds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QFileSystemWatcher, QObject, QTimer, Signal
from PySide6.QtGui import QImage

from studio.library.display import printable, typed_first_line
from studio.library.gallery import IMAGE_SUFFIXES, CatalogueDamagedError, Gallery, GalleryError, ScanReport
from studio.library.gallery_repair import RecoveryReport
from studio.library.thumbnails import ThumbnailCache
from studio.worker.gallery_images import read_qimage
from studio.worker.gallery_reader import CatalogueReader
from studio.worker.gallery_writer import GalleryWriter, WriterEvents, norm
from studio.worker.tasks import TaskContext, TaskPool

__all__ = ["IMAGE_SUFFIXES", "CatalogueReader", "GalleryService"]

log = logging.getLogger(__name__)

DEBOUNCE_MS = 300
"""Quiet time after the last change notification before a directory is looked at."""
MAX_DELAY_MS = 2000
"""A directory that keeps changing (a long copy) is still looked at this often."""
RETRY_MS = 2000
"""A new file that could not be read yet (still being written) is looked at again after this."""
POLL_MS = 1000
"""How often the GUI thread checks whether another connection (another process) changed the catalogue."""
MAX_RECOVERIES = 1
"""Rebuilds of a damaged catalogue per session (see GalleryService._begin_recovery)."""
MAX_PENDING_THUMBNAILS = 512
PREVIEW_MAX_SIDE = 2048


class GalleryService(QObject):
    """The image library for the GUI: queries, scans, watching, thumbnails. Use from the GUI thread.

    Every signal is emitted in the GUI thread.
    """

    scan_started = Signal()
    scan_progress = Signal(int, int)  # done, total
    scan_finished = Signal(object)  # ScanReport
    scan_failed = Signal(str)
    library_changed = Signal()  # images added, updated or removed, or folders changed
    folders_changed = Signal()
    image_changed = Signal(int)  # a rating or favourite was saved (image id)
    thumbnail_ready = Signal(int, QImage)  # image id, thumbnail decoded in a pool thread
    thumbnail_failed = Signal(int, str)  # image id, why
    thumbnail_dropped = Signal(int)  # image id: request dropped unserved (too many pending); ask again
    preview_ready = Signal(str, QImage)  # path, decoded image (at most PREVIEW_MAX_SIDE)
    preview_failed = Signal(str, str)  # path, why
    message = Signal(str)
    catalogue_rebuilt = Signal(object)  # RecoveryReport: a damaged catalogue was moved aside and rebuilt
    shutting_down = Signal()  # first thing shutdown() does: views finish pending work (a delete)

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
    ):
        super().__init__(parent)
        app = QCoreApplication.instance()
        if app is not None:
            # Connected before the pools are made, which stop themselves when the app quits too: slots
            # run in the order they were connected, and this shutdown must come first (it lets the
            # writes already submitted finish; a pool's own shutdown would drop them).
            app.aboutToQuit.connect(self.shutdown)
        self._db_path = Path(db_path)
        self._db_path.parent.mkdir(parents=True, exist_ok=True)
        self._thumbnail_dir = Path(thumbnail_dir)
        self._closed = False
        self._stopped: bool | None = None
        self._closing = threading.Event()
        self._pinned: set[Path] = set()
        self._scans: list[threading.Event] = []

        self._recovering = False
        self._recoveries = 0
        self._readers = 0  # how many times the GUI's Gallery was replaced: tells stale damage reports apart
        self.recovery: RecoveryReport | None = None
        """The last rebuild of a damaged catalogue this session (None: none was needed)."""
        self._seen_version: int | None = None
        self._known_folders: set[Path] = set()
        # The GUI's reader first: it creates the schema before the writer's connection opens.  Its first
        # reads happen inside _open_reader: a file that opens cleanly can still fail its first query.
        self._db, damage = self._open_reader()
        self._reader = CatalogueReader(lambda: self._db)
        self._thumbs = ThumbnailCache(self._thumbnail_dir)

        events = WriterEvents(
            scan_started=self.scan_started.emit,
            scan_progress=self.scan_progress.emit,
            indexed=self._on_indexed,
            folders_changed=self._on_folders_changed,
            watch=self._on_watch,
            retry=self._on_retry,
        )
        self._writer = GalleryWriter(self._db_path, self._closing, events, skip=[self._thumbnail_dir])
        self._tasks = TaskPool("studio-gallery", 1, parent=self)

        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._on_directory_changed)
        self._dirty: set[str] = set()
        self._dirty_since = 0.0
        self._debounce = QTimer(self, singleShot=True, interval=max(0, int(debounce_ms)))
        self._debounce.timeout.connect(self._flush_dirty)
        self._retry_timer = QTimer(self, singleShot=True, interval=RETRY_MS)
        self._retry_timer.timeout.connect(self._flush_dirty)
        self._poll_timer = QTimer(self, interval=max(1, int(poll_ms)))
        self._poll_timer.timeout.connect(self.check_for_changes)
        if poll_ms > 0:
            self._poll_timer.start()

        threads = thumbnail_threads or max(1, min(4, (os.cpu_count() or 2) - 1))
        self._thumb_pool = TaskPool("studio-thumbnail", threads, parent=self)
        self._preview_pool = TaskPool("studio-preview", 1, parent=self)
        self._thumb_lock = threading.Lock()
        self._thumb_pending: OrderedDict[int, tuple[str, int | None]] = OrderedDict()
        self._preview_wanted: str | None = None

        if damage is not None:  # rebuilt first; the rebuild scans and watches
            self._begin_recovery(damage)
        elif scan_on_start:  # finds what changed while the app was closed, then watches
            self.scan()
        else:  # watch only: changes made while the app was closed wait for the next scan
            self._submit(self._writer.watch)

    # ----------------------------------------------------------------------- a damaged catalogue
    def _open_reader(self) -> tuple[Gallery, CatalogueDamagedError | None]:
        """The GUI thread's Gallery, and the damage that makes the catalogue unusable (None when none);
        also reads the data version and the folders (``_seen_version``, ``_known_folders``).

        Opening checks the header, the schema version and the layout; a file can pass and still fail
        its first query (a damaged index page, a renamed column), so the first reads happen here, and
        damage in them is damage like any other.  Whatever the file holds, the app stays up: a damaged
        file gets an empty stand-in until it is rebuilt (:meth:`_begin_recovery`), one that cannot be
        used otherwise (a newer version's, another program's database) an empty stand-in and one
        message.
        """
        try:
            reader = Gallery(self._db_path)
        except CatalogueDamagedError as exc:
            return self._stand_in(), exc
        except GalleryError as exc:
            log.warning("the gallery catalogue cannot be used", exc_info=True)
            self._say_later(f"The gallery is unavailable: {typed_first_line(exc)}")
            return self._stand_in(), None
        try:
            version, folders = reader.data_version(), set(reader.folders())
        except CatalogueDamagedError as exc:
            reader.close(optimize=False)
            return self._stand_in(), exc
        except Exception:  # noqa: BLE001 - locked or unreadable for now: the poll looks again
            log.warning("the first read of the gallery catalogue failed", exc_info=True)
            version, folders = None, set()
        reader.on_damaged = self._on_damage_seen  # from now on, damage met anywhere starts the repair
        self._seen_version, self._known_folders = version, folders
        return reader, None

    def _stand_in(self) -> Gallery:
        """An empty, private catalogue that answers the GUI's queries while the file cannot."""
        stand_in = Gallery(":memory:")
        self._seen_version, self._known_folders = stand_in.data_version(), set()
        return stand_in

    def _say_later(self, text: str) -> None:
        """Emit ``message`` once control is back in the event loop: said while the service is being
        made, it would reach no one (the view connects to it afterwards)."""

        def say() -> None:
            if not self._closed:
                self.message.emit(printable(text))

        QTimer.singleShot(0, self, say)

    def _on_damage_seen(self, exc: CatalogueDamagedError) -> None:
        """The GUI's Gallery met damage inside one of its calls: repair once that call is over (unless
        that Gallery has been replaced meanwhile, by a repair already under way)."""
        reader = self._readers

        def repair() -> None:
            if reader == self._readers:
                self._begin_recovery(exc)

        QTimer.singleShot(0, self, repair)

    def _begin_recovery(self, damage: CatalogueDamagedError | str) -> None:
        """Close the GUI's connection (an empty stand-in answers queries meanwhile) and have the gallery
        thread, which closes its own first, move the damaged file aside and make a fresh one.

        At most :data:`MAX_RECOVERIES` rebuilds a session: a catalogue damaged again right away points
        at something a rebuild does not fix (the disk), and moving files aside in a loop would not help.
        """
        reason = damage.reason if isinstance(damage, CatalogueDamagedError) else str(damage)
        damaged_file = damage.file_id if isinstance(damage, CatalogueDamagedError) else None
        if self._closed or self._recovering:
            return
        if self._recoveries >= MAX_RECOVERIES:
            self._swap_reader(self._stand_in())
            self.message.emit(
                printable(
                    f"The gallery catalogue {self._db_path} is damaged again ({reason}); it was rebuilt once "
                    "already: restart the app, or run `studio gallery repair`"
                )
            )
            self.library_changed.emit()
            return
        self._recovering = True
        self._recoveries += 1
        self.cancel_scan()
        self._swap_reader(self._stand_in())  # closes the GUI's connection to the file, writing nothing
        self.library_changed.emit()
        self._tasks.submit(
            self._writer.recover,
            reason,
            sorted(self._pinned),
            damaged_file,
            on_result=self._on_recovered,
            on_error=self._on_recovery_failed,
        )

    def _on_recovered(self, report: RecoveryReport) -> None:
        self._recovering = False
        self.recovery = report
        if self._closed:
            return
        reader, damage = self._open_reader()
        self._swap_reader(reader)
        self.message.emit(printable(report.describe()))
        self.catalogue_rebuilt.emit(report)
        self.folders_changed.emit()
        self.library_changed.emit()
        if damage is not None:
            self._begin_recovery(damage)
        else:
            self.scan()  # the images are the truth: catalogue them again, then watch

    def _on_recovery_failed(self, exc: BaseException) -> None:
        log.warning("rebuilding the damaged gallery catalogue failed", exc_info=exc)
        why = typed_first_line(exc)
        self._recovering = False
        self._recoveries = MAX_RECOVERIES  # no second try this session: the gallery stays empty
        if not self._closed:
            self.message.emit(
                printable(f"The gallery catalogue {self._db_path} is damaged and could not be rebuilt: {why}")
            )

    def _swap_reader(self, reader: Gallery) -> None:
        """Use ``reader`` (made by _open_reader or _stand_in, which read its version and folders) and close
        the old one; only for a repair, so without ``PRAGMA optimize``: the file may be damaged."""
        old, self._db = self._db, reader
        self._readers += 1
        with contextlib.suppress(Exception):
            old.close(optimize=False)

    # --------------------------------------------------------------------------------- queries
    def gallery(self) -> CatalogueReader:
        """The GUI thread's catalogue, for queries (search, count, get, get_by_path, models, folders):
        they never raise CatalogueDamagedError (the repair starts, and an empty answer comes back).
        Change things through the service, not through it."""
        return self._reader

    @property
    def thumbnail_dir(self) -> Path:
        return self._thumbnail_dir

    def folders(self) -> list[Path]:
        """The library's folders; [] while the catalogue is damaged (its repair starts)."""
        return [] if self._closed else self._reader.folders()

    def is_pinned(self, path: str | os.PathLike[str]) -> bool:
        return norm(path) in self._pinned

    def is_scanning(self) -> bool:
        return bool(self._scans)

    def watched_directories(self) -> list[str]:
        return [] if self._closed else sorted(self._watcher.directories())

    def check_for_changes(self) -> bool:
        """Has another connection (another process, or our scanning thread mid-scan) committed to the
        catalogue since the last look? Then library_changed (and folders_changed, when the folders
        differ) is emitted and True returned. Runs every ``poll_ms`` by itself; call it to look now
        (e.g. when the gallery page is shown)."""
        return self._catch_up(force=False)

    # ---------------------------------------------------------------------------------- writes
    def scan(self, folders: Iterable[str | os.PathLike[str]] | None = None) -> None:
        """Scan the library (or some of its folders) in the gallery thread: scan_started, scan_progress...,
        then scan_finished(ScanReport) or scan_failed(str); library_changed when anything changed."""
        if self._closed:
            return
        cancel = threading.Event()
        self._scans.append(cancel)
        wanted = [norm(f) for f in folders] if folders is not None else None
        self._submit(self._writer.scan, wanted, cancel, scan=cancel)

    def cancel_scan(self) -> None:
        for cancel in self._scans:
            cancel.set()

    def add_folder(self, path: str | os.PathLike[str], *, scan: bool = True) -> Path:
        """Add a folder to the library and (by default) scan it; folders_changed follows."""
        folder = norm(path)
        if self._closed:
            return folder
        cancel = None
        if scan:
            cancel = threading.Event()
            self._scans.append(cancel)
        self._submit(self._writer.add_folder, folder, cancel, scan=cancel)
        return folder

    def ensure_folder(self, path: str | os.PathLike[str]) -> Path:
        """Keep `path` (the app's output folder) in the library: added and scanned if missing, never removed."""
        folder = norm(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._pinned.add(folder)
        if folder not in {norm(f) for f in self.folders()}:
            self.add_folder(folder)
        return folder

    def remove_folder(self, path: str | os.PathLike[str]) -> bool:
        """Take a folder (and its images) out of the library; its files are left alone. False for the
        output folder, which always stays."""
        folder = norm(path)
        if self._closed:
            return False
        if folder in self._pinned:
            self.message.emit(f"{folder} is the output folder: it always stays in the library")
            return False
        self._submit(self._writer.remove_folder, folder)
        return True

    def index_paths(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Index these files now (e.g. a just-saved image) rather than waiting for the watcher."""
        if not self._closed:
            self._submit(self._writer.index_paths, [Path(p) for p in paths])

    def forget(self, path: str | os.PathLike[str]) -> None:
        """Drop a file from the catalogue (it was deleted or trashed)."""
        if self._stopped is None:  # also while shutting down: the gallery thread still writes it
            self._submit(self._writer.forget, Path(path))

    def set_rating(self, image_id: int, rating: int) -> bool:
        """Save a rating (0 = none .. 5) now; image_changed(id) follows. False (and a message) on failure."""
        return self._mark(image_id, lambda db: db.set_rating(image_id, max(0, min(5, int(rating)))))

    def set_favourite(self, image_id: int, favourite: bool) -> bool:
        """Save the favourite mark now; image_changed(id) follows. False (and a message) on failure."""
        return self._mark(image_id, lambda db: db.set_favourite(image_id, bool(favourite)))

    def _mark(self, image_id: int, write) -> bool:
        if self._closed:
            return False
        try:
            write(self._db)
        except CatalogueDamagedError:  # the repair it starts says what happened
            self.message.emit("Could not save the rating: the gallery catalogue is damaged and is being rebuilt")
            return False
        except Exception as exc:  # noqa: BLE001 - a locked or broken database: say so, keep going
            log.warning("saving a mark for image %d failed", image_id, exc_info=True)
            self.message.emit(f"Could not save the rating: {typed_first_line(exc)}")
            return False
        self.image_changed.emit(image_id)
        return True

    def trash(self, path: str | os.PathLike[str]) -> str | None:
        """Send a file to the desktop's trash (send2trash) and forget it; an error line or None.

        Runs in the calling (GUI) thread: on the same volume it is a rename. A file already gone is
        just forgotten.
        """
        from send2trash import send2trash

        path = Path(path)
        try:
            if path.exists():
                send2trash(str(path))
        except Exception as exc:  # noqa: BLE001 - any failure is reported, the file stays
            return f"Could not move {path.name} to the trash: {typed_first_line(exc)}"
        self.forget(path)
        return None

    # ------------------------------------------------------------------------------ thumbnails
    def request_thumbnail(self, image_id: int, path: str | os.PathLike[str], size: int | None = None) -> None:
        """Make (or read from the cache) the thumbnail of `path` in the pool; thumbnail_ready(id, QImage)
        follows in the GUI thread (thumbnail_failed when the image cannot be read). With `size`, the
        QImage is at most that many pixels on its longer side. Newest requests are served first."""
        if self._closed:
            return
        dropped = None
        with self._thumb_lock:
            if image_id in self._thumb_pending:
                self._thumb_pending.move_to_end(image_id)
                self._thumb_pending[image_id] = (str(path), size)
                return
            self._thumb_pending[image_id] = (str(path), size)
            if len(self._thumb_pending) > MAX_PENDING_THUMBNAILS:
                dropped, _ = self._thumb_pending.popitem(last=False)
        self._thumb_pool.submit(self._make_thumbnail, on_result=self._on_thumbnail_made)
        if dropped is not None:
            self.thumbnail_dropped.emit(dropped)

    def request_preview(self, path: str | os.PathLike[str], max_side: int = PREVIEW_MAX_SIDE) -> None:
        """Decode `path` for display in a pool thread: preview_ready(path, QImage). Only the latest
        request matters: older ones not started yet are skipped."""
        if self._closed:
            return
        self._preview_wanted = str(path)
        self._preview_pool.submit(self._make_preview, str(path), max_side, on_result=self._on_preview_made)

    def _make_thumbnail(self, _context: TaskContext) -> tuple[int, QImage, str] | None:  # in a pool thread
        """The newest request's thumbnail: (image id, image, why it failed or "")."""
        with self._thumb_lock:
            if self._closed or not self._thumb_pending:
                return None
            image_id, (path, size) = self._thumb_pending.popitem(last=True)
        try:
            # The stored size that covers `size` (a larger cached copy when the grid's cells grew),
            # scaled down to `size` here: a thumbnail is never enlarged for display.
            thumb = self._thumbs.get_or_make(Path(path), self._thumbs.size_for(size) if size else None)
            image = read_qimage(thumb, size)
            error = "" if not image.isNull() else f"cannot decode the thumbnail of {Path(path).name}"
        except Exception as exc:  # noqa: BLE001 - ImageLoadError and I/O errors alike
            image, error = QImage(), typed_first_line(exc)
        return image_id, image, error

    def _make_preview(self, _context: TaskContext, path: str, max_side: int) -> tuple[str, QImage, str] | None:
        """In the preview thread: (path, image, why it failed or ""); None for a request superseded."""
        if self._closed or path != self._preview_wanted:
            return None
        image = read_qimage(path, max_side)
        return path, image, "" if not image.isNull() else f"cannot read {Path(path).name}"

    def _on_thumbnail_made(self, made: tuple[int, QImage, str] | None) -> None:
        if made is None or self._closed:
            return
        image_id, image, error = made
        if error:
            self.thumbnail_failed.emit(image_id, error)
        else:
            self.thumbnail_ready.emit(image_id, image)

    def _on_preview_made(self, made: tuple[str, QImage, str] | None) -> None:
        if made is None or self._closed:
            return
        path, image, error = made
        if error:
            self.preview_failed.emit(path, error)
        else:
            self.preview_ready.emit(path, image)

    # -------------------------------------------------------------------------------- shutdown
    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Finish pending work and stop every thread; True when the gallery thread stopped in time.

        Emits shutting_down first (a view trashes its pending delete). A running scan is cancelled;
        folder changes and forgets already asked for are written, then the gallery thread closes its
        database. Should the gallery thread not get there within `timeout_ms` (a task that cannot be
        interrupted), the writes still queued behind it are dropped and False is returned. Safe to call
        more than once.
        """
        if self._stopped is not None:
            return self._stopped
        self.shutting_down.emit()
        self._closed = True
        self._closing.set()
        self.cancel_scan()
        # The watcher and the timers are deleted now, here in the GUI thread: if the service itself were
        # later freed from another thread (Python's cyclic GC runs in whichever thread allocates), the
        # watcher's socket notifier would be torn down there and corrupt memory.
        for obj in (self._debounce, self._retry_timer, self._poll_timer, self._watcher):
            shiboken6.delete(obj)
        with self._thumb_lock:
            self._thumb_pending.clear()
        deadline = time.monotonic() + max(0, int(timeout_ms)) / 1000
        self._thumb_pool.shutdown(_left_ms(deadline))
        self._preview_pool.shutdown(_left_ms(deadline))
        # The writes already submitted run first (scans and indexing skip themselves now), then the
        # database is closed in its own thread; the pool is stopped once that is done.
        closing = self._tasks.submit(self._writer.close)
        done = True
        if closing is not None and closing.future is not None:
            finished, _ = concurrent.futures.wait([closing.future], timeout=_left_ms(deadline) / 1000)
            done = bool(finished)
        stopped = self._tasks.shutdown(_left_ms(deadline)) and done
        if not stopped:
            log.warning("the gallery thread did not stop within %d ms", timeout_ms)
        with contextlib.suppress(Exception):
            self._db.close()
        self._stopped = stopped
        return stopped

    # ------------------------------------------------------------------------------- internals
    def _submit(self, fn: Callable[..., Any], *args: Any, scan: threading.Event | None = None) -> None:
        """Run a writer method in the gallery thread. ``scan``: the cancel flag of the scan it runs (its
        report is the task's result), which ends with scan_finished or scan_failed."""
        if scan is None:
            on_result, on_cancelled = None, None
        else:

            def on_result(report: ScanReport | None) -> None:
                self._scan_done(scan, report)

            def on_cancelled() -> None:
                self._scan_done(scan, failure="cancelled")

        self._tasks.submit(
            fn,
            *args,
            on_result=on_result,
            on_error=lambda exc: self._on_task_failed(exc, scan),
            on_cancelled=on_cancelled,
        )

    def _on_task_failed(self, exc: BaseException, scan: threading.Event | None) -> None:
        """A gallery task raised: a damaged catalogue is repaired (the writer has closed its connection),
        a scan asked for fails with the reason, any other task says it in a message."""
        if isinstance(exc, CatalogueDamagedError):
            self._begin_recovery(exc)
            if scan is not None:
                self._scan_done(scan, failure="cancelled")  # the rebuild scans again
            return
        log.warning("a gallery task failed", exc_info=exc)
        if scan is not None:
            self._scan_done(scan, failure=typed_first_line(exc))
        else:
            self.message.emit(printable(f"Library: {typed_first_line(exc)}"))

    def _scan_done(self, cancel: threading.Event, report: ScanReport | None = None, failure: str = "") -> None:
        with contextlib.suppress(ValueError):
            self._scans.remove(cancel)
        if report is not None:
            self.scan_finished.emit(report)
        else:
            self.scan_failed.emit(failure or "cancelled")

    def _on_indexed(self, _count: int) -> None:
        self._catch_up(force=True)

    def _catch_up(self, *, force: bool) -> bool:
        """Emit library_changed when the catalogue changed (or `force`: our thread says it did), and
        remember the version seen, so the poll does not announce the same commit a second time."""
        if self._closed or self._recovering:
            return False
        try:
            version = self._db.data_version()
            folders = set(self._db.folders()) if force or version != self._seen_version else self._known_folders
        except Exception:  # noqa: BLE001 - a locked or vanished file: the next look tries again
            log.debug("checking the catalogue for changes failed", exc_info=True)
            if force:
                self.library_changed.emit()  # our thread did change it: the view still re-reads
            return force
        if version == self._seen_version and not force:
            return False
        self._seen_version = version
        if folders != self._known_folders:
            self._known_folders = folders
            self._submit(self._writer.sync_folders)  # the gallery thread watches what another process added
            self.folders_changed.emit()
        self.library_changed.emit()
        return True

    def _on_folders_changed(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self._known_folders = set(self._db.folders())
        self.folders_changed.emit()

    def _on_watch(self, dirs: list[str]) -> None:
        if self._closed:
            return
        current = set(self._watcher.directories())
        wanted = set(dirs)
        if current - wanted:
            self._watcher.removePaths(sorted(current - wanted))
        added = sorted(wanted - current)
        if added:
            failed = set(self._watcher.addPaths(added))
            if failed:
                log.info("cannot watch %d folders (e.g. %s)", len(failed), next(iter(failed)))
            # Files that arrived between the snapshot and now sent no notification: compare once.
            self._mark_dirty([d for d in added if d not in failed])

    def _on_retry(self, dirs: list[str]) -> None:
        if not self._closed:
            self._dirty.update(dirs)
            self._retry_timer.start()

    def _on_directory_changed(self, path: str) -> None:
        self._mark_dirty([path])

    def _mark_dirty(self, dirs: list[str]) -> None:
        if self._closed or not dirs:
            return
        now = time.monotonic()
        if not self._dirty:
            self._dirty_since = now
        self._dirty.update(dirs)
        if not self._debounce.isActive() or (now - self._dirty_since) * 1000 < MAX_DELAY_MS:
            self._debounce.start()  # (re)start: waits for a quiet moment, but no longer than MAX_DELAY_MS

    def _flush_dirty(self) -> None:
        if self._closed or not self._dirty:
            return
        dirs, self._dirty = sorted(self._dirty), set()
        self._submit(self._writer.index_dirs, dirs)


def _left_ms(deadline: float) -> int:
    return max(0, round((deadline - time.monotonic()) * 1000))
