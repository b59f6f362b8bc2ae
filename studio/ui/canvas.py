"""The img2img canvas: the init image, taken from a drop, the clipboard or a file, fitted to the output size.

What reaches the engine is :meth:`ImageCanvas.prepared_image`: the image at exactly the output size, made
by :func:`prepare_image` in one of three modes.  The canvas shows that prepared image (not the source),
so what the user sees is what the model gets.

Where images come from, and what is refused
    * Local files (file-manager drops, ``file://`` URLs, the Open dialog).  With several files the first
      one that loads is used and a message says so; folders are skipped.
    * Image data (browsers, image editors, screenshots on the clipboard): raw encoded bytes under an
      ``image/*`` or ``application/octet-stream`` format first, because they are the original file
      (EXIF orientation included); then Qt's decoded ``imageData()``; then ``data:image/...`` URLs.
    * A web (or other remote) URL alone is refused with :data:`WEB_REFUSAL`.  The canvas never touches
      the network: a download would block or need a progress UI, could be huge, and fetching
      arbitrary URLs from a drag is a privacy leak.  Browsers almost always send the pixels as well.
    Every candidate goes through :func:`studio.library.images.load_image` (bytes via ``io.BytesIO``) so
    the pixel limit, EXIF orientation and mode conversion are the same as everywhere else.  A failure
    emits :attr:`ImageCanvas.message` and changes nothing: the previous image stays.

Loading off the GUI thread
    Decoding a 64-megapixel JPEG takes about a second, so decoding (and the first fit to the output
    size) runs on a single background Python thread (``concurrent.futures``) and the result comes back
    through a queued Qt signal.  Not ``QThreadPool``: Qt waits for its pool in C++ destructors (the
    pool's, or QCoreApplication's for the global one) while Python may hold the GIL there, and a
    decode that needs the GIL to finish would then deadlock the exit.  Requests carry a ticket; a newer
    request (another drop, ``set_image``, ``clear``) makes older results stale and they are dropped, and a
    stale request still waiting in the queue is skipped without decoding.  One worker thread means two
    huge images are never decoded at once (memory).  Tests wait with ``qtbot.waitSignal``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import io
import itertools
import re
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QEvent, QMimeData, QObject, QRectF, QSize, QStandardPaths, Qt, Signal
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

from studio.library.display import printable
from studio.library.image_fit import FIT_MODES, prepare_image
from studio.library.images import MAX_PIXELS, ImageLoadError, load_image, to_rgb
from studio.ui.plain_text import plain_tooltip
from studio.ui.qt_images import pil_to_qimage, qimage_to_png_bytes

__all__ = ["FIT_MODES", "WEB_REFUSAL", "ImageCanvas", "prepare_image"]

PASTE_KEYS = "Ctrl+Shift+V"
"""Paste to the canvas from anywhere in the window (plain Ctrl+V pastes text into the prompt)."""

_MODE_LABELS = {"fit": "Fit (pad)", "crop": "Crop (fill)", "stretch": "Stretch"}
_MODE_TIPS = {
    "fit": "Scale the whole image into the output size; the empty bands are filled with the image's "
    "own edge colours, softened, so the model can paint them in",
    "crop": "Scale the image to cover the output size and crop the overflow evenly on both sides",
    "stretch": "Scale width and height independently to the output size (changes proportions)",
}

WEB_REFUSAL = "Images from the web can't be fetched: save it first, or drag the image itself"
_FOLDER_REFUSAL = "Folders can't be used as an image: drop an image file"
_NOTHING_USABLE = "Nothing to use here: drop an image file or an image, or copy one to the clipboard"
_WEB_SCHEMES = {"http", "https", "ftp", "ftps"}

_DIALOG_FILTER = "Images (*.png *.jpg *.jpeg *.jpe *.jfif *.webp *.bmp *.gif *.tif *.tiff);;All files (*)"
_MAX_FILE_CANDIDATES = 16
"""Several dropped files are tried in order until one loads; a bound keeps a drop of a whole photo
library from queueing thousands of attempts (each failure is quick: headers only)."""

_MAX_RAW_FORMATS = 3
"""Encoded formats copied out of one drop: each copy may be a platform conversion (time, memory), and
the first decodable one is all that is needed."""

# Raw encoded formats, best first: lossless and common before lossy, the original bytes before any
# platform conversion.  Other image/* types follow, then Windows' clipboard names, then octet-stream.
_PREFERRED_FORMATS = (
    "image/png",
    "image/webp",
    "image/jpeg",
    "image/jpg",
    "image/pjpeg",
    "image/gif",
    "image/bmp",
    "image/x-bmp",
    "image/x-ms-bmp",
    "image/tiff",
    "image/x-png",
)
_NOT_RASTER = {"image/svg+xml", "image/svg"}
_WINDOWS_IMAGE_FORMAT = re.compile(r'application/x-qt-windows-mime;value="(png|jfif|gif|image/\w+)"', re.I)
_OCTET_STREAM = "application/octet-stream"


# --------------------------------------------------------------------------------------------------
# What a drop or the clipboard offers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """One thing that may decode to an image: a local path, encoded bytes, or a QImage."""

    kind: str  # "path" | "bytes" | "qimage"
    data: str | bytes | QImage
    label: str  # how messages name it, and the source label once loaded


@dataclass(frozen=True)
class _Request:
    candidates: tuple[_Candidate, ...]
    dropped_files: int = 0  # local items dropped (files and folders), for the "first only" note


def _raster_formats(mime: QMimeData) -> list[str]:
    """The mime formats that may hold encoded image bytes, best first."""
    formats = [f for f in mime.formats() if f]
    lowered = {f.lower(): f for f in formats}
    ordered = [lowered[f] for f in _PREFERRED_FORMATS if f in lowered]
    ordered += [
        f
        for f in formats
        if f.lower().startswith("image/") and f not in ordered and f.lower().split(";")[0] not in _NOT_RASTER
    ]
    ordered += [f for f in formats if _WINDOWS_IMAGE_FORMAT.fullmatch(f) and f not in ordered]
    ordered += [f for f in formats if f.lower() == _OCTET_STREAM]
    return ordered


def _is_data_image_url(url_text: str) -> bool:
    return url_text[:11].lower() == "data:image/" and not url_text[5:18].lower().startswith("svg")


def _decode_data_url(url_text: str) -> bytes:
    header, _, payload = url_text.partition(",")
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(urllib.parse.unquote(payload), validate=False)
        except ValueError:
            return b""
    return urllib.parse.unquote_to_bytes(payload)


def _split_urls(mime: QMimeData) -> tuple[list[str], list[str], list[str]]:
    """(local paths, data:image URLs, other URLs as text) offered by ``mime``."""
    local: list[str] = []
    data: list[str] = []
    remote: list[str] = []
    if not mime.hasUrls():
        return local, data, remote
    for url in mime.urls():
        if url.isLocalFile():
            path = url.toLocalFile()
            if path:
                local.append(path)
            continue
        text = bytes(url.toEncoded().data()).decode("ascii", "replace")
        (data if _is_data_image_url(text) else remote).append(text)
    return local, data, remote


def _remote_refusal(remote: list[str]) -> str:
    scheme = remote[0].split(":", 1)[0].lower() if remote else ""
    if not scheme or scheme in _WEB_SCHEMES:
        return WEB_REFUSAL
    return (
        f"{scheme}: links can't be opened here (local files only): "
        "save the image first, or drag the image itself"
    )


def _is_dir(path: str) -> bool:
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def _drag_verdict(mime: QMimeData | None) -> str | None:
    """Whether a drag is worth accepting, from its formats alone (no data is read: this runs on every
    drag-enter).  ``None``: plausible.  A string: refuse, and say this (empty: refuse silently)."""
    if mime is None:
        return ""
    local, data_urls, remote = _split_urls(mime)
    if any(not _is_dir(p) for p in local):
        return None
    if _raster_formats(mime) or mime.hasImage() or data_urls:
        return None
    if local:
        return _FOLDER_REFUSAL
    if remote:
        return _remote_refusal(remote)
    return ""


def _request_from_mime(mime: QMimeData | None, origin: str) -> _Request | str:
    """Every usable candidate in ``mime``, best first, or the reason there is none.

    Data is copied out here, in the GUI thread, while the drop or clipboard still holds it.
    """
    if mime is None:
        return _NOTHING_USABLE
    local, data_urls, remote = _split_urls(mime)
    candidates: list[_Candidate] = []
    files = [p for p in local if not _is_dir(p)]
    candidates += [_Candidate("path", p, p) for p in files[:_MAX_FILE_CANDIDATES]]
    known_good = False
    for fmt in _raster_formats(mime)[:_MAX_RAW_FORMATS]:
        raw = bytes(mime.data(fmt).data())
        if raw:
            candidates.append(_Candidate("bytes", raw, f"{origin} image ({fmt.split(';')[0]})"))
            known_good = known_good or fmt.lower() in _PREFERRED_FORMATS
    # Qt's imageData() decodes external data right here, in the GUI thread: only a fallback for
    # drags that offer no format Pillow is known to read.
    if mime.hasImage() and not known_good:
        value = mime.imageData()
        if isinstance(value, QPixmap):
            value = value.toImage()
        if isinstance(value, QImage) and not value.isNull():
            candidates.append(_Candidate("qimage", QImage(value), f"{origin} image"))
    for text in data_urls:
        raw = _decode_data_url(text)
        if raw:
            candidates.append(_Candidate("bytes", raw, f"{origin} image (data: URL)"))
    if candidates:
        return _Request(tuple(candidates), dropped_files=len(local))
    if local:
        return _FOLDER_REFUSAL
    if remote:
        return _remote_refusal(remote)
    return _NOTHING_USABLE


# --------------------------------------------------------------------------------------------------
# Decoding in the background
# --------------------------------------------------------------------------------------------------


def _decode(candidate: _Candidate, max_pixels: int) -> Image.Image:
    """Runs in the worker thread.  Raises ImageLoadError with a one-line message."""
    if candidate.kind == "path":
        return load_image(str(candidate.data), max_pixels=max_pixels)
    if candidate.kind == "qimage":
        qimage = candidate.data
        assert isinstance(qimage, QImage)
        pixels = qimage.width() * qimage.height()
        if pixels > max_pixels:  # refuse before spending time encoding it
            raise ImageLoadError(
                f"{candidate.label}: image is too large ({qimage.width()}x{qimage.height()} = {pixels:,} "
                f"pixels; the limit is {max_pixels:,})"
            )
        raw = qimage_to_png_bytes(qimage)
        if not raw:
            raise ImageLoadError(f"{candidate.label}: the image data could not be read")
    else:
        raw = candidate.data
        assert isinstance(raw, bytes)
    stream = io.BytesIO(raw)
    stream.name = candidate.label  # type: ignore[attr-defined]  # load_image names it in messages
    return load_image(stream, max_pixels=max_pixels)


@functools.cache
def _executor() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="canvas-decode")


class _Tickets:
    """A counter read by the worker thread to skip requests that were superseded while queued."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.current = 0

    def next(self) -> int:
        with self._lock:
            self.current = next(self._counter)
            return self.current


class _Relay(QObject):
    """Carries a finished load from the worker thread to the GUI thread (queued connection).

    Parentless and referenced by every queued task, so it cannot be deleted while a worker emits; if the
    canvas is gone by then, Qt has already dropped the connection and the result goes nowhere.
    """

    # ticket, source image | None, prepared image | None, prepared key | None, candidate label, error
    finished = Signal(int, object, object, object, str, str)


def _load_task(
    relay: _Relay,
    tickets: _Tickets,
    ticket: int,
    request: _Request,
    max_pixels: int,
    key: tuple[int, int, str],
) -> None:
    if tickets.current != ticket:
        return  # superseded before it started: don't spend a second decoding it
    errors: list[str] = []
    for candidate in request.candidates:
        if tickets.current != ticket:
            return  # superseded while trying candidates
        try:
            image = _decode(candidate, max_pixels)
        except ImageLoadError as exc:
            errors.append(str(exc))
            continue
        except Exception as exc:  # an exotic Pillow/Qt failure: report it, never lose it in a thread
            errors.append(f"{candidate.label}: could not be loaded ({type(exc).__name__}: {exc})")
            continue
        prepared = None
        if tickets.current == ticket:
            try:
                prepared = prepare_image(image, (key[0], key[1]), key[2])
            except Exception:  # the GUI thread prepares again and reports
                prepared = None
        result = (ticket, image, prepared, key, candidate.label, "")
        break
    else:
        first = errors[0] if errors else "nothing could be loaded"
        more = len(errors) - 1
        suffix = f" (and {more} other item{'s' if more > 1 else ''} failed too)" if more > 0 else ""
        result = (ticket, None, None, None, "", first + suffix)
    with contextlib.suppress(RuntimeError):  # the relay's C++ side is gone (application shutting down)
        relay.finished.emit(*result)


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
        display = canvas._display
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

    Signals: ``image_changed()`` when the image is set, replaced or cleared (not when only the output size
    or fit mode changes: :meth:`prepared_image` always reflects the current settings);
    ``message(str)`` a one-line, user-facing refusal or error (the window shows it in the status bar);
    ``fit_mode_changed(str)`` when the mode changes (to persist it); ``loading_changed(bool)`` when a
    background load starts or ends.
    """

    image_changed = Signal()
    message = Signal(str)
    fit_mode_changed = Signal(str)
    loading_changed = Signal(bool)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        output_size: tuple[int, int] = (512, 512),
        fit_mode: str = "fit",
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        super().__init__(parent)
        if fit_mode not in FIT_MODES:
            raise ValueError(f"unknown fit mode {fit_mode!r} (use one of {', '.join(FIT_MODES)})")
        self.max_pixels = max_pixels
        self._output: tuple[int, int] = self._checked_size(*output_size)
        self._mode = fit_mode
        self._source: Image.Image | None = None
        self._source_label = ""
        self._prepared: Image.Image | None = None
        self._display: QImage | None = None
        self._drag_hover = False
        self._last_dir = ""
        self._pending: int | None = None  # ticket of the load in flight
        self._pending_request: _Request | None = None
        self._tickets = _Tickets()
        self._relay = _Relay()
        self._relay.finished.connect(self._on_load_finished, Qt.ConnectionType.QueuedConnection)

        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Init image canvas")

        self._view = _CanvasView(self)
        self._info = _ElidedLabel()
        self._mode_box = QComboBox()
        for mode in FIT_MODES:
            self._mode_box.addItem(_MODE_LABELS[mode], mode)
            self._mode_box.setItemData(
                self._mode_box.count() - 1, _MODE_TIPS[mode], Qt.ItemDataRole.ToolTipRole
            )
        self._mode_box.setCurrentIndex(FIT_MODES.index(self._mode))
        self._mode_box.setToolTip("How the image is fitted to the output size")
        self._mode_box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._mode_box.currentIndexChanged.connect(self._on_mode_box)
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
        self._refresh()

    # ----------------------------------------------------------------------------------------- state

    def has_image(self) -> bool:
        return self._source is not None

    def source_image(self) -> Image.Image | None:
        """The loaded image (upright RGB, full size).

        Shared, not copied (it may be 64 Mpx): don't modify it.
        """
        return self._source

    def source_label(self) -> str:
        """Where the image came from: a path, "clipboard image", or what :meth:`set_image` was told."""
        return self._source_label

    def prepared_image(self) -> Image.Image | None:
        """The image at exactly the output size, per the fit mode: what goes to the engine.  A copy."""
        if self._source is None:
            return None
        if self._prepared is None or self._prepared.size != self._output:
            self._reprepare()
        return self._prepared.copy() if self._prepared is not None else None

    def output_size(self) -> tuple[int, int]:
        return self._output

    def fit_mode(self) -> str:
        return self._mode

    def is_loading(self) -> bool:
        return self._pending is not None

    def hint_text(self) -> str:
        """The keys that work from anywhere in the window (the menu's); Ctrl+V also works here with focus."""
        paste = QKeySequence(PASTE_KEYS).toString(QKeySequence.SequenceFormat.NativeText)
        open_ = _shortcut_text(QKeySequence.StandardKey.Open, "Ctrl+O")
        return f"Drop an image here, paste ({paste}) or open ({open_})"

    # ------------------------------------------------------------------------------------- settings

    @staticmethod
    def _checked_size(width: int, height: int) -> tuple[int, int]:
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"invalid output size {width}x{height}")
        return width, height

    def set_output_size(self, width: int, height: int) -> None:
        """Change the output size; the prepared image follows (no ``image_changed``)."""
        size = self._checked_size(width, height)
        if size == self._output:
            return
        self._output = size
        self._reprepare()
        self._refresh()

    def set_fit_mode(self, mode: str) -> None:
        """Set the mode: "fit", "crop" or "stretch" (see :data:`FIT_MODES`).

        Updates the selector and the prepared image; emits ``fit_mode_changed`` if it changed.
        """
        if mode not in FIT_MODES:
            raise ValueError(f"unknown fit mode {mode!r} (use one of {', '.join(FIT_MODES)})")
        if mode == self._mode:
            return
        self._mode = mode
        if self._mode_box.currentData() != mode:
            blocked = self._mode_box.blockSignals(True)
            self._mode_box.setCurrentIndex(FIT_MODES.index(mode))
            self._mode_box.blockSignals(blocked)
        self._reprepare()
        self._refresh()
        self.fit_mode_changed.emit(mode)

    def _on_mode_box(self, index: int) -> None:
        mode = self._mode_box.itemData(index)
        if isinstance(mode, str):
            self.set_fit_mode(mode)

    # ------------------------------------------------------------------------------- set and clear

    def set_image(self, image: Image.Image, source: str = "") -> None:
        """Use ``image`` (e.g. a generated result sent to the canvas) now, synchronously.

        It is converted to RGB and copied, so the caller may keep using its own image.  Cancels any load
        in flight (the newer action wins).
        """
        if not isinstance(image, Image.Image):
            raise TypeError(f"set_image() needs a PIL image, not {type(image).__name__}")
        rgb = to_rgb(image)
        rgb = rgb.copy() if rgb is image else rgb
        self._supersede_pending()
        self._install(rgb, source or "image", None)

    def clear(self) -> None:
        """Remove the image (and cancel a load in flight).  Emits ``image_changed`` if there was one."""
        self._supersede_pending()
        if self._source is None:
            return
        self._source = None
        self._source_label = ""
        self._prepared = None
        self._display = None
        self._view.invalidate()
        self._refresh()
        self.image_changed.emit()

    def _install(self, image: Image.Image, label: str, prepared: Image.Image | None) -> None:
        self._source = image
        self._source_label = label
        self._prepared = prepared
        if prepared is None:
            self._reprepare()
        else:
            self._display = pil_to_qimage(prepared)
            self._view.invalidate()
        self._refresh()
        self.image_changed.emit()

    def _reprepare(self) -> None:
        if self._source is None:
            self._prepared, self._display = None, None
        else:
            self._prepared = prepare_image(self._source, self._output, self._mode)
            self._display = pil_to_qimage(self._prepared)
        self._view.invalidate()

    def _refresh(self) -> None:
        width, height = self._output
        if self._source is None:
            text = f"Output {width}×{height}" + (" — loading…" if self.is_loading() else "")
            tip = ""
        else:
            name = printable(Path(self._source_label).name or self._source_label)
            src_w, src_h = self._source.size
            text = f"{name} — {src_w}×{src_h} → {width}×{height}"
            tip = self._source_label
        self._info.set_full_text(text)  # a plain-text label
        # The whole path: its folders' names may hold anything ("<img src=...>" split across them).
        self._info.setToolTip(plain_tooltip(tip or text))
        self._clear_button.setEnabled(self._source is not None or self.is_loading())
        self._view.update()

    # ------------------------------------------------------------------------------------- loading

    def load_file(self, path: str | Path) -> bool:
        """Start loading the image file at ``path`` in the background; True if a load was started.

        The outcome arrives as ``image_changed`` or as ``message``.
        """
        text = str(path)
        if _is_dir(text):
            self.message.emit(f"{text} is a folder, not an image file")
            return False
        return self._start(_Request((_Candidate("path", text, text),)))

    def paste_from_clipboard(self) -> bool:
        """Paste an image, image file(s) or raw image bytes from the clipboard; True if a load started.

        Plain text is not an image and is refused with a message (no guessing at paths or URLs).
        """
        mime = QGuiApplication.clipboard().mimeData()
        request = _request_from_mime(mime, "clipboard")
        if isinstance(request, str):
            self.message.emit("The clipboard holds no image" if request == _NOTHING_USABLE else request)
            return False
        return self._start(request)

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

    def _supersede_pending(self) -> None:
        """Make any load in flight stale (its result will be ignored)."""
        self._tickets.next()
        if self._pending is not None:
            self._pending = None
            self._pending_request = None
            self._refresh()
            self.loading_changed.emit(False)

    def _start(self, request: _Request) -> bool:
        was_loading = self.is_loading()
        ticket = self._tickets.next()
        self._pending = ticket
        self._pending_request = request
        key = (self._output[0], self._output[1], self._mode)
        _executor().submit(_load_task, self._relay, self._tickets, ticket, request, self.max_pixels, key)
        self._refresh()
        if not was_loading:
            self.loading_changed.emit(True)
        return True

    def _on_load_finished(
        self, ticket: int, image: object, prepared: object, key: object, label: str, error: str
    ) -> None:
        if ticket != self._pending or ticket != self._tickets.current:
            return  # superseded by a newer drop, paste, set_image or clear
        request = self._pending_request
        self._pending = None
        self._pending_request = None
        self.loading_changed.emit(False)
        if not isinstance(image, Image.Image):
            kept = " (the current image is kept)" if self._source is not None else ""
            self._refresh()
            self.message.emit(f"Image not loaded: {error}{kept}")
            return
        current_key = (self._output[0], self._output[1], self._mode)
        usable = prepared if isinstance(prepared, Image.Image) and key == current_key else None
        self._install(image, label, usable)
        if request is not None and request.dropped_files > 1 and Path(label).is_absolute():
            self.message.emit(
                f"{request.dropped_files} items dropped: using only the first image, {Path(label).name}"
            )

    # -------------------------------------------------------------------------------- drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        verdict = _drag_verdict(event.mimeData())
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
        request = _request_from_mime(event.mimeData(), "dropped")
        if isinstance(request, str):
            event.ignore()
            self.message.emit(request)
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self._start(request)

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
