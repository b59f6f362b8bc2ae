"""The Qt bridge to the image library: a scanning thread, folder watching and a thumbnail pool.

Threads and what each owns:

* The GUI thread owns :class:`GalleryService`, a :class:`~studio.library.gallery.Gallery` for queries
  (:meth:`GalleryService.gallery`) and for the two marks only the catalogue knows (rating, favourite:
  one-row writes, which the library supports from the GUI thread while a scan runs, since a scan holds
  the write lock only to commit a batch), and the ``QFileSystemWatcher``.
* One ``QThread`` owns a :class:`GalleryWorker` with its own ``Gallery`` (sqlite3 objects stay in the
  thread that made them). Every other write goes through it, in order: scans, folder changes, indexing
  of changed files, forgetting trashed files. Writes posted before a shutdown still happen (the thread
  drains its queue before it closes the database); scans and indexing do not.
* A small ``ThreadPoolExecutor`` makes thumbnails (via :class:`~studio.library.thumbnails.ThumbnailCache`)
  and decodes them into QImages; one more thread decodes the selected image for the detail pane.
  Thumbnail requests are served newest first, so the rows on screen come before the ones scrolled past.

Folder watching: the worker keeps a snapshot of every library folder (file name -> size, mtime) and
asks the GUI thread to watch those directories. A change notification marks the directory dirty; after
a short quiet time (debounced) the worker compares the directory with its snapshot and calls
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
:class:`CatalogueReader`, which answers empty rather than raise while the repair runs. The app stays up
whatever the file holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QFileSystemWatcher,
    QObject,
    QSize,
    Qt,
    QThread,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QImage, QImageReader

from studio.library.display import printable, typed_first_line
from studio.library.folder_listing import DirListing, is_under, list_dir
from studio.library.gallery import (
    IMAGE_SUFFIXES,
    CatalogueDamagedError,
    Gallery,
    GalleryError,
    GalleryImage,
    Query,
    ScanReport,
)
from studio.library.gallery_db import FileId
from studio.library.gallery_repair import RecoveryReport, rebuild_damaged
from studio.library.images import load_image
from studio.library.thumbnails import ThumbnailCache
from studio.worker.qimage import pil_to_qimage

__all__ = ["IMAGE_SUFFIXES", "CatalogueReader", "GalleryService", "GalleryWorker", "describe_report"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DEBOUNCE_MS = 300
"""Quiet time after the last change notification before a directory is looked at."""
MAX_DELAY_MS = 2000
"""A directory that keeps changing (a long copy) is still looked at this often."""
RETRY_MS = 2000
"""A new file that could not be read yet (still being written) is looked at again after this."""
MAX_RETRIES = 5
FRESH_S = 30.0
"""Only files modified this recently are retried: an old unreadable file is just unreadable."""
MAX_WATCHED_DIRS = 4096
"""inotify watches are a per-user resource; beyond this, changes are found by Rescan only."""
POLL_MS = 1000
"""How often the GUI thread checks whether another connection (another process) changed the catalogue."""
MAX_RECOVERIES = 1
"""Rebuilds of a damaged catalogue per session (see GalleryService._begin_recovery)."""
RECOVERY_LOCK_WAIT_S = 60.0
"""How long the gallery thread waits for another process's repair of the catalogue (`studio gallery
repair`) to finish before giving up on its own; a shutdown ends the wait."""
PROGRESS_INTERVAL_S = 0.05
MAX_PENDING_THUMBNAILS = 512
PREVIEW_MAX_SIDE = 2048

_CLOSED = object()


def describe_report(report: ScanReport) -> str:
    """One line for the status bar. A scan that found nothing to change says so, with how many files
    it checked: after another process catalogued the images (already shown), "0 added" alone reads as
    if the scan had missed them. Skipped files are counted as unreadable, the first with its reason."""
    if not (report.added or report.updated or report.removed or report.unreadable):
        files = f"{report.unchanged:,} file{'s' if report.unchanged != 1 else ''}"
        return f"Library scanned: up to date, no changes ({files} checked, {report.seconds:.1f} s)"
    parts = [f"{report.added} added", f"{report.updated} updated", f"{report.removed} removed"]
    if report.unreadable:
        parts.append(f"{report.unreadable} unreadable")
    text = f"Library scanned: {', '.join(parts)} ({report.seconds:.1f} s)"
    if report.skipped:  # the first reason, file names shown harmlessly (they may hold anything)
        path, reason = report.skipped[0]
        text += f"; e.g. {printable(os.path.basename(path))}: {printable(reason)}"
    return text


def _norm(path: str | os.PathLike[str]) -> Path:
    """Absolute, user-expanded, symlinks resolved: one spelling per folder."""
    return Path(path).expanduser().resolve()


# -------------------------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class _Task:
    kind: str
    args: tuple[Any, ...] = ()


class GalleryWorker(QObject):
    """Lives in the gallery thread and owns the writing ``Gallery``; made and driven by :class:`GalleryService`.

    Every slot runs in that thread. Signals are relayed to the GUI thread through queued connections.
    """

    scan_started = Signal()
    scan_progress = Signal(int, int)
    scan_finished = Signal(object)  # ScanReport
    scan_failed = Signal(str)
    indexed = Signal(int)  # how many images were added, updated or removed
    folders_changed = Signal()
    watch = Signal(list)  # every directory that should be watched now (str)
    retry = Signal(list)  # directories to look at again later (str)
    failed = Signal(str)
    damaged = Signal(object)  # CatalogueDamagedError: the catalogue is damaged; our connection to it is closed
    recovered = Signal(object)  # RecoveryReport: the damaged catalogue was moved aside and a fresh one made
    recovery_failed = Signal(str)

    def __init__(self, db_path: Path, closing: threading.Event, skip: Iterable[Path] = ()):
        super().__init__()
        self._db_path = db_path
        self._closing = closing
        self._skip = {_norm(p) for p in skip}
        self._db: Gallery | None = None
        self._roots: list[Path] = []
        self._dirs: dict[Path, DirListing] = {}
        self._retries: dict[Path, int] = {}
        self._unsaved_folders: list[Path] = []  # added while the catalogue was damaged: kept for the rebuild

    # ------------------------------------------------------------------------------------ plumbing
    def _gallery(self) -> Gallery:
        if self._db is None:
            self._db = Gallery(self._db_path)
            self._roots = [_norm(f) for f in self._db.folders()]
        return self._db

    def close(self, *, optimize: bool = True) -> None:
        """Close the database; called in the gallery thread once its event loop has ended.
        ``optimize=False`` for a file found damaged: nothing more is written to it."""
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close(optimize=optimize)
            except Exception:  # noqa: BLE001 - closing must never raise during shutdown
                log.debug("closing the gallery failed", exc_info=True)

    @Slot(object)
    def handle(self, task: _Task) -> None:
        writes = {"forget", "add_folder", "remove_folder"}
        if self._closing.is_set() and task.kind not in writes:
            if task.kind == "scan":
                self.scan_failed.emit("cancelled")
            return  # shutting down: scans and indexing are skipped, writes still happen
        asks_scan = task.kind == "scan" or (task.kind == "add_folder" and task.args[1] is not None)
        try:
            getattr(self, f"_do_{task.kind}")(*task.args)
        except CatalogueDamagedError as exc:
            self._on_damaged(task, exc)
            if asks_scan:
                self.scan_failed.emit("cancelled")  # the rebuild scans again; the service counts this one
        except Exception as exc:  # noqa: BLE001 - one failed task must not stop the thread
            log.warning("gallery task %s failed", task.kind, exc_info=True)
            if asks_scan:
                self.scan_failed.emit(typed_first_line(exc))  # the service counts the scan it asked for
            else:
                self.failed.emit(printable(f"Library: {typed_first_line(exc)}"))

    def _on_damaged(self, task: _Task, exc: CatalogueDamagedError) -> None:
        """Close our connection to the damaged file (it is about to be moved aside) and tell the
        service, which repairs it once every connection is closed.  A folder being added is kept for
        the rebuild, so the user's request is not lost."""
        log.warning("gallery task %s found the catalogue damaged: %s", task.kind, exc.reason)
        if task.kind == "add_folder" and task.args[0] not in self._unsaved_folders:
            self._unsaved_folders.append(task.args[0])
        self.close(optimize=False)
        self.damaged.emit(exc)

    # ---------------------------------------------------------------------------------------- tasks
    def _do_recover(self, reason: str, folders: list[Path], damaged_file: FileId | None = None) -> None:
        """Move the damaged catalogue aside and make a fresh one holding the folders the old one still
        lists, plus ``folders`` and any added meanwhile (the service closed its own connection first and
        scans them once it has opened the new file).  ``damaged_file`` is the identity of the file found
        damaged: if another process (``studio gallery repair``) has rebuilt it meanwhile, the new file is
        used as it is (never moved aside) and only gets the folders."""
        self.close(optimize=False)
        self._roots, self._dirs, self._retries = [], {}, {}
        wanted = [*folders, *self._unsaved_folders]
        try:
            report = rebuild_damaged(
                self._db_path,
                folders=wanted,
                reason=reason,
                damaged_file=damaged_file,
                scan=False,
                cancel=self._closing,
                wait=RECOVERY_LOCK_WAIT_S,
            )
        except Exception as exc:  # noqa: BLE001 - the app stays up, with an empty gallery, and says why
            log.warning("rebuilding the damaged gallery catalogue failed", exc_info=True)
            self.recovery_failed.emit(typed_first_line(exc))
            return
        self._unsaved_folders = []
        self.recovered.emit(report)

    def _do_watch(self) -> None:
        """Snapshot every library folder and publish the directories to watch (no indexing)."""
        self._gallery()
        for root in self._roots:
            self._snapshot(root)
        self._publish()

    def _do_scan(self, folders: list[Path] | None, cancel: threading.Event) -> None:
        db = self._gallery()
        self.scan_started.emit()
        roots = [_norm(f) for f in folders] if folders else list(self._roots)
        for root in roots:  # before the scan: files arriving during it show up in the next comparison
            self._snapshot(root)
        last = 0.0

        def progress(p) -> None:
            nonlocal last
            now = time.monotonic()
            if p.done >= p.total or now - last >= PROGRESS_INTERVAL_S:
                last = now
                self.scan_progress.emit(int(p.done), int(p.total))

        try:
            report = db.scan(list(folders) if folders else None, progress=progress, cancel=cancel)
        finally:
            self._publish()
        self.scan_finished.emit(report)
        changed = report.added + report.updated + report.removed
        if changed:
            self.indexed.emit(changed)

    def _do_add_folder(self, path: Path, cancel: threading.Event | None) -> None:
        db = self._gallery()
        added = db.add_folder(path)
        self._roots = [_norm(f) for f in db.folders()]
        self.folders_changed.emit()
        if cancel is not None:
            self.handle(_Task("scan", ([added], cancel)))
        else:
            self._snapshot(_norm(added))
            self._publish()

    def _do_remove_folder(self, path: Path) -> None:
        db = self._gallery()
        db.remove_folder(path)
        self._roots = [_norm(f) for f in db.folders()]
        self._forget_outside_roots()
        self.folders_changed.emit()
        self.indexed.emit(1)
        self._publish()

    def _do_sync_folders(self) -> None:
        """Follow folder changes another process made to the catalogue: watch the folders it added
        (indexing what it left out) and forget the snapshot of those it removed."""
        db = self._gallery()
        roots = [_norm(f) for f in db.folders()]
        added = [root for root in roots if root not in self._roots]
        if set(roots) == set(self._roots):
            return
        self._roots = roots
        self._forget_outside_roots()
        if added:  # no snapshot yet: every file is compared with its row (unchanged ones cost a stat)
            self._do_index_dirs([str(root) for root in added])
        self.folders_changed.emit()
        self._publish()

    def _do_forget(self, path: Path) -> None:
        path = Path(path)
        gone = self._gallery().forget(path)
        state = self._dirs.get(_norm(path.parent))
        if state is not None:
            state.files.pop(path.name, None)
        if gone:
            self.indexed.emit(1)

    def _do_index_paths(self, paths: list[Path]) -> None:
        db = self._gallery()
        changed = 0
        for path in paths:
            path = _norm(Path(path).parent) / Path(path).name
            if not self._in_library(path.parent):
                continue
            if db.index_file(path) in ("added", "updated", "removed"):
                changed += 1
            state = self._dirs.get(path.parent)
            if state is not None:  # keep the snapshot in step, so the watcher does not redo it
                with contextlib.suppress(OSError):
                    st = path.stat()
                    state.files[path.name] = (st.st_size, st.st_mtime_ns)
        if changed:
            self.indexed.emit(changed)

    def _do_index_dirs(self, dirs: list[str]) -> None:
        """Compare each directory with its snapshot and index what appeared, changed or went away."""
        db = self._gallery()
        queue = [_norm(d) for d in dirs]
        seen: set[Path] = set()
        changed, dirs_changed, retry = 0, False, set()
        now_ns = time.time_ns()
        while queue and not self._closing.is_set():
            directory = queue.pop()
            if directory in seen or not self._in_library(directory):
                continue
            seen.add(directory)
            old = self._dirs.get(directory)
            new = list_dir(directory, self._skip)
            if new is None:  # the directory went away (or became unreadable): its images with it
                for gone in self._subtree(directory):
                    for name in self._dirs.pop(gone).files:
                        changed += db.index_file(gone / name) != "unchanged"
                dirs_changed = True
                continue
            old_files = old.files if old is not None else {}
            for name in old_files.keys() - new.files.keys():  # deleted or moved away
                self._retries.pop(directory / name, None)
                changed += db.index_file(directory / name) in ("added", "updated", "removed")
            for name, signature in list(new.files.items()):
                if old_files.get(name) == signature:
                    continue
                path = directory / name
                result = db.index_file(path)
                changed += result in ("added", "updated", "removed")
                if result == "unreadable" and now_ns - signature[1] < FRESH_S * 1e9:
                    tries = self._retries.get(path, 0)
                    if tries < MAX_RETRIES:  # maybe still being written: forget it, look again later
                        self._retries[path] = tries + 1
                        del new.files[name]
                        retry.add(str(directory))
                elif result != "unreadable":
                    self._retries.pop(path, None)
            old_subdirs = old.subdirs if old is not None else set()
            for sub in new.subdirs - old_subdirs:  # a new folder: everything in it is new
                queue.append(sub)
                dirs_changed = True
            queue.extend(old_subdirs - new.subdirs)  # folders gone: found unreadable above
            self._dirs[directory] = new
        if changed:
            self.indexed.emit(changed)
        if dirs_changed:
            self._publish()
        if retry:
            self.retry.emit(sorted(retry))

    # ------------------------------------------------------------------------------------- helpers
    def _in_library(self, directory: Path) -> bool:
        return any(is_under(directory, root) for root in self._roots) and not any(
            is_under(directory, s) for s in self._skip
        )

    def _forget_outside_roots(self) -> None:
        """Drop the snapshots of directories no library folder holds any more."""
        for directory in list(self._dirs):
            if not any(is_under(directory, root) for root in self._roots):
                del self._dirs[directory]

    def _subtree(self, directory: Path) -> list[Path]:
        out, stack = [], [directory]
        while stack:
            d = stack.pop()
            if d in self._dirs:
                out.append(d)
                stack.extend(self._dirs[d].subdirs)
        return out

    def _snapshot(self, root: Path) -> None:
        """Walk `root` and record every directory's listing (replacing what was known under it)."""
        for d in [d for d in self._dirs if is_under(d, root)]:
            del self._dirs[d]
        stack = [root]
        while stack:
            directory = stack.pop()
            state = list_dir(directory, self._skip)
            if state is None:
                continue
            self._dirs[directory] = state
            stack.extend(state.subdirs)

    def _publish(self) -> None:
        dirs = sorted(str(d) for d in self._dirs)
        if len(dirs) > MAX_WATCHED_DIRS:
            log.warning("%d library folders: watching the first %d only", len(dirs), MAX_WATCHED_DIRS)
            dirs = dirs[:MAX_WATCHED_DIRS]
        self.watch.emit(dirs)


class _GalleryThread(QThread):
    """Runs the worker's event loop, then delivers the writes still queued and closes the database there."""

    def __init__(self, worker: GalleryWorker, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("studio-gallery")
        self._worker = worker

    def run(self) -> None:
        try:
            self.exec()
            QCoreApplication.sendPostedEvents(self._worker, QEvent.Type.MetaCall)
        finally:
            self._worker.close()


# ------------------------------------------------------------------------------------------- images


def read_qimage(path: str | os.PathLike[str], max_side: int | None = None) -> QImage:
    """Decode an image file into a QImage (any thread), EXIF orientation applied, at most `max_side`
    pixels on its longer side (smoothly scaled). Falls back to Pillow for what Qt cannot read; a null
    QImage when nothing can."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if max_side and size.isValid() and max(size.width(), size.height()) > max_side:
        reader.setScaledSize(size.scaled(QSize(max_side, max_side), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        try:
            image = pil_to_qimage(load_image(path))
        except Exception:  # noqa: BLE001 - the caller reports a null image
            return QImage()
        if max_side and max(image.width(), image.height()) > max_side:
            image = image.scaled(
                max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
    return image


# ------------------------------------------------------------------------------------------ service


class CatalogueReader:
    """What :meth:`GalleryService.gallery` returns: the GUI thread's queries on the catalogue in use now
    (the file, or the empty stand-in during a repair), safe against damage.

    Why: the view asks the catalogue from many places (a search, a count, the image under the cursor);
    a catalogue that opened cleanly can still fail any of them ("database disk image is malformed").
    Each query here catches :class:`CatalogueDamagedError`, starts the repair (once: see
    GalleryService._on_damage_seen) and returns an empty answer; the view is told again when the
    rebuilt catalogue is in place (``library_changed``).  Other errors (a locked file) are raised as
    they are.  Anything else is passed to the Gallery in use, unguarded.
    """

    def __init__(self, service: GalleryService) -> None:
        self._service = service

    def search(self, query: Query | None = None, *, limit: int = 200, offset: int = 0) -> list[GalleryImage]:
        return self._safe(lambda db: db.search(query, limit=limit, offset=offset), [])

    def count(self, query: Query | None = None) -> int:
        return self._safe(lambda db: db.count(query), 0)

    def get(self, image_id: int) -> GalleryImage | None:
        return self._safe(lambda db: db.get(image_id), None)

    def get_by_path(self, path: str | os.PathLike[str]) -> GalleryImage | None:
        return self._safe(lambda db: db.get_by_path(path), None)

    def models(self) -> list[str]:
        return self._safe(lambda db: db.models(), [])

    def folders(self) -> list[Path]:
        return self._safe(lambda db: list(db.folders()), [])

    def _safe(self, query: Callable[[Gallery], _T], neutral: _T) -> _T:
        try:
            return query(self._service._db)
        except CatalogueDamagedError as exc:
            # The Gallery's own on_damaged hook (set by _open_reader) has already begun the repair.
            log.info("a gallery query found the catalogue damaged: %s", exc.reason)
            return neutral

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service._db, name)


_LINGERING: set[QThread] = set()


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

    _task = Signal(object)
    _thumbnail_made = Signal(int, QImage, str)  # from pool threads: id, image, error
    _preview_made = Signal(str, QImage, str)

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
        # The GUI's reader first: it creates the schema before the worker's connection opens.  Its first
        # reads happen inside _open_reader: a file that opens cleanly can still fail its first query.
        self._db, damage = self._open_reader()
        self._reader = CatalogueReader(self)
        self._thumbs = ThumbnailCache(self._thumbnail_dir)

        self._worker = GalleryWorker(self._db_path, self._closing, skip=[self._thumbnail_dir])
        self._thread = _GalleryThread(self._worker, self)
        self._worker.moveToThread(self._thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._task.connect(self._worker.handle, queued)
        self._worker.scan_started.connect(self.scan_started, queued)
        self._worker.scan_progress.connect(self.scan_progress, queued)
        self._worker.scan_finished.connect(self._on_scan_finished, queued)
        self._worker.scan_failed.connect(self._on_scan_failed, queued)
        self._worker.indexed.connect(self._on_indexed, queued)
        self._worker.folders_changed.connect(self._on_folders_changed, queued)
        self._worker.watch.connect(self._on_watch, queued)
        self._worker.retry.connect(self._on_retry, queued)
        self._worker.failed.connect(self.message, queued)
        self._worker.damaged.connect(self._begin_recovery, queued)
        self._worker.recovered.connect(self._on_recovered, queued)
        self._worker.recovery_failed.connect(self._on_recovery_failed, queued)
        self._thread.start()

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
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="studio-thumbnail")
        self._preview_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-preview")
        self._thumb_lock = threading.Lock()
        self._thumb_pending: OrderedDict[int, tuple[str, int | None]] = OrderedDict()
        self._preview_wanted: str | None = None
        self._thumbnail_made.connect(self._on_thumbnail_made, queued)
        self._preview_made.connect(self._on_preview_made, queued)

        if damage is not None:  # rebuilt first; the rebuild scans and watches
            self._begin_recovery(damage)
        elif scan_on_start:  # finds what changed while the app was closed, then watches
            self.scan()
        else:  # watch only: changes made while the app was closed wait for the next scan
            self._send(_Task("watch"))
        app = QCoreApplication.instance()
        if app is not None:  # Qt aborts if a QThread is destroyed while it runs
            app.aboutToQuit.connect(self.shutdown)

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

    @Slot(object)
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
        self._send(_Task("recover", (reason, sorted(self._pinned), damaged_file)))

    @Slot(object)
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

    @Slot(str)
    def _on_recovery_failed(self, why: str) -> None:
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
        return _norm(path) in self._pinned

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
        self._send(_Task("scan", ([_norm(f) for f in folders] if folders is not None else None, cancel)))

    def cancel_scan(self) -> None:
        for cancel in self._scans:
            cancel.set()

    def add_folder(self, path: str | os.PathLike[str], *, scan: bool = True) -> Path:
        """Add a folder to the library and (by default) scan it; folders_changed follows."""
        folder = _norm(path)
        if self._closed:
            return folder
        cancel = None
        if scan:
            cancel = threading.Event()
            self._scans.append(cancel)
        self._send(_Task("add_folder", (folder, cancel)))
        return folder

    def ensure_folder(self, path: str | os.PathLike[str]) -> Path:
        """Keep `path` (the app's output folder) in the library: added and scanned if missing, never removed."""
        folder = _norm(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._pinned.add(folder)
        if folder not in {_norm(f) for f in self.folders()}:
            self.add_folder(folder)
        return folder

    def remove_folder(self, path: str | os.PathLike[str]) -> bool:
        """Take a folder (and its images) out of the library; its files are left alone. False for the
        output folder, which always stays."""
        folder = _norm(path)
        if self._closed:
            return False
        if folder in self._pinned:
            self.message.emit(f"{folder} is the output folder: it always stays in the library")
            return False
        self._send(_Task("remove_folder", (folder,)))
        return True

    def index_paths(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Index these files now (e.g. a just-saved image) rather than waiting for the watcher."""
        if not self._closed:
            self._send(_Task("index_paths", ([Path(p) for p in paths],)))

    def forget(self, path: str | os.PathLike[str]) -> None:
        """Drop a file from the catalogue (it was deleted or trashed)."""
        if self._stopped is None:  # also while shutting down: the gallery thread still writes it
            self._send(_Task("forget", (Path(path),)))

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
        self._pool.submit(self._make_thumbnail)
        if dropped is not None:
            self.thumbnail_dropped.emit(dropped)

    def request_preview(self, path: str | os.PathLike[str], max_side: int = PREVIEW_MAX_SIDE) -> None:
        """Decode `path` for display in a pool thread: preview_ready(path, QImage). Only the latest
        request matters: older ones not started yet are skipped."""
        if self._closed:
            return
        self._preview_wanted = str(path)
        self._preview_pool.submit(self._make_preview, str(path), max_side)

    def _make_thumbnail(self) -> None:  # in a pool thread
        with self._thumb_lock:
            if self._closed or not self._thumb_pending:
                return
            image_id, (path, size) = self._thumb_pending.popitem(last=True)
        try:
            # The stored size that covers `size` (a larger cached copy when the grid's cells grew),
            # scaled down to `size` here: a thumbnail is never enlarged for display.
            thumb = self._thumbs.get_or_make(Path(path), self._thumbs.size_for(size) if size else None)
            image = read_qimage(thumb, size)
            error = "" if not image.isNull() else f"cannot decode the thumbnail of {Path(path).name}"
        except Exception as exc:  # noqa: BLE001 - ImageLoadError and I/O errors alike
            image, error = QImage(), typed_first_line(exc)
        if not self._closed:
            self._thumbnail_made.emit(image_id, image, error)

    def _make_preview(self, path: str, max_side: int) -> None:  # in the preview thread
        if self._closed or path != self._preview_wanted:
            return
        image = read_qimage(path, max_side)
        error = "" if not image.isNull() else f"cannot read {Path(path).name}"
        if not self._closed:
            self._preview_made.emit(path, image, error)

    @Slot(int, QImage, str)
    def _on_thumbnail_made(self, image_id: int, image: QImage, error: str) -> None:
        if self._closed:
            return
        if error:
            self.thumbnail_failed.emit(image_id, error)
        else:
            self.thumbnail_ready.emit(image_id, image)

    @Slot(str, QImage, str)
    def _on_preview_made(self, path: str, image: QImage, error: str) -> None:
        if self._closed:
            return
        if error:
            self.preview_failed.emit(path, error)
        else:
            self.preview_ready.emit(path, image)

    # -------------------------------------------------------------------------------- shutdown
    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Finish pending work and stop every thread; True when the gallery thread stopped in time.

        Emits shutting_down first (a view trashes its pending delete). A running scan is cancelled;
        folder changes and forgets already asked for are written. Safe to call more than once.
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
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._preview_pool.shutdown(wait=True, cancel_futures=True)
        self._thread.quit()
        stopped = bool(self._thread.wait(max(0, int(timeout_ms))))
        if not stopped:
            log.warning("the gallery thread did not stop within %d ms", timeout_ms)
            thread = self._thread
            thread.setParent(None)
            _LINGERING.add(thread)
            thread.finished.connect(lambda: _LINGERING.discard(thread))
        with contextlib.suppress(Exception):
            self._db.close()
        self._stopped = stopped
        return stopped

    # ------------------------------------------------------------------------------- internals
    def _send(self, task: _Task) -> None:
        self._task.emit(task)

    @Slot(object)
    def _on_scan_finished(self, report: ScanReport) -> None:
        if self._scans:
            self._scans.pop(0)
        self.scan_finished.emit(report)

    @Slot(str)
    def _on_scan_failed(self, text: str) -> None:
        if self._scans:
            self._scans.pop(0)
        self.scan_failed.emit(text)

    @Slot(int)
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
            self._send(_Task("sync_folders"))  # the gallery thread watches what another process added
            self.folders_changed.emit()
        self.library_changed.emit()
        return True

    @Slot()
    def _on_folders_changed(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self._known_folders = set(self._db.folders())
        self.folders_changed.emit()

    @Slot(list)
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

    @Slot(list)
    def _on_retry(self, dirs: list[str]) -> None:
        if not self._closed:
            self._dirty.update(dirs)
            self._retry_timer.start()

    @Slot(str)
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

    @Slot()
    def _flush_dirty(self) -> None:
        if self._closed or not self._dirty:
            return
        dirs, self._dirty = sorted(self._dirty), set()
        self._send(_Task("index_dirs", (dirs,)))
