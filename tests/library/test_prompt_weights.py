"""weights.nudge: the text behind Ctrl+Up / Ctrl+Down, on plain strings (no Qt).

Notation: «…» marks a selection and ‸ a cursor, in the input and in the expected output (the output's
selection is what nudge returns, so a second press continues from there).
"""

from __future__ import annotations

import random

import pytest

from studio.library.prompt_syntax import parse_prompt_attention, strip_extra_networks
from studio.library.prompt_weights import (
    MAX_WEIGHT,
    format_multiplier,
    format_weight,
    nudge,
    nudge_tag,
    word_bounds,
)

UP, DOWN = 0.1, -0.1


def mark(text: str) -> tuple[str, int, int]:
    if "‸" in text:
        i = text.index("‸")
        return text.replace("‸", ""), i, i
    start = text.index("«")
    end = text.index("»") - 1
    return text.replace("«", "").replace("»", ""), start, end


def show(text: str, start: int, end: int) -> str:
    if start == end:
        return text[:start] + "‸" + text[start:]
    return text[:start] + "«" + text[start:end] + "»" + text[end:]


def press(marked: str, delta: float = UP, times: int = 1) -> str:
    text, start, end = mark(marked)
    for _ in range(times):
        text, start, end = nudge(text, start, end, delta)
    return show(text, start, end)


@pytest.mark.parametrize(
    ("before", "delta", "after"),
    [
        # wrapping a selection or the word under the cursor
        ("a photo of a «cat»", UP, "a photo of a («cat»:1.1)"),
        ("a photo of a «cat»", DOWN, "a photo of a («cat»:0.9)"),
        ("a photo of a cat‸", UP, "a photo of a («cat»:1.1)"),
        ("‸cat", UP, "(«cat»:1.1)"),
        ("c‸at, dog", UP, "(«cat»:1.1), dog"),
        ("cat‸, dog", UP, "(«cat»:1.1), dog"),
        ("cat, ‸dog", UP, "cat, («dog»:1.1)"),
        ("«red cat», dog", UP, "(«red cat»:1.1), dog"),
        ("«cat, dog»", UP, "(«cat, dog»:1.1)"),
        # selections trimmed of spaces, commas, semicolons, newlines; widened to whole words
        ("dog«, cat, »bird", UP, "dog, («cat»:1.1), bird"),
        ("a\n«b cat\n»c", UP, "a\n(«b cat»:1.1)\nc"),
        ("a «ca»t", UP, "a («cat»:1.1)"),
        ("a c«a»t", UP, "a («cat»:1.1)"),
        ("the «sun and mo»on", UP, "the («sun and moon»:1.1)"),
        # adjusting an existing group: selection of its words, of the whole group, or cursor inside
        ("(«cat»:1.1)", UP, "(«cat»:1.2)"),
        ("«(cat:1.1)»", UP, "(«cat»:1.2)"),
        ("(c‸at:1.1)", UP, "(«cat»:1.2)"),
        ("(cat:1.‸1)", DOWN, "«cat»"),
        ("(cat:1.1)‸", UP, "(«cat»:1.2)"),
        ("‸(cat:1.1)", UP, "(«cat»:1.2)"),
        ("(«cat»:1.2), dog", DOWN, "(«cat»:1.1), dog"),
        ("(a photo of a c‸at:1.2)", UP, "(«a photo of a cat»:1.3)"),
        ("(«cat:1».2)", UP, "(«cat»:1.3)"),
        ("(«cat»: 1.5 )", UP, "(«cat»: 1.6 )"),
        ("(«cat»:1.15)", UP, "(«cat»:1.25)"),
        ("(«cat»:.5)", UP, "(«cat»:0.6)"),
        # returning to 1.0 removes the wrapper
        ("(«cat»:1.1)", DOWN, "«cat»"),
        ("(«cat»:0.9)", UP, "«cat»"),
        ("x, («red cat»:1.1), y", DOWN, "x, «red cat», y"),
        ("dog(«cat»:1.1)", DOWN, "dog «cat»"),  # unwrapping never glues two words together
        # a selection strictly inside a group's words is nested (A1111 / ComfyUI)
        ("(a «photo» of a cat:1.2)", UP, "(a («photo»:1.1) of a cat:1.2)"),
        # old-style emphasis converts: (x) = 1.1, ((x)) = 1.21, [x] = 1/1.1, snapped to the 0.1 grid
        ("(«cat»)", UP, "(«cat»:1.2)"),
        ("(«cat»)", DOWN, "«cat»"),
        ("((c‸at))", UP, "(«cat»:1.3)"),
        ("«((cat))»", UP, "(«cat»:1.3)"),
        ("[c‸at]", UP, "«cat»"),
        ("[c‸at]", DOWN, "(«cat»:0.8)"),
        ("[[«cat»]]", DOWN, "(«cat»:0.7)"),
        ("((c‸at):1.2)", UP, "((«cat»:1.2):1.2)"),
        # selections that cut a bracket pair are widened to the whole pair
        ("«(cat:1.1) d»og", UP, "(«(cat:1.1) dog»:1.1)"),
        ("(a «photo:1.1) dog»", UP, "(«(a photo:1.1) dog»:1.1)"),
        ("«(a» photo:1.1)", UP, "(«a photo»:1.2)"),
        # escaped brackets are literal text
        ("\\(c‸at\\)", UP, "\\((«cat»:1.1)\\)"),
        ("«\\(cat\\)»", UP, "(«\\(cat\\)»:1.1)"),
        ("\\«(cat\\)»", UP, "(«\\(cat\\)»:1.1)"),
        ("\\(«cat\\»)", UP, "\\((«cat\\)»:1.1)"),
        # prompt editing [a:b:0.5] / [a|b] is not emphasis; extra-network tags are atomic
        ("[c‸at:dog:0.5]", UP, "[(«cat»:1.1):dog:0.5]"),
        ("[c‸at|dog]", UP, "[(«cat»:1.1)|dog]"),
        ("«[cat:dog:0.5]»", UP, "(«[cat:dog:0.5]»:1.1)"),
        ("«<lora:foo:0.8> cat»", UP, "(«<lora:foo:0.8> cat»:1.1)"),
        ("«<custom:foo:0.8>»", UP, "«<custom:foo:0.8>»"),  # not a kind the engine reads: left alone
        # extra-network tags: the keys adjust the tag's own multiplier (A1111's writing: 1, 0.9, -0.5)
        ("<lora:f‸oo:0.8> cat", UP, "«<lora:foo:0.9>» cat"),
        ("<lora:foo:1>‸", UP, "«<lora:foo:1.1>»"),
        ("a <lora:foo:1.1>‸, b", DOWN, "a «<lora:foo:1>», b"),
        ("«<lora:foo:0.8>» cat", DOWN, "«<lora:foo:0.7>» cat"),
        ("‸<lora:foo:0.8> cat", UP, "«<lora:foo:0.9>» cat"),
        ("<lora:foo>‸", UP, "«<lora:foo:1.1>»"),  # no multiplier: 1
        ("<LyCo:foo:0.5>‸", DOWN, "«<LyCo:foo:0.4>»"),
        ("<hypernet:foo:0.5>‸", UP, "«<hypernet:foo:0.6>»"),
        ("<lora:x:0.1>‸", DOWN, "«<lora:x:0>»"),
        ("<lora:x:0>‸", DOWN, "«<lora:x:-0.1>»"),
        ("<lora:x: 0.5 >‸", UP, "«<lora:x: 0.6 >»"),
        ("(a <lora:x:0.5‸> cat:1.2)", UP, "(a «<lora:x:0.6>» cat:1.2)"),  # the tag, not the group around it
        ("cat<lora:x:1>‸dog", UP, "cat<lora:x:1>(«dog»:1.1)"),  # a word under the cursor is the word
        # <lora:name:te:unet>: both multipliers, named ones too; dyn (a rank) and text never
        ("<lora:x:0.8:0.6>‸", UP, "«<lora:x:0.9:0.7>»"),
        ("<lora:x:te=0.8:unet=1>‸", UP, "«<lora:x:te=0.9:unet=1.1>»"),
        ("<lora:x:1:1:8>‸", UP, "«<lora:x:1.1:1.1:8>»"),
        ("<lora:x:1:dyn=8>‸", UP, "«<lora:x:1.1:dyn=8>»"),
        ("<lora:x:abc>‸", UP, "«<lora:x:abc>»"),
        # kept within ±5, never pulled back against the key
        ("<lora:x:4.95>‸", UP, "«<lora:x:5>»"),
        ("<lora:x:5>‸", UP, "«<lora:x:5>»"),
        ("<lora:x:-5>‸", DOWN, "«<lora:x:-5>»"),
        ("<lora:x:7>‸", UP, "«<lora:x:7>»"),
        ("<lora:x:7>‸", DOWN, "«<lora:x:6.9>»"),
        # unicode: accents (composed and combining), CJK, emoji, ñ
        ("un caf‸é", UP, "un («café»:1.1)"),
        ("cafe\u0301‸ noir", UP, "(«cafe\u0301»:1.1) noir"),
        ("猫‸, 犬", UP, "(«猫»:1.1), 犬"),
        ("a 🐱‸ b", UP, "a («🐱»:1.1) b"),
        ("«🐱 🐶»", UP, "(«🐱 🐶»:1.1)"),
        ("(«🐱»:1.1) x", DOWN, "«🐱» x"),
        ("ni‸ño", DOWN, "(«niño»:0.9)"),
        # nothing to nudge: unchanged, selection as given
        ("‸", UP, "‸"),
        ("a  ‸  b", UP, "a  ‸  b"),
        ("cat«, »dog", UP, "cat«, »dog"),
        ("a, ‸, b", UP, "a, ‸, b"),
    ],
)
def test_nudge(before: str, delta: float, after: str) -> None:
    assert press(before, delta) == after


def test_repeated_presses_keep_working_on_the_same_words() -> None:
    assert press("a «cat»", UP, times=2) == "a («cat»:1.2)"
    assert press("a «cat»", UP, times=5) == "a («cat»:1.5)"
    assert press("a cat‸", UP, times=3) == "a («cat»:1.3)"
    assert press("a «cat»", DOWN, times=3) == "a («cat»:0.7)"
    assert press(press("a «cat»", UP, times=2), DOWN, times=2) == "a «cat»"
    assert press("a «cat»", UP, times=40) == "a («cat»:2.0)"  # clamped at MAX_WEIGHT
    assert press("a «cat»", DOWN, times=40) == "a («cat»:0.0)"


def test_weights_are_rounded_and_never_pulled_against_the_key() -> None:
    assert press("(«cat»:2.0)") == "(«cat»:2.0)"
    assert press("(«cat»:3.0)") == "(«cat»:3.0)"  # typed by hand above the range: Up leaves it
    assert press("(«cat»:3.0)", DOWN) == "(«cat»:2.9)"
    assert press("(«cat»:-0.5)", UP) == "(«cat»:-0.4)"
    assert press("(«cat»:0)", DOWN) == "(«cat»:0)"
    assert press("(«cat»:1.95)", UP) == f"(«cat»:{format_weight(MAX_WEIGHT)})"
    assert press("(«cat»:1.234)", UP) == "(«cat»:1.33)"
    assert press("«cat»", 0.05) == "(«cat»:1.05)"
    assert press("«cat»", 5) == "(«cat»:2.0)"
    assert press("«cat»", 0.0) == "«cat»"
    assert press("«cat»", float("nan")) == "«cat»"


def test_format_weight() -> None:
    assert [format_weight(w) for w in (1.1, 1.0, 2, 0.05, 1.25, 0.1 + 0.2, -0.0)] == [
        "1.1",
        "1.0",
        "2.0",
        "0.05",
        "1.25",
        "0.3",
        "0.0",
    ]


def test_positions_out_of_range_and_reversed() -> None:
    assert nudge("a cat", 99, 99, UP) == ("a (cat:1.1)", 3, 6)
    assert nudge("a cat", 5, 2, UP) == ("a (cat:1.1)", 3, 6)
    assert nudge("a cat", -4, 1, UP) == ("(a:1.1) cat", 1, 2)


def test_word_bounds() -> None:
    assert word_bounds("a cat,dog", 3) == (2, 5)
    assert word_bounds("a cat,dog", 5) == (2, 5)
    assert word_bounds("a cat,dog", 6) == (6, 9)
    assert word_bounds("a  b", 2) == (2, 2)


def test_results_parse_as_intended_weights() -> None:
    """What nudge writes, prompt_syntax (and so the engine) reads as the weight it shows."""
    text, start, end = nudge("a photo of a cat, in the snow", 13, 16, UP)
    text, start, end = nudge(text, start, end, UP)
    assert ("cat", 1.2) in parse_prompt_attention(text)
    text, start, end = nudge(text, 0, 7, DOWN)
    assert parse_prompt_attention(text)[0] == ("a photo", 0.9)


def test_random_selections_keep_brackets_balanced_and_words_intact() -> None:
    """Fuzz: any selection in syntax-heavy prompts gives balanced brackets and the same words; on
    prompts written with explicit weights only, Up then Down on the returned selection restores the
    meaning exactly (old-style brackets come back as their grid-snapped explicit form)."""
    rng = random.Random(1234)
    legacy = [
        "a photo of a (cat:1.2), [dog], ((bird)), \\(literal\\), <lora:x:0.5>, [a:b:0.5] sky",
        "(((wide shot))), [[blurry]], (red:1.5) (blue), snow\n(city:0.7) lights",
    ]
    explicit = [
        "masterpiece, (best quality:1.2), (portrait of a (young:0.8) woman:1.3), 🐱 café BREAK night",
        "a (red:0.5) car, \\(1990\\), [x|y] on a (wet road:1.4)\nat night, (neon:1.1) (signs:1.1)",
    ]
    for round_ in range(1500):
        text = rng.choice(legacy + explicit)
        a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        if round_ % 3 == 0:
            b = a  # a cursor
        delta = rng.choice([UP, DOWN])
        new, s, e = nudge(text, a, b, delta)
        assert 0 <= s <= e <= len(new)
        assert _balanced(new), (text, a, b, new)
        assert _words(new) == _words(text), (text, a, b, new)
        back, _, _ = nudge(new, s, e, -delta)
        assert _balanced(back) and _words(back) == _words(text)
        if text in explicit and new != text:
            assert _meaning(back) == _meaning(text), (text, a, b, new, back)


def _balanced(text: str) -> bool:
    depth = {"(": 0, "[": 0}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "()[]\\":
            i += 2
            continue
        if ch in "([":
            depth[ch] += 1
        elif ch in ")]":
            depth["(" if ch == ")" else "["] -= 1
            if min(depth.values()) < 0:
                return False
        i += 1
    return depth == {"(": 0, "[": 0}


def _words(text: str) -> str:
    # Extra-network tags are not words: their multiplier is what the keys change in them.
    text = strip_extra_networks(text)
    return "".join("".join(t.split()) for t, _ in parse_prompt_attention(text) if (t, _) != ("BREAK", -1.0))


def _meaning(text: str) -> list[tuple[str, float]]:
    return [("".join(t.split()), round(w, 2)) for t, w in parse_prompt_attention(text)]


def test_tag_multipliers_are_written_as_a1111_writes_them() -> None:
    assert [format_multiplier(w) for w in (1.0, 1.1, 0.85, -0.5, 0.0, -0.0, 2.0, 1.004)] == [
        "1", "1.1", "0.85", "-0.5", "0", "0", "2", "1",
    ]
    assert nudge_tag("<lora:x:1>", UP) == "<lora:x:1.1>"
    assert nudge_tag("<lora:x:nan>", UP) == "<lora:x:nan>"
    assert nudge_tag("not a tag", UP) == "not a tag"
    assert nudge_tag("<lora:x:1>", 0.0) == "<lora:x:1>"


def test_repeated_presses_on_a_tag_walk_its_multiplier() -> None:
    assert press("<lora:x:1>‸", UP, times=3) == "«<lora:x:1.3>»"
    assert press(press("<lora:x:1>‸", UP, times=3), DOWN, times=3) == "«<lora:x:1>»"
    assert press("<lora:x:1>‸", UP, times=60) == "«<lora:x:5>»"
    assert press("<lora:x:1>‸", DOWN, times=80) == "«<lora:x:-5>»"
