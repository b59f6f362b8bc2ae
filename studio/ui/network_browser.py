"""The LoRA and embedding browser: a tab beside the parameters, under the prompt.

A search box (name, alias, trigger words), kind and base-model family filters, and a grid of thumbnails (the
image next to each file, a plain tile when there is none). A click inserts the item at the prompt's cursor,
in whichever prompt field had the focus last, and gives that field the focus back, so Ctrl+Up / Ctrl+Down
adjust the inserted LoRA's multiplier at once; Enter inserts the selected item and stays in the grid. The
Folders menu adds an AUTOMATIC1111 or ComfyUI folder (read where it is, never copied), opens the app's own
folders, and rescans. The state lives in :class:`~studio.viewmodel.network_browser.NetworkBrowser`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QModelIndex, QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont, QHelpEvent, QImage, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from studio.ui.bind import bind, show_text
from studio.ui.plain_text import menu_text, plain_label, plain_tooltip
from studio.ui.prompt_editor import PromptEditor
from studio.viewmodel.network_browser import (
    FAMILY_CHOICES,
    FAMILY_LABELS,
    ITEM_ROLE,
    KIND_CHOICES,
    KIND_LABELS,
    TOOLTIP_ROLE,
    NetworkBrowser,
    NetworkItem,
)

__all__ = ["CELL", "ICON", "NetworkBrowserPanel", "NetworkDelegate", "NetworkGrid"]

ICON = 72  # the thumbnail's square, logical pixels
CELL = QSize(ICON + 20, ICON + 26)  # room for the name under it


class NetworkDelegate(QStyledItemDelegate):
    """A thumbnail square (the preview image, or a plain tile naming the kind), a badge with kind and family,
    a warning mark for a file with a problem, and the name under it, elided. Drawn directly, cheaply."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        item: NetworkItem | None = index.data(ITEM_ROLE)
        if item is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        cell = option.rect.adjusted(1, 1, -1, -1)
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected or option.state & QStyle.StateFlag.State_MouseOver:
            fill = QColor(palette.highlight().color())
            selected = bool(option.state & QStyle.StateFlag.State_Selected)
            fill.setAlpha(80 if selected else 35)
            painter.setPen(QPen(palette.highlight().color(), 2) if selected else Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(cell, 6, 6)
        square = QRect(0, 0, ICON, ICON)
        square.moveCenter(cell.center())
        square.moveTop(cell.top() + 4)
        image = index.data(Qt.ItemDataRole.DecorationRole)
        small = QFont(painter.font())
        small.setPixelSize(10)
        if isinstance(image, QImage) and not image.isNull():
            size = image.size().scaled(square.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(square.center())
            painter.drawImage(target, image)
            self._badge(painter, square, item.badge, small)
        else:  # a plain tile naming the kind
            painter.setPen(QPen(QColor(128, 128, 128, 110), 1))
            painter.setBrush(QColor(128, 128, 128, 40))
            painter.drawRoundedRect(square.adjusted(1, 1, -1, -1), 6, 6)
            big = QFont(painter.font())
            big.setPixelSize(15)
            big.setBold(True)
            painter.setFont(big)
            painter.setPen(QColor(128, 128, 128, 200))
            painter.drawText(square, Qt.AlignmentFlag.AlignCenter, item.badge.replace("·", "\n"))
        if item.problem:
            mark = QFont(painter.font())
            mark.setPixelSize(14)
            painter.setFont(mark)
            painter.setPen(QColor(217, 119, 6))
            painter.drawText(square.adjusted(0, 2, -3, 0), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight, "⚠")
        text_rect = QRect(cell.left() + 2, square.bottom() + 3, cell.width() - 4, cell.bottom() - square.bottom() - 3)
        painter.setFont(option.font)
        painter.setPen(palette.text().color())
        name = option.fontMetrics.elidedText(
            str(index.data(Qt.ItemDataRole.DisplayRole) or ""), Qt.TextElideMode.ElideMiddle, text_rect.width()
        )
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        painter.restore()

    @staticmethod
    def _badge(painter: QPainter, square: QRect, text: str, font: QFont) -> None:
        painter.setFont(font)
        metrics = painter.fontMetrics()
        width = metrics.horizontalAdvance(text) + 6
        rect = QRect(square.left() + 2, square.bottom() - metrics.height() - 2, width, metrics.height() + 1)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(rect, 3, 3)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def helpEvent(self, event: QHelpEvent, view: QAbstractItemView, option: QStyleOptionViewItem, index) -> bool:  # noqa: N802
        """The row's description, shown as plain text whatever a file's name or trigger words hold."""
        if event.type() == QEvent.Type.ToolTip and index.isValid():
            text = index.data(TOOLTIP_ROLE)
            if text:
                QToolTip.showText(event.globalPos(), plain_tooltip(text), view)
                return True
        return super().helpEvent(event, view, option, index)


class NetworkGrid(QListView):
    """Thumbnails in wrapping rows; Enter asks to insert the current item (``insert_requested``)."""

    insert_requested = Signal(QModelIndex)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("networkGrid")
        self.setAccessibleName("LoRAs and embeddings")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setSpacing(2)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setItemDelegate(NetworkDelegate(self))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            event.accept()
            self.insert_requested.emit(self.currentIndex())
            return
        super().keyPressEvent(event)


class NetworkBrowserPanel(QWidget):
    """Search, filters, the grid and the Folders menu over a :class:`NetworkBrowser`; inserts into `editor`."""

    inserted = Signal(str)  # the text inserted
    message = Signal(str)

    def __init__(self, browser: NetworkBrowser, editor: PromptEditor | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("networkBrowser")
        self.browser = browser
        self.editor = editor

        self.search = QLineEdit(self, placeholderText="Search names and trigger words", clearButtonEnabled=True)
        self.search.setAccessibleName("Search LoRAs and embeddings")
        bind(self.search, browser, "search")
        self.kind = QComboBox(self)
        self.kind.setAccessibleName("Kind")
        for key in KIND_CHOICES:
            self.kind.addItem(KIND_LABELS[key], key)
        bind(self.kind, browser, "kind_filter")
        self.family = QComboBox(self)
        self.family.setAccessibleName("Base model family")
        self.family.setToolTip("The base model the file was trained for (from its weights and metadata)")
        for key in FAMILY_CHOICES:
            self.family.addItem(FAMILY_LABELS[key], key)
        bind(self.family, browser, "family_filter")

        self.folders_menu = QMenu(self)
        self.folders_menu.aboutToShow.connect(self._build_folders_menu)
        self.folders_button = QToolButton(self, text="Folders")
        self.folders_button.setAccessibleName("LoRA and embedding folders")
        self.folders_button.setToolTip("Add an AUTOMATIC1111 or ComfyUI folder, open the app's folders, rescan")
        self.folders_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.folders_button.setMenu(self.folders_menu)
        self._build_folders_menu()

        self.grid = NetworkGrid(self)
        self.grid.setModel(browser.model)
        self.grid.clicked.connect(lambda index: self.insert_index(index, focus_prompt=True))
        self.grid.insert_requested.connect(lambda index: self.insert_index(index, focus_prompt=False))
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._context_menu)
        self.status = plain_label(parent=self, wordWrap=True)
        self.status.setObjectName("networkStatus")
        self.status.setAccessibleName("LoRA and embedding count")
        show_text(self.status, browser, "status")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        filters = QHBoxLayout()
        filters.addWidget(self.kind, 1)
        filters.addWidget(self.family, 1)
        filters.addWidget(self.folders_button)
        layout.addLayout(filters)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.status)
        browser.message.connect(self.message)

    # -------------------------------------------------------------------------------------- inserting
    def insert_index(self, index: QModelIndex, *, focus_prompt: bool = True) -> str:
        item = index.data(ITEM_ROLE) if index.isValid() else None
        return self.insert_item(item, focus_prompt=focus_prompt) if item is not None else ""

    def insert_item(self, item: NetworkItem, *, focus_prompt: bool = True) -> str:
        """Insert the item's tag (``<lora:name:1>``, an embedding's name) at the prompt's cursor; returns it."""
        text = self.browser.tag_for(item)
        self._insert(text, ", " if item.kind != "lora" else " ", focus_prompt)
        return text

    def insert_trigger_words(self, item: NetworkItem) -> None:
        if item.trigger_words:
            self._insert(", ".join(item.trigger_words[:5]), ", ", True)

    def _insert(self, text: str, separator: str, focus_prompt: bool) -> None:
        if self.editor is not None:
            self.editor.insert_at_cursor(text, separator, focus=focus_prompt)
        self.inserted.emit(text)

    def _context_menu(self, pos) -> None:
        index = self.grid.indexAt(pos)
        item: NetworkItem | None = index.data(ITEM_ROLE) if index.isValid() else None
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction(menu_text(f"Insert {self.browser.tag_for(item)}"), lambda: self.insert_item(item))
        if item.trigger_words:
            shown = ", ".join(item.trigger_words[:5])
            menu.addAction(menu_text(f"Insert trigger words: {shown}"[:80]), lambda: self.insert_trigger_words(item))
        menu.addAction("Copy name", lambda: QApplication.clipboard().setText(item.name))
        menu.addAction("Show in folder", lambda: self.open_folder(item.path.parent))
        menu.popup(self.grid.viewport().mapToGlobal(pos))

    # ---------------------------------------------------------------------------------------- folders
    def _build_folders_menu(self) -> None:
        menu = self.folders_menu
        menu.clear()
        menu.addAction("Add a LoRA folder…", lambda: self.add_folder_dialog("lora"))
        menu.addAction("Add an embeddings folder…", lambda: self.add_folder_dialog("embedding"))
        menu.addSeparator()
        menu.addAction("Open the LoRA folder", lambda: self.open_folder(self.browser.own_folder("lora")))
        menu.addAction("Open the embeddings folder", lambda: self.open_folder(self.browser.own_folder("embedding")))
        added = [(kind, folder) for kind in ("lora", "embedding") for folder in self.browser.added_folders(kind)]
        if added:
            remove = menu.addMenu("Stop scanning")
            for kind, folder in added:
                label = f"{'LoRAs' if kind == 'lora' else 'Embeddings'}: {folder}"
                remove.addAction(menu_text(label), lambda _checked=False, k=kind, f=folder: self.browser.remove_folder(k, f))
        menu.addSeparator()
        menu.addAction("Rescan", self.browser.rescan)

    def add_folder_dialog(self, kind: str) -> bool:
        title = "Add a LoRA folder" if kind == "lora" else "Add an embeddings folder"
        folder = QFileDialog.getExistingDirectory(self, title, str(Path.home()))
        return bool(folder) and self.browser.add_folder(kind, folder)

    def open_folder(self, folder: Path) -> bool:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.message.emit(f"Cannot create {folder}: {exc.strerror or exc}")
            return False
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            return True
        QApplication.clipboard().setText(str(folder))
        self.message.emit(f"No file manager could open {folder} (its path is copied to the clipboard)")
        return False

    # ------------------------------------------------------------------------------------------ misc
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.browser.refresh_if_stale()
