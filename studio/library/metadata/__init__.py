"""Generation metadata: write ours (A1111 ``parameters`` text + our JSON), read ours and other tools'.

Why both formats: the AUTOMATIC1111 ``parameters`` text is what the ecosystem reads (A1111 "PNG Info",
Civitai, image browsers), while our JSON (``latent-studio`` key) carries everything needed to
regenerate the same pixels (model revision, scheduler config, dtype, device ...), which the A1111
layout cannot express without loss.

Where things go:

* PNG: ``parameters`` as ``tEXt`` when the text is plain ASCII, else ``iTXt`` (UTF-8); our JSON as
  ``iTXt`` ``latent-studio``.  We write ``tEXt`` only for ASCII (the brief said "latin-1") because
  third-party writers often put UTF-8 bytes into ``tEXt``; readers (ours included) then have to
  guess, and ASCII is the one case where every guess agrees.
* JPEG / WebP: EXIF ``UserComment`` (0x9286) = ``b"UNICODE\\0"`` + the A1111 text in UTF-16 big-endian,
  byte for byte what A1111 writes through ``piexif.helper.UserComment.dump(text, encoding="unicode")``;
  our JSON (ASCII-only, ``ensure_ascii``) in ``ImageDescription`` (0x010E), and ``Software`` (0x0131) =
  ``latent-studio <version>``.  ImageDescription was chosen over MakerNote (tools rewrite or drop
  maker notes whose layout they do not know) and XPComment (Windows-only, shown in Explorer).  A JPEG
  APP1 segment holds at most 65,533 bytes: when both do not fit, the JSON is dropped first (the
  A1111 text still lets people reuse the parameters), then the comment.

Everything read is untrusted: nothing is evaluated, text entries over :data:`MAX_TEXT_BYTES` are
ignored, decompression is capped, JSON errors / absurd nesting give ``None`` and the readers return
partial data rather than raising.  Only "this is not a readable image" raises :class:`MetadataError`.
What comes out is valid Unicode (lone surrogates, which JSON's ``\\ud800`` escape can produce, become
U+FFFD), with fields of their declared types within plausible ranges (else None), so it can always be
printed, stored in SQLite and serialised as JSON.  Writing replaces lone surrogates the same way.

The package, one module per concern: ``values`` (keys, limits, defensive conversions), ``record`` (the
result type), ``a1111`` / ``ours`` / ``comfyui`` / ``invokeai`` (each tool's format), ``containers`` (text
entries out of PNG chunks and EXIF), ``reading`` (which tool, and its fields) and ``writing``.
"""

from __future__ import annotations

from studio.library.metadata.a1111 import format_parameters, parse_parameters, split_scheduler
from studio.library.metadata.containers import decode_user_comment
from studio.library.metadata.ours import studio_json
from studio.library.metadata.reading import read_metadata
from studio.library.metadata.record import ImageMetadata
from studio.library.metadata.values import (
    JPEG_EXIF_LIMIT,
    MAX_TEXT_BYTES,
    PARAMETERS_KEY,
    STUDIO_KEY,
    MetadataError,
)
from studio.library.metadata.writing import exif_for, pnginfo_for

__all__ = [
    "JPEG_EXIF_LIMIT",
    "MAX_TEXT_BYTES",
    "PARAMETERS_KEY",
    "STUDIO_KEY",
    "ImageMetadata",
    "MetadataError",
    "decode_user_comment",
    "exif_for",
    "format_parameters",
    "parse_parameters",
    "pnginfo_for",
    "read_metadata",
    "split_scheduler",
    "studio_json",
]
