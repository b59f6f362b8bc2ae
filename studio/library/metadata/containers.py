"""Collecting text entries from PNG chunks, EXIF and Pillow's info: bounded, decompression capped."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from studio.library.metadata.values import (
    KNOWN_KEYS,
    MAX_PNG_CHUNKS,
    MAX_TEXT_BYTES,
    MAX_TEXT_ENTRIES,
    MAX_TOTAL_TEXT_BYTES,
    PNG_SIGNATURE,
    TAG_EXIF_IFD,
    TAG_IMAGE_DESCRIPTION,
    TAG_MAKE,
    TAG_MODEL,
    TAG_SOFTWARE,
    TAG_USER_COMMENT,
    UC_ASCII,
    UC_JIS,
    UC_UNDEFINED,
    UC_UNICODE,
    MetadataError,
)


def decode_user_comment(data: bytes | str | None) -> str | None:
    """Decode an EXIF UserComment (8-byte charset prefix + body).

    "UNICODE" is UTF-16; the standard and piexif (what A1111 uses) write big-endian, but some tools
    write little-endian, so a BOM or the position of the zero bytes (ASCII-heavy text) decides.
    """
    if data is None:
        return None
    if isinstance(data, str):
        return data.rstrip("\x00")
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_TEXT_BYTES * 2:
        return None
    data = bytes(data)
    prefix, body = data[:8], data[8:]
    if prefix == UC_UNICODE:
        if body[:2] == b"\xfe\xff":
            encoding, body = "utf-16-be", body[2:]
        elif body[:2] == b"\xff\xfe":
            encoding, body = "utf-16-le", body[2:]
        else:
            sample = body[:4096]
            zeros_even = sample[0::2].count(0)
            zeros_odd = sample[1::2].count(0)
            encoding = "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"
        if len(body) % 2:
            body = body[:-1]
        text = body.decode(encoding, errors="replace")
    elif prefix == UC_JIS:
        text = body.decode("shift_jis", errors="replace")
    elif prefix in (UC_ASCII, UC_UNDEFINED):
        text = _decode_bytes(body)
    else:
        text = _decode_bytes(data)
    return text.rstrip("\x00")


def _decode_bytes(data: bytes) -> str:
    """UTF-8 when valid (what most tools really write), else Latin-1 (never fails)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _exif_texts(exif: Image.Exif | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    if exif is None:
        return texts
    try:
        for tag, name in (
            (TAG_IMAGE_DESCRIPTION, "ImageDescription"),
            (TAG_MAKE, "Make"),
            (TAG_MODEL, "Model"),
            (TAG_SOFTWARE, "Software"),
        ):
            value = exif.get(tag)
            if isinstance(value, bytes):
                value = _decode_bytes(value)
            if isinstance(value, str) and value.strip("\x00") and len(value) <= MAX_TEXT_BYTES:
                texts[f"exif:{name}"] = value.rstrip("\x00")
    except Exception:  # corrupt EXIF must not hide the rest
        pass
    try:
        comment = decode_user_comment(exif.get_ifd(TAG_EXIF_IFD).get(TAG_USER_COMMENT))
        if comment and comment.strip():
            texts["exif:UserComment"] = comment
    except Exception:
        pass
    return texts


def _inflate(data: bytes, limit: int) -> bytes | None:
    """zlib with an output cap (zTXt/iTXt bombs)."""
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    return None if len(out) > limit else out


def _decode_png_text(ctype: bytes, data: bytes) -> tuple[str, str] | None:
    key_bytes, sep, rest = data.partition(b"\x00")
    if not sep or not 1 <= len(key_bytes) <= 79:
        return None
    key = key_bytes.decode("latin-1")
    if ctype == b"tEXt":
        return key, _decode_bytes(rest)
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        inflated = _inflate(rest[1:], MAX_TEXT_BYTES)
        return (key, _decode_bytes(inflated)) if inflated is not None else None
    # iTXt: flag, method, language \0, translated keyword \0, text
    if len(rest) < 2:
        return None
    flag, method = rest[0], rest[1]
    parts = rest[2:].split(b"\x00", 2)
    if len(parts) != 3:
        return None
    payload = parts[2]
    if flag:
        if method != 0:
            return None
        inflated = _inflate(payload, MAX_TEXT_BYTES)
        if inflated is None:
            return None
        payload = inflated
    return key, payload.decode("utf-8", errors="replace")


def _png_texts(stream: io.BufferedIOBase | io.BytesIO, name: str) -> tuple[dict[str, str], bytes | None]:
    """Walk PNG chunks ourselves: Pillow refuses to open a file with a zTXt over its limit, and we
    want oversize or corrupt text chunks skipped, not fatal.  Returns (texts, eXIf payload)."""
    texts: dict[str, str] = {}
    exif: bytes | None = None
    total = 0
    first = True
    for _ in range(MAX_PNG_CHUNKS):
        header = stream.read(8)
        if len(header) < 8:
            break
        length, ctype = struct.unpack(">I4s", header)
        if first:
            if ctype != b"IHDR" or length != 13:
                raise MetadataError(f"{name}: not an image (corrupt PNG header)")
            first = False
        if length > 0x7FFFFFFF:
            break
        wanted = ctype in (b"tEXt", b"zTXt", b"iTXt", b"eXIf")
        if wanted and length <= MAX_TEXT_BYTES and total + length <= MAX_TOTAL_TEXT_BYTES:
            data = stream.read(length)
            crc = stream.read(4)
            if len(data) < length or len(crc) < 4:
                break
            if zlib.crc32(ctype + data) & 0xFFFFFFFF != int.from_bytes(crc, "big"):
                continue
            total += length
            if ctype == b"eXIf":
                exif = data
                continue
            decoded = _decode_png_text(ctype, data)
            if decoded and (
                decoded[0] in texts or decoded[0] in KNOWN_KEYS or len(texts) < MAX_TEXT_ENTRIES
            ):
                texts[decoded[0]] = decoded[1]
            continue
        if ctype == b"IEND":
            break
        stream.seek(length + 4, io.SEEK_CUR)
    if first:
        raise MetadataError(f"{name}: not an image (truncated PNG)")
    return texts, exif


def _load_exif(data: bytes | None) -> Image.Exif | None:
    if not data:
        return None
    try:
        exif = Image.Exif()
        exif.load(data)
        return exif
    except Exception:  # corrupt EXIF is just "no EXIF"
        return None


def pillow_texts(image: Image.Image) -> dict[str, str]:
    """Text entries of an opened Pillow image (non-PNG files, or images handed to us)."""
    texts: dict[str, str] = {}
    info = dict(image.info or {})
    if isinstance(image, PngImagePlugin.PngImageFile):
        with contextlib.suppress(Exception):  # text chunks after IDAT are only read on load
            info.update(image.text)
    for key, value in info.items():
        if not isinstance(key, str) or (len(texts) >= MAX_TEXT_ENTRIES and key not in KNOWN_KEYS):
            continue
        if key == "comment" and isinstance(value, bytes):  # JPEG COM / GIF comment
            value = _decode_bytes(value[:MAX_TEXT_BYTES])
        if isinstance(value, str) and len(value) <= MAX_TEXT_BYTES:
            texts[key] = str(value)
    with contextlib.suppress(Exception):
        texts.update(_exif_texts(image.getexif()))
    return texts


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    return "<image data>"


def file_texts(source: str | os.PathLike[str] | bytes) -> dict[str, str]:
    name = _describe(source)
    if isinstance(source, bytes | bytearray):
        if not source:
            raise MetadataError(f"{name}: empty file")
        return _stream_texts(io.BytesIO(bytes(source)), name)
    path = Path(source)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise MetadataError(f"{name}: no such file") from None
    except OSError as exc:
        raise MetadataError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise MetadataError(f"{name}: is a directory, not an image")
    if info.st_size == 0:
        raise MetadataError(f"{name}: empty file")
    try:
        with open(path, "rb") as stream:
            return _stream_texts(stream, name)
    except OSError as exc:
        raise MetadataError(f"{name}: cannot read ({exc.strerror or exc})") from None


def _stream_texts(stream: Any, name: str) -> dict[str, str]:
    signature = stream.read(8)
    if signature == PNG_SIGNATURE:
        texts, exif_data = _png_texts(stream, name)
        texts.update(_exif_texts(_load_exif(exif_data)))
        return texts
    stream.seek(0)
    try:
        with Image.open(stream) as image:
            return pillow_texts(image)
    except UnidentifiedImageError:
        raise MetadataError(f"{name}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise MetadataError(f"{name}: image dimensions are too large to inspect safely") from None
    except MetadataError:
        raise
    except Exception as exc:  # corrupt headers raise all sorts of things in Pillow
        raise MetadataError(f"{name}: not a readable image ({exc})") from None
