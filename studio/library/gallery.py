"""The gallery catalogue: which images live in the user's folders, what made them, how the user rated them.

Why SQLite (stdlib ``sqlite3``): one file, no server, transactions, and FTS5 full-text search over
prompts, which is what people look for ("that castle picture from last week").  The catalogue is a
cache of what the files say, plus two things only it knows (rating, favourite); losing it costs a
rescan and those marks, never an image: nothing here writes, moves or deletes image files.

Tables: ``folders`` (what the user added), ``images`` (one row per readable image file, ``path``
UNIQUE), ``unreadable`` (files that failed, with the size and mtime they had, so a broken file is
not re-read on every scan, only when it changes), ``images_fts`` (FTS5 over prompt + negative
prompt, external content kept in step with ``images`` by triggers) and ``schema_version``.

Scanning is incremental: a file whose size and mtime match its row is not opened.  New or changed
files are read with :func:`~studio.library.metadata.read_metadata` (bounded, never evaluates
anything) plus the pixel size from the header only.  Files are read outside write transactions and
written in batches (one transaction per :data:`BATCH_SIZE` files or per second), so a scan holds the
write lock only briefly and a GUI thread can rate images while it runs.

Threads: a :class:`Gallery` wraps one sqlite3 connection, which belongs to the thread that made it
(sqlite3 enforces this).  Use one Gallery per thread: e.g. one in the GUI thread for queries and
ratings, one in a worker thread for scans.  The database runs in WAL mode, so readers see the last
committed state without waiting for a writer, and writers wait (``busy_timeout``) rather than fail.

One file never stops a scan: whatever reading or writing it raises, it is skipped and reported with
the reason (:attr:`ScanReport.skipped`), and the other files are catalogued.  A damaged catalogue file
raises :class:`CatalogueDamagedError`, whose message names the file, the reason and the fix
(:mod:`studio.library.gallery_repair`); the file's layout, opening and damage detection live in
:mod:`studio.library.gallery_db`, the checks on values going in and coming out in
:mod:`studio.library.gallery_rows`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sqlite3
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from PIL import Image

from studio.library.display import printable
from studio.library.gallery_db import (
    BUSY_TIMEOUT_S,
    MIGRATIONS,
    SCHEMA_VERSION,
    CatalogueDamagedError,
    FileId,
    GalleryError,
    NotACatalogueError,
    damage_reason,
    decode_text,
    file_id,
    open_catalogue,
    quick_check_problem,
    rollback,
)
from studio.library.gallery_rows import GalleryImage, image_from_row, int64_value, path_problem, text_value
from studio.library.metadata import ImageMetadata, read_metadata

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
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32
SOURCES = frozenset({"latent-studio", "a1111", "comfyui", "invokeai"})
SORTS = ("newest", "oldest", "rating")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


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


@dataclass
class Query:
    """A gallery search.  Filters combine (AND).

    ``text``: words matched against the prompt (each word also as a prefix: ``castl`` finds castle);
    ``"a phrase"`` in quotes matches those words in order; ``-word`` excludes; ``neg:word`` searches
    the negative prompt instead.  Any other punctuation is ignored, never an error.
    ``date_from`` / ``date_to``: POSIX timestamps, inclusive, compared with ``created``.
    ``sort``: "newest" | "oldest" (by ``created``) | "rating" (highest first, then newest).
    """

    text: str = ""
    model: str | None = None
    date_from: float | None = None
    date_to: float | None = None
    favourites_only: bool = False
    sort: str = "newest"


# --------------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------------

_COLUMNS = (
    "i.id, i.path, f.path, i.size, i.mtime, i.width, i.height, i.created, i.model, i.seed, i.steps, "
    "i.scheduler, i.prompt, i.negative_prompt, i.source, i.rating, i.favourite"
)
_FROM = "images AS i JOIN folders AS f ON f.id = i.folder_id"

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
# Helpers: untrusted values, paths, search text
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


def _normalise_folder(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _normalise_file(path: str | os.PathLike[str]) -> Path:
    """Resolve the folder part only: a symlinked file keeps its own name, as the folder walk sees it."""
    path = Path(path).expanduser()
    return path.parent.resolve() / path.name


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


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


_PART_RE = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_TOKEN_RE = re.compile(r"[^\W_]+")


def fts_query(text: str) -> tuple[str | None, str | None]:
    """User search text -> (FTS5 expression to match, FTS5 expression to exclude), either may be None.

    Why not pass the text through: FTS5 has its own syntax (quotes, parentheses, ``-``, ``*``, ``:``,
    AND/OR/NOT, column filters) and raises on malformed input.  Here only word characters survive
    and each is rebuilt as a quoted string, so no user input can produce a syntax error:
    ``castl`` -> ``{prompt} : "castl"*``; ``(masterpiece:1.2)`` -> masterpiece*, 1* and 2* (pasted
    prompt fragments still match whatever their weights' punctuation); ``"red fox"`` ->
    ``{prompt} : "red fox"`` (these words in order, no prefix); ``-blurry`` is excluded;
    ``neg:blurry`` looks in the negative prompt.  FTS keywords typed by the user (AND, NOT, NEAR)
    are just words.
    """
    include: list[str] = []
    exclude: list[str] = []
    for match in _PART_RE.finditer(text[:MAX_QUERY_CHARS]):
        if len(include) + len(exclude) >= MAX_QUERY_TERMS:
            break
        column = "prompt"
        if match.group(2) is not None:
            negate, body, prefix = bool(match.group(1)), match.group(2), False
        else:
            body, negate, prefix = match.group(3), False, True
            if body.startswith("-") and len(body) > 1:
                negate, body = True, body[1:]
            lowered = body.lower()
            for marker in ("neg:", "negative:"):
                if lowered.startswith(marker):
                    column, body = "negative_prompt", body[len(marker) :]
                    break
        words = _TOKEN_RE.findall(body)[:MAX_QUERY_TERMS]
        if not words:
            continue
        if prefix:  # a bare word: each of its pieces must appear, as a word or a word's start
            terms = [f'{{{column}}} : "{word}"*' for word in words]
        else:  # a quoted phrase: these words, in this order
            terms = [f'{{{column}}} : "{" ".join(words)}"']
        target = exclude if negate else include
        target.append(terms[0] if len(terms) == 1 else "(" + " AND ".join(terms) + ")")
    return (
        " AND ".join(include) if include else None,
        " OR ".join(exclude) if exclude else None,
    )


# --------------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------------

# A file seen on disk: (path, folder id, size, mtime)
_Found = tuple[str, int, int, float]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(method: Callable[Concatenate[Gallery, _P], _R]) -> Callable[Concatenate[Gallery, _P], _R]:
    """Turn the SQLite errors that show the catalogue is damaged into :class:`CatalogueDamagedError`
    (and tell the gallery's ``on_damaged``), whichever method met them: "no such table: images_fts"
    may surface in a search, "database disk image is malformed" in a scan's last batch."""

    @functools.wraps(method)
    def guarded(self: Gallery, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except CatalogueDamagedError as exc:
            self._damaged(exc)
            raise
        except sqlite3.DatabaseError as exc:
            reason = damage_reason(exc)
            if reason is None:
                raise
            damaged = CatalogueDamagedError(self.db_path, reason, self.file_id)
            self._damaged(damaged)
            raise damaged from exc

    return guarded


class _Batch:
    """What a scan has read and not yet written: committed in one transaction every :data:`BATCH_SIZE`
    files or :data:`BATCH_SECONDS` (a commit per file would be ~100x slower).

    When a batch fails for a reason that concerns some row rather than the catalogue (see
    :func:`_file_fault`), it is written again one file at a time, each in its own savepoint, and only
    the files that fail are skipped.  The report counts an image as added or updated once it is written.
    """

    def __init__(self, gallery: Gallery, report: ScanReport) -> None:
        self._gallery = gallery
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
            self._gallery._write(lambda conn: self._write_all(conn, images, bad))
        except Exception as exc:
            if not _file_fault(exc):
                raise
            logger.warning("gallery: writing a batch failed (%s); writing its files one by one", _reason(exc))
            self._gallery._write(lambda conn: self._write_each(conn, images, bad))
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
            Gallery._upsert_images(conn, [row for _outcome, row, _clear in images])
        if bad:
            conn.executemany(_UPSERT_UNREADABLE, bad)
        cleared = [row[0] for _outcome, row, clear in images if clear]
        if cleared:
            Gallery._delete_paths(conn, [], cleared)

    def _write_each(
        self,
        conn: sqlite3.Connection,
        images: list[tuple[str, tuple[Any, ...], bool]],
        bad: list[tuple[Any, ...]],
    ) -> None:
        for outcome, row, clear in images:

            def write(row: tuple[Any, ...] = row, clear: bool = clear) -> None:
                conn.execute(_UPSERT, row)
                if clear:
                    conn.execute("DELETE FROM unreadable WHERE path = ?", (row[0],))

            error = _in_savepoint(conn, write)
            if error is None:
                self._count(outcome)
            else:
                self.skip(str(row[0]), error)
        for row in bad:
            error = _in_savepoint(conn, lambda row=row: conn.execute(_UPSERT_UNREADABLE, row))
            if error is not None:  # already counted as skipped: it is only not remembered
                logger.warning("gallery: cannot remember %s as unreadable: %s", printable(row[0]), error)


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


class Gallery:
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
        # Files whose names cannot be stored, as they were when skipped: a rescan counts them as
        # unchanged rather than skipping them again (in memory: this object's session only).
        self._unstorable: dict[str, tuple[int, int, float]] = {}  # path -> (folder id, size, mtime)
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

    @_guarded
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

    @_guarded
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
                and _inside(path, folder)
                and (best is None or len(folder) > len(best[1]))
            ):
                best = (folder_id, folder)
        return best

    @_guarded
    def add_folder(self, path: str | os.PathLike[str]) -> Path:
        """Register a folder (resolved); returns it.  Idempotent.  Scanning is separate (:meth:`scan`).

        Raises NotADirectoryError for what is not a folder, ValueError for a folder whose path is not
        valid UTF-8 (it could not be stored exactly: see :func:`~studio.library.gallery_rows.path_problem`).
        """
        folder = _normalise_folder(path)
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

    @_guarded
    def remove_folder(self, path: str | os.PathLike[str]) -> None:
        """Forget a folder and its images (rows only: files are never touched).  Images that are also
        inside another registered folder move to it, keeping their ratings."""
        text = str(_normalise_folder(path))
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

    @_guarded
    def folders(self) -> list[Path]:
        return [Path(path) for _, path in self._folder_rows()]

    # ---- reading files -----------------------------------------------------------------------

    @staticmethod
    def _read_file(path: str, folder_id: int, size: int, mtime: float) -> tuple[Any, ...] | str:
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

    @staticmethod
    def _eligible(path: str, folder: str) -> bool:
        """An image the walk would index: known suffix, no hidden component below the folder."""
        relative = path[len(folder.rstrip(os.sep)) + 1 :]
        if any(part.startswith(".") for part in relative.split(os.sep)):
            return False
        return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES

    def _walk(
        self, root: str, folder_id: int, skip: set[str], cancel: threading.Event | None
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

    # ---- scanning ----------------------------------------------------------------------------

    @_guarded
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
            text = str(_normalise_folder(folder))
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
            skip = {path for path in all_paths if path != root and _inside(path, root)}
            files, failed, finished = self._walk(root, folder_id, skip, cancel)
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
                        and not any(_inside(path, bad) for bad in failed)
                    ):
                        gone.append(path)
        if gone_images or gone_bad:
            self._write(lambda conn: self._delete_paths(conn, gone_images, gone_bad))
        walked = {folder_id: failed for folder_id, _root, failed in complete}
        for path, (folder_id, _size, _mtime) in list(self._unstorable.items()):  # gone: forgotten too
            failed = walked.get(folder_id)
            if failed is not None and path not in seen and not any(_inside(path, bad) for bad in failed):
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
        batch = _Batch(self, report)
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
        problem = path_problem(path)
        if problem is not None:  # not storable: remembered in memory only, for this session
            if self._unstorable.get(path) == (folder_id, size, mtime):
                batch.report.unchanged += 1
            else:
                self._remember_unstorable(path, folder_id, size, mtime)
                batch.skip(path, problem)
            return
        if (row is not None and row[1] == size and row[2] == mtime) or (
            bad is not None and bad[1] == size and bad[2] == mtime
        ):
            batch.report.unchanged += 1
            return
        result = self._read_file(path, folder_id, size, mtime)
        if isinstance(result, str):
            batch.unreadable(path, result, (path, folder_id, size, mtime, result, time.time()))
        else:
            batch.image(result, "added" if row is None else "updated", clear=bad is not None)

    def _remember_unstorable(self, path: str, folder_id: int, size: int, mtime: float) -> None:
        if path in self._unstorable or len(self._unstorable) < MAX_UNSTORABLE:
            self._unstorable[path] = (folder_id, size, mtime)

    def _known(self, table: str, folder_ids: list[int]) -> dict[str, tuple[int, int, float]]:
        """path -> (folder id, size, mtime) of the rows in ``table`` for these folders."""
        if not folder_ids:
            return {}
        marks = ",".join("?" * len(folder_ids))
        cursor = self._conn.execute(
            f"SELECT path, folder_id, size, mtime FROM {table} WHERE folder_id IN ({marks})", folder_ids
        )
        return {row[0]: (row[1], row[2], row[3]) for row in cursor}

    @staticmethod
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

    @staticmethod
    def _delete_paths(conn: sqlite3.Connection, images: list[str], unreadable: list[str]) -> int:
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

    @_guarded
    def index_file(self, path: str | os.PathLike[str]) -> str:
        """Bring one file's row up to date (for a file watcher); returns what happened:
        "added" | "updated" | "unchanged" | "unreadable" | "removed" (the file is gone).

        A path outside every gallery folder, or one a scan would skip (hidden, temp file, other
        type, empty placeholder), changes nothing ("unchanged") unless it was catalogued, in which case
        it is forgotten ("removed").  A file that cannot be read or stored (a name that is not valid
        UTF-8, say) is "unreadable"; like a scan, this never raises for a problem of the file's own.
        """
        text = str(_normalise_file(path))
        folder = self._deepest(text, self._folder_rows())
        try:
            info = os.stat(text)
        except OSError:
            self._unstorable.pop(text, None)
            self.forget(text)
            return "removed"
        if folder is None or not self._eligible(text, folder[1]) or not stat.S_ISREG(info.st_mode):
            return "removed" if self.forget(text) else "unchanged"
        if info.st_size == 0:
            return "unchanged"  # a placeholder being written: the next event brings the image
        problem = path_problem(text)
        if problem is not None:
            if self._unstorable.get(text) == (folder[0], info.st_size, info.st_mtime):
                return "unchanged"  # said already this session
            self._remember_unstorable(text, folder[0], info.st_size, info.st_mtime)
            logger.warning("gallery: skipping %s: %s", printable(text), problem)
            return "unreadable"
        file = (text, folder[0], info.st_size, info.st_mtime)
        row = self._conn.execute("SELECT size, mtime FROM images WHERE path = ?", (text,)).fetchone()
        bad = self._conn.execute("SELECT size, mtime FROM unreadable WHERE path = ?", (text,)).fetchone()
        if (row is not None and tuple(row) == file[2:]) or (bad is not None and tuple(bad) == file[2:]):
            return "unchanged"
        result = self._read_file(*file)
        if isinstance(result, str):
            self._remember_unreadable(file, result)
            return "unreadable"
        error = self._write(lambda conn: _in_savepoint(conn, lambda: self._store_one(conn, result)))
        if error is not None:
            self._remember_unreadable(file, error)
            return "unreadable"
        return "added" if row is None else "updated"

    @staticmethod
    def _store_one(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        conn.execute(_UPSERT, row)
        conn.execute("DELETE FROM unreadable WHERE path = ?", (row[0],))

    def _remember_unreadable(self, file: _Found, reason: str) -> None:
        """Record a file that failed with the size and mtime it had, so it is read again only once it
        changes."""
        logger.warning("gallery: skipping unreadable image %s: %s", printable(file[0]), printable(reason))
        values = (*file, reason, time.time())
        error = self._write(
            lambda conn: _in_savepoint(conn, lambda: conn.execute(_UPSERT_UNREADABLE, values))
        )
        if error is not None:
            logger.warning("gallery: cannot remember %s as unreadable: %s", printable(file[0]), error)

    @_guarded
    def forget(self, path: str | os.PathLike[str]) -> bool:
        """Drop one file's row (the file is not touched); True if it was catalogued."""
        text = str(_normalise_file(path))
        if path_problem(text) is not None:
            return False  # never stored
        return self._write(lambda conn: self._delete_paths(conn, [text], [text])) > 0

    # ---- queries -----------------------------------------------------------------------------

    @staticmethod
    def _where(query: Query) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        include, exclude = fts_query(query.text or "")
        if include:
            clauses.append("i.id IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)")
            params.append(include)
        if exclude:
            clauses.append("i.id NOT IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)")
            params.append(exclude)
        if query.model is not None:
            clauses.append("i.model = ?")
            params.append(query.model)
        if query.date_from is not None:
            clauses.append("i.created >= ?")
            params.append(float(query.date_from))
        if query.date_to is not None:
            clauses.append("i.created <= ?")
            params.append(float(query.date_to))
        if query.favourites_only:
            clauses.append("i.favourite = 1")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _images(self, sql: str, params: Sequence[Any]) -> list[GalleryImage]:
        """The images a ``SELECT {_COLUMNS}`` returns, each value checked (see
        :func:`~studio.library.gallery_rows.image_from_row`)."""
        images = (image_from_row(row) for row in self._conn.execute(sql, params))
        return [image for image in images if image is not None]

    @_guarded
    def search(self, query: Query | None = None, *, limit: int = 200, offset: int = 0) -> list[GalleryImage]:
        """Images matching ``query`` (default: all), sorted as it asks, one page at a time."""
        query = query if query is not None else Query()
        order = {
            "newest": "i.created DESC, i.id DESC",
            "oldest": "i.created ASC, i.id ASC",
            "rating": "i.rating DESC, i.created DESC, i.id DESC",
        }.get(query.sort)
        if order is None:
            raise ValueError(f"unknown sort {query.sort!r} (use one of {', '.join(SORTS)})")
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = self._where(query)
        sql = f"SELECT {_COLUMNS} FROM {_FROM}{where} ORDER BY {order} LIMIT ? OFFSET ?"
        return self._images(sql, [*params, limit, offset])

    @_guarded
    def count(self, query: Query | None = None) -> int:
        where, params = self._where(query if query is not None else Query())
        return int(self._conn.execute(f"SELECT COUNT(*) FROM images AS i{where}", params).fetchone()[0])

    @_guarded
    def get(self, image_id: int) -> GalleryImage | None:
        found = self._images(f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.id = ?", (int64_value(image_id),))
        return found[0] if found else None

    @_guarded
    def get_by_path(self, path: str | os.PathLike[str]) -> GalleryImage | None:
        text = str(_normalise_file(path))
        if path_problem(text) is not None:
            return None  # never stored
        found = self._images(f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.path = ?", (text,))
        return found[0] if found else None

    @_guarded
    def set_rating(self, image_id: int, rating: int) -> None:
        """0 (unrated) .. 5.  An unknown id (e.g. removed by a concurrent scan) is ignored."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise ValueError(f"rating must be an integer from 0 to 5, not {rating!r}")
        self._write(
            lambda conn: conn.execute("UPDATE images SET rating = ? WHERE id = ?", (rating, image_id))
        )

    @_guarded
    def set_favourite(self, image_id: int, favourite: bool) -> None:
        """An unknown id (e.g. removed by a concurrent scan) is ignored."""
        value = 1 if favourite else 0
        self._write(
            lambda conn: conn.execute("UPDATE images SET favourite = ? WHERE id = ?", (value, image_id))
        )

    @_guarded
    def models(self) -> list[str]:
        """Distinct model names, for the model filter (case-insensitive order)."""
        cursor = self._conn.execute(
            "SELECT DISTINCT model FROM images WHERE model IS NOT NULL ORDER BY model COLLATE NOCASE, model"
        )
        return [row[0] for row in cursor if isinstance(row[0], str) and row[0]]
