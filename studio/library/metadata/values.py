"""Keys, limits and small defensive conversions shared by every reader and writer (values come from
untrusted files: a bad one becomes None, never an exception)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

STUDIO_KEY = "latent-studio"
"""PNG iTXt key (and ``app`` value) of our JSON."""
PARAMETERS_KEY = "parameters"
"""PNG text key of the A1111 text."""
APP_NAME = "latent-studio"
SCHEMA_VERSION = 1

MAX_TEXT_BYTES = 1 << 20
"""A single text entry larger than this (1 MiB) is ignored: no real prompt or graph comes close."""
MAX_TOTAL_TEXT_BYTES = 8 << 20
MAX_TEXT_ENTRIES = 64
RAW_LIMIT = 64 * 1024
"""Characters kept per entry in :attr:`ImageMetadata.raw` (ComfyUI workflows can be large)."""
MAX_GRAPH_NODES = 10_000
MAX_SEGMENTS = 4096
"""``Key: value`` segments read from one parameters line (real ones have a few dozen)."""
MAX_TRAILING_LINES = 64
"""How far from the end the ``Steps:`` line is looked for."""
MAX_PNG_CHUNKS = 200_000
JPEG_EXIF_LIMIT = 65533
"""Largest EXIF payload a JPEG APP1 segment can carry (Pillow refuses more)."""

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_SOFTWARE = 0x0131
TAG_EXIF_IFD = 0x8769
TAG_USER_COMMENT = 0x9286

UC_UNICODE = b"UNICODE\x00"
UC_ASCII = b"ASCII\x00\x00\x00"
UC_JIS = b"JIS\x00\x00\x00\x00\x00"
UC_UNDEFINED = b"\x00" * 8

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KNOWN_KEYS = frozenset(
    {STUDIO_KEY, PARAMETERS_KEY, "prompt", "workflow", "invokeai_metadata", "sd-metadata"}
)


class MetadataError(ValueError):
    """The file is not a readable image; the message is one line naming the file."""


_INT_RE = re.compile(r"[+-]?\d{1,40}")


def as_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        number = as_float(text)
        if number is not None and number.is_integer():
            return int(number)
    return None


def as_float(value: Any) -> float | None:
    """A finite float from a number or a short numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def fmt_number(value: Any) -> str:
    """Number formatting for the A1111 text: 7.0 -> "7", 7.5 -> "7.5", 0.1 -> "0.1"."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


def truncate(text: str, limit: int = RAW_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [truncated, {len(text)} characters]"


def safe_json(text: str | None) -> Any:
    """Parse JSON text of sane size; None on any problem (bad syntax, huge numbers, deep nesting)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_BYTES:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def scalar_extras(data: Mapping[str, Any], skip: Iterable[str], limit: int = 48) -> dict[str, str]:
    """Top-level scalars of a tool's JSON as display strings (bounded)."""
    skipped = set(skip)
    extra: dict[str, str] = {}
    for key, value in data.items():
        if len(extra) >= limit:
            break
        if key in skipped or not isinstance(key, str):
            continue
        if isinstance(value, bool | int | float) or (isinstance(value, str) and value):
            extra[key] = truncate(fmt_number(value), 1024)
    return extra
