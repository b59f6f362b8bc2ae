"""The gallery page: every image in the library folders, searchable and filterable, with the details and
the actions an artist reaches for (reuse parameters or seed, send to the img2img canvas, copy, delete).

The page is widgets only; its state and actions are the browser's
(:class:`~studio.viewmodel.gallery_browser.GalleryBrowser`: the query, the rows and their thumbnails, the
selection, deleting with undo, the thumbnail size). Its parts: the filter row
(:mod:`studio.ui.gallery_filters`), the library row (:mod:`studio.ui.gallery_library`), the grid
(:mod:`studio.ui.gallery_grid`) and the detail pane (:mod:`studio.ui.gallery_details`); the page holds
them, the actions and their keys.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QMenu, QSplitter, QToolButton, QVBoxLayout, QWidget

from studio.ui.gallery_details import GalleryDetails
from studio.ui.gallery_filters import GalleryFilters
from studio.ui.gallery_grid import GalleryGrid
from studio.ui.gallery_library import LibraryBar
from studio.viewmodel.gallery_browser import GalleryBrowser
from studio.viewmodel.gallery_items import GalleryModel

__all__ = ["GalleryView"]

DETAIL_WIDTH = 340
"""The detail pane's width when the gallery opens; the grid takes the rest (and any extra width)."""

_BUTTON_TEXT = {"canvas": "To canvas", "folder": "Open folder", "undo": "Undo"}
"""Shorter labels for the detail pane's buttons than their actions' menu texts."""


class GalleryView(QWidget):
    """The gallery browser's page. The window connects its signals to the generation side."""

    reuse_parameters = Signal(object)  # dict of GenerationRequest fields (read_metadata(...).to_request_fields())
    reuse_seed = Signal(int)
    send_to_canvas = Signal(str)  # path
    message = Signal(str)  # the browser's messages (the library's too)

    def __init__(self, browser: GalleryBrowser, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Gallery")
        self.browser = browser
        self.model: GalleryModel = browser.model
        """The grid's rows (the browser's)."""
        self._build_actions()
        self.filters = GalleryFilters(browser)
        self.library_bar = LibraryBar(browser, self.act_rescan)
        self.grid = GalleryGrid(browser.model, browser.selection, browser.icon_size)
        self.grid.installEventFilter(self)
        self.details = GalleryDetails(browser)
        self.details.watch_keys(self)
        self._build_buttons()
        self._build_layout()

        browser.reuse_parameters.connect(self.reuse_parameters)
        browser.reuse_seed.connect(self.reuse_seed)
        browser.send_to_canvas.connect(self.send_to_canvas)
        browser.message.connect(self.message)
        browser.current_changed.connect(lambda _image: self._update_actions())
        browser.can_undo_changed.connect(lambda _on: self._update_actions())
        browser.icon_size_changed.connect(self.grid.set_icon_size)
        browser.reveal.connect(self.grid.reveal)
        browser.rows_reset.connect(self.grid.restore_scroll)
        self.filters.leave_search.connect(lambda: self.grid.setFocus(Qt.FocusReason.ShortcutFocusReason))
        self.grid.customContextMenuRequested.connect(self._context_menu)
        self._update_actions()
        browser.reload()  # the library may have changed since the browser last looked

    def grid_actions(self) -> list[QAction]:
        """The actions whose keys work while the grid has focus (reuse, copy, delete, rate...), for a
        list of shortcuts; those that work anywhere in the gallery (search, thumbnail size) are
        :meth:`actions`, and are not repeated here."""
        anywhere = set(self.actions())
        return [act for act in self._grid_actions if act not in anywhere]

    def icon_size(self) -> int:
        """The thumbnail size (logical pixels, longest side)."""
        return self.browser.icon_size

    def set_icon_size(self, size: int) -> int:
        """Show thumbnails of `size` logical pixels (clamped); returns the size now in use."""
        self.browser.icon_size = size
        return self.browser.icon_size

    def handle_escape(self) -> bool:
        """Escape pressed while the gallery is shown (the window asks before its own Escape, cancel
        generation): in the search box, clear it (or, already empty, go to the grid); elsewhere clear
        the selection. True when it did something, so the window does nothing more."""
        if self.filters.search_has_focus():
            self.filters.escape_search()
            return True
        if self.browser.has_selection():
            self.browser.clear_selection()
            return True
        return False

    def focus_search(self) -> None:
        self.filters.focus_search()

    # ------------------------------------------------------------------------------------ actions
    def _build_actions(self) -> None:
        browser = self.browser

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
            act.triggered.connect(lambda _checked=False: slot())
            return act

        self.act_reuse = action("Reuse &parameters", browser.reuse_current_parameters, ["Ctrl+R"])
        self.act_reuse_seed = action("Reuse &seed", browser.reuse_current_seed, ["Ctrl+Shift+R"])
        self.act_to_canvas = action("Send to img2img &canvas", browser.send_current_to_canvas, ["Ctrl+Shift+I"])
        self.act_copy_image = action("&Copy image", browser.copy_image, [QKeySequence.StandardKey.Copy])
        self.act_copy_prompt = action("Copy p&rompt", browser.copy_prompt, ["Ctrl+Shift+C"])
        self.act_open_folder = action("&Open containing folder", browser.open_folder)
        self.act_delete = action(
            "&Delete", browser.delete_current, [QKeySequence.StandardKey.Delete, "Delete"],
            "Move to the trash (undo with Ctrl+Z)",
        )
        self.act_undo = action("&Undo delete", browser.undo_delete, [QKeySequence.StandardKey.Undo])
        self.act_rescan = action("Rescan", browser.scan, ["F5"], "Look for new, changed and removed files")
        self.act_favourite = action("Toggle &favourite", browser.toggle_favourite, ["F"])
        self.act_rate = []
        for stars in range(6):
            act = action(f"Rate {stars}", lambda s=stars: browser.rate_current(s), [str(stars)])
            self.act_rate.append(act)
        self._grid_actions = [
            self.act_reuse, self.act_reuse_seed, self.act_to_canvas, self.act_copy_image, self.act_copy_prompt,
            self.act_delete, self.act_undo, self.act_rescan, self.act_favourite, *self.act_rate,
        ]
        # Zoom the grid. WidgetWithChildrenShortcut: only while the gallery has focus (the window has no
        # Ctrl++ / Ctrl+- / Ctrl+0 of its own); while the grid has focus they also win over the window's
        # shortcuts through eventFilter, like the keys above.
        self.act_bigger = self._view_action("Larger thumbnails", browser.zoom_in, ["Ctrl++", "Ctrl+="])
        self.act_smaller = self._view_action("Smaller thumbnails", browser.zoom_out, ["Ctrl+-"])
        self.act_default_size = self._view_action("Default thumbnail size", browser.reset_icon_size, ["Ctrl+0"])
        self._grid_actions += [self.act_bigger, self.act_smaller, self.act_default_size]
        self.act_focus_search = QAction("Search", self)
        self.act_focus_search.setShortcut(QKeySequence.StandardKey.Find)
        self.act_focus_search.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.act_focus_search.triggered.connect(self.focus_search)
        self.addAction(self.act_focus_search)

    def _view_action(self, text: str, slot, keys: list[str]) -> QAction:
        act = QAction(text, self)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.setToolTip(f"{text} ({keys[0]})")
        act.triggered.connect(lambda _checked=False: slot())
        self.addAction(act)
        return act

    def _build_buttons(self) -> None:
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

    def _build_layout(self) -> None:
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.details, 1)
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
        layout.addWidget(self.filters)
        layout.addWidget(self.library_bar)
        layout.addWidget(self.splitter, 1)

    def _update_actions(self) -> None:
        has = self.browser.current_image() is not None
        for act in (
            self.act_reuse, self.act_reuse_seed, self.act_to_canvas, self.act_copy_image,
            self.act_copy_prompt, self.act_open_folder, self.act_delete, self.act_favourite, *self.act_rate,
        ):
            act.setEnabled(has)
        self.act_undo.setEnabled(self.browser.can_undo)

    # ------------------------------------------------------------------------------------- events
    def _context_menu(self, pos) -> None:
        index = self.grid.indexAt(pos)
        if index.isValid():
            self.browser.select_row(index.row(), scroll=False)
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
        menu.exec(self.grid.global_position(pos))

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
        """The gallery's keys while the grid (or the picture) has focus. Accepting ShortcutOverride
        makes them win over window shortcuts bound to the same keys (Ctrl+C, Ctrl+Shift+C, Ctrl+R…)."""
        if event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            act = self._action_for(event)
            if act is not None:
                event.accept()
                if event.type() == QEvent.Type.KeyPress:
                    act.trigger()
                return True
        return super().eventFilter(watched, event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.model.set_device_pixel_ratio(self.grid.devicePixelRatioF())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Closing the page (the window closing) sends a pending delete to the trash: no undo after it."""
        self.browser.commit_delete()
        super().closeEvent(event)
