"""The gallery: every image in the library folders, searchable and filterable, with the details and the
actions an artist reaches for (reuse parameters or seed, send to the img2img canvas, copy, delete).

Scale: a ``QListView`` in icon mode (uniform item sizes, batched layout) over :class:`GalleryModel`,
which pages rows out of the catalogue as the view scrolls (``canFetchMore`` / ``fetchMore``) and asks
for a thumbnail only when a row is painted (``data()`` for the decoration role), showing a placeholder
until the thumbnail arrives from the service's pool. Decoded thumbnails are kept in a bounded LRU of
QPixmaps, so 10,000+ images cost a few pages of rows and a few hundred small pixmaps, never one widget
per image.

Size: the thumbnail size is the user's (a slider, Ctrl++ / Ctrl+- / Ctrl+0, and
:meth:`GalleryView.set_icon_size` for the window to restore it). The grid's cells are widened to share
the row's leftover width, so whole columns always fit: rows wrap and there is never a horizontal scroll
bar. A thumbnail made for another size is shown scaled until the one for the new size arrives (the
service keeps larger copies on disk, see :mod:`studio.library.thumbnails`).

Deleting and undo: a file cannot be taken back out of the desktop's trash portably (send2trash only
puts files in), so a delete happens in two steps. The row is hidden at once; the file itself is sent
to the trash only when the next delete happens, :data:`UNDO_MS` later, or when the app shuts down.
Until then Ctrl+Z brings the row back, and the file was never touched. Only the last delete can be
undone.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QDate,
    QEvent,
    QKeyCombination,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSignalBlocker,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QDesktopServices,
    QFont,
    QImage,
    QKeySequence,
    QPainter,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.library.display import printable
from studio.library.gallery import GalleryImage, Query
from studio.library.metadata import ImageMetadata, read_metadata
from studio.ui.plain_text import menu_text, plain_label, plain_tooltip
from studio.worker.gallery import GalleryService, describe_report

__all__ = ["IMAGE_ROLE", "GalleryModel", "GalleryView"]

log = logging.getLogger(__name__)

IMAGE_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's :class:`~studio.library.gallery.GalleryImage`."""
PAGE_SIZE = 200
ICON_SIZE = 160
"""The default thumbnail size (logical pixels, longest side): 3-4 columns beside the detail pane in a
1000-1200 px wide gallery, more when wider."""
MIN_ICON_SIZE = 64
MAX_ICON_SIZE = 320
ICON_STEP = 16
"""One Ctrl++ / Ctrl+- step, and the slider's."""
GRID_GAP = 12
"""Cell size minus icon size: room for the selection frame (2 px) and the picture's margin (4 px) around it."""
DETAIL_WIDTH = 340
"""The detail pane's width when the gallery opens; the grid takes the rest (and any extra width)."""
PIXMAP_CACHE = 600
"""Thumbnails kept decoded at most: a few screens' worth (about 100 KB each at 160 px)..."""
PIXMAP_BUDGET = 96 * 1024 * 1024
"""...and at most this many bytes of them, which bounds memory at large sizes on HiDPI screens."""
NO_SELECTION = "No image selected"
NO_CHUNKS = "No metadata chunks in this file"
REFRESH_SLACK = 50
"""Rows re-read beyond those loaded when the library changes, so new images can come in at the top."""
SEARCH_DEBOUNCE_MS = 200
REFRESH_DEBOUNCE_MS = 100
UNDO_MS = 10_000

SOURCE_LABELS = {
    "latent-studio": "Latent Studio",
    "a1111": "AUTOMATIC1111 (parameters)",
    "comfyui": "ComfyUI",
    "invokeai": "InvokeAI",
}
DATE_RANGES = (("Any time", "any"), ("Today", "today"), ("Last 7 days", "7d"), ("Last 30 days", "30d"), ("Custom…", "custom"))
SORTS = (("Newest first", "newest"), ("Oldest first", "oldest"), ("Highest rated", "rating"))


def _tile(size: int, broken: bool = False) -> QPixmap:
    """The placeholder drawn until a thumbnail arrives (or instead of one that cannot be made)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(128, 128, 128, 110), 1))
    painter.setBrush(QColor(128, 128, 128, 40))
    painter.drawRoundedRect(QRect(2, 2, size - 4, size - 4), 6, 6)
    if broken:
        painter.setPen(QPen(QColor(200, 80, 80, 200), 3))
        m = size // 3
        painter.drawLine(m, m, size - m, size - m)
        painter.drawLine(size - m, m, m, size - m)
    painter.end()
    return pixmap


_BUTTON_TEXT = {"canvas": "To canvas", "folder": "Open folder", "undo": "Undo"}
"""Shorter labels for the detail pane's buttons than their actions' menu texts."""


def _clamp_icon_size(size: int) -> int:
    return max(MIN_ICON_SIZE, min(MAX_ICON_SIZE, int(size)))


def _bytes(pixmap: QPixmap) -> int:
    return pixmap.width() * pixmap.height() * max(1, pixmap.depth() // 8)


def _tooltip(image: GalleryImage) -> str:
    """Prompt, model, seed, size and path. Every piece from the file goes through ``printable``: a
    prompt may carry terminal escapes, bidi overrides or carriage returns, shown as visible escapes;
    and the whole is a :func:`plain_tooltip`: a prompt "<img src=...>" is shown, never rendered as HTML
    (which would load the local file it names)."""
    prompt = image.prompt or ""
    if len(prompt) > 300:
        prompt = prompt[:299] + "…"
    details = [printable(image.model) if image.model else None, f"seed {image.seed}" if image.seed is not None else None]
    if image.width and image.height:
        details.append(f"{image.width}×{image.height}")
    lines = [printable(prompt, keep_newlines=True)] if prompt else []
    line = " · ".join(d for d in details if d)
    if line:
        lines.append(line)
    lines.append(printable(image.path))
    return plain_tooltip("\n".join(lines))


def _name(path: Path) -> str:
    """A file name fit for a label or a message (it may hold anything a file system allows)."""
    return printable(path.name)


def _date(stamp: float) -> str | None:
    """``stamp`` as local date and time; None for one no calendar holds (a catalogue changed by hand)."""
    try:
        return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- model


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
        self._placeholder = _tile(self._icon_size)
        self._broken_tile = _tile(self._icon_size, broken=True)
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
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(image)
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
        self._placeholder = _tile(size)
        self._broken_tile = _tile(size, broken=True)

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

    def _decoration(self, image: GalleryImage) -> QPixmap:
        key = (image.id, image.mtime)
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            if not self._fits(pixmap, image):
                self._ask(image)  # the size changed: this one stays on screen until the new one comes
            return pixmap
        if key in self._broken:
            return self._broken_tile
        self._ask(image)
        return self._placeholder

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


class _ThumbnailDelegate(QStyledItemDelegate):
    """One fixed-size cell per image: the thumbnail centred, a frame when selected, a heart for
    favourites and stars for ratings. Drawn directly (no text layout), so painting stays cheap.

    The picture fills a square of the icon size (or the image's own size, if smaller), whatever the
    resolution of the pixmap at hand: after the size changes, the thumbnail made for the old size is
    drawn scaled until the new one arrives, so the grid never jumps."""

    def __init__(self, cell: QSize, icon_size: int, parent: QObject | None = None):
        super().__init__(parent)
        self._cell = cell
        self._icon = icon_size

    def set_sizes(self, cell: QSize, icon_size: int) -> None:
        self._cell = cell
        self._icon = icon_size
        self.sizeHintChanged.emit(QModelIndex())

    def cell(self) -> QSize:
        return self._cell

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return self._cell

    def picture_rect(self, cell: QRect, pixmap: QPixmap, image: GalleryImage | None) -> QRect:
        """Where the picture goes in `cell`: its aspect ratio kept, as large as the icon size (never
        larger than the cell), and never larger than the image itself."""
        room = min(self._icon, cell.width() - 8, cell.height() - 8)
        ratio = pixmap.devicePixelRatio() or 1.0
        if image is not None and image.width and image.height:
            room = min(room, round(max(image.width, image.height) / ratio))
        natural = pixmap.deviceIndependentSize().toSize()
        if image is None or not (image.width and image.height):
            natural = natural.boundedTo(QSize(room, room))  # unknown size: shrink to fit, never enlarge
        size = natural.scaled(QSize(max(1, room), max(1, room)), Qt.AspectRatioMode.KeepAspectRatio)
        rect = QRect(0, 0, size.width(), size.height())
        rect.moveCenter(cell.center())
        return rect

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        cell = option.rect.adjusted(2, 2, -2, -2)
        if cell.width() > cell.height():  # a cell widened to fill the row: frame the picture, not the gap
            square = QRect(0, 0, cell.height(), cell.height())
            square.moveCenter(cell.center())
            cell = square
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            fill = QColor(palette.highlight().color())
            fill.setAlpha(90)
            painter.setPen(QPen(palette.highlight().color(), 2))
            painter.setBrush(fill)
            painter.drawRoundedRect(cell, 6, 6)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            hover = QColor(palette.highlight().color())
            hover.setAlpha(40)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(hover)
            painter.drawRoundedRect(cell, 6, 6)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        image = index.data(IMAGE_ROLE)
        image_rect = cell
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            image_rect = self.picture_rect(cell, pixmap, image)
            painter.drawPixmap(image_rect, pixmap)
        if image is not None and (image.favourite or image.rating):
            font = QFont(painter.font())
            font.setPixelSize(13)
            painter.setFont(font)
            rect = image_rect.adjusted(3, 1, -3, -1)
            for text, align, colour in (
                ("♥" if image.favourite else "", Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight, QColor(230, 70, 90)),
                ("★" * image.rating, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft, QColor(250, 200, 40)),
            ):
                if text:
                    painter.setPen(QColor(0, 0, 0, 170))
                    painter.drawText(rect.translated(1, 1), align, text)
                    painter.setPen(colour)
                    painter.drawText(rect, align, text)
        painter.restore()


class _ImagePreview(QLabel):
    """The selected image, scaled smoothly to the space it has."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setAccessibleName("Selected image")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._source = QPixmap()
        self._placeholder = ""

    def set_placeholder(self, text: str) -> None:
        """Text shown while there is no picture (nothing selected)."""
        self._placeholder = text
        if self._source.isNull():
            self.setText(text)

    def set_source(self, pixmap: QPixmap | None) -> None:
        self._source = pixmap if pixmap is not None else QPixmap()
        self._rescale()

    def source(self) -> QPixmap:
        return self._source

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._source.isNull():
            self.clear()
            self.setText(self._placeholder)
            return
        ratio = self.devicePixelRatioF()
        scaled = self._source.scaled(
            self.size() * ratio, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        scaled.setDevicePixelRatio(ratio)
        self.setPixmap(scaled)


@dataclass
class _PendingDelete:
    image: GalleryImage
    row: int


# -------------------------------------------------------------------------------------------- view


class GalleryView(QWidget):
    """The gallery browser. The window connects its signals to the generation side."""

    reuse_parameters = Signal(object)  # dict of GenerationRequest fields (read_metadata(...).to_request_fields())
    reuse_seed = Signal(int)
    send_to_canvas = Signal(str)  # path
    message = Signal(str)
    current_changed = Signal(object)  # GalleryImage | None
    icon_size_changed = Signal(int)  # the thumbnail size the user chose (logical px): the window saves it

    def __init__(
        self,
        service: GalleryService,
        parent: QWidget | None = None,
        *,
        page_size: int = PAGE_SIZE,
        icon_size: int = ICON_SIZE,
        undo_ms: int = UNDO_MS,
        search_debounce_ms: int = SEARCH_DEBOUNCE_MS,
    ):
        super().__init__(parent)
        self.setAccessibleName("Gallery")
        self._service = service
        self._closed = False
        icon_size = _clamp_icon_size(icon_size)
        self._pending: _PendingDelete | None = None
        self._current_meta: tuple[Path, ImageMetadata | None] | None = None
        self.model = GalleryModel(service, page_size=page_size, icon_size=icon_size, parent=self)

        self._search_timer = QTimer(self, singleShot=True, interval=max(0, search_debounce_ms))
        self._search_timer.timeout.connect(self.apply_filters)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_DEBOUNCE_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._undo_timer = QTimer(self, singleShot=True, interval=max(0, undo_ms))
        self._undo_timer.timeout.connect(self._commit_delete)

        self._build_filters()
        with QSignalBlocker(self.size_slider):
            self.size_slider.setValue(icon_size)
        self._build_grid(icon_size)
        self._build_detail()
        self._build_actions()
        self._build_layout()
        self._connect()
        self._reload_models()
        self.apply_filters()

    @property
    def service(self) -> GalleryService:
        return self._service

    def grid_actions(self) -> list[QAction]:
        """The actions whose keys work while the grid has focus (reuse, copy, delete, rate...), for a
        list of shortcuts; those that work anywhere in the gallery (search, thumbnail size) are
        :meth:`actions`, and are not repeated here."""
        anywhere = set(self.actions())
        return [act for act in self._grid_actions if act not in anywhere]

    # ------------------------------------------------------------------------------------ widgets
    def _build_filters(self) -> None:
        self.search = QLineEdit(placeholderText="Search prompts…  (\"a phrase\", -exclude, neg:word)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search prompts")
        self.model_filter = QComboBox(accessibleName="Model filter")
        self.model_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_filter.setMinimumContentsLength(14)
        self.date_filter = QComboBox(accessibleName="Date filter")
        for label, key in DATE_RANGES:
            self.date_filter.addItem(label, key)
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-7), calendarPopup=True, accessibleName="From date")
        self.date_to = QDateEdit(today, calendarPopup=True, accessibleName="To date")
        for edit in (self.date_from, self.date_to):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setVisible(False)
        self.favourites_only = QCheckBox("♥ only", accessibleName="Favourites only")
        self.favourites_only.setToolTip("Show favourites only")
        self.sort = QComboBox(accessibleName="Sort order")
        for label, key in SORTS:
            self.sort.addItem(label, key)

        self.add_folder_button = QToolButton(text="Add folder…")
        self.remove_folder_button = QToolButton(text="Remove folder")
        self.remove_folder_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self._folder_menu = QMenu(self.remove_folder_button)
        self._folder_menu.aboutToShow.connect(self._fill_folder_menu)
        self.remove_folder_button.setMenu(self._folder_menu)
        self.rescan_button = QToolButton(text="Rescan")
        self.progress = QProgressBar(accessibleName="Scan progress", textVisible=True)
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.stop_scan_button = QToolButton(text="Stop", toolTip="Stop scanning (what was found so far is kept)")
        self.stop_scan_button.setVisible(False)
        self._scan_stopped = False
        self.count_label = plain_label(accessibleName="Number of images")
        self.size_slider = QSlider(Qt.Orientation.Horizontal, accessibleName="Thumbnail size")
        self.size_slider.setRange(MIN_ICON_SIZE, MAX_ICON_SIZE)
        self.size_slider.setSingleStep(ICON_STEP)
        self.size_slider.setPageStep(ICON_STEP * 4)
        self.size_slider.setFixedWidth(140)
        self.size_slider.setToolTip("Thumbnail size (Ctrl++ / Ctrl+- / Ctrl+0)")
        self.size_slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # no wheel changes while scrolling past
        self.size_label = QLabel("Size:")
        self.size_label.setBuddy(self.size_slider)

    def _build_grid(self, icon_size: int) -> None:
        """Icon mode, wrapping left to right, cells stretched to the width (:meth:`_fit_grid`): never a
        horizontal scroll bar, however wide the cells or narrow the pane."""
        grid = self.grid = QListView()
        grid.setObjectName("galleryGrid")
        grid.setAccessibleName("Images")
        grid.setViewMode(QListView.ViewMode.IconMode)
        grid.setMovement(QListView.Movement.Static)
        grid.setResizeMode(QListView.ResizeMode.Adjust)
        grid.setFlow(QListView.Flow.LeftToRight)
        grid.setWrapping(True)
        grid.setUniformItemSizes(True)
        grid.setLayoutMode(QListView.LayoutMode.Batched)
        grid.setBatchSize(PAGE_SIZE)
        grid.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        grid.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        grid.setDragEnabled(True)
        grid.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        cell = QSize(icon_size + GRID_GAP, icon_size + GRID_GAP)
        self._delegate = _ThumbnailDelegate(cell, icon_size, grid)
        grid.setItemDelegate(self._delegate)
        grid.setMouseTracking(True)  # hover highlight
        grid.setModel(self.model)
        grid.installEventFilter(self)
        extent = grid.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, grid)
        grid.setMinimumWidth(MIN_ICON_SIZE + GRID_GAP + extent + 2 * grid.frameWidth())
        self._fit_grid()

    def _build_detail(self) -> None:
        self.preview = _ImagePreview()
        self.preview.installEventFilter(self)
        self.preview.set_placeholder(NO_SELECTION)
        self.caption = plain_label(NO_SELECTION, accessibleName="Shown image", wordWrap=True)  # a file name
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        caption_font = QFont(self.caption.font())
        caption_font.setBold(True)
        self.caption.setFont(caption_font)
        self.fields: dict[str, QLabel] = {}
        form_widget = QWidget()
        form = QFormLayout(form_widget)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(self.caption)
        for key, label in (
            ("prompt", "Prompt"),
            ("negative_prompt", "Negative"),
            ("seed", "Seed"),
            ("steps", "Steps"),
            ("guidance", "Guidance"),
            ("scheduler", "Scheduler"),
            ("model", "Model"),
            ("size", "Size"),
            ("source", "Made with"),
            ("created", "Created"),
            ("file", "File"),
        ):
            value = plain_label(wordWrap=True, accessibleName=label)  # prompts, model names: never HTML
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = value
            form.addRow(f"{label}:", value)
        self.rating = QSpinBox(minimum=0, maximum=5, accessibleName="Rating")
        self.rating.setSpecialValueText("not rated")
        self.rating.setSuffix(" ★")
        self.favourite = QCheckBox("♥ Favourite", accessibleName="Favourite")
        marks = QHBoxLayout()
        marks.addWidget(self.rating)
        marks.addWidget(self.favourite)
        marks.addStretch(1)
        form.addRow("Rating:", marks)
        self.raw = QPlainTextEdit(readOnly=True, accessibleName="Raw metadata")
        self.raw.setPlaceholderText("")  # what it says depends on the selection: see _show
        self.raw.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.raw.setMinimumHeight(80)
        form.addRow(QLabel("Raw metadata:"))
        form.addRow(self.raw)
        info = QScrollArea(widgetResizable=True)
        info.setWidget(form_widget)
        self.detail_splitter = QSplitter(Qt.Orientation.Vertical, objectName="galleryDetailSplitter")
        self.detail_splitter.addWidget(self.preview)
        self.detail_splitter.addWidget(info)
        self.detail_splitter.setStretchFactor(0, 3)
        self.detail_splitter.setStretchFactor(1, 2)

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcuts=(), tip: str = "") -> QAction:
            act = QAction(text, self)
            keys = [QKeySequence(s) for s in shortcuts]
            if keys:
                # Shown in menus and tooltips; they fire through eventFilter while the grid has focus,
                # which wins over the window's shortcuts for the same keys.
                act.setShortcuts(keys)
                act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
                first = keys[0].toString(QKeySequence.SequenceFormat.NativeText)
                act.setToolTip(f"{tip or text.replace('&', '')} ({first})")
            elif tip:
                act.setToolTip(tip)
            act.triggered.connect(slot)
            return act

        self.act_reuse = action("Reuse &parameters", self.reuse_current_parameters, ["Ctrl+R"])
        self.act_reuse_seed = action("Reuse &seed", self.reuse_current_seed, ["Ctrl+Shift+R"])
        self.act_to_canvas = action("Send to img2img &canvas", self.send_current_to_canvas, ["Ctrl+Shift+I"])
        self.act_copy_image = action("&Copy image", self.copy_image, [QKeySequence.StandardKey.Copy])
        self.act_copy_prompt = action("Copy p&rompt", self.copy_prompt, ["Ctrl+Shift+C"])
        self.act_open_folder = action("&Open containing folder", self.open_folder)
        self.act_delete = action(
            "&Delete", self.delete_current, [QKeySequence.StandardKey.Delete, "Delete"],
            "Move to the trash (undo with Ctrl+Z)",
        )
        self.act_undo = action("&Undo delete", self.undo_delete, [QKeySequence.StandardKey.Undo])
        self.act_rescan = action("Rescan", lambda: self._service.scan(), ["F5"], "Look for new, changed and removed files")
        self.act_favourite = action("Toggle &favourite", self.toggle_favourite, ["F"])
        self.act_rate = []
        for stars in range(6):
            act = action(f"Rate {stars}", lambda _=False, s=stars: self.rate_current(s), [str(stars)])
            self.act_rate.append(act)
        self._grid_actions = [
            self.act_reuse, self.act_reuse_seed, self.act_to_canvas, self.act_copy_image, self.act_copy_prompt,
            self.act_delete, self.act_undo, self.act_rescan, self.act_favourite, *self.act_rate,
        ]
        # Zoom the grid. WidgetWithChildrenShortcut: only while the gallery has focus (the window has no
        # Ctrl++ / Ctrl+- / Ctrl+0 of its own); while the grid has focus they also win over the window's
        # shortcuts through eventFilter, like the keys above.
        self.act_bigger = self._view_action("Larger thumbnails", self.zoom_in, ["Ctrl++", "Ctrl+="])
        self.act_smaller = self._view_action("Smaller thumbnails", self.zoom_out, ["Ctrl+-"])
        self.act_default_size = self._view_action("Default thumbnail size", self.reset_icon_size, ["Ctrl+0"])
        self._grid_actions += [self.act_bigger, self.act_smaller, self.act_default_size]
        self.act_focus_search = QAction("Search", self)
        self.act_focus_search.setShortcut(QKeySequence.StandardKey.Find)
        self.act_focus_search.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.act_focus_search.triggered.connect(self.focus_search)
        self.addAction(self.act_focus_search)

        self.buttons: dict[str, QToolButton] = {}
        for name, act in (
            ("reuse", self.act_reuse),
            ("seed", self.act_reuse_seed),
            ("canvas", self.act_to_canvas),
            ("copy", self.act_copy_image),
            ("prompt", self.act_copy_prompt),
            ("folder", self.act_open_folder),
            ("delete", self.act_delete),
            ("undo", self.act_undo),
        ):
            if name in _BUTTON_TEXT:
                act.setIconText(_BUTTON_TEXT[name])  # the button's label (menus keep the full text): a narrow pane
            button = QToolButton()
            button.setDefaultAction(act)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.buttons[name] = button
        self.rescan_button.setDefaultAction(self.act_rescan)
        self._update_actions()

    def _view_action(self, text: str, slot, keys: list[str]) -> QAction:
        act = QAction(text, self)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.setToolTip(f"{text} ({keys[0]})")
        act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _build_layout(self) -> None:
        filters = QHBoxLayout()
        filters.addWidget(self.search, 3)
        for widget in (self.model_filter, self.date_filter, self.date_from, self.date_to, self.favourites_only, self.sort):
            filters.addWidget(widget)
        library = QHBoxLayout()
        for widget in (
            self.add_folder_button, self.remove_folder_button, self.rescan_button, self.progress, self.stop_scan_button,
        ):
            library.addWidget(widget)
        library.addStretch(1)
        library.addWidget(self.size_label)
        library.addWidget(self.size_slider)
        library.addSpacing(12)
        library.addWidget(self.count_label)

        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.detail_splitter, 1)
        rows = [QHBoxLayout(), QHBoxLayout(), QHBoxLayout()]
        for i, name in enumerate(("reuse", "seed", "canvas", "copy", "prompt", "folder", "delete", "undo")):
            rows[i // 3].addWidget(self.buttons[name])
        for row in rows:
            row.addStretch(1)
            detail_layout.addLayout(row)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, objectName="gallerySplitter")
        self.splitter.addWidget(self.grid)
        self.splitter.addWidget(detail)
        self.splitter.setStretchFactor(0, 1)  # extra width goes to the grid; the detail pane keeps its width
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(0, False)
        self.splitter.setSizes([800, DETAIL_WIDTH])

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addLayout(library)
        layout.addWidget(self.splitter, 1)

    def _connect(self) -> None:
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.search.returnPressed.connect(self.apply_filters)
        self.model_filter.currentIndexChanged.connect(lambda _i: self.apply_filters())
        self.date_filter.currentIndexChanged.connect(self._date_filter_changed)
        self.date_from.dateChanged.connect(lambda _d: self.apply_filters())
        self.date_to.dateChanged.connect(lambda _d: self.apply_filters())
        self.favourites_only.toggled.connect(lambda _on: self.apply_filters())
        self.sort.currentIndexChanged.connect(lambda _i: self.apply_filters())
        self.add_folder_button.clicked.connect(lambda: self.add_folder())
        self.size_slider.valueChanged.connect(self.set_icon_size)
        self.search.installEventFilter(self)  # Escape acts on the search box, not on the window
        self.stop_scan_button.clicked.connect(self.stop_scan)
        self.grid.selectionModel().currentChanged.connect(lambda current, _previous: self._show_current())
        self.grid.customContextMenuRequested.connect(self._context_menu)
        self.model.failed.connect(self.message)
        self.model.modelReset.connect(self._show_current)
        self.model.rowsRemoved.connect(lambda *_: self._show_current())
        self.model.dataChanged.connect(self._on_data_changed)
        self.rating.valueChanged.connect(self._rating_edited)
        self.favourite.toggled.connect(self._favourite_edited)
        svc = self._service
        svc.scan_started.connect(self._on_scan_started)
        svc.scan_progress.connect(self._on_scan_progress)
        svc.scan_finished.connect(self._on_scan_finished)
        svc.scan_failed.connect(self._on_scan_failed)
        svc.library_changed.connect(self._refresh_timer.start)
        svc.folders_changed.connect(self._refresh_timer.start)
        svc.image_changed.connect(self._on_image_changed)
        svc.preview_ready.connect(self._on_preview_ready)
        svc.preview_failed.connect(self._on_preview_failed)
        svc.message.connect(self.message)
        svc.shutting_down.connect(self.shutdown)

    # ------------------------------------------------------------------------------------ filters
    def current_query(self) -> Query:
        date_from, date_to = self._date_range()
        return Query(
            text=self.search.text().strip(),
            model=self.model_filter.currentData(),
            date_from=date_from,
            date_to=date_to,
            favourites_only=self.favourites_only.isChecked(),
            sort=self.sort.currentData() or "newest",
        )

    def apply_filters(self) -> None:
        """Run the query the filter widgets describe (the search box calls this after a pause)."""
        if self._closed:
            return
        self._search_timer.stop()
        keep = self.current_image()
        self.model.set_query(self.current_query())
        if keep is not None:
            self.select_image(keep.id)
        self._update_count()

    def refresh(self) -> None:
        """The library changed: re-read rows, model names and the count, keeping selection and scroll."""
        if self._closed:
            return
        keep = self.current_image()
        scroll = self.grid.verticalScrollBar().value()
        if self.model.refresh():
            if keep is not None:
                self.select_image(keep.id, scroll=False)
            self.grid.verticalScrollBar().setValue(scroll)
        self._reload_models()
        self._update_count()

    def _date_range(self) -> tuple[float | None, float | None]:
        key = self.date_filter.currentData()
        midnight = datetime.combine(date.today(), datetime.min.time()).timestamp()
        if key == "today":
            return midnight, None
        if key == "7d":
            return time.time() - 7 * 86400, None
        if key == "30d":
            return time.time() - 30 * 86400, None
        if key == "custom":
            start = datetime.combine(self.date_from.date().toPython(), datetime.min.time()).timestamp()
            end = datetime.combine(self.date_to.date().toPython(), datetime.max.time()).timestamp()
            return start, end
        return None, None

    def _date_filter_changed(self) -> None:
        custom = self.date_filter.currentData() == "custom"
        self.date_from.setVisible(custom)
        self.date_to.setVisible(custom)
        self.apply_filters()

    def _reload_models(self) -> None:
        if self._closed:
            return
        try:
            models = self._service.gallery().models()
        except Exception:  # noqa: BLE001 - the filter just keeps its old entries
            log.debug("listing models failed", exc_info=True)
            return
        current = self.model_filter.currentData()
        wanted = [None, *models]
        if [self.model_filter.itemData(i) for i in range(self.model_filter.count())] == wanted:
            return
        with QSignalBlocker(self.model_filter):
            self.model_filter.clear()
            self.model_filter.addItem("All models", None)
            for name in models:
                self.model_filter.addItem(printable(name), name)  # shown harmlessly, matched exactly
            index = self.model_filter.findData(current) if current is not None else 0
            self.model_filter.setCurrentIndex(max(index, 0))
        if current is not None and index < 0:
            self.apply_filters()  # the model's last image went away: show all

    def _update_count(self) -> None:
        if self._closed:
            return
        try:
            count = self._service.gallery().count(self.model.query())
        except Exception:  # noqa: BLE001
            self.count_label.clear()
            return
        text = f"{count:,} image{'s' if count != 1 else ''}"
        if self._pending is not None:
            text += " (1 deleted, Ctrl+Z to undo)"
        self.count_label.setText(text)

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    # ----------------------------------------------------------------------------------- icon size
    def icon_size(self) -> int:
        """The thumbnail size (logical pixels, longest side)."""
        return self.model.icon_size()

    def set_icon_size(self, size: int) -> int:
        """Show thumbnails of `size` logical pixels (clamped to MIN_ICON_SIZE..MAX_ICON_SIZE): cells,
        grid and the thumbnails asked for change at once. Emits icon_size_changed when the size
        changed; returns the size now in use."""
        size = _clamp_icon_size(size)
        if size != self.size_slider.value():
            with QSignalBlocker(self.size_slider):
                self.size_slider.setValue(size)
        if size == self.model.icon_size():
            return size
        current = self.grid.currentIndex()
        self.model.set_icon_size(size)
        self._fit_grid()
        if current.isValid():
            self.grid.scrollTo(current)  # keep the selected image in sight as the rows reflow
        self.icon_size_changed.emit(size)
        return size

    def zoom_in(self) -> None:
        """Larger thumbnails by one step (Ctrl++)."""
        self.set_icon_size(self.model.icon_size() + ICON_STEP)

    def zoom_out(self) -> None:
        """Smaller thumbnails by one step (Ctrl+-)."""
        self.set_icon_size(self.model.icon_size() - ICON_STEP)

    def reset_icon_size(self) -> None:
        """The default thumbnail size (Ctrl+0)."""
        self.set_icon_size(ICON_SIZE)

    def _fit_grid(self) -> None:
        """Size the grid's cells so that whole columns fill its width: the icon size plus the gap,
        widened to share the leftover evenly (narrowed, if even one column does not fit). The width
        counts the vertical scroll bar whether it is shown or not, so its coming and going cannot
        change the cells and start a layout loop."""
        grid = self.grid
        extent = grid.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, grid)
        # -1: QListView starts a new row when a cell would reach the last pixel column, not pass it
        width = max(1, grid.width() - 2 * grid.frameWidth() - extent - 1)
        icon = self.model.icon_size()
        step = icon + GRID_GAP
        columns = max(1, width // step)
        cell = QSize(width // columns, step)
        if cell != grid.gridSize() or self._delegate.cell() != cell:  # resizes that keep the cells cost nothing
            self._delegate.set_sizes(cell, icon)
            grid.setIconSize(QSize(icon, icon))
            grid.setGridSize(cell)
            grid.verticalScrollBar().setSingleStep(max(8, icon // 4))

    # -------------------------------------------------------------------------------------- escape
    def handle_escape(self) -> bool:
        """Escape pressed while the gallery is shown (the window asks before its own Escape, cancel
        generation): in the search box, clear it (or, already empty, go to the grid); elsewhere clear
        the selection. True when it did something, so the window does nothing more."""
        if self.search.hasFocus():
            self._escape_search()
            return True
        if self.grid.currentIndex().isValid() or self.grid.selectionModel().hasSelection():
            self.clear_selection()
            return True
        return False

    def clear_selection(self) -> None:
        """Select nothing: the detail pane says so."""
        self.grid.selectionModel().clear()  # also the current index: currentChanged -> _show(None)

    def _escape_search(self) -> None:
        if self.search.text():
            self.search.clear()
            self.apply_filters()  # at once, not after the typing pause
        else:
            self.grid.setFocus(Qt.FocusReason.ShortcutFocusReason)

    # ---------------------------------------------------------------------------------- selection
    def current_image(self) -> GalleryImage | None:
        index = self.grid.currentIndex()
        return index.data(IMAGE_ROLE) if index.isValid() else None

    def select_image(self, image_id: int, *, scroll: bool = True) -> bool:
        row = self.model.row_of(image_id)
        if row is None:
            return False
        self.select_row(row, scroll=scroll)
        return True

    def select_row(self, row: int, *, scroll: bool = True) -> None:
        index = self.model.index(row)
        if index.isValid():
            self.grid.setCurrentIndex(index)
            if scroll:
                self.grid.scrollTo(index)

    def select_path(self, path: str | Path) -> bool:
        """Select the image at `path` if it is among the rows loaded (e.g. one just generated)."""
        image = self._service.gallery().get_by_path(path)
        return image is not None and self.select_image(image.id)

    def _show_current(self) -> None:
        self._show(self.current_image())

    def _show(self, image: GalleryImage | None) -> None:
        self._update_actions()
        self.current_changed.emit(image)
        if image is None:
            self._current_meta = None
            self.caption.setText(NO_SELECTION)
            for label in self.fields.values():
                label.clear()
            self.raw.clear()
            self.raw.setPlaceholderText("")  # nothing is shown, so no claim about any file's chunks
            self.preview.set_placeholder(NO_SELECTION)
            self.preview.set_source(None)
            with QSignalBlocker(self.rating), QSignalBlocker(self.favourite):
                self.rating.setValue(0)
                self.favourite.setChecked(False)
            return
        same = self._current_meta is not None and self._current_meta[0] == image.path
        meta = self._current_meta[1] if same and self._current_meta else self._metadata(image.path)
        self._current_meta = (image.path, meta)

        def text(value, multiline: bool = False) -> str:
            return "—" if value is None or value == "" else printable(value, keep_newlines=multiline)

        guidance = meta.guidance if meta is not None else None
        values = {
            "prompt": image.prompt if image.prompt is not None else (meta.prompt if meta else None),
            "negative_prompt": image.negative_prompt,
            "seed": image.seed,
            "steps": image.steps,
            "guidance": f"{guidance:g}" if isinstance(guidance, float) else guidance,
            "scheduler": image.scheduler,
            "model": image.model,
            "size": f"{image.width} × {image.height}" if image.width and image.height else None,
            "source": SOURCE_LABELS.get(image.source or "", image.source) or "no generation parameters found",
            "created": _date(image.created) if image.created else None,
            "file": f"{image.path}  ({_file_size(image.size)})",
        }
        for key, value in values.items():
            self.fields[key].setText(text(value, multiline=key in ("prompt", "negative_prompt")))
        self.caption.setText(_name(image.path))
        self.preview.set_placeholder("")  # blank until the picture is decoded (failures go to the status bar)
        raw = meta.raw if meta is not None else {}
        self.raw.setPlaceholderText(NO_CHUNKS)
        self.raw.setPlainText(
            "\n\n".join(f"[{printable(key)}]\n{printable(value, keep_newlines=True)}" for key, value in raw.items())
        )
        with QSignalBlocker(self.rating), QSignalBlocker(self.favourite):
            self.rating.setValue(int(image.rating or 0))
            self.favourite.setChecked(bool(image.favourite))
        if not same:
            self.preview.set_source(self.model.cached_pixmap(image))  # the thumbnail until the image is decoded
            self._service.request_preview(image.path)

    @staticmethod
    def _metadata(path: Path) -> ImageMetadata | None:
        try:
            return read_metadata(path)
        except Exception:  # noqa: BLE001 - unreadable, moved, or not ours: show what the index knows
            log.debug("reading metadata of %s failed", path, exc_info=True)
            return None

    def _on_preview_ready(self, path: str, image: QImage) -> None:
        current = self.current_image()
        if current is not None and str(current.path) == path:
            self.preview.set_source(QPixmap.fromImage(image))

    def _on_preview_failed(self, path: str, why: str) -> None:
        current = self.current_image()
        if current is not None and str(current.path) == path:
            self.message.emit(printable(why))

    def _on_data_changed(self, top: QModelIndex, bottom: QModelIndex, roles=()) -> None:
        current = self.grid.currentIndex()
        if not current.isValid() or not top.row() <= current.row() <= bottom.row():
            return
        if list(roles) == [Qt.ItemDataRole.DecorationRole]:
            image = current.data(IMAGE_ROLE)
            if self.preview.source().isNull() and image is not None:
                self.preview.set_source(self.model.cached_pixmap(image))
            return
        self._show_current()

    def _update_actions(self) -> None:
        has = self.grid.currentIndex().isValid() if hasattr(self, "grid") else False
        for act in (
            self.act_reuse, self.act_reuse_seed, self.act_to_canvas, self.act_copy_image,
            self.act_copy_prompt, self.act_open_folder, self.act_delete, self.act_favourite, *self.act_rate,
        ):
            act.setEnabled(has)
        self.act_undo.setEnabled(self._pending is not None)
        if hasattr(self, "rating"):
            self.rating.setEnabled(has)
            self.favourite.setEnabled(has)

    # ------------------------------------------------------------------------------------ actions
    def _require_current(self) -> GalleryImage | None:
        image = self.current_image()
        if image is None:
            self.message.emit("No image selected")
        return image

    def reuse_current_parameters(self) -> None:
        image = self._require_current()
        if image is None:
            return
        meta = self._metadata(image.path)
        fields = meta.to_request_fields() if meta is not None else {}
        if not fields:
            self.message.emit(f"{_name(image.path)} holds no generation parameters")
            return
        self.reuse_parameters.emit(fields)
        self.message.emit(f"Parameters of {_name(image.path)} restored")

    def reuse_current_seed(self) -> None:
        image = self._require_current()
        if image is None:
            return
        seed = image.seed
        if seed is None:
            meta = self._metadata(image.path)
            seed = meta.seed if meta is not None else None
        if seed is None:
            self.message.emit(f"{_name(image.path)} records no seed")
            return
        self.reuse_seed.emit(int(seed))
        self.message.emit(f"Seed {seed} fixed")

    def send_current_to_canvas(self) -> None:
        image = self._require_current()
        if image is not None:
            self.send_to_canvas.emit(str(image.path))

    def copy_image(self) -> bool:
        image = self._require_current()
        if image is None:
            return False
        pixels = QImage(str(image.path))
        if pixels.isNull():
            self.message.emit(f"Cannot read {_name(image.path)} (moved or deleted?)")
            return False
        mime = QMimeData()
        mime.setImageData(pixels)
        mime.setUrls([QUrl.fromLocalFile(str(image.path))])
        QApplication.clipboard().setMimeData(mime)
        self.message.emit(f"Copied {_name(image.path)}")
        return True

    def copy_prompt(self) -> bool:
        image = self._require_current()
        if image is None:
            return False
        prompt = image.prompt
        if not prompt:
            meta = self._metadata(image.path)
            prompt = meta.prompt if meta is not None else None
        if not prompt:
            self.message.emit(f"{_name(image.path)} records no prompt")
            return False
        QApplication.clipboard().setText(prompt)
        self.message.emit("Prompt copied")
        return True

    def open_folder(self) -> None:
        image = self._require_current()
        if image is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(image.path.parent)))

    def rate_current(self, stars: int) -> None:
        image = self._require_current()
        if image is not None:
            self._service.set_rating(image.id, stars)

    def toggle_favourite(self) -> None:
        image = self._require_current()
        if image is not None:
            self._service.set_favourite(image.id, not image.favourite)

    def _rating_edited(self, value: int) -> None:
        image = self.current_image()
        if image is not None and value != image.rating:
            self._service.set_rating(image.id, value)

    def _favourite_edited(self, on: bool) -> None:
        image = self.current_image()
        if image is not None and on != image.favourite:
            self._service.set_favourite(image.id, on)

    def _on_image_changed(self, _image_id: int) -> None:
        query = self.model.query()
        if query.favourites_only or query.sort == "rating":
            self._refresh_timer.start()  # the row may leave the results or move

    # ------------------------------------------------------------------------------ delete, undo
    def delete_current(self) -> None:
        """Hide the selected image now; it goes to the trash on the next delete, after the undo window
        or at shutdown (see the module docstring)."""
        image = self._require_current()
        if image is None:
            return
        if self._pending is not None:
            self._commit_delete()
        row = self.model.row_of(image.id)
        self._pending = _PendingDelete(image, row if row is not None else 0)
        self.model.hide(image)
        if self.model.rowCount():
            self.select_row(min(self._pending.row, self.model.rowCount() - 1))
        self._undo_timer.start()
        self._update_actions()
        self._update_count()
        seconds = max(1, round(self._undo_timer.interval() / 1000))
        self.message.emit(f"{_name(image.path)} deleted: Ctrl+Z brings it back (it goes to the trash in {seconds} s)")

    def undo_delete(self) -> bool:
        """Bring back the last deleted image, if it has not gone to the trash yet."""
        pending, self._pending = self._pending, None
        self._undo_timer.stop()
        self._update_actions()
        if pending is None:
            self.message.emit("Nothing to undo")
            return False
        self.model.unhide(pending.image.id)
        self.select_image(pending.image.id)
        self._update_count()
        self.message.emit(f"{_name(pending.image.path)} restored")
        return True

    def pending_delete(self) -> Path | None:
        """The file deleted but not yet in the trash (undo still possible)."""
        return self._pending.image.path if self._pending is not None else None

    def _commit_delete(self) -> bool:
        pending, self._pending = self._pending, None
        self._undo_timer.stop()
        self._update_actions()
        if pending is None:
            return True
        error = self._service.trash(pending.image.path)
        if error:
            self.message.emit(error)
            if not self._closed:
                self.model.unhide(pending.image.id)
            return False
        self.model.release(pending.image.id)
        if not self._closed:
            self._update_count()
        return True

    # ------------------------------------------------------------------------------------ folders
    def add_folder(self, path: str | Path | None = None) -> Path | None:
        if path is None:
            chosen = QFileDialog.getExistingDirectory(self, "Add a folder to the gallery")
            if not chosen:
                return None
            path = chosen
        folder = self._service.add_folder(path)
        self.message.emit(f"Adding {printable(folder)} to the gallery…")
        return folder

    def remove_folder(self, path: str | Path) -> bool:
        removed = self._service.remove_folder(path)
        if removed:
            self.message.emit(f"{printable(path)} removed from the gallery (its files are left alone)")
        return removed

    def _fill_folder_menu(self) -> None:
        self._folder_menu.clear()
        folders = self._service.folders()
        if not folders:
            self._folder_menu.addAction("No folders in the gallery").setEnabled(False)
        for folder in folders:
            pinned = self._service.is_pinned(folder)
            shown = menu_text(printable(folder))  # a "&" in a folder's name is shown, not a mnemonic
            act = self._folder_menu.addAction(f"{shown}  (output folder)" if pinned else shown)
            act.setEnabled(not pinned)
            act.triggered.connect(lambda _=False, f=folder: self.remove_folder(f))

    def stop_scan(self) -> None:
        if self._service.is_scanning():
            self._scan_stopped = True
            self._service.cancel_scan()

    def _show_progress(self, shown: bool) -> None:
        self.progress.setVisible(shown)
        self.stop_scan_button.setVisible(shown)
        if not shown:
            self._scan_stopped = False

    def _on_scan_started(self) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat("Scanning…")
        self._show_progress(True)

    def _on_scan_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"Scanning {done:,} / {total:,}")
        self._show_progress(True)

    def _on_scan_finished(self, report) -> None:
        self.message.emit("Scan stopped" if self._scan_stopped else describe_report(report))
        self._show_progress(self._service.is_scanning())
        self._refresh_timer.start()

    def _on_scan_failed(self, why: str) -> None:
        if why != "cancelled":
            self.message.emit(printable(f"Library scan failed: {why}"))
        self._show_progress(self._service.is_scanning())

    # ------------------------------------------------------------------------------------- events
    def _context_menu(self, pos) -> None:
        index = self.grid.indexAt(pos)
        if index.isValid():
            self.grid.setCurrentIndex(index)
        menu = QMenu(self)
        if index.isValid():
            for act in (self.act_reuse, self.act_reuse_seed, self.act_to_canvas):
                menu.addAction(act)
            menu.addSeparator()
            for act in (self.act_copy_image, self.act_copy_prompt, self.act_open_folder):
                menu.addAction(act)
            menu.addSeparator()
            menu.addAction(self.act_favourite)
            menu.addAction(self.act_delete)
        menu.addAction(self.act_undo)
        menu.addSeparator()
        menu.addAction(self.act_rescan)
        menu.exec(self.grid.viewport().mapToGlobal(pos))

    def _action_for(self, event) -> QAction | None:
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        key = Qt.Key(event.key())
        pressed = [QKeySequence(QKeyCombination(modifiers, key))]
        if modifiers & Qt.KeyboardModifier.ShiftModifier and not Qt.Key.Key_A <= key <= Qt.Key.Key_Z:
            # Ctrl++ is typed as Ctrl+Shift+= on many layouts: the key is already the shifted one
            pressed.append(QKeySequence(QKeyCombination(modifiers & ~Qt.KeyboardModifier.ShiftModifier, key)))
        for act in self._grid_actions:
            if act.isEnabled() and any(p == k for p in pressed for k in act.shortcuts()):
                return act
        return None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """The gallery's keys while the grid (or the preview) has focus. Accepting ShortcutOverride
        makes them win over window shortcuts bound to the same keys (Ctrl+C, Ctrl+Shift+C, Ctrl+R…).
        Escape in the search box is the search box's (see handle_escape), never the window's."""
        kind = event.type()
        if watched is self.grid and kind == QEvent.Type.Resize:
            self._fit_grid()
            return False
        if watched is self.search:
            if (
                kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress)
                and event.key() == Qt.Key.Key_Escape
                and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            ):
                event.accept()
                if kind == QEvent.Type.KeyPress:
                    self._escape_search()
                return True
            return False
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            act = self._action_for(event)
            if act is not None:
                event.accept()
                if kind == QEvent.Type.KeyPress:
                    act.trigger()
                return True
        return super().eventFilter(watched, event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.model.set_device_pixel_ratio(self.grid.devicePixelRatioF())

    # ----------------------------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Send a pending delete to the trash and stop querying. Runs when the service shuts down."""
        if self._closed:
            return
        self._commit_delete()
        self._closed = True
        for timer in (self._search_timer, self._refresh_timer, self._undo_timer):
            timer.stop()
        self.model.close()


def _file_size(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
