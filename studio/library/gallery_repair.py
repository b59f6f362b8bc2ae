"""Repairing a damaged gallery catalogue: move it aside, start a fresh one, rescan the folders.

Why rebuild rather than patch: the catalogue is a cache of what the image files say, so the images are
the truth and a rescan restores every prompt, model and seed.  Only the marks the catalogue alone
knows (ratings, favourites) cannot be rescanned; they stay in the damaged file, which is moved aside
(``gallery.sqlite3.damaged-YYYYmmdd-HHMMSS``, with its ``-wal`` and ``-shm`` files, so SQLite still
finds them together) and never deleted.  The folders to rescan are read from the damaged file as well
as it still allows (a read-only connection, best effort), plus those the caller names (the app's
output folder).

Used by ``studio gallery repair`` and by the app when it finds its catalogue damaged.  Close every
connection to the catalogue first: a connection left open on the moved file would, on closing, delete
the ``-wal`` file by name, which by then is the new catalogue's.

Never losing the damaged file, whatever runs at the same time (the app repairing on start while the
user runs ``studio gallery repair``, two windows):

* One repair at a time: an exclusive advisory lock on ``NAME.lock`` beside the catalogue
  (``flock`` on POSIX, ``msvcrt.locking`` on Windows) is held from the check to the fresh catalogue's
  creation.  A second repairer waits for it (:data:`LOCK_WAIT_S`), then finds the catalogue already
  rebuilt; one that waits too long gets :class:`RepairInProgressError`.  The lock file stays (removing
  it would let a waiter lock a file no longer there); it is empty.
* The file found damaged is the one moved: its identity (st_dev, st_ino) is taken when the damage is
  found (:attr:`~studio.library.gallery_db.CatalogueDamagedError.file_id`, or here, before checking)
  and compared with the file at the path before anything moves.  A different file there means another
  process has already rebuilt it: nothing is moved, and the fresh catalogue is used.
* Moving never overwrites: each file gets its new name with ``link`` (which fails if the name exists;
  the next free name is tried) and loses its old one with ``unlink``.  Where links are not supported
  (some network and FAT file systems) the name is checked and then renamed: another process could
  create that very name in between, but it would have to pick the same second-precise name.
* Checking never writes: :func:`check_catalogue` reads the file through a read-only connection and
  migrates nothing.
* A database that is not a catalogue (another program's) is not damage: a repair refuses it unless
  forced, and then it is moved aside like a damaged one (never deleted); its tables are not read.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from studio.library.display import first_line
from studio.library.gallery import Gallery, ScanProgress, ScanReport
from studio.library.gallery_db import (
    CatalogueDamagedError,
    FileId,
    GalleryError,
    NotACatalogueError,
    connect_readonly,
    damage_reason,
    decode_text,
    file_id,
    inspect_layout,
    quick_check_problem,
    readonly_uri,
)

__all__ = [
    "LOCK_WAIT_S",
    "RecoveryReport",
    "RepairInProgressError",
    "check_catalogue",
    "move_aside",
    "read_folders",
    "rebuild_damaged",
    "repair_lock",
]

logger = logging.getLogger(__name__)

COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database, which belong with it wherever it goes."""
MAX_FOLDERS = 10_000
"""At most this many folders are taken from a damaged file (it could claim millions)."""
LOCK_WAIT_S = 15.0
"""How long a repair waits for another process's repair of the same catalogue to finish."""
_LOCK_POLL_S = 0.05


class RepairInProgressError(GalleryError):
    """Another process is repairing this catalogue, and did not finish within the wait."""


@dataclass(slots=True)
class RecoveryReport:
    """What :func:`rebuild_damaged` did.  ``reason`` is None when the catalogue was fine and nothing
    was done; otherwise the damaged file is at ``moved_to`` (``moved`` lists it with its companions),
    ``folders`` are in the fresh catalogue, ``missing`` are folders the old one listed that are gone,
    and ``scan`` is the rescan's report (None when not asked for).  ``already_repaired``: the file
    found damaged had been replaced by another process's repair meanwhile, so nothing was moved and
    the catalogue there was used.  ``foreign``: the file was not a catalogue at all (moved aside only
    because the repair was forced)."""

    db_path: Path
    reason: str | None = None
    moved_to: Path | None = None
    moved: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    scan: ScanReport | None = None
    already_repaired: bool = False
    foreign: bool = False

    @property
    def rebuilt(self) -> bool:
        return self.reason is not None

    def describe(self) -> str:
        """One paragraph for the user: what was wrong, where the old file is, what was rebuilt."""
        if not self.rebuilt:
            return f"The gallery catalogue {self.db_path} is fine: nothing to repair"
        count = len(self.folders)
        folders = f" ({count} folder{'s' if count != 1 else ''})" if count else ""
        moved = f"moved it to {self.moved_to} and " if self.moved_to is not None else ""
        if self.already_repaired:
            text = (
                f"The gallery catalogue {self.db_path} was damaged ({self.reason}); another process has "
                f"rebuilt it already{folders}. Its ratings and favourites stay in the damaged file, moved "
                f"aside beside it ({self.db_path.name}.damaged-...)"
            )
        elif self.foreign:
            text = (
                f"{self.db_path} was not a Latent Studio gallery catalogue; {moved}started a new "
                f"catalogue there{folders}"
            )
        else:
            text = (
                f"The gallery catalogue {self.db_path} was damaged ({self.reason}); {moved}rebuilt it from "
                f"your image folders{folders}"
            )
            if self.moved_to is not None:
                text += f". Its ratings and favourites stay in {self.moved_to.name}"
        if self.scan is not None:
            text += f"; {self.scan.added} images catalogued again"
        if self.missing:
            text += f"; {len(self.missing)} folder{'s' if len(self.missing) != 1 else ''} no longer found"
        return text + "."


# --------------------------------------------------------------------------------------------------
# Checking, read-only
# --------------------------------------------------------------------------------------------------


def check_catalogue(db_path: str | os.PathLike[str]) -> str | None:
    """Why the catalogue at ``db_path`` is damaged, or None when it is fine (or absent, or empty).

    Read-only (nothing is migrated, nothing written): checks the header, the schema version and the
    layout for that version, runs SQLite's ``quick_check``, and compares the search index with the
    images' text (see :func:`_check_search_index`).  Reads the whole file.  Raises
    :class:`NotACatalogueError` for another program's database and :class:`GalleryError` for a
    catalogue that cannot be used for another reason (a newer version, no permission): moving it aside
    would not help.
    """
    path = Path(db_path)
    if not path.exists():
        return None
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise GalleryError(f"cannot open the gallery database {path}: {first_line(exc)}") from exc
    try:
        return _check(conn, path)
    except CatalogueDamagedError as exc:
        return exc.reason
    except sqlite3.DatabaseError as exc:
        reason = damage_reason(exc)
        if reason is None:
            raise GalleryError(f"cannot check the gallery database {path}: {first_line(exc)}") from exc
        return reason
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, path: Path) -> str | None:
    version = inspect_layout(conn, path)
    if version == 0:
        return None  # an empty file: opening it makes a new catalogue
    problem = quick_check_problem(conn)
    if problem:
        return problem
    if version >= 2:
        return _check_search_index(conn)
    return None


_INDEX_AGAIN = (
    # The same tokenizer as the catalogue's index (gallery_db's migration 2).
    "CREATE VIRTUAL TABLE temp.images_fts_again USING fts5("
    "prompt, negative_prompt, tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO temp.images_fts_again(rowid, prompt, negative_prompt) "
    "SELECT id, prompt, negative_prompt FROM main.images",
    "CREATE VIRTUAL TABLE temp.terms_stored USING fts5vocab(main, images_fts, 'col')",
    "CREATE VIRTUAL TABLE temp.terms_again USING fts5vocab(temp, images_fts_again, 'col')",
)
_INDEX_DIFFERENCES = (
    "SELECT count(*) FROM (SELECT * FROM temp.terms_stored EXCEPT SELECT * FROM temp.terms_again)",
    "SELECT count(*) FROM (SELECT * FROM temp.terms_again EXCEPT SELECT * FROM temp.terms_stored)",
    "SELECT count(*) FROM (SELECT id, sz FROM main.images_fts_docsize "
    "EXCEPT SELECT id, sz FROM temp.images_fts_again_docsize)",
    "SELECT count(*) FROM (SELECT id, sz FROM temp.images_fts_again_docsize "
    "EXCEPT SELECT id, sz FROM main.images_fts_docsize)",
)


def _check_search_index(conn: sqlite3.Connection) -> str | None:
    """Does the search index hold exactly what the images' text gives?  FTS5's own ``integrity-check``
    is an INSERT, which a read-only connection refuses, so the index is made again from the images in
    this connection's TEMP database (never the file) and compared with the stored one: every term with
    its counts per column, and every image's token counts.  A damaged index either fails to read
    (malformed) or reads as missing terms (FTS5 treats unreadable segments as empty)."""
    try:
        for statement in _INDEX_AGAIN:
            conn.execute(statement)
        differences = [conn.execute(statement).fetchone()[0] for statement in _INDEX_DIFFERENCES]
    except sqlite3.DatabaseError as exc:
        reason = damage_reason(exc)
        if reason is None:
            raise
        return f"search index: {reason}"
    if any(differences):
        terms = differences[0] + differences[1]
        images = differences[2] + differences[3]
        return f"search index: it does not match the images ({terms} term counts and {images} image sizes differ)"
    return None


# --------------------------------------------------------------------------------------------------
# One repair at a time
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def repair_lock(
    db_path: str | os.PathLike[str],
    *,
    wait: float = LOCK_WAIT_S,
    cancel: threading.Event | None = None,
) -> Iterator[None]:
    """Hold the exclusive repair lock of the catalogue at ``db_path`` (``NAME.lock`` beside it).

    Waits up to ``wait`` seconds for another process's repair, then raises
    :class:`RepairInProgressError`; ``cancel`` ends the wait early (GalleryError "cancelled").  Where
    the lock cannot be taken at all (the folder is read-only, the file system has no locks), the repair
    goes ahead without it, relying on the identity check and the moves that never overwrite.
    """
    path = Path(db_path)
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        logger.warning("gallery: cannot create %s (%s); repairing without the lock", lock_path, exc)
        fd = None
    try:
        held = fd is not None and _acquire(fd, path, wait, cancel)
        try:
            yield
        finally:
            if held and fd is not None:
                _release(fd)
    finally:
        if fd is not None:
            os.close(fd)


def _acquire(fd: int, path: Path, wait: float, cancel: threading.Event | None) -> bool:
    """Take the lock; False when locks are not supported here.  Raises when another process holds it
    for longer than ``wait``."""
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            if _try_lock(fd):
                return True
        except OSError as exc:
            logger.warning("gallery: cannot lock %s.lock (%s); repairing without the lock", path, exc)
            return False
        if time.monotonic() >= deadline:
            raise RepairInProgressError(
                f"The gallery catalogue {path} is being repaired by another process; try again once it "
                "has finished"
            )
        if cancel is not None:
            if cancel.wait(_LOCK_POLL_S):
                raise GalleryError(f"repairing {path}: cancelled")
        else:
            time.sleep(_LOCK_POLL_S)


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:  # EACCES / EDEADLOCK: held by another process
            if exc.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
                return False
            raise
        return True

    def _release(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by another process (or another descriptor of this one)
            return False
        return True

    def _release(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------------
# Moving aside, never overwriting
# --------------------------------------------------------------------------------------------------


def move_aside(db_path: str | os.PathLike[str], *, expected: FileId | None = None) -> list[Path]:
    """Move the catalogue and its companion files to ``NAME.damaged-YYYYmmdd-HHMMSS`` (plus ``-2``,
    ``-3``... if taken) and the same suffixes; returns the new paths, the database first.

    Nothing is ever overwritten: a name that turns out to be taken, even by a file made a moment ago by
    another process, makes the whole set try the next one.  With ``expected`` (the identity of the
    file found damaged), a different file at ``db_path`` is not moved: GalleryError.  The companions
    move first (a ``-wal`` left beside a fresh database would be read into it).  If any move fails,
    those done are undone and GalleryError is raised: nothing is ever deleted.
    """
    path = Path(db_path)
    if expected is not None and file_id(path) != expected:
        raise GalleryError(f"{path} was replaced while it was being repaired (by another process?); nothing moved")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for number in range(1, 1000):
        base = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{number}" if number > 1 else ""))
        moved = _move_set(path, base)
        if moved is not None:
            return moved
    raise GalleryError(f"cannot find a free name to move {path} aside")


def _move_set(path: Path, base: Path) -> list[Path] | None:
    """Move the database (last) and its companions to ``base`` and the same suffixes; None when one of
    those names is taken (what was moved is moved back)."""
    pairs = [(path.with_name(path.name + suffix), base.with_name(base.name + suffix)) for suffix in COMPANIONS]
    pairs.append((path, base))
    done: list[tuple[Path, Path]] = []
    for source, target in pairs:
        if not os.path.lexists(source):
            continue
        try:
            _move_no_replace(source, target)
        except FileExistsError:
            _undo(done)
            return None
        except OSError as exc:
            _undo(done)
            raise GalleryError(f"cannot move the damaged catalogue {path} aside: {exc.strerror or exc}") from exc
        done.append((source, target))
    return [target for _source, target in reversed(done)]


def _undo(done: list[tuple[Path, Path]]) -> None:
    for source, target in reversed(done):
        try:
            _move_no_replace(target, source)
        except OSError as exc:  # a new file at the old name: this one stays where it is, whole
            logger.warning("gallery: leaving %s where it is (cannot move it back: %s)", target, exc)


def _move_no_replace(source: Path, target: Path) -> None:
    """Give ``source`` the name ``target`` without ever replacing a file there (FileExistsError).

    ``link`` then ``unlink``: the link fails if ``target`` exists, atomically.  Where links are not
    supported, ``target`` is checked and then renamed to (a race with a process creating that very name
    in between; on Windows ``rename`` refuses an existing target anyway).
    """
    try:
        _link(source, target)
    except (FileExistsError, FileNotFoundError):
        raise
    except OSError as exc:
        logger.info("gallery: cannot link %s (%s); renaming it after checking the name is free", source, exc)
        if os.path.lexists(target):
            raise FileExistsError(17, "File exists", os.fspath(target)) from exc
        os.rename(source, target)
        return
    try:
        os.unlink(source)
    except FileNotFoundError:
        return  # the old name is gone already: the file is at the new one
    except OSError:
        # Both names hold the file: drop the new one only (the file keeps its old name, nothing lost).
        with contextlib.suppress(OSError):
            if os.path.samestat(os.lstat(source), os.lstat(target)):
                os.unlink(target)
        raise


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)  # a symlink is moved as itself, like rename
    except NotImplementedError:
        os.link(source, target)


def read_folders(db_path: str | os.PathLike[str]) -> list[str]:
    """The folder paths a (damaged) catalogue lists, as far as it can still be read; [] when none can.

    Read-only: first through SQLite's normal read path (which sees what the ``-wal`` holds), then,
    if that fails, with ``immutable=1`` (the main file alone, no locks, no ``-shm`` needed).  The table
    is read row by row (``NOT INDEXED``: a damaged index of the folders does not hide them), and should
    its ``path`` column be gone (renamed by hand), every text value that is an absolute path is taken.
    """
    for options in ("mode=ro", "mode=ro&immutable=1"):
        for query in _FOLDER_QUERIES:
            try:
                return _folders_from(readonly_uri(db_path, options), query)
            except (sqlite3.Error, ValueError, UnicodeError) as exc:
                logger.info("gallery: cannot read folders from %s (%s): %s", db_path, options, exc)
    return []


_FOLDER_QUERIES = (
    "SELECT path FROM folders NOT INDEXED LIMIT ?",
    "SELECT * FROM folders NOT INDEXED LIMIT ?",
)


def _folders_from(uri: str, query: str) -> list[str]:
    conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    try:
        conn.text_factory = decode_text
        rows = conn.execute(query, (MAX_FOLDERS,)).fetchall()
    finally:
        conn.close()
    return [value for row in rows for value in row if isinstance(value, str) and os.path.isabs(value)]


def rebuild_damaged(
    db_path: str | os.PathLike[str],
    *,
    folders: Iterable[str | os.PathLike[str]] = (),
    reason: str | None = None,
    damaged_file: FileId | None = None,
    force: bool = False,
    scan: bool = True,
    progress: Callable[[ScanProgress], None] | None = None,
    cancel: threading.Event | None = None,
    wait: float = LOCK_WAIT_S,
) -> RecoveryReport:
    """Move a damaged catalogue aside and build a fresh one from the image folders.

    ``reason``: the damage the caller already found (the app passes its :class:`CatalogueDamagedError`'s
    reason), with ``damaged_file`` its ``file_id``: when the file at ``db_path`` is no longer that one,
    another process has rebuilt it already, and nothing is moved (``already_repaired``).  Without
    ``reason`` the file is checked first (:func:`check_catalogue`, read-only) and a healthy one is left
    alone unless ``force``; so is another program's database (:class:`NotACatalogueError`), which
    ``force`` moves aside like a damaged one.  The fresh catalogue gets every folder the old one lists
    that still exists, plus ``folders``; with ``scan`` they are scanned (``progress`` and ``cancel`` as
    for :meth:`Gallery.scan`).

    Holds the repair lock (:func:`repair_lock`, waiting up to ``wait`` seconds for another process's
    repair) from the check until the fresh catalogue exists; the scan runs after.  Raises GalleryError
    when the file cannot be moved aside or the new one cannot be made, RepairInProgressError when
    another repair holds the lock too long; the damaged file is never deleted or overwritten.
    """
    path = Path(db_path)
    if reason is None and not force:
        _refuse_foreign(path)  # before the lock file is made beside someone else's database
    with repair_lock(path, wait=wait, cancel=cancel):
        report, expected = _diagnose(path, reason, damaged_file, force)
        if not report.rebuilt:
            return report
        if not report.already_repaired and os.path.lexists(path):
            report.moved = move_aside(path, expected=expected)
            report.moved_to = report.moved[0]
            logger.info("gallery: %s was damaged (%s); moved it to %s", path, report.reason, report.moved_to)
        elif report.already_repaired:
            logger.info("gallery: %s was damaged (%s) and has been rebuilt by another process", path, reason)
        old = read_folders(report.moved_to) if report.moved_to is not None and not report.foreign else []
        with Gallery(path) as gallery:
            _add_folders(gallery, [*old, *folders], report)
    if scan and report.folders:
        with Gallery(path) as gallery:
            report.scan = gallery.scan(progress=progress, cancel=cancel)
    return report


_FORCE_ADVICE = (
    "it is not repaired unless forced: `studio gallery repair --force` moves it aside (never deleting it) "
    "and starts a new catalogue in its place"
)


def _refuse_foreign(path: Path) -> None:
    """NotACatalogueError (saying how to force it) for another program's database; reads only its
    schema.  Anything else (damage, absence) is for the full check to find."""
    if not path.exists():
        return
    try:
        conn = connect_readonly(path)
    except sqlite3.Error:
        return
    try:
        inspect_layout(conn, path)
    except NotACatalogueError as exc:
        raise NotACatalogueError(path, exc.tables, advice=_FORCE_ADVICE) from exc
    except (GalleryError, sqlite3.Error):
        return
    finally:
        conn.close()


def _diagnose(
    path: Path, reason: str | None, damaged_file: FileId | None, force: bool
) -> tuple[RecoveryReport, FileId | None]:
    """What is to be done (under the lock), and the identity the file to move must have."""
    current = file_id(path)
    if reason is not None:
        if damaged_file is not None and current is not None and current != damaged_file:
            return RecoveryReport(db_path=path, reason=reason, already_repaired=True), None
        return RecoveryReport(db_path=path, reason=reason), damaged_file
    foreign = False
    try:
        found = check_catalogue(path)
    except NotACatalogueError as exc:
        if not force:
            raise NotACatalogueError(path, exc.tables, advice=_FORCE_ADVICE) from exc
        foreign, found = True, "not a Latent Studio gallery catalogue"
    if found is None and not force:
        return RecoveryReport(db_path=path), None
    return RecoveryReport(db_path=path, reason=found or "rebuilt on request", foreign=foreign), current


def _add_folders(gallery: Gallery, folders: list[str | os.PathLike[str]], report: RecoveryReport) -> None:
    for folder in folders:
        try:
            added = gallery.add_folder(folder)
        except (OSError, ValueError) as exc:  # gone (an unplugged drive), or a path it cannot store
            logger.info("gallery: not re-adding %s: %s", folder, exc)
            report.missing.append(os.fspath(folder))
            continue
        if added not in report.folders:
            report.folders.append(added)
