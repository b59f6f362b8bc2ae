"""The gallery's filter row: the prompt search, the model, date and favourites filters, and the sort
order, each bound to the browser's property of that name."""

from __future__ import annotations

from PySide6.QtCore import QDate, QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDateEdit, QHBoxLayout, QLineEdit, QWidget

from studio.library.display import printable
from studio.ui.bind import bind
from studio.viewmodel.gallery_browser import GalleryBrowser

__all__ = ["DATE_LABELS", "SORT_LABELS", "GalleryFilters"]

DATE_LABELS = (
    ("Any time", "any"), ("Today", "today"), ("Last 7 days", "7d"), ("Last 30 days", "30d"), ("Custom…", "custom"),
)
SORT_LABELS = (("Newest first", "newest"), ("Oldest first", "oldest"), ("Highest rated", "rating"))


class GalleryFilters(QWidget):
    """Search box and filters in one row. Escape in the search box is the search box's, never the
    window's: it clears the search, and in an empty box asks to move on (:attr:`leave_search`)."""

    leave_search = Signal()  # Escape in the empty search box: focus moves on (to the grid)

    def __init__(self, browser: GalleryBrowser, parent: QWidget | None = None):
        super().__init__(parent)
        self._browser = browser
        self.search = QLineEdit(placeholderText="Search prompts…  (\"a phrase\", -exclude, neg:word)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search prompts")
        self.model_filter = QComboBox(accessibleName="Model filter")
        self.model_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_filter.setMinimumContentsLength(14)
        self.date_filter = QComboBox(accessibleName="Date filter")
        for label, key in DATE_LABELS:
            self.date_filter.addItem(label, key)
        self.date_from = QDateEdit(calendarPopup=True, accessibleName="From date")
        self.date_to = QDateEdit(calendarPopup=True, accessibleName="To date")
        for edit in (self.date_from, self.date_to):
            edit.setDisplayFormat("yyyy-MM-dd")
        self.favourites_only = QCheckBox("♥ only", accessibleName="Favourites only")
        self.favourites_only.setToolTip("Show favourites only")
        self.sort = QComboBox(accessibleName="Sort order")
        for label, key in SORT_LABELS:
            self.sort.addItem(label, key)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search, 3)
        for widget in (self.model_filter, self.date_filter, self.date_from, self.date_to, self.favourites_only, self.sort):
            layout.addWidget(widget)

        self._fill_models(browser.model_names())
        browser.model_names_changed.connect(self._fill_models)
        # The search box follows every change of its text, typed or not (the browser waits for a pause).
        self.search.setText(browser.search_text)
        self.search.textChanged.connect(lambda text: setattr(browser, "search_text", text))
        browser.search_text_changed.connect(self._show_search_text)
        self.search.returnPressed.connect(browser.apply_filters)
        self.search.installEventFilter(self)
        bind(self.model_filter, browser, "model_filter")
        bind(self.date_filter, browser, "date_range")
        bind(self.favourites_only, browser, "favourites_only")
        bind(self.sort, browser, "sort")
        for edit, name in ((self.date_from, "date_from"), (self.date_to, "date_to")):
            self._bind_date(edit, name)
        browser.date_range_changed.connect(self._show_date_range)
        self._show_date_range(browser.date_range)

    def search_has_focus(self) -> bool:
        return self.search.hasFocus()

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def escape_search(self) -> None:
        """Clear the search (and lift it at once, not after the typing pause); already empty, move on."""
        if self.search.text():
            self.search.clear()
            self._browser.apply_filters()
        else:
            self.leave_search.emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """Escape in the search box: accepting ShortcutOverride keeps the window's Escape (cancel the
        generation) from firing; the key press clears the search."""
        if (
            watched is self.search
            and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress)
            and event.key() == Qt.Key.Key_Escape
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ):
            event.accept()
            if event.type() == QEvent.Type.KeyPress:
                self.escape_search()
            return True
        return super().eventFilter(watched, event)

    def _show_search_text(self, text: str) -> None:
        if self.search.text() != text:
            self.search.setText(text)

    def _fill_models(self, models: list[str]) -> None:
        with QSignalBlocker(self.model_filter):
            self.model_filter.clear()
            self.model_filter.addItem("All models", None)
            for name in models:
                self.model_filter.addItem(printable(name), name)  # shown harmlessly, matched exactly
            current = self._browser.model_filter
            index = self.model_filter.findData(current) if current is not None else 0
            self.model_filter.setCurrentIndex(max(index, 0))

    def _bind_date(self, edit: QDateEdit, name: str) -> None:
        def show(value) -> None:
            if value is not None and edit.date().toPython() != value:
                edit.setDate(QDate(value))

        show(getattr(self._browser, name))
        getattr(self._browser, f"{name}_changed").connect(show)
        edit.dateChanged.connect(lambda day: setattr(self._browser, name, day.toPython()))

    def _show_date_range(self, key: str) -> None:
        custom = key == "custom"
        self.date_from.setVisible(custom)
        self.date_to.setVisible(custom)
