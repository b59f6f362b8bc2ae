"""Untrusted text made harmless: shown with visible escapes (labels, terminal) or cleaned for an editor."""

from __future__ import annotations

import json

import pytest

from studio.library.display import BIDI_CONTROLS, printable, strip_controls

HOSTILE = {
    "colour escape": ("p\x1b[31mRED", "p\\x1b[31mRED"),
    "title escape with bell": ("\x1b]0;title\x07x", "\\x1b]0;title\\x07x"),
    "carriage return hides the start": ("safe\rEVIL", "safe\\rEVIL"),
    "backspaces": ("ab\x08\x08cd", "ab\\x08\\x08cd"),
    "right-to-left override": ("abc\u202etxt.exe", "abc\\u202etxt.exe"),
    "isolate": ("\u2067x\u2069", "\\u2067x\\u2069"),
    "C1 control (CSI)": ("a\x9b31mb", "a\\x9b31mb"),
    "NUL and DEL": ("a\x00b\x7f", "a\\x00b\\x7f"),
    "line and paragraph separators": ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
    "lone surrogate": ("bad \ud800", "bad \\ud800"),
    "zero-width space": ("a\u200bb", "a\\u200bb"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_printable_makes_every_harmful_character_visible(name: str) -> None:
    text, expected = HOSTILE[name]
    shown = printable(text)
    assert shown == expected
    assert shown.isprintable() and shown.isascii()  # nothing left that acts on a terminal or a layout
    shown.encode("utf-8")


def test_printable_keeps_ordinary_text_and_optionally_line_breaks() -> None:
    ordinary = "a watercolor fox, (autumn:1.2) <lora:x:0.5> — 猫 ñ 😀 👩\u200d💻 می\u200cخواهم"
    assert printable(ordinary) == ordinary  # joiners only shape letters and emoji: kept
    assert printable("one\ntwo\tx") == "one\\ntwo\\tx"
    assert printable("one\ntwo\r", keep_newlines=True) == "one\ntwo\\r"
    assert printable(42) == "42" and printable(None) == "None"


def test_strip_controls_removes_what_acts_and_counts_it() -> None:
    text, removed = strip_controls("p\x1b[31mRED\x07 \u202eabc\u202c\x00\x9b")
    assert (text, removed) == ("p[31mRED abc", 6)
    for char in BIDI_CONTROLS:
        assert strip_controls(f"a{char}b") == ("ab", 1)


def test_strip_controls_keeps_the_text_a_user_could_mean() -> None:
    prompt = "line one\n\tindented, (word:1.2), 猫 😀 👩\u200d💻 \u200e\u200f marks kept"
    assert strip_controls(prompt) == (prompt, 0)
    # Line breaks of every convention become line feeds; they are not counted as removed.
    assert strip_controls("a\r\nb\rc\nd") == ("a\nb\nc\nd", 0)


def test_strip_controls_replaces_lone_surrogates() -> None:
    text, changed = strip_controls("bad \ud800 and \udcff")
    assert (text, changed) == ("bad \ufffd and \ufffd", 2)
    text.encode("utf-8")


def test_json_text_is_exact_readable_and_inert():
    from studio.library.display import json_text

    data = {"prompt": "a\x9b31m \u202eevil\x7f\u2028 日本 \ud800 \x1b[2J", "n": [1, None]}
    text = json_text(data)
    assert json.loads(text) == data  # every character comes back
    assert "日本" in text  # letters stay readable
    assert all(c not in text for c in "\x9b\u202e\x7f\u2028\x1b")
    text.encode("utf-8")  # a lone surrogate would make printing fail
