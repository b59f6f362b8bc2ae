"""JSON from model files, parsed defensively: they come from strangers.

Python's ``json`` module is fine with well-formed input but has three soft spots for crafted input, each
of which has crashed the app (fuzzing): deep nesting recurses until a ``RecursionError`` (not a
``ValueError``), the non-standard ``NaN`` / ``Infinity`` literals become floats that later overflow an
``int()``, and huge integer literals cost quadratic time to convert. `loads` checks the nesting depth
with a linear scan *before* parsing, refuses the literals where the format has no use for them, caps
integer literals at 20 digits (a 64-bit unsigned integer) and reports every problem as one `JSONRefused`
(a ``ValueError``) whose message says what is wrong, for the caller to prefix with the file's name.

Standard library only (the library layer): model files are read before any model is loaded (window
pickers, ``studio models``), and image metadata uses the same depth check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["JSONRefused", "kind", "loads", "nesting_problem", "shown"]

MAX_INT_DIGITS = 20  # 2**64 - 1 has 20 digits; nothing in a model file needs more

MAX_BRACKETS = 4_000_000  # a 1M-token tokenizer.json has about 2M, a safetensors header 3 per tensor

# A JSON string, escapes included; an unterminated one runs to the end (so that the scan stays linear
# instead of retrying from every later quote). On UTF-8 bytes: no multi-byte character contains a quote.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")
_CLOSES = {ord("]"): ord("["), ord("}"): ord("{")}


class JSONRefused(ValueError):
    """JSON we will not parse (or did not parse), with a one-line reason that names no file."""


def nesting_problem(data: bytes, max_depth: int) -> str | None:
    """Why the JSON in `data` (UTF-8) cannot be parsed safely: nested deeper than `max_depth`, brackets
    that do not match, far more structure than any model file has. None when it can.

    Linear and cheap: strings are cut out and everything but brackets deleted (both at C speed), and the
    few brackets left (thousands in a real file) are walked with a stack that stops at the first problem.
    """
    skeleton = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if len(skeleton) > MAX_BRACKETS:
        return f"holds {len(skeleton):,} brackets, far more structure than any model file has"
    stack: list[int] = []
    for byte in skeleton:
        if byte in _OPEN:
            stack.append(byte)
            if len(stack) > max_depth:
                return f"is nested more than {max_depth} levels deep"
        elif not stack or stack.pop() != _CLOSES[byte]:
            return "is not valid JSON (brackets do not match)"
    return "is not valid JSON (brackets do not match)" if stack else None


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"holds {name}, which is not a number JSON allows")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONRefused(f"holds an integer of {len(digits.lstrip('-'))} digits")
    return int(digits)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONRefused(f"names {key[:60]!r} twice")
        result[key] = value
    return result


def loads(
    data: bytes | str,
    *,
    max_depth: int,
    allow_constants: bool = True,
    unique_keys: bool = False,
) -> Any:
    """`data` (UTF-8 bytes, or text) parsed as JSON, or `JSONRefused` saying why not.

    `allow_constants`: accept ``NaN``, ``Infinity`` and ``-Infinity`` (diffusers writes ``-Infinity`` for
    some scheduler settings; a safetensors header has no use for them). `unique_keys`: refuse an object
    that names a key twice (``json`` keeps the last one silently, which could hide a second tensor entry).
    """
    if isinstance(data, str):
        text, data = data, data.encode("utf-8", "surrogatepass")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRefused(f"is not UTF-8 text (invalid byte at offset {exc.start})") from None
    problem = nesting_problem(data, max_depth)
    if problem:
        raise JSONRefused(problem)
    options: dict[str, Callable[..., Any]] = {"parse_int": _parse_int}
    if not allow_constants:
        options["parse_constant"] = _refuse_constant
    if unique_keys:
        options["object_pairs_hook"] = _unique_object
    try:
        return json.loads(text, **options)
    except JSONRefused:
        raise
    except RecursionError:  # not reachable after the scan, kept so that no parse can ever crash a caller
        raise JSONRefused(f"is nested more than {max_depth} levels deep") from None
    except ValueError as exc:
        raise JSONRefused(f"is not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def kind(value: Any) -> str:
    """How a JSON value is named in a message ("a number", "a list", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def shown(value: Any, limit: int = 60) -> str:
    """A JSON value in a message, cut short: strings quoted, a modest whole float as an integer (1e9 reads
    as 1000000000), anything else as JSON writes it (true, null, Infinity, 1e+30)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
