"""Scanning: bringing the catalogue in line with the image files in its folders.

Incremental: a file whose size and mtime match its row is not opened.  New or changed files are read
with :func:`~studio.library.metadata.read_metadata` (bounded, never evaluates anything) plus the pixel
size from the header only.  Files are read outside write transactions and written in batches (one
transaction per :data:`BATCH_SIZE` files or per second, see :class:`_Batch`), so a scan holds the write
lock only briefly and a GUI thread can rate images while it runs.

One file never stops a scan: whatever reading or writing it raises, it is skipped and reported with
the reason (:attr:`ScanReport.skipped`), and the other files are catalogued.

A :class:`~studio.library.gallery.Gallery` scans through :class:`GalleryScanning`, which it inherits:
the methods here use the Gallery's connection, its write transaction (``_write``), its registered
folders (``_folder_rows``, ``_deepest``) and its session memory of unstorable names (``_unstorable``).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from studio.library.display import printable
from studio.library.gallery_db import damage_reason, guarded
from studio.library.gallery_rows import (
    inside,
    int64_value,
    normalise_file,
    normalise_folder,
    path_problem,
    text_value,
)
from studio.library.metadata import ImageMetadata, read_metadata

__all__ = [
    "BATCH_SIZE",
    "IMAGE_SUFFIXES",
    "MAX_SKIPPED",
    "PROGRESS_EVERY",
    "GalleryScanning",
    "ScanProgress",
    "ScanReport",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
BATCH_SIZE = 500
"""Files written per transaction during a scan (a commit per file would be ~100x slower)."""
BATCH_SECONDS = 1.0
"""A batch is also committed after this long, so images appear in the GUI while a slow scan runs."""
PROGRESS_EVERY = 100
"""Files between two progress callbacks (plus one at the start and one at the end)."""
MAX_SKIPPED = 1000
"""Skipped files a :class:`ScanReport` lists with their reason; ``unreadable`` counts them all (a folder
of a million broken files must not keep a million reasons in memory, nor log a million lines)."""
MAX_UNSTORABLE = 100_000
"""Files with unstorable names (not valid UTF-8) a :class:`Gallery` remembers for the session."""

MAX_PROMPT_CHARS = 10_000
"""Prompts are capped (untrusted files): real ones are a few hundred characters, a few thousand at most."""
MAX_NAME_CHARS = 512
MAX_REASON_CHARS = 500
SOURCES = frozenset({"latent-studio", "a1111", "comfyui", "invokeai"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(slots=True)
class ScanProgress:
    """Reported from the scanning thread: ``done`` of ``total`` files looked at, ``path`` the last one."""

    done: int
    total: int
    path: Path | None


@dataclass(slots=True)
class ScanReport:
    """What a scan changed.  ``unreadable`` counts the files skipped in this scan, and ``skipped`` lists
    the first :data:`MAX_SKIPPED` of them as (path, reason): not an image, a file name that is not
    valid UTF-8, metadata that could not be stored...  A broken file that has not changed since it last
    failed is not opened again and counts as ``unchanged`` (one whose name cannot be stored is
    remembered by the :class:`Gallery` object only: for the rest of its session).  Paths are as the
    file system gave them: print them with :func:`studio.library.display.printable` (they may hold
    surrogate escapes)."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unreadable: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        """One line for a status bar. A scan that found nothing to change says so, with how many files
        it checked: after another process catalogued the images (already shown), "0 added" alone reads
        as if the scan had missed them. Skipped files are counted as unreadable, the first with its
        reason, file names shown harmlessly (they may hold anything)."""
        if not (self.added or self.updated or self.removed or self.unreadable):
            files = f"{self.unchanged:,} file{'s' if self.unchanged != 1 else ''}"
            return f"Library scanned: up to date, no changes ({files} checked, {self.seconds:.1f} s)"
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.removed} removed"]
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable")
        text = f"Library scanned: {', '.join(parts)} ({self.seconds:.1f} s)"
        if self.skipped:
            path, reason = self.skipped[0]
            text += f"; e.g. {printable(os.path.basename(path))}: {printable(reason)}"
        return text


# --------------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------------

_IMAGE_FIELDS = (
    "path, folder_id, size, mtime, width, height, created, model, seed, steps, scheduler, prompt, "
    "negative_prompt, source, indexed_at"
)
_ON_CONFLICT = """
ON CONFLICT(path) DO UPDATE SET
    folder_id = excluded.folder_id, size = excluded.size, mtime = excluded.mtime,
    width = excluded.width, height = excluded.height, created = excluded.created,
    model = excluded.model, seed = excluded.seed, steps = excluded.steps, scheduler = excluded.scheduler,
    prompt = excluded.prompt, negative_prompt = excluded.negative_prompt, source = excluded.source,
    indexed_at = excluded.indexed_at
"""
_UPSERT = f"INSERT INTO images ({_IMAGE_FIELDS}) VALUES ({', '.join('?' * 15)}) {_ON_CONFLICT}"
# Batches go through a TEMP staging table and one INSERT ... SELECT: FTS5 flushes its pending index
# data at every statement boundary that touches it, so 500 single-row statements (executemany) wrote
# 500 tiny index segments and cost ~45 us a row; one statement for the batch costs ~8 us a row.
_STAGE_IMAGES = f"CREATE TEMP TABLE IF NOT EXISTS staged_images ({_IMAGE_FIELDS})"
_STAGE_PATHS = "CREATE TEMP TABLE IF NOT EXISTS staged_paths (path TEXT)"
_UPSERT_STAGED = (
    f"INSERT INTO images ({_IMAGE_FIELDS}) SELECT {_IMAGE_FIELDS} FROM temp.staged_images "
    f"WHERE true ORDER BY rowid {_ON_CONFLICT}"  # WHERE true: the documented UPSERT parsing caveat
)
_UPSERT_UNREADABLE = """
INSERT INTO unreadable (path, folder_id, size, mtime, error, checked_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(path) DO UPDATE SET folder_id = excluded.folder_id, size = excluded.size,
    mtime = excluded.mtime, error = excluded.error, checked_at = excluded.checked_at
"""


# --------------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------------


def _created(meta: ImageMetadata | None, mtime: float) -> float:
    """Generation time from our JSON ("created": ISO 8601), else the file's mtime."""
    studio = meta.studio if meta is not None else None
    text = studio.get("created") if isinstance(studio, dict) else None
    if isinstance(text, str) and len(text) <= 64:
        try:
            stamp = datetime.fromisoformat(text.strip()).timestamp()
        except (ValueError, OverflowError, OSError):
            stamp = None
        if stamp is not None and math.isfinite(stamp) and 0 < stamp < time.time() + 366 * 86400:
            return stamp
    return mtime


def _image_size(path: str) -> tuple[int, int]:
    """Pixel size from the header only: PNG's IHDR directly (read_metadata has validated it), other
    formats through Pillow's lazy open, which parses the header and decodes nothing."""
    with open(path, "rb") as stream:
        head = stream.read(24)
        if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
        else:
            stream.seek(0)
            with Image.open(stream) as image:
                width, height = image.size
    if not (0 < width < 1 << 31 and 0 < height < 1 << 31):
        raise ValueError(f"invalid image size {width}x{height}")
    return width, height


def _reason(exc: BaseException, path: str | None = None) -> str:
    """Why a file was skipped, in one storable line. Readers' messages start with the file's name: the
    report already names it, and a name may hold a line break that would cut the reason short."""
    text = str(exc)
    if path is not None:
        text = text.removeprefix(f"{path}: ").removeprefix(f"{os.path.basename(path)}: ")
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return text_value(line, MAX_REASON_CHARS) or type(exc).__name__


def _image_row(
    path: str, folder_id: int, size: int, mtime: float, pixels: tuple[int, int], meta: ImageMetadata | None
) -> tuple[Any, ...]:
    """The values of one ``images`` row (in :data:`_IMAGE_FIELDS` order), every one of a type and
    size SQLite stores: text capped and made encodable, integers within 64 bits."""
    source = (
        meta.source if meta is not None and isinstance(meta.source, str) and meta.source in SOURCES else None
    )
    return (
        path,
        folder_id,
        size,
        mtime,
        pixels[0],
        pixels[1],
        _created(meta, mtime),
        text_value(meta.model, MAX_NAME_CHARS) if meta else None,
        int64_value(meta.seed) if meta else None,
        int64_value(meta.steps) if meta else None,
        text_value(meta.scheduler, MAX_NAME_CHARS) if meta else None,
        text_value(meta.prompt, MAX_PROMPT_CHARS) if meta else None,
        text_value(meta.negative_prompt, MAX_PROMPT_CHARS) if meta else None,
        source,
        time.time(),
    )


def _file_fault(exc: BaseException) -> bool:
    """An error writing one file's row that concerns that row only (a value SQLite refused, a folder
    removed meanwhile), not the catalogue (damage, locks, a full disk): skip the file, go on."""
    if damage_reason(exc) is not None:
        return False
    return isinstance(
        exc,
        ValueError
        | TypeError
        | OverflowError
        | sqlite3.InterfaceError
        | sqlite3.IntegrityError
        | sqlite3.DataError,
    )


# A file seen on disk: (path, folder id, size, mtime)
_Found = tuple[str, int, int, float]


def _upsert_images(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert or update image rows in one statement (see :data:`_UPSERT_STAGED` for why)."""
    if len(rows) == 1:
        conn.execute(_UPSERT, rows[0])
        return
    conn.execute(_STAGE_IMAGES)
    conn.execute("DELETE FROM temp.staged_images")
    conn.executemany(f"INSERT INTO temp.staged_images VALUES ({', '.join('?' * 15)})", rows)
    conn.execute(_UPSERT_STAGED)
    conn.execute("DELETE FROM temp.staged_images")


def _store_image(conn: sqlite3.Connection, row: tuple[Any, ...], *, clear: bool = True) -> None:
    """Insert or update one image row; ``clear``: it was remembered as unreadable, and is no more."""
    conn.execute(_UPSERT, row)
    if clear:
        conn.execute("DELETE FROM unreadable WHERE path = ?", (row[0],))


def delete_paths(conn: sqlite3.Connection, images: list[str], unreadable: list[str]) -> int:
    """Delete rows by path, one statement per table (FTS again); returns image rows deleted."""
    deleted = 0
    conn.execute(_STAGE_PATHS)
    for table, paths in (("images", images), ("unreadable", unreadable)):
        if not paths:
            continue
        conn.execute("DELETE FROM temp.staged_paths")
        conn.executemany("INSERT INTO temp.staged_paths VALUES (?)", [(p,) for p in paths])
        cursor = conn.execute(f"DELETE FROM {table} WHERE path IN (SELECT path FROM temp.staged_paths)")
        if table == "images":
            deleted = cursor.rowcount
    conn.execute("DELETE FROM temp.staged_paths")
    return deleted


def _in_savepoint(conn: sqlite3.Connection, action: Callable[[], object]) -> str | None:
    """Run ``action`` so that, if it fails for a reason of its own row, only its changes are undone;
    returns that reason, or None.  Other errors (damage, locks) are raised."""
    conn.execute("SAVEPOINT one_file")
    try:
        action()
    except Exception as exc:
        if not _file_fault(exc):
            raise
        conn.execute("ROLLBACK TO one_file")
        conn.execute("RELEASE one_file")
        return _reason(exc)
    conn.execute("RELEASE one_file")
    return None


def _store_unreadable(conn: sqlite3.Connection, values: tuple[Any, ...]) -> None:
    """Remember a file that failed (in its own savepoint): said, never raised, if even that fails."""
    error = _in_savepoint(conn, lambda: conn.execute(_UPSERT_UNREADABLE, values))
    if error is not None:
        logger.warning("gallery: cannot remember %s as unreadable: %s", printable(values[0]), error)


# --------------------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------------------

# A file seen on disk: (path, folder id, size, mtime)
_Found = tuple[str, int, int, float]
Write = Callable[[Callable[[sqlite3.Connection], Any]], Any]
"""Runs its argument in one write transaction (:meth:`~studio.library.gallery.Gallery._write`)."""


def read_file(path: str, folder_id: int, size: int, mtime: float) -> tuple[Any, ...] | str:
    """The row for a file, or why it is skipped.  Never raises: whatever a reader returns or raises
    for one file (a hostile file can make it do anything) concerns that file only."""
    try:
        meta = read_metadata(path)
        width, height = _image_size(path)
    except Exception as exc:  # noqa: BLE001 - MetadataError, OSError, whatever a corrupt header raises
        return _reason(exc, path)
    try:
        return _image_row(path, folder_id, size, mtime, (width, height), meta)
    except Exception as exc:  # noqa: BLE001 - a reader that returned something unexpected
        return f"unusable metadata: {_reason(exc, path)}"


def eligible(path: str, folder: str) -> bool:
    """An image the walk would index: known suffix, no hidden component below the folder."""
    relative = path[len(folder.rstrip(os.sep)) + 1 :]
    if any(part.startswith(".") for part in relative.split(os.sep)):
        return False
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def walk(
    root: str, folder_id: int, skip: set[str], cancel: threading.Event | None
) -> tuple[list[_Found], list[str], bool]:
    """Image files under ``root``: (found, folders that could not be listed, finished).

    Hidden entries (our ``.name.part`` temp files included) are skipped, symlinked folders are not
    followed (cycles), registered sub-folders are left to their own scan, and empty files (the
    naming module's placeholders for images being saved) are not images yet.
    """
    found: list[_Found] = []
    failed: list[str] = []
    stack = [root]
    while stack:
        if cancel is not None and cancel.is_set():
            return found, failed, False
        directory = stack.pop()
        try:
            with os.scandir(directory) as iterator:
                entries = sorted(iterator, key=lambda entry: entry.name, reverse=True)
        except OSError as exc:
            logger.warning("gallery: cannot list %s: %s", directory, exc.strerror or exc)
            failed.append(directory)
            continue
        subfolders = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in skip:
                        subfolders.append(entry.path)
                    continue
                if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                    continue
                info = entry.stat()
            except OSError:
                continue  # vanished or dangling symlink
            if stat.S_ISREG(info.st_mode) and info.st_size > 0:
                found.append((entry.path, folder_id, info.st_size, info.st_mtime))
        stack.extend(subfolders)
    found.reverse()  # name order within each folder
    return found, failed, True


class _Batch:
    """What a scan has read and not yet written: committed in one transaction every :data:`BATCH_SIZE`
    files or :data:`BATCH_SECONDS` (a commit per file would be ~100x slower).

    When a batch fails for a reason that concerns some row rather than the catalogue (see
    :func:`_file_fault`), it is written again one file at a time, each in its own savepoint, and only
    the files that fail are skipped.  The report counts an image as added or updated once it is written.
    """

    def __init__(self, write: Write, report: ScanReport) -> None:
        self._write = write
        self.report = report
        self._images: list[tuple[str, tuple[Any, ...], bool]] = []  # (outcome, row, clear unreadable)
        self._bad: list[tuple[Any, ...]] = []
        self._since = time.monotonic()

    def skip(self, path: str, reason: str) -> None:
        self.report.unreadable += 1
        if len(self.report.skipped) < MAX_SKIPPED:
            logger.warning("gallery: skipping %s: %s", printable(path), printable(reason))
            self.report.skipped.append((path, reason))
        elif len(self.report.skipped) == self.report.unreadable - 1:  # said once, at the first one left out
            logger.warning("gallery: more than %d files skipped; only the first are listed", MAX_SKIPPED)

    def unreadable(self, path: str, reason: str, row: tuple[Any, ...]) -> None:
        """A file that is not a readable image: skipped, and remembered so it is not read again until
        it changes."""
        self.skip(path, reason)
        self._bad.append(row)

    def image(self, row: tuple[Any, ...], outcome: str, *, clear: bool) -> None:
        self._images.append((outcome, row, clear))

    def due(self) -> bool:
        return (
            len(self._images) + len(self._bad) >= BATCH_SIZE or time.monotonic() - self._since > BATCH_SECONDS
        )

    def flush(self) -> None:
        images, bad = self._images, self._bad
        self._images, self._bad, self._since = [], [], time.monotonic()
        if not (images or bad):
            return
        try:
            self._write(lambda conn: self._write_all(conn, images, bad))
        except Exception as exc:
            if not _file_fault(exc):
                raise
            logger.warning("gallery: writing a batch failed (%s); writing its files one by one", _reason(exc))
            self._write(lambda conn: self._write_each(conn, images, bad))
            return
        for outcome, _row, _clear in images:
            self._count(outcome)

    def _count(self, outcome: str) -> None:
        if outcome == "added":
            self.report.added += 1
        else:
            self.report.updated += 1

    @staticmethod
    def _write_all(
        conn: sqlite3.Connection, images: list[tuple[str, tuple[Any, ...], bool]], bad: list[tuple[Any, ...]]
    ) -> None:
        if images:
            _upsert_images(conn, [row for _outcome, row, _clear in images])
        if bad:
            conn.executemany(_UPSERT_UNREADABLE, bad)
        cleared = [row[0] for _outcome, row, clear in images if clear]
        if cleared:
            delete_paths(conn, [], cleared)

    def _write_each(
        self,
        conn: sqlite3.Connection,
        images: list[tuple[str, tuple[Any, ...], bool]],
        bad: list[tuple[Any, ...]],
    ) -> None:
        for outcome, row, clear in images:
            error = _in_savepoint(conn, lambda row=row, clear=clear: _store_image(conn, row, clear=clear))
            if error is None:
                self._count(outcome)
            else:
                self.skip(str(row[0]), error)
        for row in bad:  # already counted as skipped: one that fails here is only not remembered
            _store_unreadable(conn, row)


class GalleryScanning:
    """The scanning half of :class:`~studio.library.gallery.Gallery`: :meth:`scan`, :meth:`index_file`
    and :meth:`forget`.  What it needs of the Gallery is declared below."""

    _conn: sqlite3.Connection
    _write: Write
    _unstorable: dict[str, tuple[int, int, float]]
    """Files whose names cannot be stored, as they were when skipped: a rescan counts them as unchanged
    rather than skipping them again (in memory: this object's session only).  path -> (folder id,
    size, mtime)"""
    _folder_rows: Callable[[], list[tuple[int, str]]]
    """(id, path) of the registered folders."""
    _deepest: Callable[[str, Iterable[tuple[int, str]]], tuple[int, str] | None]
    """The most specific registered folder holding a path."""

    # ---- scanning ----------------------------------------------------------------------------

    @guarded
    def scan(
        self,
        folders: Sequence[str | os.PathLike[str]] | None = None,
        *,
        progress: Callable[[ScanProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ScanReport:
        """Bring the catalogue in line with the files in ``folders`` (default: all registered ones).

        Unchanged files (same size and mtime) are not opened.  Files gone from disk are removed;
        a folder that is missing (an unplugged drive) or could not be listed keeps its rows.
        A file that cannot be read or stored is skipped and listed with the reason
        (:attr:`ScanReport.skipped`): one file never stops the scan.
        ``progress`` is called in this thread every :data:`PROGRESS_EVERY` files, outside any
        transaction.  ``cancel`` is checked between files: what was done so far is committed.
        Raises ValueError for a folder that was never added, :class:`CatalogueDamagedError` when the
        catalogue itself turns out damaged.
        """
        started = time.perf_counter()
        report = ScanReport()
        registered = self._folder_rows()
        targets = self._targets(registered, folders)
        found, complete = self._walk_targets(targets, {path for _, path in registered}, cancel)
        target_ids = [folder_id for folder_id, _ in targets]
        known = self._known("images", target_ids)
        known_bad = self._known("unreadable", target_ids)
        if not (cancel is not None and cancel.is_set()):
            report.removed = self._remove_gone(found, complete, known, known_bad)
        self._read_found(found, known, known_bad, report, progress, cancel)
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _targets(
        registered: list[tuple[int, str]], folders: Sequence[str | os.PathLike[str]] | None
    ) -> list[tuple[int, str]]:
        """(id, path) of the folders to scan: those asked for, which must be registered, or all."""
        if folders is None:
            return registered
        by_path = {path: folder_id for folder_id, path in registered}
        targets = []
        for folder in folders:
            text = str(normalise_folder(folder))
            if text not in by_path:
                raise ValueError(f"{printable(text)}: not a gallery folder (add it first)")
            targets.append((by_path[text], text))
        return targets

    def _walk_targets(
        self, targets: list[tuple[int, str]], all_paths: set[str], cancel: threading.Event | None
    ) -> tuple[list[_Found], list[tuple[int, str, list[str]]]]:
        """Every file under the targets (the total for progress, and the list of what still exists),
        and (id, root, folders that could not be listed) of each folder walked completely."""
        found: list[_Found] = []
        complete: list[tuple[int, str, list[str]]] = []
        for folder_id, root in targets:
            if not os.path.isdir(root):
                logger.warning("gallery: folder %s is missing; keeping its images in the catalogue", root)
                continue
            skip = {path for path in all_paths if path != root and inside(path, root)}
            files, failed, finished = walk(root, folder_id, skip, cancel)
            found.extend(files)
            if not finished:
                break
            complete.append((folder_id, root, failed))
        return found, complete

    def _remove_gone(
        self,
        found: list[_Found],
        complete: list[tuple[int, str, list[str]]],
        known: dict[str, tuple[int, int, float]],
        known_bad: dict[str, tuple[int, int, float]],
    ) -> int:
        """Delete the rows of files gone from folders walked completely; returns images removed."""
        seen = {item[0] for item in found}
        gone_images: list[str] = []
        gone_bad: list[str] = []
        for folder_id, _root, failed in complete:
            for rows_known, gone in ((known, gone_images), (known_bad, gone_bad)):
                for path, (row_folder, _size, _mtime) in rows_known.items():
                    if (
                        row_folder == folder_id
                        and path not in seen
                        and not any(inside(path, bad) for bad in failed)
                    ):
                        gone.append(path)
        if gone_images or gone_bad:
            self._write(lambda conn: delete_paths(conn, gone_images, gone_bad))
        walked = {folder_id: failed for folder_id, _root, failed in complete}
        for path, (folder_id, _size, _mtime) in list(self._unstorable.items()):  # gone: forgotten too
            failed = walked.get(folder_id)
            if failed is not None and path not in seen and not any(inside(path, bad) for bad in failed):
                del self._unstorable[path]
        return len(gone_images)

    def _read_found(
        self,
        found: list[_Found],
        known: dict[str, tuple[int, int, float]],
        known_bad: dict[str, tuple[int, int, float]],
        report: ScanReport,
        progress: Callable[[ScanProgress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        """Read new and changed files and write them in batches (see :class:`_Batch`)."""
        total = len(found)
        batch = _Batch(self._write, report)
        if progress is not None:
            progress(ScanProgress(0, total, None))
        done = 0
        try:
            for path, folder_id, size, mtime in found:
                if cancel is not None and cancel.is_set():
                    break
                done += 1
                self._scan_one(batch, (path, folder_id, size, mtime), known.get(path), known_bad.get(path))
                if batch.due():
                    batch.flush()
                if progress is not None and done % PROGRESS_EVERY == 0:
                    progress(ScanProgress(done, total, Path(path)))
        finally:
            batch.flush()
        if progress is not None and done % PROGRESS_EVERY != 0:
            progress(ScanProgress(done, total, Path(found[done - 1][0]) if done else None))

    def _scan_one(
        self,
        batch: _Batch,
        file: _Found,
        row: tuple[int, int, float] | None,
        bad: tuple[int, int, float] | None,
    ) -> None:
        """One file's part of a scan: unchanged, skipped (with the reason), or read into the batch."""
        path, folder_id, size, mtime = file
        storable, problem = self._storable(file)
        if not storable:
            if problem is None:
                batch.report.unchanged += 1
            else:
                batch.skip(path, problem)
            return
        if (row is not None and row[1] == size and row[2] == mtime) or (
            bad is not None and bad[1] == size and bad[2] == mtime
        ):
            batch.report.unchanged += 1
            return
        result = read_file(path, folder_id, size, mtime)
        if isinstance(result, str):
            batch.unreadable(path, result, (path, folder_id, size, mtime, result, time.time()))
        else:
            batch.image(result, "added" if row is None else "updated", clear=bad is not None)

    def _storable(self, file: _Found) -> tuple[bool, str | None]:
        """(whether the file's path can be stored, why not): a path that cannot be stored is remembered
        in memory only, for this session, and why is None when it was said already (its size and mtime
        unchanged since)."""
        path, folder_id, size, mtime = file
        problem = path_problem(path)
        if problem is None:
            return True, None
        if self._unstorable.get(path) == (folder_id, size, mtime):
            return False, None
        if path in self._unstorable or len(self._unstorable) < MAX_UNSTORABLE:
            self._unstorable[path] = (folder_id, size, mtime)
        return False, problem

    def _known(self, table: str, folder_ids: list[int]) -> dict[str, tuple[int, int, float]]:
        """path -> (folder id, size, mtime) of the rows in ``table`` for these folders."""
        if not folder_ids:
            return {}
        marks = ",".join("?" * len(folder_ids))
        cursor = self._conn.execute(
            f"SELECT path, folder_id, size, mtime FROM {table} WHERE folder_id IN ({marks})", folder_ids
        )
        return {row[0]: (row[1], row[2], row[3]) for row in cursor}

    @guarded
    def index_file(self, path: str | os.PathLike[str]) -> str:
        """Bring one file's row up to date (for a file watcher); returns what happened:
        "added" | "updated" | "unchanged" | "unreadable" | "removed" (the file is gone).

        A path outside every gallery folder, or one a scan would skip (hidden, temp file, other
        type, empty placeholder), changes nothing ("unchanged") unless it was catalogued, in which case
        it is forgotten ("removed").  A file that cannot be read or stored (a name that is not valid
        UTF-8, say) is "unreadable"; like a scan, this never raises for a problem of the file's own.
        """
        text = str(normalise_file(path))
        folder = self._deepest(text, self._folder_rows())
        try:
            info = os.stat(text)
        except OSError:
            self._unstorable.pop(text, None)
            self.forget(text)
            return "removed"
        if folder is None or not eligible(text, folder[1]) or not stat.S_ISREG(info.st_mode):
            return "removed" if self.forget(text) else "unchanged"
        if info.st_size == 0:
            return "unchanged"  # a placeholder being written: the next event brings the image
        file = (text, folder[0], info.st_size, info.st_mtime)
        storable, problem = self._storable(file)
        if not storable:
            if problem is None:
                return "unchanged"  # said already this session
            logger.warning("gallery: skipping %s: %s", printable(text), problem)
            return "unreadable"
        row = self._conn.execute("SELECT size, mtime FROM images WHERE path = ?", (text,)).fetchone()
        bad = self._conn.execute("SELECT size, mtime FROM unreadable WHERE path = ?", (text,)).fetchone()
        if (row is not None and tuple(row) == file[2:]) or (bad is not None and tuple(bad) == file[2:]):
            return "unchanged"
        result = read_file(*file)
        if isinstance(result, str):
            self._remember_unreadable(file, result)
            return "unreadable"
        error = self._write(lambda conn: _in_savepoint(conn, lambda: _store_image(conn, result)))
        if error is not None:
            self._remember_unreadable(file, error)
            return "unreadable"
        return "added" if row is None else "updated"

    def _remember_unreadable(self, file: _Found, reason: str) -> None:
        """Record a file that failed with the size and mtime it had, so it is read again only once it
        changes."""
        logger.warning("gallery: skipping unreadable image %s: %s", printable(file[0]), printable(reason))
        values = (*file, reason, time.time())
        self._write(lambda conn: _store_unreadable(conn, values))

    @guarded
    def forget(self, path: str | os.PathLike[str]) -> bool:
        """Drop one file's row (the file is not touched); True if it was catalogued."""
        text = str(normalise_file(path))
        if path_problem(text) is not None:
            return False  # never stored
        return self._write(lambda conn: delete_paths(conn, [text], [text])) > 0
