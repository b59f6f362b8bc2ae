"""Ctrl+Up / Ctrl+Down weight nudging on prompt text: pure functions, no Qt, unit-tested on strings.

Users of AUTOMATIC1111 and ComfyUI expect these keys to write emphasis for them, so the result is
the same syntax :mod:`studio.library.prompt_syntax` (and the engine) reads:

- a selection (or, with none, the word under the cursor) is wrapped: ``cat`` -> ``(cat:1.1)``;
- a cursor anywhere inside a ``(…:w)`` group, or a selection covering a group's whole content (with or
  without its brackets) or touching its weight, adjusts that group: ``(cat:1.1)`` -> ``(cat:1.2)``;
- a weight that comes back to exactly 1.0 removes the wrapper: ``(cat:0.9)`` + 0.1 -> ``cat``;
- old-style emphasis is converted on the first press: ``(cat)`` counts as 1.1, ``((cat))`` as 1.21,
  ``[cat]`` as 1/1.1, snapped to the step's grid (so ``(cat)`` + 0.1 -> ``(cat:1.2)`` and
  ``[cat]`` + 0.1 -> ``cat``), as A1111's editor does;
- a selection strictly inside a group's words (``photo`` in ``(a photo of a cat:1.2)``) is wrapped as
  a nested group, as A1111 and ComfyUI do: otherwise one could never emphasise one word of a phrase.
  With no selection the cursor picks the enclosing group, so repeated presses adjust it.

Extra-network tags carry their own multiplier, which the keys adjust instead: a cursor inside (or touching)
a ``<lora:name:w>`` tag, or a selection of the whole tag, nudges `w` by the step (``<lora:x:1>`` ->
``<lora:x:1.1>``; a tag without one, ``<lora:x>``, is 1), kept within ±5 (the engine's limit,
:data:`studio.library.prompt_syntax.MAX_LORA_WEIGHT`) and written as A1111 writes a LoRA multiplier
(``1``, ``0.9``, ``-0.5``), the tag selected. ``<lora:x:te:unet>`` nudges both numbers, as do named ``te=`` /
``unet=`` values; a third value (``dyn``, a rank) and text that is no number are left alone.
``<lyco:...>`` and ``<hypernet:...>`` tags likewise; other ``<kind:...>`` tags stay atomic.

Weights are rounded to 2 decimals and kept within ``MIN_WEIGHT`` .. ``MAX_WEIGHT`` (0 .. 2): past 2
images fall apart on every SD-family model and below 0 means "negative prompt inside the prompt",
which the negative field does better. A weight already outside that range (typed by hand) is never
pulled back against the direction of the key: pressing Up on 3.0 leaves it alone, Down gives 2.9.

Escaped brackets (``\\(`` ``\\)`` ``\\[`` ``\\]``) are literal text. ``[a:b:0.5]`` and ``[a|b]`` are
prompt editing, not emphasis: they are never converted, only kept balanced. ``<lora:name:0.8>``
style extra-network tags are atomic: never cut, never wrapped alone (they carry their own weight). Leading and trailing
whitespace, commas and semicolons of a selection are trimmed; a selection that ends mid-word is
widened to the whole word; one that cuts a bracket pair is widened to the whole pair, so the text
stays balanced.

Positions are Python string indices (code points). Qt counts UTF-16 units: the editor converts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from studio.library.prompt_syntax import EXTRA_NETWORK_KINDS, MAX_LORA_WEIGHT

__all__ = [
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "STEP",
    "format_multiplier",
    "format_weight",
    "nudge",
    "nudge_tag",
    "word_bounds",
]

STEP = 0.1
MIN_WEIGHT = 0.0
MAX_WEIGHT = 2.0

# Characters that end a word for "the word under the cursor" (A1111's list, plus <, > and ").
_DELIMITERS = frozenset('.,;:!?()[]{}<>|"\\/')
_TRIM = frozenset(",;")
_ESCAPABLE = frozenset("()[]\\")
_WEIGHT_TAIL = re.compile(r":\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")
_EXTRA_NETWORK = re.compile(r"<[^<>\n:]+:[^<>\n]*>")
_NUMBER = re.compile(r"^(\s*)([+-]?(?:\d+(?:\.\d*)?|\.\d+))(\s*)$")
_TAG_WEIGHT_NAMES = ("te", "unet")  # named multipliers nudged; "dyn" is a rank, never nudged


def format_multiplier(weight: float) -> str:
    """A LoRA multiplier as A1111 writes one: at most 2 decimals, no trailing zeros (``1``, ``0.9``, ``-0.5``)."""
    text = f"{round(weight, 2) + 0.0:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _is_word(ch: str) -> bool:
    return not ch.isspace() and ch not in _DELIMITERS


def format_weight(weight: float) -> str:
    """A weight as A1111 writes it: at most 2 decimals, at least one (``1.1``, ``1.25``, ``2.0``)."""
    text = f"{round(weight, 2) + 0.0:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@dataclass(eq=False)
class _Group:
    """One matched bracket pair; `colon` and `weight` only for an explicit ``(…:w)`` group."""

    kind: str  # "(" or "["
    open: int
    close: int
    colon: int | None = None
    number: tuple[int, int] | None = None
    weight: float | None = None
    structural: bool = False  # "[a:b:0.5]" / "[a|b]": prompt editing, not emphasis
    parent: _Group | None = None
    children: list[_Group] = field(default_factory=list)

    @property
    def content_end(self) -> int:
        return self.colon if self.colon is not None else self.close

    def contains(self, start: int, end: int) -> bool:
        return self.open <= start and end <= self.close + 1


@dataclass
class _Frame:
    kind: str
    open: int
    separator: bool = False  # a ":" or "|" directly inside


def _parse(text: str) -> tuple[list[_Group], list[int]]:
    """Matched bracket groups (properly nested, parents linked) and the start index of each escape."""
    groups: list[_Group] = []
    escapes: list[int] = []
    stack: list[_Frame] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            escapes.append(i)
            i += 2
            continue
        if ch in "([":
            stack.append(_Frame(ch, i))
        elif ch in ":|":
            if stack:
                stack[-1].separator = True
        elif ch in ")]":
            kind = "(" if ch == ")" else "["
            depth = next((d for d in range(len(stack) - 1, -1, -1) if stack[d].kind == kind), None)
            if depth is not None:  # brackets opened inside and never closed are dropped
                frame = stack[depth]
                del stack[depth:]
                group = _Group(kind, frame.open, i)
                if kind == "(":
                    match = _WEIGHT_TAIL.search(text, frame.open + 1, i)
                    if match:
                        try:
                            group.weight = float(match.group(1))
                        except ValueError:  # pragma: no cover - the pattern only matches numbers
                            group.weight = None
                        else:
                            group.colon = match.start()
                            group.number = match.span(1)
                else:
                    group.structural = frame.separator
                groups.append(group)
        i += 1
    groups.sort(key=lambda g: g.open)
    open_groups: list[_Group] = []
    for group in groups:
        while open_groups and open_groups[-1].close < group.open:
            open_groups.pop()
        if open_groups:
            group.parent = open_groups[-1]
            open_groups[-1].children.append(group)
        open_groups.append(group)
    return groups, escapes


def word_bounds(text: str, pos: int) -> tuple[int, int]:
    """The word touching `pos` (left or right of it); an empty range when there is none."""
    pos = max(0, min(pos, len(text)))
    left = pos
    while left > 0 and _is_word(text[left - 1]):
        left -= 1
    right = pos
    while right < len(text) and _is_word(text[right]):
        right += 1
    return left, right


def _strip_bounds(text: str, start: int, end: int, extra: frozenset[str] = frozenset()) -> tuple[int, int]:
    while start < end and (text[start].isspace() or text[start] in extra):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in extra):
        end -= 1
    return start, end


def _content_bounds(text: str, group: _Group) -> tuple[int, int]:
    return _strip_bounds(text, group.open + 1, group.content_end)


def _widen(
    text: str, start: int, end: int, groups: list[_Group], escapes: list[int], tags: list[tuple[int, int]]
) -> tuple[int, int]:
    """Widen a selection so it cuts no word, escape, extra-network tag or bracket pair."""
    n = len(text)
    if 0 < start < n and _is_word(text[start - 1]) and _is_word(text[start]):
        start = word_bounds(text, start)[0]
    if 0 < end < n and _is_word(text[end - 1]) and _is_word(text[end]):
        end = word_bounds(text, end)[1]
    changed = True
    while changed:
        changed = False
        for esc in escapes:
            if start == esc + 1:
                start, changed = esc, True
            if end == esc + 1:
                end, changed = esc + 2, True
        for a, b in tags:
            if a < end and start < b and not (start <= a and b <= end):
                start, end, changed = min(start, a), max(end, b), True
        for g in groups:
            if (start <= g.open < end) != (start <= g.close < end):
                start, end, changed = min(start, g.open), max(end, g.close + 1), True
    return start, end


def _target_group(text: str, start: int, end: int, groups: list[_Group]) -> _Group | None:
    """The group a selection designates: it covers the group's content or touches its weight."""
    containing = [g for g in groups if g.contains(start, end)]
    for g in sorted(containing, key=lambda g: g.close - g.open):
        if g.structural:
            continue
        if g.colon is not None and end > g.colon:
            return g
        c_start, c_end = _content_bounds(text, g)
        if start <= c_start and end >= c_end:
            return g
        return None  # strictly inside this group's words: wrap as a nested group
    return None


def _cursor_group(pos: int, groups: list[_Group]) -> _Group | None:
    inside = [g for g in groups if not g.structural and g.open < pos <= g.close]
    return max(inside, key=lambda g: g.open) if inside else None


def _step_weight(weight: float, delta: float) -> float:
    """`weight` + `delta`, rounded to 2 decimals, kept in range without moving against `delta`."""
    new = round(weight + delta, 2)
    new = min(new, max(weight, MAX_WEIGHT)) if delta > 0 else max(new, min(weight, MIN_WEIGHT))
    return round(new, 2) + 0.0


def _replace(text: str, span: tuple[int, int], content: str, weight: float) -> tuple[str, int, int]:
    """Replace `span` by `content` wrapped with `weight` (or bare at 1.0); select the content's words."""
    before, after = text[: span[0]], text[span[1] :]
    if weight == 1.0:
        # Unwrapping must not glue two words together ("dog(cat:1.1)" -> "dog cat").
        if before and content and _is_word(before[-1]) and _is_word(content[0]):
            content = " " + content
        if after and content and _is_word(content[-1]) and _is_word(after[0]):
            content = content + " "
        new = before + content + after
        start = len(before)
    else:
        new = before + "(" + content + ":" + format_weight(weight) + ")" + after
        start = len(before) + 1
    return (new, *_strip_bounds(new, start, start + len(content)))


def _adjust(text: str, group: _Group, delta: float) -> tuple[str, int, int]:
    if group.weight is not None and group.number is not None:
        weight = _step_weight(group.weight, delta)
        content = text[group.open + 1 : group.colon]
        if weight == 1.0:
            return _replace(text, (group.open, group.close + 1), content, 1.0)
        c_start, c_end = _content_bounds(text, group)
        if weight == group.weight:
            return text, c_start, c_end
        a, b = group.number
        return text[:a] + format_weight(weight) + text[b:], c_start, c_end
    # Old-style emphasis: a run of directly nested plain brackets of one kind.
    outer = inner = group
    while (
        (p := outer.parent) is not None
        and p.kind == group.kind
        and p.weight is None
        and not p.structural
        and p.open == outer.open - 1
        and p.close == outer.close + 1
    ):
        outer = p
    while (
        len(inner.children) == 1
        and (c := inner.children[0]).kind == group.kind
        and c.weight is None
        and not c.structural
        and c.open == inner.open + 1
        and c.close == inner.close - 1
    ):
        inner = c
    depth = inner.open - outer.open + 1
    legacy = (1.1 if group.kind == "(" else 1 / 1.1) ** depth
    step = abs(delta)
    snapped = round(round(legacy / step) * step, 2)
    weight = _step_weight(snapped, delta)
    return _replace(text, (outer.open, outer.close + 1), text[inner.open + 1 : inner.close], weight)


def _step_multiplier(weight: float, delta: float) -> float:
    """`weight` + `delta` within ±MAX_LORA_WEIGHT, never moved against `delta` (a typed 7 stays on Up)."""
    new = round(weight + delta, 2)
    new = min(new, max(weight, MAX_LORA_WEIGHT)) if delta > 0 else max(new, min(weight, -MAX_LORA_WEIGHT))
    return round(new, 2) + 0.0


def nudge_tag(tag: str, delta: float = STEP) -> str:
    """An extra-network tag (``<lora:name:w>``, the whole tag) with its multiplier(s) nudged by `delta`; the tag
    unchanged when it has no multiplier to nudge (another kind of tag, ``<lora:x:abc>``)."""
    if not (tag.startswith("<") and tag.endswith(">")) or not math.isfinite(delta) or delta == 0:
        return tag
    kind, colon, rest = tag[1:-1].partition(":")
    if not colon or kind.strip().lower() not in EXTRA_NETWORK_KINDS:
        return tag
    name, *args = rest.split(":")
    if not args:  # "<lora:x>" is 1
        return f"<{kind}:{name}:{format_multiplier(_step_multiplier(1.0, delta))}>"

    def stepped(value: str) -> str | None:
        match = _NUMBER.match(value)
        if match is None:
            return None
        try:
            weight = float(match.group(2))
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            return None
        if not math.isfinite(weight):
            return None
        return match.group(1) + format_multiplier(_step_multiplier(weight, delta)) + match.group(3)

    changed = False
    positional = 0
    for i, arg in enumerate(args):
        parts = arg.split("=")
        if len(parts) == 2:  # A1111: "a=b" is named, "a=b=c" positional
            if parts[0].strip() not in _TAG_WEIGHT_NAMES:
                continue
            new = stepped(parts[1])
            if new is not None:
                args[i], changed = f"{parts[0]}={new}", True
            continue
        positional += 1
        if positional <= 2:  # te, unet; a third is dyn (a rank)
            new = stepped(arg)
            if new is not None:
                args[i], changed = new, True
    if not changed:
        return tag
    return "<" + kind + ":" + ":".join([name, *args]) + ">"


def _tag_at(text: str, start: int, end: int, tags: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The tag a cursor is inside of (or touches, when no word is under it), or a selection covers exactly."""
    if start != end:
        return (start, end) if (start, end) in tags else None
    inside = next((tag for tag in tags if tag[0] < start < tag[1]), None)
    if inside is not None:
        return inside
    s, e = word_bounds(text, start)
    if s != e:
        return None
    return next((tag for tag in tags if tag[1] == start), None) or next((tag for tag in tags if tag[0] == start), None)


def _nudge_tag_span(text: str, span: tuple[int, int], delta: float) -> tuple[str, int, int]:
    a, b = span
    new_tag = nudge_tag(text[a:b], delta)
    return text[:a] + new_tag + text[b:], a, a + len(new_tag)


def nudge(text: str, start: int, end: int, delta: float = STEP) -> tuple[str, int, int]:
    """Raise (delta > 0) or lower the weight of the selection [start, end), or of the word / group
    under the cursor when start == end. Returns the new text and a selection covering the nudged
    words, so that pressing the key again nudges the same words further.

    When there is nothing to nudge (blank text, the cursor between two spaces, a selection of only
    commas) the text comes back unchanged with the selection as given (ordered and clamped).
    """
    n = len(text)
    start, end = sorted((max(0, min(start, n)), max(0, min(end, n))))
    if not math.isfinite(delta) or delta == 0:
        return text, start, end
    groups, escapes = _parse(text)
    tags = [m.span() for m in _EXTRA_NETWORK.finditer(text)]

    if start == end:
        tag = _tag_at(text, start, end, tags)
        if tag is not None:  # "<lora:x:0.8>" carries its own multiplier: that is what the keys adjust
            return _nudge_tag_span(text, tag, delta)
        group = _cursor_group(start, groups)
        if group is not None:
            return _adjust(text, group, delta)
        s, e = word_bounds(text, start)
        if s == e:
            touching = [g for g in groups if not g.structural and (g.close + 1 == start or g.open == start)]
            if touching:  # right after "(cat:1.1)" or right before it
                return _adjust(text, min(touching, key=lambda g: g.open), delta)
            return text, start, end
    else:
        s, e = _strip_bounds(text, start, end, _TRIM)
        if s == e:
            return text, start, end
    s, e = _widen(text, s, e, groups, escapes, tags)
    if (s, e) in tags:  # "<lora:name:0.8>" carries its own weight; wrapping it would mean nothing
        return _nudge_tag_span(text, (s, e), delta)
    group = _target_group(text, s, e, groups)
    if group is not None:
        return _adjust(text, group, delta)
    weight = _step_weight(1.0, delta)
    if weight == 1.0:
        return text, s, e
    return _replace(text, (s, e), text[s:e], weight)
