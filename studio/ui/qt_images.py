"""PIL <-> Qt image conversions, kept in one place so the copies and formats are right once.

Both directions make deep copies on purpose: a QImage built on a Python ``bytes`` buffer would read
freed memory once the buffer is collected, and images cross threads (decoded in a worker, painted in the
GUI thread).  QImage (unlike QPixmap) may be used from any thread, so both helpers are thread-safe.
"""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QImage

from studio.library.images import to_rgb

__all__ = ["pil_to_qimage", "qimage_to_png_bytes"]


def pil_to_qimage(image: Image.Image) -> QImage:
    """A detached RGB888 QImage with the pixels of ``image`` (any mode; converted with ``to_rgb``)."""
    rgb = to_rgb(image)
    data = rgb.tobytes("raw", "RGB")
    view = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return view.copy()  # own the pixels: `data` dies with this frame


def qimage_to_png_bytes(image: QImage) -> bytes:
    """``image`` encoded as PNG, alpha kept, without compression.

    Used to hand clipboard / drag-and-drop QImages to :func:`studio.library.images.load_image`, so they
    get the same size limit and mode conversion as files.  Quality 100 means zlib level 0 in Qt's PNG
    writer: the bytes are decoded once, immediately, so spending time compressing them would be waste.
    Returns ``b""`` when Qt cannot encode the image (a null image).
    """
    if image.isNull():
        return b""
    array = QByteArray()
    buffer = QBuffer(array)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    ok = image.save(buffer, "PNG", 100)
    buffer.close()
    return bytes(array.data()) if ok else b""
