"""The img2img canvas widget: shows the init image fitted to the output size; takes drops, pastes, the
Open dialog and its keys.

Its state and background loading are a :class:`~studio.viewmodel.canvas_image.CanvasImage` (the
image, the fit mode, the output size, decoding off the GUI thread); what a drop or the clipboard offers
is read by :mod:`studio.viewmodel.image_sources`.  The widget shows the view-model's prepared image (not
the source), so what the user sees is what the model gets, and turns events into its calls.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QEvent, QRectF, QSize, QStandardPaths, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QFocusEvent,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from studio.library.image_fit import FIT_MODES, prepare_image
from studio.ui.bind import bind
from studio.ui.plain_text import plain_tooltip
from studio.viewmodel.canvas_image import CanvasImage
from studio.viewmodel.image_sources import WEB_REFUSAL, drag_verdict, request_from_mime

__all__ = ["FIT_MODES", "PASTE_KEYS", "WEB_REFUSAL", "CanvasImage", "ImageCanvas", "prepare_image"]

PASTE_KEYS = "Ctrl+Shift+V"
"""Paste to the canvas from anywhere in the window (plain Ctrl+V pastes text into the prompt)."""

_MODE_LABELS = {"fit": "Fit (pad)", "crop": "Crop (fill)", "stretch": "Stretch"}
_MODE_TIPS = {
    "fit": "Scale the whole image into the output size; the empty bands are filled with the image's "
    "own edge colours, softened, so the model can paint them in",
    "crop": "Scale the image to cover the output size and crop the overflow evenly on both sides",
    "stretch": "Scale width and height independently to the output size (changes proportions)",
}

_DIALOG_FILTER = "Images (*.png *.jpg *.jpeg *.jpe *.jfif *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"


# --------------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------------


def _shortcut_text(key: QKeySequence.StandardKey, fallback: str) -> str:
    text = QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)
    return text or fallback


class _ElidedLabel(QLabel):
    """A one-line label that elides in the middle instead of being cut off: the canvas is often narrow,
    and both the file name's start and the sizes at the end matter."""

    def __init__(self) -> None:
        super().__init__()
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width())
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, width))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()


class _CanvasView(QWidget):
    """Paints the prepared image (or the empty-state hint) inside a frame with the output's aspect."""

    _MARGIN = 10

    def __init__(self, canvas: ImageCanvas) -> None:
        super().__init__(canvas)
        self._canvas = canvas
        self._pixmap: QPixmap | None = None
        self._pixmap_key: tuple | None = None
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the canvas itself
        self.setObjectName("canvasView")

    def invalidate(self) -> None:
        self._pixmap = None
        self._pixmap_key = None
        self.update()

    def frame_rect(self) -> QRectF:
        """The output-size frame, as large as fits the view, centred (logical pixels)."""
        out_w, out_h = self._canvas.output_size()
        area = QRectF(self.rect()).adjusted(self._MARGIN, self._MARGIN, -self._MARGIN, -self._MARGIN)
        if area.width() <= 1 or area.height() <= 1:
            return QRectF(self.rect())
        scale = min(area.width() / out_w, area.height() / out_h)
        width, height = out_w * scale, out_h * scale
        return QRectF(
            area.x() + (area.width() - width) / 2, area.y() + (area.height() - height) / 2, width, height
        )

    def _scaled_pixmap(self, display: QImage, frame: QRectF) -> QPixmap:
        """The image smoothly scaled to the frame in device pixels (sharp on high-DPI screens); cached
        because scaling on every paint (drag hover, focus changes) would waste time."""
        dpr = self.devicePixelRatioF()
        target = QSize(max(1, round(frame.width() * dpr)), max(1, round(frame.height() * dpr)))
        key = (display.cacheKey(), target.width(), target.height(), dpr)
        if self._pixmap is None or self._pixmap_key != key:
            scaled = display.scaled(
                target, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            pixmap = QPixmap.fromImage(scaled)
            pixmap.setDevicePixelRatio(dpr)
            self._pixmap, self._pixmap_key = pixmap, key
        return self._pixmap

    def paintEvent(self, event: QPaintEvent) -> None:
        canvas = self._canvas
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base).darker(108))
        frame = self.frame_rect()
        display = canvas.canvas_image.display_image()
        if display is not None and not display.isNull():
            painter.drawPixmap(frame.topLeft(), self._scaled_pixmap(display, frame))
            pen = QPen(palette.color(QPalette.ColorRole.Mid), 1)
        else:
            painter.fillRect(frame, palette.color(QPalette.ColorRole.Base))
            pen = QPen(palette.color(QPalette.ColorRole.Mid), 1, Qt.PenStyle.DashLine)
        if canvas._drag_hover or canvas.hasFocus():
            pen = QPen(palette.color(QPalette.ColorRole.Highlight), 2 if canvas._drag_hover else 1)
        painter.setPen(pen)
        painter.drawRect(frame.adjusted(-0.5, -0.5, 0.5, 0.5))
        text = ""
        if canvas.is_loading():
            text = "Loading…"
        elif display is None:
            text = canvas.hint_text()
        if text:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            box = frame.adjusted(8, 8, -8, -8) if frame.width() > 120 else QRectF(self.rect())
            if canvas.is_loading() and display is not None:
                painter.fillRect(box, QColor(0, 0, 0, 110))
                painter.setPen(QColor("white"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._canvas.setFocus(Qt.FocusReason.MouseFocusReason)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._canvas.open_file_dialog()
        else:
            super().mouseDoubleClickEvent(event)


class ImageCanvas(QWidget):
    """The init image for img2img: drop, paste or open an image; it is fitted to the output size.

    `canvas` is the view-model it shows (a new one when None). Signals, the view-model's: ``image_changed()``
    when the image is set, replaced or cleared (not when only the output size or fit mode changes:
    :meth:`prepared_image` always reflects the current settings); ``message(str)`` a one-line, user-facing
    refusal or error (the window shows it in the status bar); ``fit_mode_changed(str)`` when the mode
    changes (to persist it); ``loading_changed(bool)`` when a background load starts or ends.
    """

    image_changed = Signal()
    message = Signal(str)
    fit_mode_changed = Signal(str)
    loading_changed = Signal(bool)

    def __init__(self, canvas: CanvasImage | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas_image = canvas if canvas is not None else CanvasImage(self)
        self._drag_hover = False
        self._last_dir = ""

        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Init image canvas")

        self._view = _CanvasView(self)
        self._info = _ElidedLabel()
        self._info.setObjectName("canvasInfo")
        self._mode_box = QComboBox(accessibleName="Fit mode")
        self._mode_box.setObjectName("fitModeBox")
        for mode in FIT_MODES:
            self._mode_box.addItem(_MODE_LABELS[mode], mode)
            self._mode_box.setItemData(
                self._mode_box.count() - 1, _MODE_TIPS[mode], Qt.ItemDataRole.ToolTipRole
            )
        self._mode_box.setToolTip("How the image is fitted to the output size")
        self._mode_box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._open_button = QPushButton("Open…")
        self._open_button.setToolTip(
            f"Open an image file ({_shortcut_text(QKeySequence.StandardKey.Open, 'Ctrl+O')})"
        )
        self._open_button.clicked.connect(self.open_file_dialog)
        self._clear_button = QPushButton("Clear")
        self._clear_button.setToolTip("Remove the init image (Delete)")
        self._clear_button.clicked.connect(self.clear)
        for button in (self._open_button, self._clear_button):
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self._mode_box, 1)
        bar.addWidget(self._open_button)
        bar.addWidget(self._clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self._view, 1)
        layout.addWidget(self._info)  # a line of its own: the sizes are never squeezed by the buttons
        layout.addLayout(bar)

        model = self.canvas_image
        bind(self._mode_box, model, "fit_mode")
        model.display_changed.connect(self._refresh)
        model.image_changed.connect(self.image_changed)
        model.message.connect(self.message)
        model.loading_changed.connect(self.loading_changed)
        model.fit_mode_changed.connect(lambda mode: self.fit_mode_changed.emit(mode))
        self._refresh()

    # ----------------------------------------------------------------------------------------- state

    @property
    def max_pixels(self) -> int:
        return self.canvas_image.max_pixels

    def has_image(self) -> bool:
        return self.canvas_image.has_image()

    def source_image(self) -> Image.Image | None:
        """The loaded image (upright RGB, full size).  Shared, not copied: don't modify it."""
        return self.canvas_image.source_image()

    def source_label(self) -> str:
        """Where the image came from: a path, "clipboard image", or what :meth:`set_image` was told."""
        return self.canvas_image.source_label()

    def prepared_image(self) -> Image.Image | None:
        """The image at exactly the output size, per the fit mode: what goes to the engine.  A copy."""
        return self.canvas_image.prepared_image()

    def output_size(self) -> tuple[int, int]:
        return self.canvas_image.output_size

    def fit_mode(self) -> str:
        return self.canvas_image.fit_mode

    def is_loading(self) -> bool:
        return self.canvas_image.is_loading()

    def hint_text(self) -> str:
        """The keys that work from anywhere in the window (the menu's); Ctrl+V also works here with focus."""
        paste = QKeySequence(PASTE_KEYS).toString(QKeySequence.SequenceFormat.NativeText)
        open_ = _shortcut_text(QKeySequence.StandardKey.Open, "Ctrl+O")
        return f"Drop an image here, paste ({paste}) or open ({open_})"

    # ------------------------------------------------------------------------------------- settings

    def set_output_size(self, width: int, height: int) -> None:
        """Change the output size; the prepared image follows (no ``image_changed``)."""
        self.canvas_image.set_output_size(width, height)

    def set_fit_mode(self, mode: str) -> None:
        """"fit", "crop" or "stretch" (see :data:`FIT_MODES`); the selector follows."""
        self.canvas_image.set_fit_mode(mode)

    # ------------------------------------------------------------------------------- set and clear

    def set_image(self, image: Image.Image, source: str = "") -> None:
        """Use ``image`` now (converted to RGB and copied); cancels any load in flight."""
        self.canvas_image.set_image(image, source)

    def clear(self) -> None:
        """Remove the image (and cancel a load in flight).  Emits ``image_changed`` if there was one."""
        self.canvas_image.clear()

    def _refresh(self) -> None:
        model = self.canvas_image
        text = model.summary()
        self._info.set_full_text(text)  # a plain-text label
        # The whole path: its folders' names may hold anything ("<img src=...>" split across them).
        self._info.setToolTip(plain_tooltip(model.source_label() if model.has_image() else text))
        self._clear_button.setEnabled(model.has_image() or model.is_loading())
        self._view.invalidate()

    # ------------------------------------------------------------------------------------- loading

    def load_file(self, path: str | Path) -> bool:
        """Start loading the image file at ``path`` in the background; True if a load was started.

        The outcome arrives as ``image_changed`` or as ``message``.
        """
        return self.canvas_image.load_file(path)

    def paste_from_clipboard(self) -> bool:
        """Paste an image, image file(s) or raw image bytes from the clipboard; True if a load started.

        Plain text is not an image and is refused with a message (no guessing at paths or URLs).
        """
        return self.canvas_image.load_mime(QGuiApplication.clipboard().mimeData(), "clipboard")

    def open_file_dialog(self) -> bool:
        """Ask for an image file (remembering the folder); True if one was chosen and a load started."""
        start = self._last_dir or QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.PicturesLocation
        )
        dialog = QFileDialog(self, "Open an image", start, _DIALOG_FILTER)
        dialog.setObjectName("canvas-open-dialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
                return False
            path = dialog.selectedFiles()[0]
        finally:
            dialog.deleteLater()
        self._last_dir = str(Path(path).parent)
        return self.load_file(path)

    # -------------------------------------------------------------------------------- drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        verdict = drag_verdict(event.mimeData())
        if verdict is None:
            event.setDropAction(Qt.DropAction.CopyAction)  # never let a file manager move the file
            event.accept()
            self._drag_hover = True
            self._view.update()
            return
        event.ignore()
        if verdict:
            self.message.emit(verdict)  # the refusal cursor alone doesn't say why

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._drag_hover = False
        self._view.update()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self._drag_hover = False
        self._view.update()
        request = request_from_mime(event.mimeData(), "dropped")
        if isinstance(request, str):
            event.ignore()
            self.message.emit(request)
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.canvas_image.load(request)

    # ----------------------------------------------------------------------------------- keyboard

    @staticmethod
    def _command_for(event: QKeyEvent) -> str | None:
        if event.matches(QKeySequence.StandardKey.Paste):
            return "paste"
        if event.matches(QKeySequence.StandardKey.Open):
            return "open"
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        key = event.key()
        if modifiers == Qt.KeyboardModifier.ControlModifier and key in (Qt.Key.Key_V, Qt.Key.Key_O):
            return "paste" if key == Qt.Key.Key_V else "open"
        if modifiers == Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier and key == Qt.Key.Key_V:
            return "paste"  # the window's paste-to-canvas keys, as the hint says
        if modifiers == Qt.KeyboardModifier.ShiftModifier and key == Qt.Key.Key_Insert:
            return "paste"
        if modifiers == Qt.KeyboardModifier.NoModifier and key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            return "clear"
        return None

    def event(self, event: QEvent) -> bool:
        # The window may bind Ctrl+O / Delete to actions; while the canvas has focus its keys win.
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and self._command_for(event) is not None
        ):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        command = self._command_for(event)
        if command == "paste":
            self.paste_from_clipboard()
        elif command == "open":
            self.open_file_dialog()
        elif command == "clear":
            self.clear()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def focusInEvent(self, event: QFocusEvent) -> None:
        self._view.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        self._view.update()
        super().focusOutEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(360, 360)
