"""Hostile strings and JSON values: what a crafted file can put where we expect a prompt, a number, a name."""

from __future__ import annotations

import json
import random

TERMINAL = [
    "p\x1b[31mRED",
    "\x1b]0;title\x07",
    "\x1b[2J\x1b[H",
    "a\rOVERWRITE",
    "back\x08\x08\x08space",
    "bell\x07",
    "\u202eevil\u202c",
    "\u2066isolate\u2069",
    "zero\u200bwidth",
    "line\u2028sep",
    "nul\x00byte",
    "\x9b31mC1",
]
TEXT = [
    *TERMINAL,
    "",
    " ",
    "a castle on a hill",
    "(((((((((((((((((((((((((x:1e30)))",
    "[" * 900 + "x" + "]" * 900,
    "((x:" + "9" * 400 + "))",
    "emoji 🏰🐉" * 20,
    "RTL مرحبا עברית",
    "x" * 70_000,
    "Steps: -1, Seed: 99999999999999999999999, Size: 0x0",
    "Negative prompt: \nSteps: nan",
    "{seed:999999999999}",
    "../../etc/passwd",
    "CON",
    "-rf",
]
NUMBERS = [0, -1, 1, 7, 2**31, 2**32, 2**63, 2**64, 10**30, -(10**30), 1.5, -0.0, 1e308, 1e-308]
JSON_LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "0." + "0" * 5000 + "1"]


def text(rng: random.Random) -> str:
    return rng.choice(TEXT) if rng.random() < 0.8 else "".join(rng.sample(TERMINAL, 3))


def value(rng: random.Random, depth: int = 0) -> object:
    """Any JSON value, often the wrong type for where it lands."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(NUMBERS)
    if kind == 1:
        return text(rng)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.randrange(-5, 2000)
    if kind == 4:
        return rng.uniform(-100, 100)
    if kind == 5:
        return "5"
    if kind == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {text(rng)[:20]: value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return {"a": 1}


def json_text(data: object, rng: random.Random) -> str:
    """`data` as JSON text, sometimes with one value replaced by a literal Python's json writes but other
    tools refuse (NaN), a number past every limit, a lone surrogate escape, or nesting past any stack."""
    body = json.dumps(data, ensure_ascii=rng.random() < 0.5)
    trick = rng.randrange(8)
    marker = '"a castle on a hill"'
    if marker not in body or trick >= 5:
        return body
    if trick == 0:
        return body.replace(marker, rng.choice(JSON_LITERALS), 1)
    if trick == 1:
        return body.replace(marker, '"bad \\ud800 surrogate"', 1)
    if trick == 2:
        depth = rng.choice([900, 5000, 100_000])
        return body.replace(marker, "[" * depth + "]" * depth, 1)
    if trick == 3:
        return body.replace(marker, '{"a":' * 2000 + "1" + "}" * 2000, 1)
    return body.replace(marker, '"\\u001b[31mred\\u202e"', 1)
