"""The gallery catalogue: which images live in the user's folders, what made them, how the user rated them.

Why SQLite (stdlib ``sqlite3``): one file, no server, transactions, and FTS5 full-text search over
prompts, which is what people look for ("that castle picture from last week").  The catalogue is a
cache of what the files say, plus two things only it knows (rating, favourite); losing it costs a
rescan and those marks, never an image: nothing here writes, moves or deletes image files.

Tables: ``folders`` (what the user added), ``images`` (one row per readable image file, ``path``
UNIQUE), ``unreadable`` (files that failed, with the size and mtime they had, so a broken file is
not re-read on every scan, only when it changes), ``images_fts`` (FTS5 over prompt + negative
prompt, external content kept in step with ``images`` by triggers) and ``schema_version``.

Threads: a :class:`Gallery` wraps one sqlite3 connection, which belongs to the thread that made it
(sqlite3 enforces this).  Use one Gallery per thread: e.g. one in the GUI thread for queries and
ratings, one in a worker thread for scans.  The database runs in WAL mode, so readers see the last
committed state without waiting for a writer, and writers wait (``busy_timeout``) rather than fail.

This module is the facade: :class:`Gallery` (the connection, its transactions and the registered
folders) and the names callers import.  The parts, by role:

* :mod:`studio.library.gallery_schema`: the layout and its migrations;
* :mod:`studio.library.gallery_db`: opening the file safely, telling damage from trouble (a damaged
  file raises :class:`CatalogueDamagedError`, whose message names the file, the reason and the fix,
  :mod:`studio.library.gallery_repair`);
* :mod:`studio.library.gallery_queries`: searches, counts, ratings (:class:`Query`);
* :mod:`studio.library.gallery_scan`: scanning folders and indexing single files (:class:`ScanReport`);
* :mod:`studio.library.gallery_rows`: the checks on values going in and coming out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from studio.library.display import printable
from studio.library.gallery_db import (
    BUSY_TIMEOUT_S,
    CatalogueDamagedError,
    FileId,
    GalleryError,
    NotACatalogueError,
    damage_reason,
    decode_text,
    file_id,
    guarded,
    open_catalogue,
    quick_check_problem,
    rollback,
)
from studio.library.gallery_queries import GalleryQueries, Query, fts_query
from studio.library.gallery_rows import GalleryImage, inside, normalise_folder, path_problem
from studio.library.gallery_scan import (
    BATCH_SIZE,
    IMAGE_SUFFIXES,
    GalleryScanning,
    ScanProgress,
    ScanReport,
)
from studio.library.gallery_schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BATCH_SIZE",
    "BUSY_TIMEOUT_S",
    "IMAGE_SUFFIXES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CatalogueDamagedError",
    "Gallery",
    "GalleryError",
    "GalleryImage",
    "NotACatalogueError",
    "Query",
    "ScanProgress",
    "ScanReport",
    "fts_query",
]

logger = logging.getLogger(__name__)


class Gallery(GalleryQueries, GalleryScanning):
    """The image catalogue in one SQLite file.  One object per thread (see the module docstring).

    ``on_damaged`` is called (in the calling thread, before the error is raised) whenever an
    operation finds the catalogue damaged: an owner that shares this object with many callers (the
    app's GUI thread) learns of it wherever it shows, and can start a repair.  It can be set later
    too (:attr:`on_damaged`).  Once damage has been seen, nothing more is written by :meth:`close`.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        on_damaged: Callable[[CatalogueDamagedError], None] | None = None,
    ) -> None:
        memory = str(db_path) == ":memory:"
        self.db_path = Path(db_path) if not memory else Path(":memory:")
        self.on_damaged = on_damaged
        self.damage_seen: CatalogueDamagedError | None = None
        """The first damage this object met (then :meth:`close` runs no ``PRAGMA optimize``)."""
        self._unstorable: dict[str, tuple[int, int, float]] = {}  # see GalleryScanning._unstorable
        if not memory:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        before = None if memory else file_id(self.db_path)
        self._conn = open_catalogue(db_path)
        self._conn.text_factory = decode_text
        # The file this object reads: damage it meets later names this one (a new file made meanwhile
        # by another process's repair is not this one, and is not to be moved aside).
        if before is None and not memory:
            before = file_id(self.db_path)  # made by this open (or by a process creating it at once)
        self.file_id: FileId | None = before

    @staticmethod
    def default_path() -> Path:
        """Where the app keeps its catalogue: ``paths.data_dir()/gallery.sqlite3`` (what ``studio
        gallery repair`` repairs without ``--db``: it must not open the file to learn its name)."""
        from studio.library import paths

        return paths.data_dir() / "gallery.sqlite3"

    @classmethod
    def default(cls) -> Gallery:
        """The app's catalogue, at :meth:`default_path`."""
        return cls(cls.default_path())

    def close(self, *, optimize: bool = True) -> None:
        """Close the connection (idempotent).  ``PRAGMA optimize`` first keeps query plans good; it is
        skipped when ``optimize`` is false or once damage has been seen (a damaged file is not written)."""
        conn = getattr(self, "_conn", None)
        if conn is None:
            return
        if optimize and self.damage_seen is None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
        conn.close()
        self._conn = None  # type: ignore[assignment]

    @guarded
    def data_version(self) -> int:
        """A number that changes whenever *another* connection (another thread's Gallery, or another
        process such as ``studio gallery scan``) commits to the catalogue; this connection's own
        commits leave it unchanged.

        Why: it is how a long-lived reader (the GUI) learns that the file changed under it without
        re-running its queries.  It is SQLite's ``PRAGMA data_version``: a read of the database header
        (in WAL mode, of the shared-memory index) that touches no table and never waits for a writer,
        so polling it every second costs next to nothing.  Only equality matters; the value itself
        means nothing across connections.
        """
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @guarded
    def check_integrity(self) -> str | None:
        """What is wrong with the file, or None when SQLite's ``quick_check`` and FTS5's own check of
        the search index find nothing.  Reads the whole file (seconds for a large catalogue), not for
        every open, which checks only the header and layout.  (A file suspected of damage is checked
        read-only instead: :func:`studio.library.gallery_repair.check_catalogue`.)"""
        problem = quick_check_problem(self._conn)
        if problem:
            return problem
        self._conn.execute("BEGIN")
        try:  # an FTS5 'integrity-check' is an INSERT that writes nothing: roll it back all the same
            self._conn.execute("INSERT INTO images_fts(images_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as exc:
            reason = damage_reason(exc)
            if reason is None:
                raise
            return f"search index: {reason}"
        finally:
            rollback(self._conn)
        return None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _damaged(self, exc: CatalogueDamagedError) -> None:
        if exc.file_id is None and exc.db_path == self.db_path:
            exc.file_id = self.file_id
        if self.damage_seen is None:
            self.damage_seen = exc
        if self.on_damaged is None:
            return
        try:
            self.on_damaged(exc)
        except Exception:  # noqa: BLE001 - the caller gets the damage error all the same
            logger.warning("gallery: the on_damaged callback failed", exc_info=True)

    # ---- transactions ------------------------------------------------------------------------

    def _write(self, statements: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``statements`` in one write transaction (BEGIN IMMEDIATE: wait for the lock up front
        rather than fail half-way on upgrading a read lock)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = statements(self._conn)
        except BaseException:
            rollback(self._conn)
            raise
        self._conn.execute("COMMIT")
        return result

    # ---- folders -----------------------------------------------------------------------------

    def _folder_rows(self) -> list[tuple[int, str]]:
        """(id, path) of the registered folders; a row changed by hand into something else is left out."""
        rows = self._conn.execute("SELECT id, path FROM folders ORDER BY path")
        return [
            (r[0], r[1])
            for r in rows
            if isinstance(r[0], int) and isinstance(r[1], str) and os.path.isabs(r[1])
        ]

    @staticmethod
    def _deepest(
        path: str, folders: Iterable[tuple[int, str]], exclude: int | None = None
    ) -> tuple[int, str] | None:
        """The most specific registered folder containing ``path`` (folders may be nested)."""
        best: tuple[int, str] | None = None
        for folder_id, folder in folders:
            if (
                folder_id != exclude
                and inside(path, folder)
                and (best is None or len(folder) > len(best[1]))
            ):
                best = (folder_id, folder)
        return best

    @guarded
    def add_folder(self, path: str | os.PathLike[str]) -> Path:
        """Register a folder (resolved); returns it.  Idempotent.  Scanning is separate (:meth:`scan`).

        Raises NotADirectoryError for what is not a folder, ValueError for a folder whose path is not
        valid UTF-8 (it could not be stored exactly: see :func:`~studio.library.gallery_rows.path_problem`).
        """
        folder = normalise_folder(path)
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        text = str(folder)
        if path_problem(text) is not None:
            raise ValueError(f"{printable(text)}: the folder's path is not valid UTF-8; rename it to add it")

        def add(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO folders (path, added_at) VALUES (?, ?)", (text, time.time()))
            (folder_id,) = conn.execute("SELECT id FROM folders WHERE path = ?", (text,)).fetchone()
            # Images already catalogued under an enclosing folder now belong to this, more specific, one.
            prefix = text.rstrip(os.sep) + os.sep
            for table in ("images", "unreadable"):
                conn.execute(
                    f"UPDATE {table} SET folder_id = ? WHERE substr(path, 1, ?) = ?",
                    (folder_id, len(prefix), prefix),
                )

        self._write(add)
        return folder

    @guarded
    def remove_folder(self, path: str | os.PathLike[str]) -> None:
        """Forget a folder and its images (rows only: files are never touched).  Images that are also
        inside another registered folder move to it, keeping their ratings."""
        text = str(normalise_folder(path))
        if path_problem(text) is not None:
            return  # never stored

        def remove(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT id FROM folders WHERE path = ?", (text,)).fetchone()
            if row is None:
                return
            folder_id = int(row[0])
            parent = self._deepest(text, self._folder_rows(), exclude=folder_id)
            for table in ("images", "unreadable"):
                if parent is not None:
                    conn.execute(
                        f"UPDATE {table} SET folder_id = ? WHERE folder_id = ?", (parent[0], folder_id)
                    )
                else:
                    conn.execute(f"DELETE FROM {table} WHERE folder_id = ?", (folder_id,))
            conn.execute("DELETE FROM folders WHERE id = ?", (folder_id,))

        self._write(remove)

    @guarded
    def folders(self) -> list[Path]:
        return [Path(path) for _, path in self._folder_rows()]

    # ---- reading files -----------------------------------------------------------------------
