"""Decoding image files into QImages for the gallery (thumbnails and the selected image's preview), in
any thread: a QImage may be built off the GUI thread and handed to it, a QPixmap may not."""

from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader

from studio.library.images import load_image
from studio.worker.qimage import pil_to_qimage

__all__ = ["read_qimage"]


def read_qimage(path: str | os.PathLike[str], max_side: int | None = None) -> QImage:
    """Decode an image file into a QImage (any thread), EXIF orientation applied, at most `max_side`
    pixels on its longer side (smoothly scaled). Falls back to Pillow for what Qt cannot read; a null
    QImage when nothing can."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if max_side and size.isValid() and max(size.width(), size.height()) > max_side:
        reader.setScaledSize(size.scaled(QSize(max_side, max_side), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        try:
            image = pil_to_qimage(load_image(path))
        except Exception:  # noqa: BLE001 - the caller reports a null image
            return QImage()
        if max_side and max(image.width(), image.height()) > max_side:
            image = image.scaled(
                max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
    return image
