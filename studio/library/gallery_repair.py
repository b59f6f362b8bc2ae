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
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from studio.library.gallery import Gallery, ScanProgress, ScanReport
from studio.library.gallery_db import CatalogueDamagedError, GalleryError

__all__ = ["RecoveryReport", "check_catalogue", "move_aside", "read_folders", "rebuild_damaged"]

logger = logging.getLogger(__name__)

COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database, which belong with it wherever it goes."""
MAX_FOLDERS = 10_000
"""At most this many folders are taken from a damaged file (it could claim millions)."""


@dataclass(slots=True)
class RecoveryReport:
    """What :func:`rebuild_damaged` did.  ``reason`` is None when the catalogue was fine and nothing
    was done; otherwise the damaged file is at ``moved_to`` (``moved`` lists it with its companions),
    ``folders`` are in the fresh catalogue, ``missing`` are folders the old one listed that are gone,
    and ``scan`` is the rescan's report (None when not asked for)."""

    db_path: Path
    reason: str | None = None
    moved_to: Path | None = None
    moved: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    scan: ScanReport | None = None

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
        text = (
            f"The gallery catalogue {self.db_path} was damaged ({self.reason}); {moved}rebuilt it from your "
            f"image folders{folders}"
        )
        if self.moved_to is not None:
            text += f". Its ratings and favourites stay in {self.moved_to.name}"
        if self.scan is not None:
            text += f"; {self.scan.added} images catalogued again"
        if self.missing:
            text += f"; {len(self.missing)} folder{'s' if len(self.missing) != 1 else ''} no longer found"
        return text + "."


def check_catalogue(db_path: str | os.PathLike[str]) -> str | None:
    """Why the catalogue at ``db_path`` is damaged, or None when it is fine (or absent).

    Opens it (which checks the header, the schema version and the layout, and migrates an older one),
    then runs SQLite's ``quick_check`` and FTS5's check of the search index: it reads the whole file.
    Raises :class:`GalleryError` for a catalogue that cannot be used for another reason (a newer
    version, no permission): moving it aside would not help.
    """
    path = Path(db_path)
    if not path.exists():
        return None
    try:
        with Gallery(path) as gallery:
            return gallery.check_integrity()
    except CatalogueDamagedError as exc:
        return exc.reason


def move_aside(db_path: str | os.PathLike[str]) -> list[Path]:
    """Rename the catalogue and its companion files to ``NAME.damaged-YYYYmmdd-HHMMSS`` (plus ``-2``,
    ``-3``... if taken) and the same suffixes; returns the new paths, the database first.

    The companions move first: a ``-wal`` left beside a fresh database would be read into it.  If any
    rename fails, those done are undone and GalleryError is raised: nothing is ever deleted.
    """
    path = Path(db_path)
    base = _free_name(path, time.strftime("%Y%m%d-%H%M%S"))
    pairs = [
        (path.with_name(path.name + suffix), base.with_name(base.name + suffix)) for suffix in COMPANIONS
    ]
    pairs.append((path, base))
    done: list[tuple[Path, Path]] = []
    for source, target in pairs:
        if not os.path.lexists(source):
            continue
        try:
            os.rename(source, target)
        except OSError as exc:
            for moved_from, moved_to in reversed(done):
                with contextlib.suppress(OSError):
                    os.rename(moved_to, moved_from)
            raise GalleryError(
                f"cannot move the damaged catalogue {path} aside: {exc.strerror or exc}"
            ) from exc
        done.append((source, target))
    return [target for _source, target in reversed(done)]


def _free_name(path: Path, stamp: str) -> Path:
    """``NAME.damaged-STAMP``, numbered when that name (or one of its companions) is taken."""
    for number in range(1, 1000):
        name = f"{path.name}.damaged-{stamp}" + (f"-{number}" if number > 1 else "")
        candidate = path.with_name(name)
        if not any(os.path.lexists(candidate.with_name(name + suffix)) for suffix in ("", *COMPANIONS)):
            return candidate
    raise GalleryError(f"cannot find a free name to move {path} aside")


def read_folders(db_path: str | os.PathLike[str]) -> list[str]:
    """The folder paths a (damaged) catalogue lists, as far as it can still be read; [] when none can.

    Read-only: first through SQLite's normal read path (which sees what the ``-wal`` holds), then,
    if that fails, with ``immutable=1`` (the main file alone, no locks, no ``-shm`` needed).
    """
    uri = "file:" + quote(os.fspath(Path(db_path).absolute()), safe="/")
    for options in ("mode=ro", "mode=ro&immutable=1"):
        try:
            return _folders_from(f"{uri}?{options}")
        except (sqlite3.Error, ValueError, UnicodeError) as exc:
            logger.info("gallery: cannot read folders from %s (%s): %s", db_path, options, exc)
    return []


def _folders_from(uri: str) -> list[str]:
    conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    try:
        conn.text_factory = lambda data: data.decode("utf-8", "replace")
        rows = conn.execute("SELECT path FROM folders LIMIT ?", (MAX_FOLDERS,)).fetchall()
    finally:
        conn.close()
    return [row[0] for row in rows if isinstance(row[0], str) and os.path.isabs(row[0])]


def rebuild_damaged(
    db_path: str | os.PathLike[str],
    *,
    folders: Iterable[str | os.PathLike[str]] = (),
    reason: str | None = None,
    force: bool = False,
    scan: bool = True,
    progress: Callable[[ScanProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> RecoveryReport:
    """Move a damaged catalogue aside and build a fresh one from the image folders.

    ``reason``: the damage the caller already found (the app passes its :class:`CatalogueDamagedError`'s
    reason); without it the file is checked first (:func:`check_catalogue`) and a healthy one is left
    alone unless ``force``.  The fresh catalogue gets every folder the old one lists that still exists,
    plus ``folders``; with ``scan`` they are scanned (``progress`` and ``cancel`` as for
    :meth:`Gallery.scan`).  Raises GalleryError when the file cannot be moved aside or the new one
    cannot be made; the damaged file is never deleted.
    """
    path = Path(db_path)
    if reason is None:
        reason = check_catalogue(path)
        if reason is None and not force:
            return RecoveryReport(db_path=path)
        reason = reason or "rebuilt on request"
    report = RecoveryReport(db_path=path, reason=reason)
    if os.path.lexists(path):
        report.moved = move_aside(path)
        report.moved_to = report.moved[0]
    old = read_folders(report.moved_to) if report.moved_to is not None else []
    logger.info("gallery: %s was damaged (%s); moved it to %s", path, reason, report.moved_to)
    with Gallery(path) as gallery:
        _add_folders(gallery, [*old, *folders], report)
        if scan and report.folders:
            report.scan = gallery.scan(progress=progress, cancel=cancel)
    return report


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
