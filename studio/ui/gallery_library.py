"""The gallery's library row: add and remove folders, rescan (with its progress and a stop button), the
thumbnail size, and how many images the filters find."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QSlider,
    QToolButton,
    QWidget,
)

from studio.library.display import printable
from studio.ui.plain_text import menu_text, plain_label
from studio.viewmodel.gallery_browser import ICON_STEP, MAX_ICON_SIZE, MIN_ICON_SIZE, GalleryBrowser

__all__ = ["LibraryBar"]


class LibraryBar(QWidget):
    """Folders, scanning, thumbnail size and the image count, in one row. `rescan` is the page's action
    (it also has a key and a place in the grid's menu)."""

    def __init__(self, browser: GalleryBrowser, rescan: QAction, parent: QWidget | None = None):
        super().__init__(parent)
        self._browser = browser
        self.add_folder_button = QToolButton(text="Add folder…")
        self.remove_folder_button = QToolButton(text="Remove folder")
        self.remove_folder_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.folder_menu = QMenu(self.remove_folder_button)
        self.folder_menu.aboutToShow.connect(self.fill_folder_menu)
        self.remove_folder_button.setMenu(self.folder_menu)
        self.rescan_button = QToolButton()
        self.rescan_button.setDefaultAction(rescan)
        self.progress = QProgressBar(accessibleName="Scan progress", textVisible=True)
        self.progress.setMaximumWidth(220)
        self.stop_scan_button = QToolButton(text="Stop", toolTip="Stop scanning (what was found so far is kept)")
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

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.add_folder_button, self.remove_folder_button, self.rescan_button, self.progress, self.stop_scan_button,
        ):
            layout.addWidget(widget)
        layout.addStretch(1)
        layout.addWidget(self.size_label)
        layout.addWidget(self.size_slider)
        layout.addSpacing(12)
        layout.addWidget(self.count_label)

        self.add_folder_button.clicked.connect(lambda: self.choose_folder())
        self.stop_scan_button.clicked.connect(browser.stop_scan)
        browser.scanning_changed.connect(self._show_progress)
        browser.scan_started.connect(self._scan_started)
        browser.scan_progress.connect(self._scan_progress)
        self._show_progress(browser.scanning)
        browser.count_text_changed.connect(self.count_label.setText)
        self.count_label.setText(browser.count_text)
        self._show_icon_size(browser.icon_size)
        browser.icon_size_changed.connect(self._show_icon_size)
        self.size_slider.valueChanged.connect(lambda size: setattr(browser, "icon_size", size))

    def choose_folder(self) -> None:
        """Ask for a folder and add it to the library."""
        chosen = QFileDialog.getExistingDirectory(self, "Add a folder to the gallery")
        if chosen:
            self._browser.add_folder(chosen)

    def fill_folder_menu(self) -> None:
        """The library's folders, each an entry that removes it (the output folder cannot be removed)."""
        self.folder_menu.clear()
        folders = self._browser.folders()
        if not folders:
            self.folder_menu.addAction("No folders in the gallery").setEnabled(False)
        for folder in folders:
            pinned = self._browser.is_pinned(folder)
            shown = menu_text(printable(folder))  # a "&" in a folder's name is shown, not a mnemonic
            act = self.folder_menu.addAction(f"{shown}  (output folder)" if pinned else shown)
            act.setEnabled(not pinned)
            act.triggered.connect(lambda _=False, f=folder: self._browser.remove_folder(f))

    def _show_icon_size(self, size: int) -> None:
        if size != self.size_slider.value():
            with QSignalBlocker(self.size_slider):
                self.size_slider.setValue(size)

    def _show_progress(self, shown: bool) -> None:
        self.progress.setVisible(shown)
        self.stop_scan_button.setVisible(shown)

    def _scan_started(self) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat("Scanning…")

    def _scan_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"Scanning {done:,} / {total:,}")
