"""Untrusted text made harmless to show: metadata read from a file may carry terminal escapes
(ESC sequences that recolour, retitle or rewrite the terminal), carriage returns and backspaces that
hide what came before, bells, bidi overrides that reverse what a reader sees, and lone surrogates that
cannot be encoded at all. Every text output of metadata (the CLI's text mode, the window's labels)
passes through :func:`printable`. JSON output goes through :func:`json_text`: ``json.dumps`` escapes
only the C0 controls, and would pass C1 controls (U+009B is a CSI), DEL and bidi overrides raw.

Text that goes into an editable field (a restored prompt) is different: escapes shown as ``\\x1b``
would become part of the prompt, so :func:`strip_controls` removes the harmful characters instead and
says how many, for the caller to tell the user.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

__all__ = ["BIDI_CONTROLS", "first_line", "json_text", "printable", "strip_controls", "typed_first_line"]

BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""The bidi embedding, override and isolate controls (LRE RLE PDF LRO RLO, LRI RLI FSI PDI): they
reorder the characters around them, so "txt.exe" can be shown as "exe.txt".  The invisible marks
LRM / RLM / ALM only nudge neutral characters and are kept."""

# C0 controls but tab and line feed (carriage returns are line breaks by then), DEL, C1 controls, and
# the bidi controls above.
_UNWANTED_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + BIDI_CONTROLS + "]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_JOINERS = ("\u200c", "\u200d")


def _harmful(char: str) -> bool:
    """Control (Cc), format (Cf: bidi overrides, zero-width spaces), surrogate (Cs), and the line and
    paragraph separators (Zl, Zp) that some terminals and widgets break lines at.

    The zero-width (non-)joiners are format characters too, but they only choose how neighbouring
    letters join (Persian, Indic scripts) and build emoji sequences: escaping them would garble
    ordinary text, and they can neither move the cursor nor reorder what is shown."""
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") and char not in _JOINERS


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with every harmful character written as a visible escape (``\\x1b``, ``\\u202e``), so
    that what is shown is exactly what the file holds, yet nothing acts on the terminal or the layout.

    ``keep_newlines`` keeps line feeds as line breaks (for multi-line views in the window)."""
    text = str(text)
    if text.isprintable():  # the common case: one C-level scan, no copy
        return text
    return "".join(
        _escape(char) if _harmful(char) and not (keep_newlines and char == "\n") else char for char in text
    )


def strip_controls(text: str) -> tuple[str, int]:
    """`text` fit for an editable field, and the number of characters removed from it.

    Line breaks are kept (CR LF and lone CR become LF, not counted), as are tabs and every printable
    character; removed are the other C0 and C1 control characters (ESC, BEL, BS, NUL, ...) and the
    bidi controls of :data:`BIDI_CONTROLS`; a lone surrogate, which no widget or file can hold,
    becomes U+FFFD (counted too).  Everything a user could have meant to write is left as it was.
    """
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    text, removed = _UNWANTED_RE.subn("", text)
    text, replaced = _SURROGATE_RE.subn("\ufffd", text)
    return text, removed + replaced


# What json.dumps(ensure_ascii=False) leaves raw that can act on a terminal or reorder text: DEL, the C1
# controls, the bidi controls, the line and paragraph separators, and lone surrogates (unencodable).
_JSON_UNSAFE_RE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff" + BIDI_CONTROLS + "]")


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """`data` as JSON for a terminal or a pipe: readable (non-ASCII letters stay as they are), exact (a
    JSON reader gets every character back), and inert (every character above escaped as ``\\uXXXX``;
    they can only occur inside strings, where the escape means the same character)."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def first_line(exc: BaseException) -> str:
    """An exception as one line for a message: its first non-empty line, else its type's name (library
    errors are often several lines, and a message cut mid-sentence helps nobody)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def typed_first_line(exc: BaseException) -> str:
    """``Type: first line`` for failures nobody anticipated, where the type says where it came from."""
    text = first_line(exc)
    return text if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"
