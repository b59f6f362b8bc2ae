"""Writers: PNG text chunks and JPEG/WebP EXIF carrying the A1111 text and our JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PIL import Image, PngImagePlugin

from studio.library.metadata.a1111 import format_parameters
from studio.library.metadata.ours import studio_json
from studio.library.metadata.values import (
    APP_NAME,
    PARAMETERS_KEY,
    STUDIO_KEY,
    TAG_EXIF_IFD,
    TAG_IMAGE_DESCRIPTION,
    TAG_SOFTWARE,
    TAG_USER_COMMENT,
    UC_UNICODE,
    as_str,
    clean_text,
)


def pnginfo_for(meta: Mapping[str, Any]) -> PngImagePlugin.PngInfo:
    """PNG text chunks for our metadata: ``parameters`` (tEXt if ASCII, else iTXt) + iTXt ``latent-studio``.

    Raises TypeError/ValueError when ``meta`` is not valid JSON (NaN, arbitrary objects): a file
    whose metadata cannot be read back is a bug to surface, not to hide.  A lone surrogate in a
    string (a prompt pasted from a broken source) is not such a bug: it is written as U+FFFD, since
    the image itself is fine and UTF-8 cannot hold it.
    """
    info = PngImagePlugin.PngInfo()
    text = format_parameters(meta)
    if text.isascii():
        info.add_text(PARAMETERS_KEY, text)
    else:
        info.add_itxt(PARAMETERS_KEY, text)
    info.add_itxt(STUDIO_KEY, studio_json(meta))
    return info


def exif_for(meta: Mapping[str, Any], *, max_bytes: int | None = None) -> Image.Exif:
    """EXIF for JPEG/WebP: UserComment = A1111 text (UNICODE, UTF-16BE, as A1111 writes it),
    ImageDescription = our JSON (ASCII), Software = "latent-studio <version>".

    With ``max_bytes`` (JPEG: :data:`JPEG_EXIF_LIMIT`) the JSON, then the comment, are dropped when
    the whole does not fit, so saving never fails on a very long prompt.  Lone surrogates in strings
    are written as U+FFFD (UTF-16 cannot hold them either).
    """
    text = format_parameters(meta)
    document = studio_json(meta, ascii_only=True)
    version = as_str(meta.get("app_version"))
    version = clean_text(version) if version else None

    def build(with_json: bool, with_comment: bool) -> Image.Exif:
        exif = Image.Exif()
        exif[TAG_SOFTWARE] = f"{APP_NAME} {version}" if version else APP_NAME
        if with_json:
            exif[TAG_IMAGE_DESCRIPTION] = document
        if with_comment:
            exif.get_ifd(TAG_EXIF_IFD)[TAG_USER_COMMENT] = UC_UNICODE + text.encode("utf-16-be")
        return exif

    for with_json, with_comment in ((True, True), (False, True), (False, False)):
        exif = build(with_json, with_comment)
        if max_bytes is None or len(exif.tobytes()) <= max_bytes:
            return exif
    return exif
