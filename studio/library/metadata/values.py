"""Keys, limits and small defensive conversions shared by every reader and writer (values come from
untrusted files: a bad one becomes None, never an exception).

Two hazards need care beyond "wrong type": JSON's ``\\ud800`` escape is valid JSON yet decodes to a
lone surrogate, a ``str`` that cannot be encoded to UTF-8 (so it cannot be printed, stored in SQLite
or written back); and nesting deep enough to exhaust Python's stack in whatever walks the result
later (``dataclasses.asdict``, ``copy.deepcopy``, ``json.dumps``).  :func:`clean_text` and
:func:`safe_json` remove both at the source.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from studio.library.safe_json import nesting_problem

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
MAX_JSON_DEPTH = 64
"""Deepest JSON nesting read: ours is 3 levels, ComfyUI workflows and InvokeAI documents under 10.
Deeper documents are ignored whole, decided before parsing so the outcome never depends on how much
of Python's stack the caller happens to use."""
MAX_INT_DIGITS = 40
"""Longer JSON integers become None: no seed or size needs more, and Python refuses to convert
integers over 4300 digits to or from text at all (``sys.set_int_max_str_digits``)."""
MAX_NAME_CHARS = 4096
"""Model and scheduler names (or paths) longer than this are not names: dropped."""
MAX_EXTRA_CHARS = 4096
"""Characters kept per :attr:`ImageMetadata.extra` value."""

# Plausible values of the request fields.  Wider than the engine accepts (it gives its own message when
# a restored value is out of its range), narrow enough that nonsense (-1 px, 1e30 steps) is dropped.
STEPS_RANGE = (1, 10_000)
SIDE_RANGE = (1, 1 << 16)
SEED_RANGE = (0, (1 << 64) - 1)  # ComfyUI seeds use all 64 bits
GUIDANCE_RANGE = (0.0, 1000.0)
STRENGTH_RANGE = (0.0, 1.0)
MAX_PADDING = 8192
"""The largest "Masked area padding" read back, in px.
The blur and expand limits are in :mod:`~studio.library.masks`."""
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


def clean_text(text: str) -> str:
    """`text` as valid Unicode: each lone surrogate becomes U+FFFD (a surrogate pair split into two
    code points is joined back into its character).  Everything else is kept exactly."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_value(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like structure with every string (keys too) passed through :func:`clean_text`.

    Mappings become dicts, lists and tuples keep their type, other values are returned as they are.
    Containers nested deeper than :data:`MAX_JSON_DEPTH` become None (:func:`safe_json` rejects such
    documents before parsing; this keeps the walk itself bounded for any other caller).
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_JSON_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {
            clean_text(key) if isinstance(key, str) else key: clean_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(clean_value(item, depth + 1) for item in value)
    return value


def bounded_int(value: Any, low: int, high: int) -> int | None:
    """An int (not a bool) within [low, high]; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def bounded_float(value: Any, low: float, high: float) -> float | None:
    """A float within [low, high] from an int or a float (NaN and infinities excluded); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if low <= number <= high else None


def bounded_choice(value: Any, choices: tuple[str, ...]) -> str | None:
    """`value` when it is exactly one of `choices` (a plain str); None otherwise."""
    return value if type(value) is str and value in choices else None


_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(value: Any) -> str | None:
    """A SHA-256 digest as 64 lowercase hex characters; None for anything else (a hash is used to find
    a stored file by name, so nothing but hex digits may get through)."""
    return value if type(value) is str and len(value) == 64 and _SHA256_RE.fullmatch(value) else None


def bounded_sides(value: Any, high: int) -> tuple[int, int, int, int] | None:
    """Exactly four ints (not bools) in [0, high] from a list or tuple, as a tuple; None otherwise."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    left, top, right, bottom = (bounded_int(side, 0, high) for side in value)
    if left is None or top is None or right is None or bottom is None:
        return None
    return left, top, right, bottom


def bounded_name(value: Any, limit: int = MAX_NAME_CHARS) -> str | None:
    """A non-empty str of at most `limit` characters, as valid Unicode; None otherwise."""
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return clean_text(value)


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
    """`text` in at most `limit` characters, the note of its real length included: readers and the final
    check both bound text, and a second cut must leave the first one (and its count) as it was."""
    if len(text) <= limit:
        return text
    note = f"… [truncated, {len(text)} characters]"
    return text[: max(0, limit - len(note))] + note


def _parse_int(text: str) -> int | None:
    return int(text) if len(text) <= MAX_INT_DIGITS else None


def _parse_float(text: str) -> float | None:
    number = float(text)  # never fails on a JSON number literal; 1e999 gives inf
    return number if math.isfinite(number) else None


def _parse_constant(_name: str) -> None:
    """NaN, Infinity and -Infinity are not JSON; Python accepts them, we read them as missing."""
    return None


def safe_json(text: str | None) -> Any:
    """Parse JSON text of sane size into plain, valid values; None on any problem.

    Too long or too deeply nested text is not parsed at all.  In what is parsed, integers of more than
    :data:`MAX_INT_DIGITS` digits, numbers out of float range and NaN / Infinity become None (the rest
    of the document stays), and lone surrogates in strings and keys become U+FFFD.  So whatever comes
    out encodes to UTF-8, serialises with ``json.dumps(allow_nan=False)`` and can be walked recursively.
    """
    if not isinstance(text, str) or len(text) > MAX_TEXT_BYTES:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        if nesting_problem(stripped.encode("utf-8", "surrogatepass"), MAX_JSON_DEPTH):
            return None
        data = json.loads(
            stripped, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
        return clean_value(data)
    except (ValueError, RecursionError):
        return None


_INT_DISPLAY_LIMIT = 10**MAX_INT_DIGITS


def display_value(value: Any, limit: int = MAX_EXTRA_CHARS) -> str | None:
    """A scalar as bounded, valid display text; None for containers, None and empty strings.

    Ints too long for ``str()`` (over Python's digit limit) and non-finite floats are not shown."""
    if isinstance(value, str):
        return truncate(clean_text(value), limit) if value else None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < _INT_DISPLAY_LIMIT else None
    if isinstance(value, float):
        return fmt_number(value) if math.isfinite(value) else None
    return None


def scalar_extras(data: Mapping[str, Any], skip: Iterable[str], limit: int = 48) -> dict[str, str]:
    """Top-level scalars of a tool's JSON as display strings (bounded)."""
    skipped = set(skip)
    extra: dict[str, str] = {}
    for key, value in data.items():
        if len(extra) >= limit:
            break
        if key in skipped or not isinstance(key, str) or len(key) > 200:
            continue
        shown = display_value(value, 1024)
        if shown is not None:
            extra[clean_text(key)] = shown
    return extra
