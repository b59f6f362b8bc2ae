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
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from studio.library.metadata import ImageMetadata, read_metadata

__all__ = [
    "BATCH_SIZE",
    "IMAGE_SUFFIXES",
    "SCHEMA_VERSION",
    "Gallery",
    "GalleryError",
    "GalleryImage",
    "Query",
    "ScanProgress",
    "ScanReport",
    "fts_query",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""Version of the database layout this code writes; older files are migrated forward on open."""

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
BATCH_SIZE = 500
"""Files written per transaction during a scan (a commit per file would be ~100x slower)."""
BATCH_SECONDS = 1.0
"""A batch is also committed after this long, so images appear in the GUI while a slow scan runs."""
PROGRESS_EVERY = 100
"""Files between two progress callbacks (plus one at the start and one at the end)."""
BUSY_TIMEOUT_S = 10.0

MAX_PROMPT_CHARS = 10_000
"""Prompts are capped (untrusted files): real ones are a few hundred characters, a few thousand at most."""
MAX_NAME_CHARS = 512
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32
SOURCES = frozenset({"latent-studio", "a1111", "comfyui", "invokeai"})
SORTS = ("newest", "oldest", "rating")

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class GalleryError(RuntimeError):
    """The catalogue file cannot be used (not a database, made by a newer version, ...)."""


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class GalleryImage:
    """One catalogued image.  ``created`` is when it was made: our JSON ``created`` when present, else
    the file's mtime (other tools do not record it reliably).  Text fields are capped in length."""

    id: int
    path: Path
    folder: Path
    size: int
    mtime: float
    width: int | None
    height: int | None
    created: float
    model: str | None
    seed: int | None
    steps: int | None
    scheduler: str | None
    prompt: str | None
    negative_prompt: str | None
    source: str | None
    rating: int
    favourite: bool


@dataclass(slots=True)
class ScanProgress:
    """Reported from the scanning thread: ``done`` of ``total`` files looked at, ``path`` the last one."""

    done: int
    total: int
    path: Path | None


@dataclass(slots=True)
class ScanReport:
    """What a scan changed.  ``unreadable`` counts files that failed to read in this scan; a broken
    file that has not changed since it last failed is not opened again and counts as ``unchanged``."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unreadable: int = 0
    unchanged: int = 0
    seconds: float = 0.0


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
# Schema and migrations
# --------------------------------------------------------------------------------------------------

# Each migration is a list of single statements (not a script: ``executescript`` would commit the
# surrounding transaction, and a migration must apply completely or not at all).
_V1: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at REAL NOT NULL
    )""",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        width INTEGER,
        height INTEGER,
        created REAL NOT NULL,
        model TEXT,
        seed INTEGER,
        steps INTEGER,
        prompt TEXT,
        rating INTEGER NOT NULL DEFAULT 0,
        favourite INTEGER NOT NULL DEFAULT 0,
        indexed_at REAL NOT NULL
    )""",
    "CREATE INDEX images_folder ON images(folder_id)",
    "CREATE INDEX images_created ON images(created)",
)

_V2: tuple[str, ...] = (
    "ALTER TABLE images ADD COLUMN scheduler TEXT",
    "ALTER TABLE images ADD COLUMN negative_prompt TEXT",
    "ALTER TABLE images ADD COLUMN source TEXT",
    # Rows from v1 lack the new columns: an impossible mtime makes the next scan re-read them
    # (an update, so ids, ratings and favourites are kept).
    "UPDATE images SET mtime = -1",
    """CREATE TABLE unreadable (
        path TEXT PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        error TEXT,
        checked_at REAL NOT NULL
    )""",
    "CREATE INDEX unreadable_folder ON unreadable(folder_id)",
    "CREATE INDEX images_model ON images(model, created)",
    "CREATE INDEX images_rating ON images(rating, created)",
    "CREATE INDEX images_favourites ON images(created) WHERE favourite = 1",
    # External content: the text lives once, in images.  No prefix indexes (prefix='2 3'): they enlarge
    # the index and slow every insert, and prefix queries over a gallery-sized index are fast without
    # them (bench/gallery.py: 2-4 letter prefixes over 10,000 prompts in a few milliseconds).
    """CREATE VIRTUAL TABLE images_fts USING fts5(
        prompt, negative_prompt,
        content='images', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN
        INSERT INTO images_fts(rowid, prompt, negative_prompt)
        VALUES (new.id, new.prompt, new.negative_prompt);
    END""",
    """CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
        INSERT INTO images_fts(images_fts, rowid, prompt, negative_prompt)
        VALUES ('delete', old.id, old.prompt, old.negative_prompt);
    END""",
    """CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative_prompt ON images
    WHEN old.prompt IS NOT new.prompt OR old.negative_prompt IS NOT new.negative_prompt BEGIN
        INSERT INTO images_fts(images_fts, rowid, prompt, negative_prompt)
        VALUES ('delete', old.id, old.prompt, old.negative_prompt);
        INSERT INTO images_fts(rowid, prompt, negative_prompt)
        VALUES (new.id, new.prompt, new.negative_prompt);
    END""",
    "INSERT INTO images_fts(images_fts) VALUES ('rebuild')",
)

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ((1, _V1), (2, _V2))
"""Forward migrations: (version reached, statements).  Append; never edit a released one."""

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


def _clip(value: Any, limit: int) -> str | None:
    """A capped, NUL-free string, or None for anything that is not a non-empty string."""
    if not isinstance(value, str):
        return None
    text = value[:limit].replace("\x00", "")
    return text or None


def _int64(value: Any) -> int | None:
    """SQLite integers are 64-bit: a hostile seed of 10**30 must become None, not an OverflowError."""
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


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


class Gallery:
    """The image catalogue in one SQLite file.  One object per thread (see the module docstring)."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path) if str(db_path) != ":memory:" else Path(":memory:")
        if str(db_path) != ":memory:":
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly as
            # long as we mean it to be (Python's implicit transactions would also wrap DDL oddly).
            self._conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot open the gallery database {db_path}: {exc}") from exc
        try:
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal" and str(db_path) != ":memory:":
                logger.warning("gallery: WAL not available for %s (journal mode %s)", db_path, mode)
            self._conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a cache needs no more
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA temp_store = MEMORY")  # the staging tables of batched writes
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise GalleryError(f"cannot use the gallery database {db_path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def default(cls) -> Gallery:
        """The app's catalogue: ``settings.data_dir()/gallery.sqlite3``."""
        from studio import settings

        return cls(settings.data_dir() / "gallery.sqlite3")

    def close(self) -> None:
        """Close the connection (idempotent).  ``PRAGMA optimize`` first keeps query plans good."""
        conn = getattr(self, "_conn", None)
        if conn is None:
            return
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA optimize")
        conn.close()
        self._conn = None  # type: ignore[assignment]

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

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- schema ------------------------------------------------------------------------------

    def _version(self) -> int:
        tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            if "images" in tables or "folders" in tables:
                raise GalleryError(f"{self.db_path}: not a gallery database (no schema version)")
            return 0
        row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self) -> None:
        """Bring the file to :data:`SCHEMA_VERSION`, one migration per transaction, in order."""
        if self._version() == SCHEMA_VERSION:  # the common case: no write lock taken
            return
        self._conn.execute("BEGIN IMMEDIATE")  # two processes opening an old file: one migrates
        try:
            version = self._version()
            if version > SCHEMA_VERSION:
                raise GalleryError(
                    f"{self.db_path} was written by a newer Latent Studio (schema {version}; this version "
                    f"understands up to {SCHEMA_VERSION})"
                )
            for target, statements in MIGRATIONS:
                if target <= version:
                    continue
                for statement in statements:
                    self._conn.execute(statement)
                self._conn.execute("DELETE FROM schema_version")
                self._conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
                logger.info("gallery: migrated %s to schema %d", self.db_path, target)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _write(self, statements: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``statements`` in one write transaction (BEGIN IMMEDIATE: wait for the lock up front
        rather than fail half-way on upgrading a read lock)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = statements(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    # ---- folders -----------------------------------------------------------------------------

    def _folder_rows(self) -> list[tuple[int, str]]:
        return [
            (int(r[0]), str(r[1])) for r in self._conn.execute("SELECT id, path FROM folders ORDER BY path")
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

    def add_folder(self, path: str | os.PathLike[str]) -> Path:
        """Register a folder (resolved); returns it.  Idempotent.  Scanning is separate (:meth:`scan`)."""
        folder = _normalise_folder(path)
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        text = str(folder)

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

    def remove_folder(self, path: str | os.PathLike[str]) -> None:
        """Forget a folder and its images (rows only: files are never touched).  Images that are also
        inside another registered folder move to it, keeping their ratings."""
        text = str(_normalise_folder(path))

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

    def folders(self) -> list[Path]:
        return [Path(path) for _, path in self._folder_rows()]

    # ---- reading files -----------------------------------------------------------------------

    def _read_file(self, path: str, folder_id: int, size: int, mtime: float) -> tuple[Any, ...] | str:
        """The row for a file, or an error message when it is not a readable image."""
        try:
            meta = read_metadata(path)
            width, height = _image_size(path)
        except Exception as exc:  # MetadataError, OSError, and whatever a corrupt header raises
            return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
        source = meta.source if meta is not None and meta.source in SOURCES else None
        return (
            path,
            folder_id,
            size,
            mtime,
            width,
            height,
            _created(meta, mtime),
            _clip(meta.model, MAX_NAME_CHARS) if meta else None,
            _int64(meta.seed) if meta else None,
            _int64(meta.steps) if meta else None,
            _clip(meta.scheduler, MAX_NAME_CHARS) if meta else None,
            _clip(meta.prompt, MAX_PROMPT_CHARS) if meta else None,
            _clip(meta.negative_prompt, MAX_PROMPT_CHARS) if meta else None,
            source,
            time.time(),
        )

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
        ``progress`` is called in this thread every :data:`PROGRESS_EVERY` files, outside any
        transaction.  ``cancel`` is checked between files: what was done so far is committed.
        Raises ValueError for a folder that was never added.
        """
        started = time.perf_counter()
        report = ScanReport()
        registered = self._folder_rows()
        if folders is None:
            targets = registered
        else:
            by_path = {path: folder_id for folder_id, path in registered}
            targets = []
            for folder in folders:
                text = str(_normalise_folder(folder))
                if text not in by_path:
                    raise ValueError(f"{text}: not a gallery folder (add it first)")
                targets.append((by_path[text], text))
        all_paths = {path for _, path in registered}

        # 1. Walk everything first: the total for progress, and the list of what still exists.
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

        target_ids = [folder_id for folder_id, _ in targets]
        known = self._known("images", target_ids)
        known_bad = self._known("unreadable", target_ids)

        # 2. Remove what is gone (only for folders walked completely).
        if not (cancel is not None and cancel.is_set()):
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
            report.removed = len(gone_images)

        # 3. Read new and changed files, write in batches.
        total = len(found)
        rows: list[tuple[Any, ...]] = []
        bad_rows: list[tuple[Any, ...]] = []
        cleared: list[str] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal rows, bad_rows, cleared, last_flush
            if rows or bad_rows or cleared:
                batch, bad_batch, clear_batch = rows, bad_rows, cleared

                def write(conn: sqlite3.Connection) -> None:
                    if batch:
                        self._upsert_images(conn, batch)
                    if bad_batch:
                        conn.executemany(_UPSERT_UNREADABLE, bad_batch)
                    if clear_batch:
                        self._delete_paths(conn, [], clear_batch)

                self._write(write)
            rows, bad_rows, cleared = [], [], []
            last_flush = time.monotonic()

        if progress is not None:
            progress(ScanProgress(0, total, None))
        done = 0
        try:
            for path, folder_id, size, mtime in found:
                if cancel is not None and cancel.is_set():
                    break
                done += 1
                row = known.get(path)
                bad = known_bad.get(path)
                if (row is not None and row[1] == size and row[2] == mtime) or (
                    bad is not None and bad[1] == size and bad[2] == mtime
                ):
                    report.unchanged += 1
                else:
                    result = self._read_file(path, folder_id, size, mtime)
                    if isinstance(result, str):
                        logger.warning("gallery: skipping unreadable image %s: %s", path, result)
                        report.unreadable += 1
                        bad_rows.append((path, folder_id, size, mtime, result, time.time()))
                    else:
                        if row is None:
                            report.added += 1
                        else:
                            report.updated += 1
                        rows.append(result)
                        if bad is not None:
                            cleared.append(path)
                    if (
                        len(rows) + len(bad_rows) >= BATCH_SIZE
                        or time.monotonic() - last_flush > BATCH_SECONDS
                    ):
                        flush()
                if progress is not None and done % PROGRESS_EVERY == 0:
                    progress(ScanProgress(done, total, Path(path)))
        finally:
            flush()
        if progress is not None and done % PROGRESS_EVERY != 0:
            progress(ScanProgress(done, total, Path(found[done - 1][0]) if done else None))
        report.seconds = time.perf_counter() - started
        return report

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

    def index_file(self, path: str | os.PathLike[str]) -> str:
        """Bring one file's row up to date (for a file watcher); returns what happened:
        "added" | "updated" | "unchanged" | "unreadable" | "removed" (the file is gone).

        A path outside every gallery folder, or one a scan would skip (hidden, temp file, other
        type, empty placeholder), changes nothing ("unchanged") unless it was catalogued, in which case
        it is forgotten ("removed").
        """
        text = str(_normalise_file(path))
        folder = self._deepest(text, self._folder_rows())
        try:
            info = os.stat(text)
        except OSError:
            self.forget(text)
            return "removed"
        if folder is None or not self._eligible(text, folder[1]) or not stat.S_ISREG(info.st_mode):
            return "removed" if self.forget(text) else "unchanged"
        if info.st_size == 0:
            return "unchanged"  # a placeholder being written: the next event brings the image
        folder_id = folder[0]
        row = self._conn.execute("SELECT size, mtime FROM images WHERE path = ?", (text,)).fetchone()
        bad = self._conn.execute("SELECT size, mtime FROM unreadable WHERE path = ?", (text,)).fetchone()
        current = (info.st_size, info.st_mtime)
        if (row is not None and tuple(row) == current) or (bad is not None and tuple(bad) == current):
            return "unchanged"
        result = self._read_file(text, folder_id, info.st_size, info.st_mtime)
        if isinstance(result, str):
            logger.warning("gallery: skipping unreadable image %s: %s", text, result)
            values = (text, folder_id, info.st_size, info.st_mtime, result, time.time())
            self._write(lambda conn: conn.execute(_UPSERT_UNREADABLE, values))
            return "unreadable"

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, result)
            conn.execute("DELETE FROM unreadable WHERE path = ?", (text,))

        self._write(write)
        return "added" if row is None else "updated"

    def forget(self, path: str | os.PathLike[str]) -> bool:
        """Drop one file's row (the file is not touched); True if it was catalogued."""
        text = str(_normalise_file(path))
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

    @staticmethod
    def _image(row: Sequence[Any]) -> GalleryImage:
        return GalleryImage(
            id=row[0],
            path=Path(row[1]),
            folder=Path(row[2]),
            size=row[3],
            mtime=row[4],
            width=row[5],
            height=row[6],
            created=row[7],
            model=row[8],
            seed=row[9],
            steps=row[10],
            scheduler=row[11],
            prompt=row[12],
            negative_prompt=row[13],
            source=row[14],
            rating=row[15],
            favourite=bool(row[16]),
        )

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
        return [self._image(row) for row in self._conn.execute(sql, [*params, limit, offset])]

    def count(self, query: Query | None = None) -> int:
        where, params = self._where(query if query is not None else Query())
        return int(self._conn.execute(f"SELECT COUNT(*) FROM images AS i{where}", params).fetchone()[0])

    def get(self, image_id: int) -> GalleryImage | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.id = ?", (image_id,)).fetchone()
        return self._image(row) if row else None

    def get_by_path(self, path: str | os.PathLike[str]) -> GalleryImage | None:
        text = str(_normalise_file(path))
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.path = ?", (text,)).fetchone()
        return self._image(row) if row else None

    def set_rating(self, image_id: int, rating: int) -> None:
        """0 (unrated) .. 5.  An unknown id (e.g. removed by a concurrent scan) is ignored."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise ValueError(f"rating must be an integer from 0 to 5, not {rating!r}")
        self._write(
            lambda conn: conn.execute("UPDATE images SET rating = ? WHERE id = ?", (rating, image_id))
        )

    def set_favourite(self, image_id: int, favourite: bool) -> None:
        """An unknown id (e.g. removed by a concurrent scan) is ignored."""
        value = 1 if favourite else 0
        self._write(
            lambda conn: conn.execute("UPDATE images SET favourite = ? WHERE id = ?", (value, image_id))
        )

    def models(self) -> list[str]:
        """Distinct model names, for the model filter (case-insensitive order)."""
        cursor = self._conn.execute(
            "SELECT DISTINCT model FROM images WHERE model IS NOT NULL ORDER BY model COLLATE NOCASE, model"
        )
        return [row[0] for row in cursor]
