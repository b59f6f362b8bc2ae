"""The GUI thread's queries on the gallery catalogue, safe against damage (:class:`CatalogueReader`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from studio.library.gallery import CatalogueDamagedError, Gallery, GalleryImage, Query

__all__ = ["CatalogueReader"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class CatalogueReader:
    """What :meth:`GalleryService.gallery <studio.worker.gallery.GalleryService.gallery>` returns: the GUI
    thread's queries on the catalogue in use now (the file, or the empty stand-in during a repair), safe
    against damage.

    Why: the view asks the catalogue from many places (a search, a count, the image under the cursor);
    a catalogue that opened cleanly can still fail any of them ("database disk image is malformed").
    Each query here catches :class:`CatalogueDamagedError` and returns an empty answer; the Gallery's own
    ``on_damaged`` hook (set by the service) has already begun the repair, and the view is told again
    when the rebuilt catalogue is in place (``library_changed``).  Other errors (a locked file) are
    raised as they are.  Anything else is passed to the Gallery in use, unguarded.

    ``current`` returns the Gallery in use: the service swaps it during a repair, and this object, which
    the view may keep, follows.
    """

    def __init__(self, current: Callable[[], Gallery]) -> None:
        self._current = current

    def search(self, query: Query | None = None, *, limit: int = 200, offset: int = 0) -> list[GalleryImage]:
        return self._safe(lambda db: db.search(query, limit=limit, offset=offset), [])

    def count(self, query: Query | None = None) -> int:
        return self._safe(lambda db: db.count(query), 0)

    def get(self, image_id: int) -> GalleryImage | None:
        return self._safe(lambda db: db.get(image_id), None)

    def get_by_path(self, path: str | os.PathLike[str]) -> GalleryImage | None:
        return self._safe(lambda db: db.get_by_path(path), None)

    def models(self) -> list[str]:
        return self._safe(lambda db: db.models(), [])

    def folders(self) -> list[Path]:
        return self._safe(lambda db: list(db.folders()), [])

    def _safe(self, query: Callable[[Gallery], _T], neutral: _T) -> _T:
        try:
            return query(self._current())
        except CatalogueDamagedError as exc:
            log.info("a gallery query found the catalogue damaged: %s", exc.reason)
            return neutral

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)
