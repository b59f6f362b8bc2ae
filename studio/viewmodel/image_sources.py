"""Where an init image comes from: what a drop or the clipboard offers, read into candidates, and how
each candidate is decoded (in the background) into an upright RGB image.

What is accepted, and what is refused
    * Local files (file-manager drops, ``file://`` URLs, the Open dialog).  With several files the first
      one that loads is used (the canvas says so); folders are skipped.
    * Image data (browsers, image editors, screenshots on the clipboard): raw encoded bytes under an
      ``image/*`` or ``application/octet-stream`` format first, because they are the original file
      (EXIF orientation included); then Qt's decoded ``imageData()``; then ``data:image/...`` URLs.
    * A web (or other remote) URL alone is refused with :data:`WEB_REFUSAL`.  Nothing here touches
      the network: a download would block or need a progress UI, could be huge, and fetching
      arbitrary URLs from a drag is a privacy leak.  Browsers almost always send the pixels as well.
    Every file and every encoded buffer goes through :func:`studio.library.images.load_image`, so the
    pixel limit, EXIF orientation and mode conversion are the same as everywhere else; a QImage is
    measured against the same limit before it is converted.

QtCore and QtGui only (``QMimeData``, ``QImage``): the data is copied out of a drop or the clipboard in
the GUI thread, while they still hold it; decoding is a plain function for a background thread.
"""

from __future__ import annotations

import base64
import io
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage, QPixmap

from studio.library.images import ImageLoadError, load_image, to_rgb
from studio.library.masks import transparency
from studio.worker.qimage import qimage_to_pil

__all__ = [
    "decode_with_transparency",
    "FOLDER_REFUSAL",
    "NOTHING_USABLE",
    "WEB_REFUSAL",
    "Candidate",
    "ImageRequest",
    "decode_candidate",
    "drag_verdict",
    "file_request",
    "is_dir",
    "request_from_mime",
]

WEB_REFUSAL = "Images from the web can't be fetched: save it first, or drag the image itself"
FOLDER_REFUSAL = "Folders can't be used as an image: drop an image file"
NOTHING_USABLE = "Nothing to use here: drop an image file or an image, or copy one to the clipboard"
_WEB_SCHEMES = {"http", "https", "ftp", "ftps"}

MAX_FILE_CANDIDATES = 16
"""Several dropped files are tried in order until one loads; a bound keeps a drop of a whole photo
library from queueing thousands of attempts (each failure is quick: headers only)."""

MAX_RAW_FORMATS = 3
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


@dataclass(frozen=True)
class Candidate:
    """One thing that may decode to an image: a local path, encoded bytes, or a QImage."""

    kind: str  # "path" | "bytes" | "qimage"
    data: str | bytes | QImage
    label: str  # how messages name it, and the source label once loaded


@dataclass(frozen=True)
class ImageRequest:
    """Candidates, best first: the first one that decodes is the image."""

    candidates: tuple[Candidate, ...]
    dropped_files: int = 0  # local items dropped (files and folders), for the "first only" note


def file_request(path: str | Path) -> ImageRequest:
    text = str(path)
    return ImageRequest((Candidate("path", text, text),))


def is_dir(path: str) -> bool:
    try:
        return Path(path).is_dir()
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# What a drop or the clipboard offers
# --------------------------------------------------------------------------------------------------


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


def drag_verdict(mime: QMimeData | None) -> str | None:
    """Whether a drag is worth accepting, from its formats alone (no data is read: this runs on every
    drag-enter).  ``None``: plausible.  A string: refuse, and say this (empty: refuse silently)."""
    if mime is None:
        return ""
    local, data_urls, remote = _split_urls(mime)
    if any(not is_dir(p) for p in local):
        return None
    if _raster_formats(mime) or mime.hasImage() or data_urls:
        return None
    if local:
        return FOLDER_REFUSAL
    if remote:
        return _remote_refusal(remote)
    return ""


def request_from_mime(mime: QMimeData | None, origin: str) -> ImageRequest | str:
    """Every usable candidate in ``mime``, best first, or the reason there is none.

    Data is copied out here, in the GUI thread, while the drop or clipboard still holds it.  `origin`
    ("dropped", "clipboard") names the image data in messages and labels.
    """
    if mime is None:
        return NOTHING_USABLE
    local, data_urls, remote = _split_urls(mime)
    candidates: list[Candidate] = []
    files = [p for p in local if not is_dir(p)]
    candidates += [Candidate("path", p, p) for p in files[:MAX_FILE_CANDIDATES]]
    known_good = False
    for fmt in _raster_formats(mime)[:MAX_RAW_FORMATS]:
        raw = bytes(mime.data(fmt).data())
        if raw:
            candidates.append(Candidate("bytes", raw, f"{origin} image ({fmt.split(';')[0]})"))
            known_good = known_good or fmt.lower() in _PREFERRED_FORMATS
    # Qt's imageData() decodes external data right here, in the GUI thread: only a fallback for
    # drags that offer no format Pillow is known to read.
    if mime.hasImage() and not known_good:
        value = mime.imageData()
        if isinstance(value, QPixmap):
            value = value.toImage()
        if isinstance(value, QImage) and not value.isNull():
            candidates.append(Candidate("qimage", QImage(value), f"{origin} image"))
    for text in data_urls:
        raw = _decode_data_url(text)
        if raw:
            candidates.append(Candidate("bytes", raw, f"{origin} image (data: URL)"))
    if candidates:
        return ImageRequest(tuple(candidates), dropped_files=len(local))
    if local:
        return FOLDER_REFUSAL
    if remote:
        return _remote_refusal(remote)
    return NOTHING_USABLE


# --------------------------------------------------------------------------------------------------
# Decoding (any thread)
# --------------------------------------------------------------------------------------------------


def decode_candidate(candidate: Candidate, max_pixels: int) -> Image.Image:
    """The candidate as an upright RGB image; ImageLoadError with a one-line message naming it."""
    return decode_with_transparency(candidate, max_pixels)[0]


def decode_with_transparency(candidate: Candidate, max_pixels: int) -> tuple[Image.Image, Image.Image | None]:
    """The candidate as an upright RGB image (transparency on white), and where it was see-through as a
    mask (:func:`studio.library.masks.transparency`; None when opaque): a picture with holes erased in
    an image editor asks for them to be inpainted. ImageLoadError with a one-line message naming it."""
    if candidate.kind == "qimage":
        qimage = candidate.data
        assert isinstance(qimage, QImage)
        width, height = qimage.width(), qimage.height()
        if width * height > max_pixels:  # refused before any conversion
            raise ImageLoadError(
                f"{candidate.label}: image is too large ({width}x{height} = {width * height:,} "
                f"pixels; the limit is {max_pixels:,})"
            )
        try:
            decoded = qimage_to_pil(qimage)
        except ValueError:
            raise ImageLoadError(f"{candidate.label}: the image data could not be read") from None
        return to_rgb(decoded), transparency(decoded)
    if candidate.kind == "path":
        source: str | io.BytesIO = str(candidate.data)
    else:
        raw = candidate.data
        assert isinstance(raw, bytes)
        source = io.BytesIO(raw)
        source.name = candidate.label  # type: ignore[attr-defined]  # load_image names it in messages
    holes: list[Image.Image | None] = []

    def split(image: Image.Image) -> Image.Image:
        holes.append(transparency(image))
        return to_rgb(image)

    image = load_image(source, max_pixels=max_pixels, convert=split)
    return image, holes[0] if holes else None
