"""The gallery's writing side: :class:`GalleryWriter`, whose every method runs on the gallery's one-thread
:class:`~studio.worker.tasks.TaskPool` and which owns the writing :class:`~studio.library.gallery.Gallery`
(sqlite3 objects stay in the thread that made them; a one-thread pool keeps all its work on that thread).

Scans, folder changes, indexing changed files and forgetting trashed files all go through it, in the order
they were submitted. Each method takes the task's ``context`` first (the pool calls ``fn(context, *args)``)
and tells the GUI thread what happened with ``context.report(events.<what>, ...)``; its return value and
its exception go to the submitter's ``on_result`` / ``on_error``.

Shutting down: once ``closing`` is set, scans and indexing are skipped (they raise
:class:`~studio.engine.errors.Cancelled`), while writes (:meth:`add_folder`, :meth:`remove_folder`,
:meth:`forget`) still happen; :meth:`close` closes the database, in this thread, after them.

Folder watching: the writer keeps a snapshot of every library folder (file name -> size, mtime) and reports
the directories to watch (``events.watch``). The GUI thread's watcher sends back the directories that
changed (:meth:`index_dirs`); they are compared with their snapshot and ``Gallery.index_file`` is called
for the files that appeared, changed or went away. A file still being written (not readable yet) is looked
at again a few times (``events.retry``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from studio.engine.errors import Cancelled
from studio.library.folder_listing import DirListing, is_under, list_dir
from studio.library.gallery import CatalogueDamagedError, Gallery, ScanReport
from studio.library.gallery_db import FileId
from studio.library.gallery_repair import RecoveryReport, rebuild_damaged
from studio.worker.tasks import TaskContext

__all__ = ["GalleryWriter", "WriterEvents", "norm"]

log = logging.getLogger(__name__)

MAX_RETRIES = 5
FRESH_S = 30.0
"""Only files modified this recently are retried: an old unreadable file is just unreadable."""
MAX_WATCHED_DIRS = 4096
"""inotify watches are a per-user resource; beyond this, changes are found by Rescan only."""
RECOVERY_LOCK_WAIT_S = 60.0
"""How long the gallery thread waits for another process's repair of the catalogue (`studio gallery
repair`) to finish before giving up on its own; a shutdown ends the wait."""
PROGRESS_INTERVAL_S = 0.05

_P = ParamSpec("_P")
_R = TypeVar("_R")


def norm(path: str | os.PathLike[str]) -> Path:
    """Absolute, user-expanded, symlinks resolved: one spelling per folder."""
    return Path(path).expanduser().resolve()


@dataclass(frozen=True)
class WriterEvents:
    """What the writer tells the GUI thread; each is called there, in the order reported."""

    scan_started: Callable[[], Any]
    scan_progress: Callable[[int, int], Any]  # done, total
    indexed: Callable[[int], Any]  # how many images were added, updated or removed
    folders_changed: Callable[[], Any]
    watch: Callable[[list[str]], Any]  # every directory that should be watched now
    retry: Callable[[list[str]], Any]  # directories to look at again later


def _task(*, write: bool = False):
    """A writer method run as a pool task: skipped once the writer is closing unless it is a `write`; and
    when it finds the catalogue damaged, the connection to it is closed here, in the gallery thread,
    before the error reaches the GUI thread (which has the file moved aside, and SQLite deletes a
    ``-wal`` by name when the last connection to a file closes)."""

    def decorate(
        method: Callable[Concatenate[GalleryWriter, TaskContext, _P], _R],
    ) -> Callable[Concatenate[GalleryWriter, TaskContext, _P], _R]:
        @functools.wraps(method)
        def run(self: GalleryWriter, context: TaskContext, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            if self._closing.is_set() and not write:
                raise Cancelled("the gallery is shutting down")
            try:
                return method(self, context, *args, **kwargs)
            except CatalogueDamagedError as exc:
                log.warning("gallery task %s found the catalogue damaged: %s", method.__name__, exc.reason)
                self.close(optimize=False)
                raise

        return run

    return decorate


class GalleryWriter:
    """Owns the writing ``Gallery`` and the folder snapshots; made and driven by
    :class:`~studio.worker.gallery.GalleryService`. Every method but the constructor runs in the
    gallery thread."""

    def __init__(
        self, db_path: Path, closing: threading.Event, events: WriterEvents, skip: Iterable[Path] = ()
    ) -> None:
        self._db_path = db_path
        self._closing = closing
        self._events = events
        self._skip = {norm(p) for p in skip}
        self._db: Gallery | None = None
        self._roots: list[Path] = []
        self._dirs: dict[Path, DirListing] = {}
        self._retries: dict[Path, int] = {}
        self._unsaved_folders: list[Path] = []  # added while the catalogue was damaged: kept for the rebuild

    # ------------------------------------------------------------------------------------ plumbing
    def _gallery(self) -> Gallery:
        if self._db is None:
            self._db = Gallery(self._db_path)
            self._roots = [norm(f) for f in self._db.folders()]
        return self._db

    def close(self, _context: TaskContext | None = None, *, optimize: bool = True) -> None:
        """Close the database (in the gallery thread: submit it as the last task). ``optimize=False``
        for a file found damaged: nothing more is written to it."""
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close(optimize=optimize)
            except Exception:  # noqa: BLE001 - closing must never raise during shutdown
                log.debug("closing the gallery failed", exc_info=True)

    # ---------------------------------------------------------------------------------------- tasks
    @_task()
    def recover(
        self, context: TaskContext, reason: str, folders: list[Path], damaged_file: FileId | None = None
    ) -> RecoveryReport:
        """Move the damaged catalogue aside and make a fresh one holding the folders the old one still
        lists, plus ``folders`` and any added meanwhile (the service closed its own connection first and
        scans them once it has opened the new file).  ``damaged_file`` is the identity of the file found
        damaged: if another process (``studio gallery repair``) has rebuilt it meanwhile, the new file is
        used as it is (never moved aside) and only gets the folders.  Raises when the rebuild fails."""
        self.close(optimize=False)
        self._roots, self._dirs, self._retries = [], {}, {}
        report = rebuild_damaged(
            self._db_path,
            folders=[*folders, *self._unsaved_folders],
            reason=reason,
            damaged_file=damaged_file,
            scan=False,
            cancel=self._closing,
            wait=RECOVERY_LOCK_WAIT_S,
        )
        self._unsaved_folders = []
        return report

    @_task()
    def watch(self, context: TaskContext) -> None:
        """Snapshot every library folder and publish the directories to watch (no indexing)."""
        self._gallery()
        for root in self._roots:
            self._snapshot(root)
        self._publish(context)

    @_task()
    def scan(self, context: TaskContext, folders: list[Path] | None, cancel: threading.Event) -> ScanReport:
        """Scan the library (or these folders of it); the report is the result."""
        db = self._gallery()
        context.report(self._events.scan_started)
        roots = [norm(f) for f in folders] if folders else list(self._roots)
        for root in roots:  # before the scan: files arriving during it show up in the next comparison
            self._snapshot(root)
        last = 0.0

        def progress(p) -> None:
            nonlocal last
            now = time.monotonic()
            if p.done >= p.total or now - last >= PROGRESS_INTERVAL_S:
                last = now
                context.report(self._events.scan_progress, int(p.done), int(p.total))

        try:
            report = db.scan(list(folders) if folders else None, progress=progress, cancel=cancel)
        finally:
            self._publish(context)
        changed = report.added + report.updated + report.removed
        if changed:
            context.report(self._events.indexed, changed)
        return report

    @_task(write=True)
    def add_folder(self, context: TaskContext, path: Path, cancel: threading.Event | None) -> ScanReport | None:
        """Add a folder; with `cancel`, scan it (the scan's report is the result)."""
        try:
            added = self._gallery().add_folder(path)
        except CatalogueDamagedError:
            if path not in self._unsaved_folders:  # the user's request is not lost: the rebuild adds it
                self._unsaved_folders.append(path)
            raise
        self._roots = [norm(f) for f in self._gallery().folders()]
        context.report(self._events.folders_changed)
        if cancel is not None:
            return self.scan(context, [added], cancel)
        self._snapshot(norm(added))
        self._publish(context)
        return None

    @_task(write=True)
    def remove_folder(self, context: TaskContext, path: Path) -> None:
        db = self._gallery()
        db.remove_folder(path)
        self._roots = [norm(f) for f in db.folders()]
        self._forget_outside_roots()
        context.report(self._events.folders_changed)
        context.report(self._events.indexed, 1)
        self._publish(context)

    @_task()
    def sync_folders(self, context: TaskContext) -> None:
        """Follow folder changes another process made to the catalogue: watch the folders it added
        (indexing what it left out) and forget the snapshot of those it removed."""
        db = self._gallery()
        roots = [norm(f) for f in db.folders()]
        added = [root for root in roots if root not in self._roots]
        if set(roots) == set(self._roots):
            return
        self._roots = roots
        self._forget_outside_roots()
        if added:  # no snapshot yet: every file is compared with its row (unchanged ones cost a stat)
            self.index_dirs(context, [str(root) for root in added])
        context.report(self._events.folders_changed)
        self._publish(context)

    @_task(write=True)
    def forget(self, context: TaskContext, path: Path) -> None:
        path = Path(path)
        gone = self._gallery().forget(path)
        state = self._dirs.get(norm(path.parent))
        if state is not None:
            state.files.pop(path.name, None)
        if gone:
            context.report(self._events.indexed, 1)

    @_task()
    def index_paths(self, context: TaskContext, paths: list[Path]) -> None:
        db = self._gallery()
        changed = 0
        for path in paths:
            path = norm(Path(path).parent) / Path(path).name
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
            context.report(self._events.indexed, changed)

    @_task()
    def index_dirs(self, context: TaskContext, dirs: list[str]) -> None:
        """Compare each directory with its snapshot and index what appeared, changed or went away."""
        db = self._gallery()
        queue = [norm(d) for d in dirs]
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
            context.report(self._events.indexed, changed)
        if dirs_changed:
            self._publish(context)
        if retry:
            context.report(self._events.retry, sorted(retry))

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

    def _publish(self, context: TaskContext) -> None:
        dirs = sorted(str(d) for d in self._dirs)
        if len(dirs) > MAX_WATCHED_DIRS:
            log.warning("%d library folders: watching the first %d only", len(dirs), MAX_WATCHED_DIRS)
            dirs = dirs[:MAX_WATCHED_DIRS]
        context.report(self._events.watch, dirs)
