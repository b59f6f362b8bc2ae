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
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, QStandardPaths, Qt, Signal
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
    QRegion,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.library.image_fit import FIT_MODES, prepare_image
from studio.library.masks import MAX_EXPAND
from studio.ui.bind import bind
from studio.ui.plain_text import plain_tooltip
from studio.ui.wheel_guard import guard_wheel
from studio.viewmodel.canvas_image import CanvasImage
from studio.viewmodel.canvas_mask import MAX_BRUSH, SIDES, CanvasMask
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


MASK_RGB = (255, 48, 96)
MASK_OPACITY = 0.55
"""The mask's tint and how opaque a fully masked pixel is drawn: the picture stays readable under it."""


def _overlay_colours(rgb: tuple[int, int, int], opacity: float) -> list[int]:
    """A colour table for the mask's 8-bit image: coverage v is the tint at v * opacity alpha."""
    red, green, blue = rgb
    return [(round(v * opacity) << 24) | (red << 16) | (green << 8) | blue for v in range(256)]


def _tool_button(text: str, tip: str) -> QToolButton:
    button = QToolButton(text=text, toolTip=tip, checkable=True, autoExclusive=False)
    button.setObjectName(f"{text.lower()}Button")
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return button


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
    """Paints the canvas: the prepared image (grown with its outpainting preview), the mask over it, the
    brush; turns the mouse into strokes, edge drags, zoom and pan.

    Geometry: the *document* is the output image plus its outpainting expansion; at zoom 1 it is as large
    as fits the view, centred; the wheel zooms about the pointer, space-drag or the middle button pans.
    """

    _MARGIN = 10
    _EDGE_GRIP = 8  # px outside (or on) the document's edge where a press drags that edge
    _MIN_ZOOM, _MAX_ZOOM = 0.25, 64.0
    _OVERLAY_COLOURS = _overlay_colours(MASK_RGB, MASK_OPACITY)

    def __init__(self, canvas: ImageCanvas) -> None:
        super().__init__(canvas)
        self._canvas = canvas
        self._pixmap: QPixmap | None = None
        self._pixmap_key: tuple | None = None
        self._overlay: QImage | None = None
        self._overlay_stale = True
        self.zoom = 1.0
        self.pan = QPointF(0, 0)
        self.space_held = False
        self._drag: str | None = None  # "stroke", "pan", or "edge:<side>"
        self._drag_button = Qt.MouseButton.NoButton
        self._drag_start = QPointF()
        self._drag_value: object = None
        self._pointer: QPointF | None = None
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the canvas itself
        self.setMouseTracking(True)  # the brush outline follows the pointer
        self.setObjectName("canvasView")

    def invalidate(self) -> None:
        self._pixmap = None
        self._pixmap_key = None
        self.update()

    def mask_changed(self, _region: object = None) -> None:
        """Repaint soon; the overlay is rebuilt once per paint, not once per dab of a stroke."""
        self._overlay_stale = True
        self.update()

    def _mask_overlay(self) -> QImage | None:
        """The mask as the tinted, see-through layer painted over the picture."""
        if self._overlay_stale:
            image = self._canvas.mask.mask_qimage()
            if image is not None:
                image.setColorTable(self._OVERLAY_COLOURS)
            self._overlay, self._overlay_stale = image, False
        return self._overlay

    # -------------------------------------------------------------------------------------- geometry
    def document_size(self) -> tuple[int, int]:
        return self._canvas.mask.grown_size() or self._canvas.output_size()

    def frame_rect(self) -> QRectF:
        """The document (the output image and its expansion), fitted to the view, zoomed and panned."""
        doc_w, doc_h = self.document_size()
        area = QRectF(self.rect()).adjusted(self._MARGIN, self._MARGIN, -self._MARGIN, -self._MARGIN)
        if area.width() <= 1 or area.height() <= 1:
            return QRectF(self.rect())
        scale = min(area.width() / doc_w, area.height() / doc_h) * self.zoom
        width, height = doc_w * scale, doc_h * scale
        centre = area.center() + self.pan
        return QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height)

    def scale(self) -> float:
        """Screen pixels per image pixel."""
        return self.frame_rect().width() / self.document_size()[0]

    def image_rect(self) -> QRectF:
        """Where the output image (without the expansion) lies on screen."""
        frame, scale = self.frame_rect(), self.scale()
        left, top, _right, _bottom = self._canvas.mask.expansion() or (0, 0, 0, 0)
        width, height = self._canvas.output_size()
        return QRectF(frame.x() + left * scale, frame.y() + top * scale, width * scale, height * scale)

    def to_image(self, point: QPointF) -> QPointF:
        """A point of the view in output-image pixels."""
        rect, scale = self.image_rect(), self.scale()
        return QPointF((point.x() - rect.x()) / scale, (point.y() - rect.y()) / scale)

    def from_image(self, point: QPointF) -> QPointF:
        rect, scale = self.image_rect(), self.scale()
        return QPointF(rect.x() + point.x() * scale, rect.y() + point.y() * scale)

    def reset_view(self) -> None:
        """Zoom 1 (the whole document fits), no pan."""
        self.zoom, self.pan = 1.0, QPointF(0, 0)
        self.invalidate()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by `factor` keeping the image point under `anchor` (default: the view's centre) still."""
        anchor = anchor if anchor is not None else QPointF(self.rect().center())
        before = self.to_image(anchor)
        self.zoom = min(max(self.zoom * factor, self._MIN_ZOOM), self._MAX_ZOOM)
        after = self.from_image(before)
        self.pan += anchor - after
        self.invalidate()

    def edge_at(self, point: QPointF) -> str | None:
        """The side of the document whose edge `point` grips (outside it, or on it), if any."""
        if not self._canvas.mask.has_layer():
            return None
        frame, grip = self.frame_rect(), self._EDGE_GRIP
        inside_x = frame.left() <= point.x() <= frame.right()
        inside_y = frame.top() <= point.y() <= frame.bottom()
        # Outside the picture only: a stroke can always reach its border.
        if inside_y and frame.left() - grip <= point.x() < frame.left():
            return "left"
        if inside_y and frame.right() < point.x() <= frame.right() + grip:
            return "right"
        if inside_x and frame.top() - grip <= point.y() < frame.top():
            return "top"
        if inside_x and frame.bottom() < point.y() <= frame.bottom() + grip:
            return "bottom"
        return None

    # -------------------------------------------------------------------------------------- painting
    def _scaled_pixmap(self, display: QImage, frame: QRectF) -> QPixmap:
        """The image smoothly scaled to the frame in device pixels (sharp on high-DPI screens); cached
        because scaling on every paint (brush moves, drag hover, focus changes) would waste time."""
        dpr = self.devicePixelRatioF()
        target = QSize(max(1, round(frame.width() * dpr)), max(1, round(frame.height() * dpr)))
        key = (display.cacheKey(), target.width(), target.height(), dpr)
        if self._pixmap is None or self._pixmap_key != key:
            if target.width() * target.height() > 4 * display.width() * display.height():
                scaled = display  # zoomed in: the painter scales it (pixels stay sharp, memory stays small)
            else:
                scaled = display.scaled(
                    target, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            pixmap = QPixmap.fromImage(scaled)
            pixmap.setDevicePixelRatio(dpr)
            self._pixmap, self._pixmap_key = pixmap, key
        return self._pixmap

    def paintEvent(self, event: QPaintEvent) -> None:
        canvas = self._canvas
        mask = canvas.mask
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base).darker(108))
        frame = self.frame_rect()
        grown = mask.expanded_preview()
        display = grown if grown is not None else canvas.canvas_image.display_image()
        if display is not None and not display.isNull():
            painter.drawPixmap(frame, self._scaled_pixmap(display, frame), QRectF(self._pixmap.rect()))
            pen = QPen(palette.color(QPalette.ColorRole.Mid), 1)
        else:
            painter.fillRect(frame, palette.color(QPalette.ColorRole.Base))
            pen = QPen(palette.color(QPalette.ColorRole.Mid), 1, Qt.PenStyle.DashLine)
        image_rect = self.image_rect()
        if grown is not None:  # the new area is masked: the engine paints it
            painter.save()
            painter.setClipRegion(QRegion(frame.toAlignedRect()).subtracted(QRegion(image_rect.toAlignedRect())))
            painter.fillRect(frame, QColor(*MASK_RGB, round(255 * MASK_OPACITY * 0.6)))
            painter.restore()
            painter.setPen(QPen(QColor("white"), 1, Qt.PenStyle.DashLine))
            painter.drawRect(image_rect.adjusted(-0.5, -0.5, 0.5, 0.5))
        overlay = self._mask_overlay() if display is not None and not mask.is_empty() else None
        if overlay is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.scale() < 2)
            painter.drawImage(image_rect, overlay)
        if canvas._drag_hover or canvas.hasFocus():
            pen = QPen(palette.color(QPalette.ColorRole.Highlight), 2 if canvas._drag_hover else 1)
        painter.setPen(pen)
        painter.drawRect(frame.adjusted(-0.5, -0.5, 0.5, 0.5))
        self._paint_brush(painter)
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

    def _paint_brush(self, painter: QPainter) -> None:
        """The brush's outline where the pointer is (black and white, visible on any picture)."""
        mask = self._canvas.mask
        if self._pointer is None or not mask.has_layer() or self._drag in ("pan",) or self.space_held:
            return
        if self._drag is None and self.edge_at(self._pointer) is not None:
            return
        radius = max(mask.brush_size * self.scale() / 2, 1.5)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for colour, width in ((QColor(0, 0, 0, 160), 3.0), (QColor("white"), 1.0)):
            pen = QPen(colour, width)
            if mask.tool == "eraser" and colour.lightness() > 128:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawEllipse(self._pointer, radius, radius)

    # ---------------------------------------------------------------------------------------- mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._canvas.setFocus(Qt.FocusReason.MouseFocusReason)
        point, button = event.position(), event.button()
        mask = self._canvas.mask
        if self._drag is not None:  # a second button during a drag: the drag goes on, untouched
            event.accept()
            return
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self.space_held):
            self._drag, self._drag_start, self._drag_value = "pan", point, QPointF(self.pan)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif button == Qt.MouseButton.LeftButton and (side := self.edge_at(point)) is not None:
            self._drag, self._drag_start = f"edge:{side}", point
        elif button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) and mask.has_layer():
            erase = mask.tool == "eraser"
            if button == Qt.MouseButton.RightButton:  # the right button paints with the other tool
                erase = not erase
            at = self.to_image(point)
            if mask.begin_stroke(at.x(), at.y(), erase=erase):
                self._drag = "stroke"
        else:
            super().mousePressEvent(event)
            return
        self._drag_button = button
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        point = event.position()
        self._pointer = point
        mask = self._canvas.mask
        if self._drag == "pan":
            self.pan = self._drag_value + (point - self._drag_start)
        elif self._drag and self._drag.startswith("edge:"):
            side = self._drag.split(":", 1)[1]
            rect, scale = self.image_rect(), self.scale()  # today's: the document refits as it grows
            outward = {
                "left": rect.left() - point.x(), "right": point.x() - rect.right(),
                "top": rect.top() - point.y(), "bottom": point.y() - rect.bottom(),
            }[side]
            mask.set_expansion(side, outward / scale)
        elif self._drag == "stroke":
            at = self.to_image(point)
            mask.stroke_to(at.x(), at.y())
        else:
            self._hover_cursor(point)
        self.update()

    def _hover_cursor(self, point: QPointF) -> None:
        side = self.edge_at(point)
        if self.space_held:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif side in ("left", "right"):
            self.setCursor(Qt.CursorShape.SizeHorCursor)
        elif side in ("top", "bottom"):
            self.setCursor(Qt.CursorShape.SizeVerCursor)
        elif self._canvas.mask.has_layer():
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.unsetCursor()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None and event.button() != self._drag_button:
            event.accept()  # another button let go: the drag goes on
            return
        drag = self._drag
        self.cancel_drag()
        if drag is not None:
            self._hover_cursor(event.position())
            self.update()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def cancel_drag(self) -> None:
        """End whatever the mouse was doing (a stroke is kept, as one undo step)."""
        drag, self._drag = self._drag, None
        if drag == "stroke":
            self._canvas.mask.end_stroke()
        self.update()

    def leaveEvent(self, event: QEvent) -> None:
        self._pointer = None
        self.update()
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if not steps:
            super().wheelEvent(event)
            return
        self.zoom_by(1.25**steps, event.position())
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and not self._canvas.has_image():
            self._canvas.open_file_dialog()
        elif event.button() == Qt.MouseButton.LeftButton and self._canvas.mask.has_layer():
            self.mousePressEvent(event)  # a quick second dab is a dab, not a dialog
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

    def __init__(
        self, canvas: CanvasImage | None = None, parent: QWidget | None = None, *, mask: CanvasMask | None = None
    ) -> None:
        super().__init__(parent)
        self.canvas_image = canvas if canvas is not None else CanvasImage(self)
        self.mask = mask if mask is not None else CanvasMask(self.canvas_image, self)
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
        layout.addLayout(self._build_mask_tools())
        layout.addWidget(self._view, 1)
        layout.addWidget(self._info)  # a line of its own: the sizes are never squeezed by the buttons
        layout.addLayout(self._build_outpaint_row())
        layout.addLayout(bar)

        model = self.canvas_image
        bind(self._mode_box, model, "fit_mode")
        model.display_changed.connect(self._refresh)
        model.image_changed.connect(self.image_changed)
        model.message.connect(self.message)
        model.loading_changed.connect(self.loading_changed)
        model.fit_mode_changed.connect(lambda mode: self.fit_mode_changed.emit(mode))
        self.mask.mask_changed.connect(self._view.mask_changed)
        self.mask.mask_changed.connect(self._on_mask_pixels)
        self.mask.history_changed.connect(self._refresh_mask_tools)
        self.mask.message.connect(self.message)
        self.mask.tool_changed.connect(self._refresh_mask_tools)
        self.mask.changed.connect(self._on_mask_setting)
        self._view.mask_changed()
        self._refresh()
        self._refresh_mask_tools()

    # ---------------------------------------------------------------------------------- mask tools
    def _build_mask_tools(self) -> QHBoxLayout:
        """Brush and eraser, size and hardness, and the mask menu (clear, invert, fill, load, undo)."""
        self._brush_button = _tool_button("Brush", "Paint the area to regenerate (B; X swaps with the eraser; right-drag erases)")
        self._eraser_button = _tool_button("Eraser", "Remove the mask where you paint (E; X swaps with the brush)")
        self._brush_button.clicked.connect(lambda: self.run_command("brush"))
        self._eraser_button.clicked.connect(lambda: self.run_command("eraser"))
        self._size_box = QSpinBox(minimum=1, maximum=MAX_BRUSH, suffix=" px", accessibleName="Brush size")
        self._size_box.setObjectName("brushSizeBox")
        self._size_box.setToolTip("Brush diameter in pixels of the output image ([ and ] change it)")
        self._hardness_box = QSpinBox(minimum=0, maximum=100, singleStep=10, suffix=" %", accessibleName="Brush hardness")
        self._hardness_box.setObjectName("brushHardnessBox")
        self._hardness_box.setToolTip("Brush hardness: 100 % paints a sharp edge, 0 % a soft one (Shift+[ and Shift+] change it)")
        for box in (self._size_box, self._hardness_box):
            box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            guard_wheel(box)
        bind(self._size_box, self.mask, "brush_size")
        bind(self._hardness_box, self.mask, "hardness")
        self._mask_button = QToolButton(text="Mask", toolTip="Clear, invert, fill or load the mask; undo and redo")
        self._mask_button.setObjectName("maskMenuButton")
        menu = QMenu(self._mask_button)
        self._mask_actions = {
            "undo": menu.addAction("Undo stroke", self.mask.undo, QKeySequence("Ctrl+Z")),
            "redo": menu.addAction("Redo stroke", self.mask.redo, QKeySequence("Ctrl+Shift+Z")),
        }
        menu.addSeparator()
        self._mask_actions |= {
            "clear": menu.addAction("Clear mask", self.mask.clear, QKeySequence("Shift+Delete")),
            "invert": menu.addAction("Invert mask", self.mask.invert, QKeySequence("Ctrl+I")),
            "fill": menu.addAction("Fill mask (regenerate everything)", self.mask.fill, QKeySequence("Shift+Backspace")),
        }
        menu.addSeparator()
        self._mask_actions["load"] = menu.addAction("Load mask from a file…", self.open_mask_dialog)
        for act in self._mask_actions.values():
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # shown in the menu; the canvas handles the keys
        self._mask_button.setMenu(menu)
        self._mask_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        for widget in (self._brush_button, self._eraser_button, self._size_box, self._hardness_box):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self._mask_button)
        return row

    def _build_outpaint_row(self) -> QHBoxLayout:
        """Outpainting: the pixels the canvas grows by on each side (or drag the picture's edges)."""
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        label = QLabel("Outpaint")
        label.setToolTip("Grow the canvas: the new area is generated (drag an edge of the picture, or set the pixels)")
        row.addWidget(label)
        self._expand_boxes: dict[str, QSpinBox] = {}
        for side in SIDES:
            box = QSpinBox(minimum=0, maximum=MAX_EXPAND, accessibleName=f"Outpaint {side}")
            box.setObjectName(f"expand{side.title()}Box")
            box.setToolTip(f"Pixels added on the {side}: a multiple of the model's side rule")
            box.setPrefix(f"{side[0].upper()} ")
            box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            guard_wheel(box)
            bind(box, self.mask, f"expand_{side}")
            self._expand_boxes[side] = box
            row.addWidget(box, 1)
        return row

    def _on_mask_pixels(self, region: object) -> None:
        """A whole-mask change refreshes the tools at once; a stroke's dabs wait for its end (the
        history changes then), so painting never measures the whole mask at every move."""
        if region is None:
            self._refresh_mask_tools()

    def _on_mask_setting(self, name: str) -> None:
        if name == "side_multiple":
            for box in self._expand_boxes.values():
                box.setSingleStep(self.mask.side_multiple)
        if name.startswith("expand_") or name == "outpaint_fill":
            self._view.invalidate()
            self._refresh()
        elif name in ("brush_size", "hardness", "tool"):
            self._view.update()  # the brush outline

    def _mask_summary(self) -> str:
        """" · mask 12 % · outpaint → 640×512": what the next job will do beyond img2img."""
        mask, parts = self.mask, []
        if not mask.is_empty():
            parts.append(f"mask {max(mask.coverage(), 0.01):.0%}")
        grown = mask.grown_size() if mask.expansion() is not None else None
        if grown is not None:
            parts.append(f"outpaint → {grown[0]}×{grown[1]}")
        return "".join(f" · {part}" for part in parts)

    def _refresh_mask_tools(self, *_args: object) -> None:
        mask, has_layer = self.mask, self.mask.has_layer()
        self._refresh_summary()
        self._brush_button.setChecked(mask.tool == "brush")
        self._eraser_button.setChecked(mask.tool == "eraser")
        for widget in (self._brush_button, self._eraser_button, self._mask_button, *self._expand_boxes.values()):
            widget.setEnabled(has_layer)
        self._mask_actions["undo"].setEnabled(mask.can_undo())
        self._mask_actions["redo"].setEnabled(mask.can_redo())
        for name in ("clear", "invert"):
            self._mask_actions[name].setEnabled(has_layer and not mask.is_empty())
        self._mask_actions["fill"].setEnabled(has_layer)
        self._mask_actions["load"].setEnabled(has_layer)

    def open_mask_dialog(self) -> bool:
        """Ask for a mask file (white, or a PNG's opaque pixels, is regenerated); True if one loaded."""
        if not self.mask.has_layer():
            self.message.emit("Open a picture first: a mask is painted over it")
            return False
        path = self._ask_image_file("Load a mask", "mask-open-dialog")
        return path is not None and self.mask.load_file(path)

    def view(self) -> QWidget:
        """The painting surface (for tests and screenshots: strokes are mouse events on it)."""
        return self._view

    def image_to_view(self, x: float, y: float) -> QPointF:
        """Where output-image pixel (x, y) is on :meth:`view` now (after zoom and pan)."""
        return self._view.from_image(QPointF(x, y))

    def reset_view(self) -> None:
        self._view.reset_view()

    def zoom(self) -> float:
        return self._view.zoom

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
        self._refresh_summary()
        self._clear_button.setEnabled(model.has_image() or model.is_loading())
        self._view.invalidate()

    def _refresh_summary(self) -> None:
        model = self.canvas_image
        text = model.summary() + self._mask_summary()
        self._info.set_full_text(text)  # a plain-text label
        # The whole path: its folders' names may hold anything ("<img src=...>" split across them).
        self._info.setToolTip(plain_tooltip(model.source_label() if model.has_image() else text))

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
        path = self._ask_image_file("Open an image", "canvas-open-dialog")
        return path is not None and self.load_file(path)

    def _ask_image_file(self, title: str, name: str) -> str | None:
        """An image file the user picks (the dialog starts where the last one was left), or None."""
        start = self._last_dir or QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        dialog = QFileDialog(self, title, start, _DIALOG_FILTER)
        dialog.setObjectName(name)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
                return None
            path = dialog.selectedFiles()[0]
        finally:
            dialog.deleteLater()
        self._last_dir = str(Path(path).parent)
        return path

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

    _MASK_KEYS = {
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_BracketLeft): "smaller",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_BracketRight): "larger",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_BraceLeft): "softer",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_BraceRight): "harder",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_BracketLeft): "softer",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_BracketRight): "harder",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_X): "swap",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_B): "brush",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_E): "eraser",
        (Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_Z): "undo",
        (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Z): "redo",
        (Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_Y): "redo",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Delete): "clear mask",
        (Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_I): "invert mask",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Backspace): "fill mask",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_0): "fit view",
        (Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_0): "fit view",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_Plus): "zoom in",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_Equal): "zoom in",
        (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Plus): "zoom in",
        (Qt.KeyboardModifier.NoModifier, Qt.Key.Key_Minus): "zoom out",
    }
    """The mask layer's keys (while the canvas has focus and a picture), as painting programs have them."""

    def _command_for(self, event: QKeyEvent) -> str | None:
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        key = event.key()
        if self.mask.has_layer() and (command := self._MASK_KEYS.get((modifiers, key))) is not None:
            return command
        if event.matches(QKeySequence.StandardKey.Paste):
            return "paste"
        if event.matches(QKeySequence.StandardKey.Open):
            return "open"
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
        # The window may bind Ctrl+O / Delete / Ctrl+Z to actions; while the canvas has focus its keys win.
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and (self._command_for(event) is not None or event.key() == Qt.Key.Key_Space)
        ):
            event.accept()
            return True
        return super().event(event)

    def run_command(self, command: str) -> bool:
        """Do what a key of the canvas does (see :attr:`_MASK_KEYS`); False for an unknown command."""
        mask = self.mask
        actions = {
            "paste": self.paste_from_clipboard,
            "open": self.open_file_dialog,
            "clear": self.clear,
            "smaller": lambda: setattr(mask, "brush_size", max(1, min(mask.brush_size - 1, round(mask.brush_size / 1.2)))),
            "larger": lambda: setattr(mask, "brush_size", min(MAX_BRUSH, max(mask.brush_size + 1, round(mask.brush_size * 1.2)))),
            "softer": lambda: setattr(mask, "hardness", max(0, mask.hardness - 10)),
            "harder": lambda: setattr(mask, "hardness", min(100, mask.hardness + 10)),
            "swap": lambda: setattr(mask, "tool", "eraser" if mask.tool == "brush" else "brush"),
            "brush": lambda: setattr(mask, "tool", "brush"),
            "eraser": lambda: setattr(mask, "tool", "eraser"),
            "undo": mask.undo,
            "redo": mask.redo,
            "clear mask": mask.clear,
            "invert mask": mask.invert,
            "fill mask": mask.fill,
            "fit view": self._view.reset_view,
            "zoom in": lambda: self._view.zoom_by(1.25),
            "zoom out": lambda: self._view.zoom_by(0.8),
        }
        action = actions.get(command)
        if action is None:
            return False
        action()
        self._refresh_mask_tools()
        self._view.update()
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.modifiers():
            if not event.isAutoRepeat():
                self._view.space_held = True
                self._view.setCursor(Qt.CursorShape.OpenHandCursor)
                self._view.update()
            event.accept()
            return
        command = self._command_for(event)
        if command is None or not self.run_command(command):
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._view.space_held = False
            self._view.unsetCursor()
            self._view.update()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:
        self._view.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        # A key released elsewhere never reaches us: forget Space, and end a drag the focus left.
        self._view.space_held = False
        self._view.unsetCursor()
        if event.reason() != Qt.FocusReason.PopupFocusReason:
            self._view.cancel_drag()
        self._view.update()
        super().focusOutEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(360, 360)
