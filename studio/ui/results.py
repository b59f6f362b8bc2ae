"""The strip of results made since the app started, with the actions an artist reaches for.

The strip holds thumbnails only; the full image is read back from its file when needed (copy, send to
canvas), so hundreds of results cost little memory.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import QApplication, QListView, QListWidget, QListWidgetItem, QMenu, QWidget

from studio.library.display import printable
from studio.ui.plain_text import plain_tooltip
from studio.viewmodel.session import SavedImage

THUMB = 96


class ResultsStrip(QListWidget):
    """Newest first. Signals carry the SavedImage; the session decides what reuse means."""

    selected = Signal(object)  # SavedImage
    reuse_parameters = Signal(object)
    reuse_seed = Signal(object)
    send_to_canvas = Signal(object)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Results")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setFixedHeight(THUMB + 34)
        self.setMovement(QListView.Movement.Static)
        self.setHorizontalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.currentItemChanged.connect(lambda item, _prev: item and self.selected.emit(item.data(Qt.ItemDataRole.UserRole)))
        QShortcut(QKeySequence.StandardKey.Copy, self, self.copy_current, context=Qt.ShortcutContext.WidgetShortcut)

    def add_result(self, saved: SavedImage) -> SavedImage:
        image, seed = saved.image, saved.seed
        thumb = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        item = QListWidgetItem(QIcon(QPixmap.fromImage(thumb)), f"{seed}" if seed is not None else "")
        item.setData(Qt.ItemDataRole.UserRole, saved)
        item.setToolTip(plain_tooltip(f"{printable(saved.path)}\nseed {seed}"))  # the path may hold anything
        self.insertItem(0, item)
        self.setCurrentItem(item)
        return saved

    def current(self) -> SavedImage | None:
        item = self.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def results(self) -> list[SavedImage]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]

    # ----------------------------------------------------------------------------------------- actions
    def copy_current(self) -> bool:
        result = self.current()
        if result is None:
            return False
        image = QImage(str(result.path))
        if image.isNull():
            self.message.emit(f"Cannot read {printable(result.path.name)} (moved or deleted?)")
            return False
        QApplication.clipboard().setImage(image)
        self.message.emit(f"Copied {printable(result.path.name)}")
        return True

    def open_folder(self) -> None:
        result = self.current()
        if result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(result.path.parent)))

    def _menu(self, pos) -> None:
        result = self.current()
        if result is None:
            return
        menu = QMenu(self)
        menu.addAction("Copy image", self.copy_current)
        menu.addAction("Open containing folder", self.open_folder)
        menu.addSeparator()
        menu.addAction("Reuse parameters", lambda: self.reuse_parameters.emit(result))
        menu.addAction("Reuse seed", lambda: self.reuse_seed.emit(result))
        menu.addAction("Send to canvas (use as new init)", lambda: self.send_to_canvas.emit(result))
        menu.exec(self.viewport().mapToGlobal(pos))
