"""PIL <-> QImage conversions.

Why here: previews and results are converted in the worker thread, so the GUI thread only turns a
QImage into a QPixmap (QPixmap must stay in the GUI thread; QImage may be built in any thread and is
safe to pass through a queued signal). Every QImage returned owns its pixels (``.copy()``): a QImage
made on a Python ``bytes`` buffer would otherwise point into memory Python may free once the
conversion function returns.
"""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QImage

__all__ = ["pil_to_qimage", "qimage_to_pil"]

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def pil_to_qimage(image: Image.Image | None) -> QImage:
    """A QImage that owns a copy of `image`'s pixels; a null QImage for None.

    8-bit grey stays grey, images with transparency become RGBA, everything else RGB.
    """
    if image is None:
        return QImage()
    if image.mode == "L":
        fmt, channels = QImage.Format.Format_Grayscale8, 1
    elif image.mode == "RGBA" or image.mode in _ALPHA_MODES or "transparency" in image.info:
        image = image.convert("RGBA") if image.mode != "RGBA" else image
        fmt, channels = QImage.Format.Format_RGBA8888, 4
    else:
        image = image.convert("RGB") if image.mode != "RGB" else image
        fmt, channels = QImage.Format.Format_RGB888, 3
    width, height = image.size
    if width == 0 or height == 0:
        return QImage()
    data = image.tobytes()  # rows packed without padding: bytesPerLine = width * channels
    return QImage(data, width, height, width * channels, fmt).copy()


def qimage_to_pil(qimage: QImage) -> Image.Image:
    """An RGB (or RGBA, when the QImage has an alpha channel) PIL image with its own pixel copy.

    For images coming from the GUI (a pasted or drawn init image) on their way to the engine.
    """
    if qimage.isNull():
        raise ValueError("cannot convert a null QImage")
    if qimage.hasAlphaChannel():
        converted, mode = qimage.convertToFormat(QImage.Format.Format_RGBA8888), "RGBA"
    else:
        converted, mode = qimage.convertToFormat(QImage.Format.Format_RGB888), "RGB"
    width, height, stride = converted.width(), converted.height(), converted.bytesPerLine()
    raw = bytes(converted.constBits())[: stride * height]  # rows may be padded to 4 bytes: keep the stride
    return Image.frombuffer(mode, (width, height), raw, "raw", mode, stride, 1).copy()
