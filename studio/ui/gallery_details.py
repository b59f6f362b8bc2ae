"""The gallery's detail pane: the selected image, scaled to the room it has, and what it records (prompt,
seed, model...), its rating and favourite mark, and its raw metadata chunks. It shows what the browser
says (:class:`~studio.viewmodel.gallery_details.ImageDetails`) and edits the two marks through it."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QWidget,
)

from studio.ui.bind import bind
from studio.ui.plain_text import plain_label
from studio.viewmodel.gallery_browser import GalleryBrowser
from studio.viewmodel.gallery_details import DETAIL_KEYS, ImageDetails

__all__ = ["FIELD_LABELS", "NO_CHUNKS", "NO_SELECTION", "GalleryDetails", "ImagePreview"]

NO_SELECTION = "No image selected"
NO_CHUNKS = "No metadata chunks in this file"
FIELD_LABELS = {
    "prompt": "Prompt",
    "negative_prompt": "Negative",
    "seed": "Seed",
    "steps": "Steps",
    "guidance": "Guidance",
    "scheduler": "Scheduler",
    "model": "Model",
    "size": "Size",
    "source": "Made with",
    "created": "Created",
    "file": "File",
}


class ImagePreview(QLabel):
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


class GalleryDetails(QSplitter):
    """The picture above, what it records below (the user moves the line between them)."""

    def __init__(self, browser: GalleryBrowser, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Vertical, parent, objectName="galleryDetailSplitter")
        self.preview = ImagePreview()
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
        for key in DETAIL_KEYS:
            label = FIELD_LABELS[key]
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
        self.raw.setPlaceholderText("")  # what it says depends on the selection: see show_details
        self.raw.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.raw.setMinimumHeight(80)
        form.addRow(QLabel("Raw metadata:"))
        form.addRow(self.raw)
        info = QScrollArea(widgetResizable=True)
        info.setWidget(form_widget)
        self.addWidget(self.preview)
        self.addWidget(info)
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 2)

        bind(self.rating, browser, "rating")  # editing a mark saves it (the browser writes it)
        bind(self.favourite, browser, "favourite")
        browser.details_changed.connect(self.show_details)
        browser.preview_changed.connect(self.preview.set_source)
        browser.current_changed.connect(lambda image: self._enable_marks(image is not None))
        self.show_details(browser.current_details())
        self.preview.set_source(browser.preview())
        self._enable_marks(browser.current_image() is not None)

    def watch_keys(self, watcher: QObject) -> None:
        """Let `watcher` see the keys pressed while the picture has focus (the page's shortcuts)."""
        self.preview.installEventFilter(watcher)

    def show_details(self, details: ImageDetails | None) -> None:
        if details is None:
            self.caption.setText(NO_SELECTION)
            for label in self.fields.values():
                label.clear()
            self.raw.clear()
            self.raw.setPlaceholderText("")  # nothing is shown, so no claim about any file's chunks
            self.preview.set_placeholder(NO_SELECTION)
            return
        for key, text in details.fields.items():
            self.fields[key].setText(text)
        self.caption.setText(details.caption)
        self.preview.set_placeholder("")  # blank until the picture is decoded (failures go to the status bar)
        self.raw.setPlaceholderText(NO_CHUNKS)
        self.raw.setPlainText(details.raw)

    def _enable_marks(self, on: bool) -> None:
        self.rating.setEnabled(on)
        self.favourite.setEnabled(on)
