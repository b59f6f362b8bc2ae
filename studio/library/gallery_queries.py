"""Reading the catalogue: searches, counts, single images, the model list, and the two marks only the
catalogue knows (rating, favourite).

A :class:`~studio.library.gallery.Gallery` answers these through :class:`GalleryQueries`, which it
inherits: every method here runs on the Gallery's own connection (``self._conn``) and is
:func:`~studio.library.gallery_db.guarded` (damage met here becomes
:class:`~studio.library.gallery_db.CatalogueDamagedError`).  The search text is turned into FTS5
syntax by :func:`fts_query`, which no user input can make fail.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from studio.library.gallery_db import guarded
from studio.library.gallery_rows import (
    GalleryImage,
    image_from_row,
    int64_value,
    normalise_file,
    path_problem,
)

__all__ = ["COLUMNS", "MAX_QUERY_CHARS", "MAX_QUERY_TERMS", "SORTS", "GalleryQueries", "Query", "fts_query"]

MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32
SORTS = ("newest", "oldest", "rating")


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


COLUMNS = (
    "i.id, i.path, f.path, i.size, i.mtime, i.width, i.height, i.created, i.model, i.seed, i.steps, "
    "i.scheduler, i.prompt, i.negative_prompt, i.source, i.rating, i.favourite"
)
"""What a ``SELECT`` of images reads, in the order :func:`~studio.library.gallery_rows.image_from_row`
expects."""
_FROM = "images AS i JOIN folders AS f ON f.id = i.folder_id"
_ORDER = {
    "newest": "i.created DESC, i.id DESC",
    "oldest": "i.created ASC, i.id ASC",
    "rating": "i.rating DESC, i.created DESC, i.id DESC",
}

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


class GalleryQueries:
    """The reading half of :class:`~studio.library.gallery.Gallery` (and its two one-row writes)."""

    _conn: sqlite3.Connection
    _write: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    def _images(self, sql: str, params: Sequence[Any]) -> list[GalleryImage]:
        """The images a ``SELECT {COLUMNS}`` returns, each value checked (see
        :func:`~studio.library.gallery_rows.image_from_row`)."""
        images = (image_from_row(row) for row in self._conn.execute(sql, params))
        return [image for image in images if image is not None]

    @guarded
    def search(self, query: Query | None = None, *, limit: int = 200, offset: int = 0) -> list[GalleryImage]:
        """Images matching ``query`` (default: all), sorted as it asks, one page at a time."""
        query = query if query is not None else Query()
        order = _ORDER.get(query.sort)
        if order is None:
            raise ValueError(f"unknown sort {query.sort!r} (use one of {', '.join(SORTS)})")
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = _where(query)
        sql = f"SELECT {COLUMNS} FROM {_FROM}{where} ORDER BY {order} LIMIT ? OFFSET ?"
        return self._images(sql, [*params, limit, offset])

    @guarded
    def count(self, query: Query | None = None) -> int:
        where, params = _where(query if query is not None else Query())
        return int(self._conn.execute(f"SELECT COUNT(*) FROM images AS i{where}", params).fetchone()[0])

    @guarded
    def get(self, image_id: int) -> GalleryImage | None:
        found = self._images(f"SELECT {COLUMNS} FROM {_FROM} WHERE i.id = ?", (int64_value(image_id),))
        return found[0] if found else None

    @guarded
    def get_by_path(self, path: str | os.PathLike[str]) -> GalleryImage | None:
        text = str(normalise_file(path))
        if path_problem(text) is not None:
            return None  # never stored
        found = self._images(f"SELECT {COLUMNS} FROM {_FROM} WHERE i.path = ?", (text,))
        return found[0] if found else None

    @guarded
    def set_rating(self, image_id: int, rating: int) -> None:
        """0 (unrated) .. 5.  An unknown id (e.g. removed by a concurrent scan) is ignored."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise ValueError(f"rating must be an integer from 0 to 5, not {rating!r}")
        self._write(
            lambda conn: conn.execute("UPDATE images SET rating = ? WHERE id = ?", (rating, image_id))
        )

    @guarded
    def set_favourite(self, image_id: int, favourite: bool) -> None:
        """An unknown id (e.g. removed by a concurrent scan) is ignored."""
        value = 1 if favourite else 0
        self._write(
            lambda conn: conn.execute("UPDATE images SET favourite = ? WHERE id = ?", (value, image_id))
        )

    @guarded
    def models(self) -> list[str]:
        """Distinct model names, for the model filter (case-insensitive order)."""
        cursor = self._conn.execute(
            "SELECT DISTINCT model FROM images WHERE model IS NOT NULL ORDER BY model COLLATE NOCASE, model"
        )
        return [row[0] for row in cursor if isinstance(row[0], str) and row[0]]
