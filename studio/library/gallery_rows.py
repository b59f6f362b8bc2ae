"""Values crossing the catalogue's boundary, checked both ways.

Going in, every value comes from an untrusted file: a metadata reader may hand back a prompt holding a
lone surrogate (JSON's ``"\\ud800"``), which SQLite cannot store (the UTF-8 encoder refuses it), a seed
too large for 64 bits, or an object of any type.  Coming out, the catalogue is a file the user (or a
crash, or another program) may have changed: a column meant for a number may hold ``'x'``.  Neither
direction may raise: a value that does not fit becomes None (or a safe default), and text keeps what it
can, lone surrogates shown as U+FFFD.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GalleryImage",
    "image_from_row",
    "inside",
    "int64_value",
    "normalise_file",
    "normalise_folder",
    "path_problem",
    "text_value",
]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SURROGATES = re.compile("[\ud800-\udfff]")


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


# --------------------------------------------------------------------------------------------------
# Going in
# --------------------------------------------------------------------------------------------------


def text_value(value: Any, limit: int) -> str | None:
    """A capped, NUL-free string SQLite can store (lone surrogates replaced by U+FFFD), or None for
    anything that is not a non-empty string."""
    if not isinstance(value, str):
        return None
    text = str(value[:limit]).replace("\x00", "")
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    return text or None


def int64_value(value: Any) -> int | None:
    """SQLite integers are 64-bit: a hostile seed of 10**30 must become None, not an OverflowError."""
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return int(value)
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be catalogued exactly, or None when it can.

    A file name that is not valid UTF-8 (possible on Linux) reaches Python as a str with surrogate
    escapes.  Replacing them would store a path that names no file (it could never be opened, updated
    or forgotten), so such files are skipped, with this reason.
    """
    if not _SURROGATES.search(path):
        return None
    if _SURROGATES.search(os.path.basename(path)):
        return "file name is not valid UTF-8"
    return "folder name is not valid UTF-8"


def normalise_folder(path: str | os.PathLike[str]) -> Path:
    """A folder as the catalogue stores it: user-expanded, absolute, symlinks resolved."""
    return Path(path).expanduser().resolve()


def normalise_file(path: str | os.PathLike[str]) -> Path:
    """Resolve the folder part only: a symlinked file keeps its own name, as the folder walk sees it."""
    path = Path(path).expanduser()
    return path.parent.resolve() / path.name


def inside(path: str, folder: str) -> bool:
    """Is ``path`` strictly below ``folder`` (both as stored: text, normalised)?"""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------------------------------
# Coming out
# --------------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _path(value: Any) -> str:
    """A path column as text, whatever it holds (a blob, a number): a row is never dropped, which would
    upset paging, and a path that names no file is shown as one that cannot be read."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def image_from_row(row: Sequence[Any]) -> GalleryImage | None:
    """The image a row of ``SELECT`` :data:`~studio.library.gallery_queries.COLUMNS` describes, every value
    checked; None only when its id is not a number (which SQLite's INTEGER PRIMARY KEY rules out).

    Why not trust the types: SQLite stores what it is given (a column declared INTEGER takes ``'x'``),
    and a catalogue changed by hand must not crash a search or the window that shows it.
    """
    image_id, path = _int(row[0]), _path(row[1])
    if image_id is None:
        return None
    mtime = _float(row[4]) or 0.0
    created = _float(row[7])
    rating = _int(row[15])
    return GalleryImage(
        id=image_id,
        path=Path(path),
        folder=Path(_path(row[2])),
        size=max(0, _int(row[3]) or 0),
        mtime=mtime,
        width=_positive(row[5]),
        height=_positive(row[6]),
        created=created if created is not None else mtime,
        model=_text(row[8]),
        seed=_int(row[9]),
        steps=_int(row[10]),
        scheduler=_text(row[11]),
        prompt=_text(row[12]),
        negative_prompt=_text(row[13]),
        source=_text(row[14]),
        rating=rating if rating is not None and 0 <= rating <= 5 else 0,
        favourite=bool(_int(row[16])),
    )


def _positive(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and number > 0 else None
