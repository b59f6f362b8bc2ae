"""The gallery's grid: thumbnails in wrapping rows over the browser's item model, never a horizontal
scroll bar.

Size: the thumbnail size is the user's (:attr:`~studio.viewmodel.gallery_browser.GalleryBrowser.icon_size`).
The grid's cells are widened to share the row's leftover width, so whole columns always fit: rows wrap and
there is never a horizontal scroll bar. A thumbnail made for another size is shown scaled until the one for
the new size arrives (the service keeps larger copies on disk, see :mod:`studio.library.thumbnails`).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QObject, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QHelpEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
    QWidget,
)

from studio.library.gallery import GalleryImage
from studio.ui.plain_text import plain_tooltip
from studio.viewmodel.gallery_browser import MIN_ICON_SIZE
from studio.viewmodel.gallery_items import BROKEN_ROLE, IMAGE_ROLE, PAGE_SIZE, TOOLTIP_ROLE, GalleryModel

__all__ = ["GRID_GAP", "GalleryGrid", "ThumbnailDelegate", "tooltip_for"]

GRID_GAP = 12
"""Cell size minus icon size: room for the selection frame (2 px) and the picture's margin (4 px) around it."""


def tooltip_for(index: QModelIndex) -> str:
    """What hovering a thumbnail shows: the row's text as a :func:`plain_tooltip` (a prompt "<img src=...>"
    is shown, never rendered as HTML, which would load the local file it names)."""
    text = index.data(TOOLTIP_ROLE)
    return plain_tooltip(text) if text else ""


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


class ThumbnailDelegate(QStyledItemDelegate):
    """One fixed-size cell per image: the thumbnail centred, a frame when selected, a heart for
    favourites and stars for ratings. Drawn directly (no text layout), so painting stays cheap.

    The picture fills a square of the icon size (or the image's own size, if smaller), whatever the
    resolution of the pixmap at hand: after the size changes, the thumbnail made for the old size is
    drawn scaled until the new one arrives, so the grid never jumps."""

    def __init__(self, cell: QSize, icon_size: int, parent: QObject | None = None):
        super().__init__(parent)
        self._cell = cell
        self._icon = icon_size
        self._placeholder = _tile(icon_size)
        self._broken = _tile(icon_size, broken=True)

    def set_sizes(self, cell: QSize, icon_size: int) -> None:
        if icon_size != self._icon:
            self._placeholder = _tile(icon_size)
            self._broken = _tile(icon_size, broken=True)
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
        if not isinstance(pixmap, QPixmap) or pixmap.isNull():  # until it arrives, or when it cannot be made
            pixmap = self._broken if index.data(BROKEN_ROLE) else self._placeholder
        image = index.data(IMAGE_ROLE)
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

    def helpEvent(self, event: QHelpEvent, view: QAbstractItemView, option: QStyleOptionViewItem, index) -> bool:  # noqa: N802
        """The row's tooltip, shown as plain text whatever it holds (see :func:`tooltip_for`)."""
        if event.type() == QEvent.Type.ToolTip and index.isValid():
            text = tooltip_for(index)
            if text:
                QToolTip.showText(event.globalPos(), text, view)
                return True
        return super().helpEvent(event, view, option, index)


class GalleryGrid(QListView):
    """Icon mode, wrapping left to right, cells stretched to the width (:meth:`fit`): never a horizontal
    scroll bar, however wide the cells or narrow the pane. Shows the browser's rows and selection."""

    def __init__(
        self, model: GalleryModel, selection: QItemSelectionModel, icon_size: int, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self._icon = icon_size
        self._scroll = 0
        self.setObjectName("galleryGrid")
        self.setAccessibleName("Images")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(PAGE_SIZE)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        cell = QSize(icon_size + GRID_GAP, icon_size + GRID_GAP)
        self._delegate = ThumbnailDelegate(cell, icon_size, self)
        self.setItemDelegate(self._delegate)
        self.setMouseTracking(True)  # hover highlight
        self.setModel(model)
        self.setSelectionModel(selection)  # the browser's: what is selected is its state
        model.modelAboutToBeReset.connect(self._remember_scroll)
        extent = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
        self.setMinimumWidth(MIN_ICON_SIZE + GRID_GAP + extent + 2 * self.frameWidth())
        self.fit()

    def set_icon_size(self, size: int) -> None:
        """Cells for thumbnails of `size` logical pixels, the selected one kept in sight as rows reflow."""
        if size == self._icon:
            return
        self._icon = size
        self.fit()
        current = self.currentIndex()
        if current.isValid():
            self.scrollTo(current)

    def global_position(self, pos: QPoint) -> QPoint:
        """`pos` as ``customContextMenuRequested`` gives it (in the viewport), on the screen."""
        return self.viewport().mapToGlobal(pos)

    def reveal(self, row: int) -> None:
        """Scroll `row` into view."""
        self.scrollTo(self.model().index(row, 0))

    def restore_scroll(self) -> None:
        """Back to where the rows were scrolled before the model was last reset (a refresh re-read them)."""
        self.verticalScrollBar().setValue(self._scroll)

    def _remember_scroll(self) -> None:
        self._scroll = self.verticalScrollBar().value()

    def fit(self) -> None:
        """Size the cells so that whole columns fill the width: the icon size plus the gap, widened to
        share the leftover evenly (narrowed, if even one column does not fit). The width counts the
        vertical scroll bar whether it is shown or not, so its coming and going cannot change the cells
        and start a layout loop."""
        extent = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
        # -1: QListView starts a new row when a cell would reach the last pixel column, not pass it
        width = max(1, self.width() - 2 * self.frameWidth() - extent - 1)
        icon = self._icon
        step = icon + GRID_GAP
        columns = max(1, width // step)
        cell = QSize(width // columns, step)
        if cell != self.gridSize() or self._delegate.cell() != cell:  # resizes that keep the cells cost nothing
            self._delegate.set_sizes(cell, icon)
            self.setIconSize(QSize(icon, icon))
            self.setGridSize(cell)
            self.verticalScrollBar().setSingleStep(max(8, icon // 4))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.fit()
        super().resizeEvent(event)
