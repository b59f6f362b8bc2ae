"""The strip of results made since the app started, with the actions an artist reaches for.

The strip holds thumbnails only; the full image is read back from its file when needed (copy, send to
canvas), so hundreds of results cost little memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import QApplication, QListView, QListWidget, QListWidgetItem, QMenu, QWidget

from studio.library.display import printable
from studio.ui.plain_text import plain_tooltip

THUMB = 96


@dataclass
class ResultItem:
    path: Path
    seed: int | None
    metadata: dict


class ResultsStrip(QListWidget):
    """Newest first. Signals carry the ResultItem; the window decides what reuse means."""

    selected = Signal(object)  # ResultItem
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

    def add_result(self, path: Path, image: QImage, seed: int | None, metadata: dict) -> ResultItem:
        item_data = ResultItem(Path(path), seed, metadata or {})
        thumb = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        item = QListWidgetItem(QIcon(QPixmap.fromImage(thumb)), f"{seed}" if seed is not None else "")
        item.setData(Qt.ItemDataRole.UserRole, item_data)
        item.setToolTip(plain_tooltip(f"{printable(path)}\nseed {seed}"))  # the path may hold anything
        self.insertItem(0, item)
        self.setCurrentItem(item)
        return item_data

    def current(self) -> ResultItem | None:
        item = self.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def results(self) -> list[ResultItem]:
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
        menu.addAction("Send to img2img canvas", lambda: self.send_to_canvas.emit(result))
        menu.exec(self.viewport().mapToGlobal(pos))
