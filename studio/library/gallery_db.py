"""The gallery's SQLite file itself: its layout, opening it safely, and telling damage from trouble.

Why a module of its own: what can go wrong with the file is independent of what the catalogue does
with it, and each failure wants a different answer.

* Busy (another process holds a lock): wait and try again.  ``busy_timeout`` covers most statements,
  but SQLite does not call the busy handler everywhere: switching a brand-new file to WAL, or
  upgrading a read lock while another connection does the same, fails at once with "database is
  locked".  So the opening steps retry with backoff (:func:`retry_busy`), and creating or migrating
  the schema is one ``BEGIN IMMEDIATE`` transaction that re-reads the version once it holds the lock:
  of several processes creating the same new catalogue, one creates it and the others find it made.
* Damaged (not a database, malformed pages, a table missing, a version that is not a number): no
  retry helps, and the raw SQLite message ("no such table: images_fts") tells the user nothing.  It
  becomes :class:`CatalogueDamagedError`, which names the file, the reason and the fix.  The
  catalogue is a cache of what the image files say, so the fix is to move the file aside and rebuild
  it (:mod:`studio.library.gallery_repair`).
* Not ours (a valid SQLite file that holds tables but not our schema marker: someone's own
  ``photos.db`` passed with ``--db``): :class:`NotACatalogueError`, a plain :class:`GalleryError`.  It is
  never called damaged (a repair would move it aside) and nothing is written into it: it is recognised
  before the switch to WAL and before any table of ours is created.  Our marker is the
  ``schema_version`` table beside a ``folders`` or ``images`` table (or, for a catalogue that lost that
  table, the whole set of our tables: see :data:`~studio.library.gallery_schema.FINGERPRINT`); a file with no tables at all is a new,
  empty catalogue.
* Anything else (a read-only folder, a disk full, a newer schema): :class:`GalleryError`, and the
  file is left alone.

Checks that must not write (``studio gallery repair`` looking at a suspect file) open the file
read-only (:func:`connect_readonly`) and use :func:`inspect_layout`, which migrates nothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote

from studio.library.display import first_line
from studio.library.gallery_schema import (
    COLUMNS_BY_VERSION,
    FINGERPRINT,
    MIGRATIONS,
    OUR_TABLES,
    REQUIRED,
    REQUIRED_BY_VERSION,
    SCHEMA_VERSION,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CatalogueDamagedError",
    "FileId",
    "GalleryError",
    "NotACatalogueError",
    "connect_readonly",
    "damage_reason",
    "file_id",
    "guarded",
    "inspect_layout",
    "is_busy",
    "open_catalogue",
    "retry_busy",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_P = ParamSpec("_P")

FileId = tuple[int, int]
"""(st_dev, st_ino): which file a path named when it was looked at.  A repair compares the file found
damaged with the one it is about to move aside, so that it never moves a catalogue another process has
just rebuilt."""

BUSY_TIMEOUT_S = 10.0
"""How long a statement waits for another connection's lock before it fails."""

REPAIR_HINT = (
    "run `studio gallery repair` to move it aside and rebuild it from the image folders "
    "(the app does this on start)"
)


class GalleryError(RuntimeError):
    """The catalogue file cannot be used (cannot be opened, made by a newer version, ...)."""


class CatalogueDamagedError(GalleryError):
    """The catalogue file is damaged: not a database, malformed, or missing part of its layout.

    ``db_path`` is the file, ``reason`` what is wrong with it in a few words.  The message says both
    and the fix, so that every caller can show it as it is.  ``file_id`` is the identity of the file
    that was found damaged (see :data:`FileId`; None when unknown): pass it to
    :func:`~studio.library.gallery_repair.rebuild_damaged`.
    """

    def __init__(self, db_path: str | Path, reason: str, file_id: FileId | None = None) -> None:
        self.db_path = Path(db_path)
        self.reason = reason
        self.file_id = file_id
        super().__init__(f"The gallery catalogue {db_path} is damaged ({reason}); {REPAIR_HINT}")


class NotACatalogueError(GalleryError):
    """The file is a valid SQLite database, but not a gallery catalogue (someone's own ``photos.db``).

    Not damage: it is left as it is, and a repair refuses it unless forced.
    """

    def __init__(self, db_path: str | Path, tables: Iterable[str], *, advice: str = "") -> None:
        self.db_path = Path(db_path)
        names = sorted(tables)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        self.tables = names
        super().__init__(
            f"{db_path} is not a Latent Studio gallery catalogue (an SQLite database of something else, "
            f"with the tables {shown}); it was left as it is" + (f"; {advice}" if advice else "")
        )


def file_id(path: str | os.PathLike[str]) -> FileId | None:
    """The identity (st_dev, st_ino) of the file at ``path`` now, or None when there is none."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


# --------------------------------------------------------------------------------------------------
# Telling damage from trouble
# --------------------------------------------------------------------------------------------------

_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_MISSING_PARTS = ("no such table", "no such column", "vtable constructor failed", "malformed")


def damage_reason(exc: BaseException) -> str | None:
    """Why ``exc`` shows the catalogue is damaged, or None when it shows something else.

    Damaged means SQLite reports corruption or "not a database", or a statement of ours finds part of
    the layout missing ("no such table: images_fts").  Not damaged: locks, I/O and permission errors,
    a full disk, and the errors the sqlite3 module raises itself (a closed connection), which have no
    SQLite error code.
    """
    if isinstance(exc, CatalogueDamagedError):
        return exc.reason
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.ProgrammingError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    text = first_line(exc)
    if code is not None and code & 0xFF in _DAMAGE_CODES:
        return text
    if (code is None or code & 0xFF == sqlite3.SQLITE_ERROR) and text.startswith(_MISSING_PARTS):
        return text
    return None


def guarded(method: Callable[Concatenate[Any, _P], T]) -> Callable[Concatenate[Any, _P], T]:
    """Turn the SQLite errors that show the catalogue is damaged into :class:`CatalogueDamagedError`
    (and tell the owner's ``_damaged``), whichever method of a :class:`~studio.library.gallery.Gallery`
    met them: "no such table: images_fts" may surface in a search, "database disk image is malformed" in
    a scan's last batch.  The owner has ``db_path``, ``file_id`` and ``_damaged(error)``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> T:
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

    return wrapper


def is_busy(exc: BaseException) -> bool:
    """Another connection holds a lock we need: trying again later can succeed."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(exc)


def retry_busy(action: Callable[[], T], *, timeout: float = BUSY_TIMEOUT_S) -> T:
    """``action()``, tried again with growing, jittered pauses while it fails because the database is
    busy, for at most ``timeout`` seconds; other errors are raised at once.

    Why: the steps that open a catalogue can fail with "database is locked" without SQLite waiting at
    all (see the module docstring).  ``action`` must be safe to repeat: a pragma, or a transaction that
    rolled back.
    """
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause * (0.5 + random.random()))  # noqa: S311 - jitter, not cryptography
        pause = min(pause * 2, 0.1)


# --------------------------------------------------------------------------------------------------
# Checking the layout, migrating (the layout itself: studio.library.gallery_schema)
# --------------------------------------------------------------------------------------------------


def _schema(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    """(type, name) of every table, view, index and trigger in the file."""
    return {(str(row[0]), str(row[1])) for row in conn.execute("SELECT type, name FROM sqlite_master")}


def _version(conn: sqlite3.Connection, db_path: Path, schema: set[tuple[str, str]]) -> int:
    """The schema version the file records; 0 for a new, empty file (no tables, views or triggers).

    Raises :class:`NotACatalogueError` for a file that holds something but not our marker (the
    ``schema_version`` table beside a ``folders`` or ``images`` table): another program's database.
    One holding all of our tables but the marker is ours, damaged.
    """
    objects = {(kind, name) for kind, name in schema if not name.startswith("sqlite_")}
    if not objects:
        return 0
    tables = {name for kind, name in objects if kind == "table"}
    if "schema_version" not in tables and tables >= FINGERPRINT:
        raise CatalogueDamagedError(db_path, "it has no schema version table")
    if "schema_version" not in tables or not tables & OUR_TABLES:
        raise NotACatalogueError(db_path, tables or {name for _kind, name in objects})
    values = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    if not values:
        raise CatalogueDamagedError(db_path, "its schema version is missing")
    bad = [value for value in values if not isinstance(value, int)]
    if bad:
        raise CatalogueDamagedError(
            db_path, f"its schema version is {str(bad[0])[:40]!r}, not a whole number"
        )
    version = max(values)
    if version < 1:
        raise CatalogueDamagedError(db_path, f"its schema version is {version}")
    return version




def _check_layout(
    conn: sqlite3.Connection, db_path: Path, schema: set[tuple[str, str]], version: int = SCHEMA_VERSION
) -> None:
    for kind, name in REQUIRED_BY_VERSION.get(version, REQUIRED):
        if (kind, name) not in schema:
            raise CatalogueDamagedError(db_path, f"the {kind} {name} is missing")
    for table, columns in COLUMNS_BY_VERSION.get(version, COLUMNS_BY_VERSION[SCHEMA_VERSION]).items():
        present = {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [column for column in columns if column not in present]
        if missing:
            raise CatalogueDamagedError(db_path, f"the column {table}.{missing[0]} is missing")


def inspect_layout(conn: sqlite3.Connection, db_path: str | Path) -> int:
    """The schema version of the file behind ``conn`` (0: empty), its layout checked for that version;
    reads only, migrates nothing (for a read-only connection).

    Raises :class:`NotACatalogueError` (another program's database), :class:`CatalogueDamagedError`,
    :class:`GalleryError` for a newer version's file, and sqlite3 errors as they come.
    """
    shown = Path(db_path)
    schema = _schema(conn)
    version = _version(conn, shown, schema)
    if version > SCHEMA_VERSION:
        raise GalleryError(_newer(shown, version))
    if version:
        _check_layout(conn, shown, schema, version)
    return version


def readonly_uri(db_path: str | os.PathLike[str], options: str = "mode=ro") -> str:
    """An SQLite URI opening ``db_path`` with ``options`` (``mode=ro``: read-only)."""
    return "file:" + quote(os.fspath(Path(db_path).absolute()), safe="/") + "?" + options


def connect_readonly(db_path: str | os.PathLike[str], *, timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A read-only connection to ``db_path`` (``mode=ro``): nothing it runs can change the database or
    its ``-wal`` (a read-only connection never checkpoints; beside a WAL database SQLite may create an
    empty ``-wal`` and the ``-shm`` index if they are absent).  Text that is not valid UTF-8 reads as
    U+FFFD."""
    conn = sqlite3.connect(readonly_uri(db_path), uri=True, timeout=timeout, isolation_level=None)
    conn.text_factory = decode_text
    return conn


def decode_text(data: bytes) -> str:
    """Text read back from the file (a connection's ``text_factory``): invalid UTF-8 (a catalogue changed
    by hand) shows as U+FFFD rather than failing the whole query."""
    return data.decode("utf-8", "replace")


def quick_check_problem(conn: sqlite3.Connection) -> str | None:
    """What SQLite's ``quick_check`` finds wrong with the file (one short line), or None."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)")]
    if rows == ["ok"]:
        return None
    found = " ".join(" ".join(rows).replace("*** in database main ***", "").split())
    return f"the integrity check failed: {found[:200]}"


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite may already have rolled it back itself, and a
    failing ROLLBACK must not hide the error that led here)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection, db_path: Path) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` in one transaction, and check its layout.

    Under ``BEGIN IMMEDIATE`` (one writer at a time) the version is read again: when several processes
    create or upgrade the same file at once, the first one migrates and the others find it done.
    """
    schema = _schema(conn)
    version = _version(conn, db_path, schema)
    if version == SCHEMA_VERSION:  # the common case: no write lock taken
        _check_layout(conn, db_path, schema)
        return
    if version > SCHEMA_VERSION:
        raise GalleryError(_newer(db_path, version))
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn, db_path, _schema(conn))
        if version > SCHEMA_VERSION:
            raise GalleryError(_newer(db_path, version))
        for target, statements in MIGRATIONS:
            if target <= version:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
            logger.info("gallery: migrated %s to schema %d", db_path, target)
        _check_layout(conn, db_path, _schema(conn))
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _newer(db_path: Path, version: int) -> str:
    return (
        f"{db_path} was written by a newer Latent Studio (schema {version}; this version "
        f"understands up to {SCHEMA_VERSION})"
    )


def _set_up(conn: sqlite3.Connection, db_path: Path, memory: bool) -> None:
    # Another program's database is recognised before anything is written (the WAL switch rewrites
    # the header): it is left exactly as it was.
    retry_busy(lambda: _version(conn, db_path, _schema(conn)))
    mode = retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if str(mode).lower() != "wal" and not memory:
        logger.warning("gallery: WAL not available for %s (journal mode %s)", db_path, mode)
    conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a cache needs no more
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")  # the staging tables of batched writes
    retry_busy(lambda: _migrate(conn, db_path))


def open_catalogue(db_path: str | Path) -> sqlite3.Connection:
    """A connection to the catalogue at ``db_path`` (``":memory:"`` for a private, empty one), in WAL
    mode, at :data:`SCHEMA_VERSION`, its layout checked.

    Raises :class:`CatalogueDamagedError` when the file is damaged and :class:`GalleryError` when it
    cannot be used for another reason; the connection is closed then.
    """
    memory = str(db_path) == ":memory:"
    shown = Path(db_path)
    # The file as it was before opening: should it be damaged, a repair moves this one and no other.
    seen = None if memory else file_id(db_path)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly as
        # long as we mean it to be (Python's implicit transactions would also wrap DDL oddly).
        conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise GalleryError(f"cannot open the gallery database {db_path}: {first_line(exc)}") from exc
    try:
        _set_up(conn, shown, memory)
    except sqlite3.DatabaseError as exc:
        conn.close()
        reason = damage_reason(exc)
        if reason is not None:
            raise CatalogueDamagedError(shown, reason, seen) from exc
        raise GalleryError(f"cannot use the gallery database {db_path}: {first_line(exc)}") from exc
    except CatalogueDamagedError as exc:
        conn.close()
        if exc.file_id is None:
            exc.file_id = seen
        raise
    except BaseException:
        conn.close()
        raise
    return conn
