"""The gallery's grid as a Qt item model: the rows of one catalogue query, read page by page, and their
thumbnails, asked for only when a row is painted.

Scale: a view over :class:`GalleryModel` (a ``QListView`` in icon mode) pages rows out of the catalogue as
it scrolls (``canFetchMore`` / ``fetchMore``) and asks for a row's thumbnail only when the row is painted
(``data()`` for the decoration role); decoded thumbnails are kept in a bounded LRU of QPixmaps, so 10,000+
images cost a few pages of rows and a few hundred small pixmaps, never one widget per image. Until a
thumbnail arrives the decoration is None (the view draws a placeholder), and :data:`BROKEN_ROLE` says when
it cannot be made.

QtCore and QtGui only (QPixmap is the painting cache): tested without widgets.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap

from studio.library.display import printable
from studio.library.gallery import GalleryImage, Query
from studio.viewmodel.gallery_details import tooltip_text
from studio.worker.gallery import GalleryService

__all__ = ["BROKEN_ROLE", "IMAGE_ROLE", "ICON_SIZE", "PAGE_SIZE", "TOOLTIP_ROLE", "GalleryModel"]

log = logging.getLogger(__name__)

IMAGE_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's :class:`~studio.library.gallery.GalleryImage`."""
BROKEN_ROLE = Qt.ItemDataRole.UserRole + 2
"""True when the row's thumbnail cannot be made (the view draws a broken tile instead)."""
TOOLTIP_ROLE = Qt.ItemDataRole.UserRole + 3
"""What hovering the row should show, as plain text (prompt, model, seed, size, path; every piece from the
file made printable). Not ``ToolTipRole``: Qt renders a tooltip as HTML when it looks like HTML, so the view
escapes this text (:func:`studio.ui.plain_text.plain_tooltip`) before showing it."""
PAGE_SIZE = 200
ICON_SIZE = 160
"""The default thumbnail size (logical pixels, longest side): 3-4 columns beside the detail pane in a
1000-1200 px wide gallery, more when wider."""
PIXMAP_CACHE = 600
"""Thumbnails kept decoded at most: a few screens' worth (about 100 KB each at 160 px)..."""
PIXMAP_BUDGET = 96 * 1024 * 1024
"""...and at most this many bytes of them, which bounds memory at large sizes on HiDPI screens."""
REFRESH_SLACK = 50
"""Rows re-read beyond those loaded when the library changes, so new images can come in at the top."""


def _bytes(pixmap: QPixmap) -> int:
    return pixmap.width() * pixmap.height() * max(1, pixmap.depth() // 8)


class GalleryModel(QAbstractListModel):
    """The rows of one gallery query, read page by page; thumbnails requested as rows are painted."""

    failed = Signal(str)

    def __init__(
        self,
        service: GalleryService,
        *,
        page_size: int = PAGE_SIZE,
        icon_size: int = ICON_SIZE,
        cache_size: int = PIXMAP_CACHE,
        cache_bytes: int = PIXMAP_BUDGET,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._service = service
        self._page = max(1, int(page_size))
        self._icon_size = int(icon_size)
        self._dpr = 1.0
        self._cache_size = max(1, int(cache_size))
        self._cache_bytes = max(1, int(cache_bytes))
        self._cached_bytes = 0
        self._query = Query()
        self._rows: list[GalleryImage] = []
        self._row_of: dict[int, int] = {}
        self._offset = 0  # catalogue rows consumed (hidden ones included): where the next page starts
        self._exhausted = True
        self._hidden: dict[int, Path] = {}
        self._released: set[int] = set()  # hidden rows whose file is gone: dropped once the catalogue forgets them
        self._pixmaps: OrderedDict[tuple[int, float], QPixmap] = OrderedDict()
        self._requested: dict[int, tuple[float, int]] = {}  # image id -> (mtime, device pixels) asked for
        self._broken: set[tuple[int, float]] = set()
        self._closed = False
        self.pages_fetched = 0
        self.thumbnail_requests = 0
        service.thumbnail_ready.connect(self._on_thumbnail)
        service.thumbnail_failed.connect(self._on_thumbnail_failed)
        service.thumbnail_dropped.connect(self._on_thumbnail_dropped)
        service.image_changed.connect(self.refresh_image)

    # ---------------------------------------------------------------------------------- Qt model
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008, N802
        return not parent.isValid() and not self._exhausted and not self._closed

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: B008, N802
        if parent.isValid() or self._exhausted or self._closed:
            return
        batch = self._search(self._page, self._offset)
        if batch is None:
            self._exhausted = True
            return
        self.pages_fetched += 1
        self._offset += len(batch)
        self._exhausted = len(batch) < self._page
        new = [image for image in batch if not self._is_hidden(image) and image.id not in self._row_of]
        self._append(new)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return ["text/uri-list"]

    def mimeData(self, indexes) -> QMimeData:  # noqa: N802 - drag images out as files
        mime = QMimeData()
        images = [i.data(IMAGE_ROLE) for i in indexes if i.isValid()]
        mime.setUrls([QUrl.fromLocalFile(str(image.path)) for image in images if image is not None])
        return mime

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        image = self._rows[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(image)
        if role == IMAGE_ROLE:
            return image
        if role == BROKEN_ROLE:
            return (image.id, image.mtime) in self._broken
        if role == TOOLTIP_ROLE:
            return tooltip_text(image)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return printable((image.prompt or image.path.name)[:200])
        return None

    # --------------------------------------------------------------------------------- queries
    def query(self) -> Query:
        return self._query

    def set_query(self, query: Query) -> None:
        self._query = query
        self.reload()

    def reload(self) -> None:
        """Start over at the first page (a new query)."""
        self.beginResetModel()
        self._rows, self._row_of, self._offset, self._exhausted = [], {}, 0, False
        batch = self._search(self._page, 0)
        if batch is None:
            self._exhausted = True
        else:
            self.pages_fetched += 1
            self._offset = len(batch)
            self._exhausted = len(batch) < self._page
            self._rows = [image for image in batch if not self._is_hidden(image)]
            self._reindex()
        self.endResetModel()

    def refresh(self) -> bool:
        """Re-read the loaded rows because the library changed, keeping the view where it is.

        New images at the top (newest first) are inserted and changed rows updated in place; when rows
        in the middle came or went, the model is reset (True is returned: the view restores its
        selection and scroll position).
        """
        if self._closed:
            return False
        self._prune_hidden()
        limit = max(self._page, self._offset + REFRESH_SLACK)
        batch = self._search(limit, 0)
        if batch is None:
            return False
        exhausted = len(batch) < limit
        visible = [image for image in batch if not self._is_hidden(image)]
        old_ids = [image.id for image in self._rows]
        ids = [image.id for image in visible]
        n = len(old_ids)
        k = 0 if n == 0 else (ids.index(old_ids[0]) if old_ids[0] in ids else -1)  # new rows above the first
        if k >= 0 and ids[k : k + n] == old_ids:
            if k:
                self.beginInsertRows(QModelIndex(), 0, k - 1)
                self._rows[0:0] = visible[:k]
                self._reindex()
                self.endInsertRows()
            keep = k + n
            changed = [i for i in range(k, keep) if self._rows[i] != visible[i]]
            if changed:
                self._rows[k:keep] = visible[k:keep]
                self.dataChanged.emit(self.index(min(changed)), self.index(max(changed)))
            extra = visible[keep:] if exhausted else (visible[keep : self._page] if n == 0 else [])
            self._append(extra)
            shown = keep + len(extra)
            self._offset = len(batch) if shown == len(visible) else self._consumed(batch, shown)
            self._exhausted = exhausted and shown == len(visible)
            return False
        self.beginResetModel()
        self._rows = visible[: max(n, self._page)]
        self._reindex()
        self._offset = len(batch) if len(self._rows) == len(visible) else self._consumed(batch, len(self._rows))
        self._exhausted = exhausted and len(self._rows) == len(visible)
        self.endResetModel()
        return True

    def refresh_image(self, image_id: int) -> None:
        """Re-read one row (its rating or favourite changed)."""
        row = self._row_of.get(image_id)
        if row is None or self._closed:
            return
        try:
            image = self._service.gallery().get(image_id)
        except Exception:  # noqa: BLE001 - the next refresh shows the truth
            log.debug("re-reading image %d failed", image_id, exc_info=True)
            return
        if image is not None:
            self._rows[row] = image
            index = self.index(row)
            self.dataChanged.emit(index, index)

    # ----------------------------------------------------------------------------------- rows
    def image_at(self, row: int) -> GalleryImage | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, image_id: int) -> int | None:
        return self._row_of.get(image_id)

    def images(self) -> list[GalleryImage]:
        """The rows loaded so far."""
        return list(self._rows)

    def hide(self, image: GalleryImage) -> None:
        """Take a row out of the view now (a delete waiting for its undo window to pass)."""
        self._hidden[image.id] = image.path
        row = self._row_of.get(image.id)
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self._reindex()
            self.endRemoveRows()

    def unhide(self, image_id: int) -> None:
        """Bring a hidden row back (undo)."""
        self._released.discard(image_id)
        if self._hidden.pop(image_id, None) is not None:
            self.refresh()

    def release(self, image_id: int) -> None:
        """The hidden row's file went to the trash: stop hiding it once the catalogue has forgotten it."""
        if image_id in self._hidden:
            self._released.add(image_id)

    def is_hidden(self, image_id: int) -> bool:
        return image_id in self._hidden

    def close(self) -> None:
        """The service is shutting down: no more queries or thumbnail requests."""
        self._closed = True

    # ----------------------------------------------------------------------------- thumbnails
    def icon_size(self) -> int:
        return self._icon_size

    def set_icon_size(self, size: int) -> None:
        """Thumbnails for cells of `size` logical pixels from now on. Those decoded already stay on
        screen (scaled) and are asked for again, at the new size, when they are next painted: bigger
        cells would otherwise show them enlarged and blurred, much smaller ones would waste memory."""
        size = int(size)
        if size == self._icon_size or size <= 0:
            return
        self._icon_size = size

    def set_device_pixel_ratio(self, ratio: float) -> None:
        if ratio > 0 and abs(ratio - self._dpr) > 1e-3:
            self._dpr = ratio
            self._pixmaps.clear()
            self._cached_bytes = 0
            self._requested.clear()
            if self._rows:
                self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1), [Qt.ItemDataRole.DecorationRole])

    def cached_pixmap(self, image: GalleryImage) -> QPixmap | None:
        return self._pixmaps.get((image.id, image.mtime))

    def wanted_pixels(self, image: GalleryImage) -> int:
        """The thumbnail size (device pixels, longest side) a cell needs for `image` now: the cell's
        size, but never more than the image itself has (a small image is not enlarged)."""
        want = max(1, round(self._icon_size * self._dpr))
        native = max(image.width or 0, image.height or 0)
        return min(want, native) if native > 0 else want

    def _fits(self, pixmap: QPixmap, image: GalleryImage) -> bool:
        """Is `pixmap` right for the cell: neither enlarged (too small) nor more than twice too big?
        An image whose size the catalogue does not know is taken as it comes (never asked again)."""
        if not (image.width and image.height):
            return True
        have = max(pixmap.width(), pixmap.height())
        want = self.wanted_pixels(image)
        return want - 1 <= have <= 2 * want

    def _decoration(self, image: GalleryImage) -> QPixmap | None:
        """The thumbnail, or None until it arrives (asked for now) or when it cannot be made."""
        key = (image.id, image.mtime)
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            if not self._fits(pixmap, image):
                self._ask(image)  # the size changed: this one stays on screen until the new one comes
            return pixmap
        if key in self._broken:
            return None
        self._ask(image)
        return None

    def _ask(self, image: GalleryImage) -> None:
        wanted = (image.mtime, self.wanted_pixels(image))
        if not self._closed and self._requested.get(image.id) != wanted:
            self._requested[image.id] = wanted
            self.thumbnail_requests += 1
            self._service.request_thumbnail(image.id, image.path, size=wanted[1])

    def _on_thumbnail(self, image_id: int, image: QImage) -> None:
        asked = self._requested.get(image_id)
        if asked is None:
            return  # asked by someone else, or before a device-pixel-ratio change
        mtime, size = asked
        have = max(image.width(), image.height())
        row = self._row_of.get(image_id)
        native = max(self._rows[row].width or 0, self._rows[row].height or 0) if row is not None else 0
        if have >= min(size, native or have) - 1:
            del self._requested[image_id]  # answers the latest request...
        # ...else it answers one for an older, smaller size: shown until the latest one comes
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(self._dpr)
        key = (image_id, mtime)
        old = self._pixmaps.pop(key, None)
        if old is not None:
            self._cached_bytes -= _bytes(old)
        self._pixmaps[key] = pixmap
        self._cached_bytes += _bytes(pixmap)
        while len(self._pixmaps) > 1 and (
            len(self._pixmaps) > self._cache_size or self._cached_bytes > self._cache_bytes
        ):
            _, evicted = self._pixmaps.popitem(last=False)
            self._cached_bytes -= _bytes(evicted)
        self._row_changed(image_id, Qt.ItemDataRole.DecorationRole)

    def _on_thumbnail_failed(self, image_id: int, _why: str) -> None:
        asked = self._requested.pop(image_id, None)
        if asked is None:
            return
        if len(self._broken) > 10_000:
            self._broken.clear()
        self._broken.add((image_id, asked[0]))
        self._row_changed(image_id, Qt.ItemDataRole.DecorationRole)

    def _on_thumbnail_dropped(self, image_id: int) -> None:
        self._requested.pop(image_id, None)  # painted again -> asked again

    # ------------------------------------------------------------------------------- internals
    def _search(self, limit: int, offset: int) -> list[GalleryImage] | None:
        if self._closed:
            return None
        try:
            # The service's reader answers a damaged catalogue with no rows and repairs it itself.
            return self._service.gallery().search(self._query, limit=limit, offset=offset)
        except Exception as exc:  # noqa: BLE001 - a broken or locked catalogue: say it, show nothing more
            log.warning("gallery search failed", exc_info=True)
            self.failed.emit(printable(f"Gallery search failed: {exc}"))
            return None

    def _append(self, images: list[GalleryImage]) -> None:
        if not images:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(images) - 1)
        self._rows.extend(images)
        for row, image in enumerate(images, first):
            self._row_of[image.id] = row
        self.endInsertRows()

    def _reindex(self) -> None:
        self._row_of = {image.id: row for row, image in enumerate(self._rows)}

    def _row_changed(self, image_id: int, role: int) -> None:
        row = self._row_of.get(image_id)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [role])

    def _is_hidden(self, image: GalleryImage) -> bool:
        return self._hidden.get(image.id) == image.path

    def _prune_hidden(self) -> None:
        for image_id in list(self._released):
            image = self._service.gallery().get(image_id)
            if image is None or image.path != self._hidden.get(image_id):
                self._released.discard(image_id)
                self._hidden.pop(image_id, None)

    def _consumed(self, batch: list[GalleryImage], shown: int) -> int:
        """How many catalogue rows precede the first visible row not shown."""
        seen = 0
        for position, image in enumerate(batch):
            if not self._is_hidden(image):
                if seen == shown:
                    return position
                seen += 1
        return len(batch)
