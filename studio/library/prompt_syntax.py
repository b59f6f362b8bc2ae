"""Prompt emphasis syntax as AUTOMATIC1111 users know it, parsed in linear time. Pure Python.

- ``(text)`` multiplies the weight of `text` by 1.1, ``[text]`` divides it by 1.1;
- ``(text:1.3)`` multiplies by an explicit factor; nesting multiplies (``((a))`` -> 1.21);
- ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters; any other backslash is literal;
- unbalanced brackets are tolerated: an unclosed ``(`` / ``[`` applies to the rest of the prompt, a
  closing bracket with nothing to close (or ``:1.3)`` outside any ``(``) is literal text;
- ``BREAK`` (a whole word, in capitals) ends the current 75-token chunk early; whitespace around it
  is dropped. It is returned as the fragment ``("BREAK", -1.0)``.

Extra-network tags (``<lora:name:0.8>``, ``<lyco:...>``, ``<hypernet:name:1>``) are not prompt text:
A1111 removes them before parsing (and loads the networks they name). :func:`split_extra_networks` does
the same removal and returns the tags, so the engine can encode the rest and say what it ignored.

Chunks of 75 tokens wrap at the last comma within 20 tokens of their end (A1111's default word wrap).
Weights are rounded to 12 significant digits, so brackets that cancel out (``[(a)]``) give exactly 1
and runs of equal weight merge. The editor's token counter and the engine share :func:`build_chunks`,
so what the editor shows is what the text encoder reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BREAK",
    "CHUNK_LENGTH",
    "COMMA_BACKTRACK",
    "EXTRA_NETWORK_KINDS",
    "MAX_ABS_WEIGHT",
    "MAX_LORA_WEIGHT",
    "Chunk",
    "ExtraNetworkTag",
    "LoraUse",
    "build_chunks",
    "extra_network_tags",
    "has_weights",
    "is_break",
    "lora_uses",
    "parse_prompt_attention",
    "plain_text",
    "split_extra_networks",
    "strip_extra_networks",
    "weight_problem",
]

BREAK: tuple[str, float] = ("BREAK", -1.0)
CHUNK_LENGTH = 75  # CLIP reads 77 tokens: BOS + 75 + EOS
COMMA_BACKTRACK = 20  # A1111's default "prompt word wrap length limit" (comma_padding_backtrack)
ROUND_FACTOR = 1.1
MAX_ABS_WEIGHT = 100.0
SQUARE_FACTOR = 1 / 1.1

# One token of the syntax per match. Possessive quantifiers: no backtracking, so the scan is linear
# even on pathological input (a 100k-digit "weight", 100k spaces before a colon).
_TOKEN = re.compile(
    r"""
      (?P<escape>\\[()\[\]\\])
    | (?P<weight>:\s*+(?P<number>[+-]?+(?:\d++(?:\.\d*+)?+|\.\d++))\s*+\))
    | (?P<open_round>\()
    | (?P<open_square>\[)
    | (?P<close_round>\))
    | (?P<close_square>\])
    | (?P<text>[^\\()\[\]:]++|[\\:])
    """,
    re.VERBOSE,
)
_BREAK_WORD = re.compile(r"\bBREAK\b")


def _rounded(weight: float) -> float:
    return float(f"{weight:.12g}")


class _Brackets:
    """One kind of bracket: a tree of opened brackets (parents first) and the path now open."""

    def __init__(self) -> None:
        self.parent = [0]
        self.factor: list[float | None] = [1.0]
        self.current = 0

    def open(self) -> None:
        self.parent.append(self.current)
        self.factor.append(None)
        self.current = len(self.parent) - 1

    def close(self, factor: float) -> bool:
        if self.current == 0:
            return False
        self.factor[self.current] = factor
        self.current = self.parent[self.current]
        return True

    def products(self, unclosed: float) -> list[float]:
        """Each node's weight: the product of its own and its ancestors' factors (unclosed: `unclosed`)."""
        out = [1.0] * len(self.parent)
        for node in range(1, len(self.parent)):
            own = self.factor[node]
            out[node] = out[self.parent[node]] * (unclosed if own is None else own)
        return out


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) fragments in order; ``("BREAK", -1.0)`` marks a forced chunk end.

    Adjacent fragments of equal weight are merged and empty ones dropped; an empty prompt gives
    ``[("", 1.0)]``. Runs in time linear in ``len(text)``.
    """
    rounds, squares = _Brackets(), _Brackets()
    pieces: list[tuple[str, int, int]] = []  # text (or None for BREAK), round node, square node

    def add_text(piece: str) -> None:
        if "BREAK" not in piece:
            pieces.append((piece, rounds.current, squares.current))
            return
        parts = _BREAK_WORD.split(piece)
        last = len(parts) - 1
        for i, part in enumerate(parts):
            if i > 0:
                part = part.lstrip()
                pieces.append((None, 0, 0))  # type: ignore[arg-type]
            if i < last:
                part = part.rstrip()
            if part:
                pieces.append((part, rounds.current, squares.current))

    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "escape":
            pieces.append((match.group()[1], rounds.current, squares.current))
        elif kind == "weight":
            if not rounds.close(float(match.group("number"))):
                add_text(match.group())
        elif kind == "open_round":
            rounds.open()
        elif kind == "open_square":
            squares.open()
        elif kind == "close_round":
            if not rounds.close(ROUND_FACTOR):
                add_text(")")
        elif kind == "close_square":
            if not squares.close(SQUARE_FACTOR):
                add_text("]")
        else:
            add_text(match.group())

    round_weights = rounds.products(ROUND_FACTOR)
    square_weights = squares.products(SQUARE_FACTOR)
    result: list[list] = []
    for piece, r, s in pieces:
        if piece is None:
            result.append(list(BREAK))
            continue
        if not piece:
            continue
        weight = _rounded(round_weights[r] * square_weights[s])
        if result and result[-1][1] == weight and not _is_break_pair(result[-1]):
            result[-1][0].append(piece)
        else:
            result.append([[piece], weight])
    if not result:
        return [("", 1.0)]
    return [(f[0] if isinstance(f[0], str) else "".join(f[0]), float(f[1])) for f in result]


def _is_break_pair(fragment: Sequence) -> bool:
    return fragment[1] == -1.0 and fragment[0] == "BREAK"


def is_break(fragment: tuple[str, float]) -> bool:
    """True for the ``("BREAK", -1.0)`` marker."""
    return _is_break_pair(fragment)


def plain_text(text: str) -> str:
    """The prompt without the syntax (escapes resolved, each BREAK a space): what the tokenizer reads."""
    return "".join(" " if is_break(f) else f[0] for f in parse_prompt_attention(text))


def weight_problem(text: str) -> str | None:
    """Why a weight in `text` cannot be used, or None.

    AUTOMATIC1111 takes any weight, so this refuses only what no model can use: far past
    ``MAX_ABS_WEIGHT`` the scaled text embeddings overflow half precision, and about 7,450 nested round
    brackets make a weight infinite (49 already pass 100); the image is NaN (black) or noise. A typo
    deserves a message instead.
    """
    for fragment, weight in parse_prompt_attention(text):
        if is_break((fragment, weight)) or (math.isfinite(weight) and abs(weight) <= MAX_ABS_WEIGHT):
            continue
        shown = " ".join(fragment.split())
        shown = shown if len(shown) <= 30 else shown[:29] + "…"
        size = f"{weight:.4g}" if math.isfinite(weight) else "infinite" if math.isinf(weight) else "undefined"
        return (
            f"the weight of {shown!r} is {size}: weights must lie within ±{MAX_ABS_WEIGHT:g} "
            "(too many nested brackets, or a typo in a (text:weight)?)"
        )
    return None


def has_weights(text: str) -> bool:
    """True when any fragment's weight is not 1, or the prompt has a BREAK."""
    return any(weight != 1.0 for _, weight in parse_prompt_attention(text))


# ----------------------------------------------------------------------------------- extra networks
EXTRA_NETWORK_KINDS = ("lora", "lyco", "hypernet")  # A1111's tag kinds (lyco: the old LyCORIS extension's)
# A1111's pattern is <(\w+):([^>]+)>, for registered kinds only. Stopping the argument at "<" as well keeps
# the scan linear: each attempt ends at the next "<", where the next attempt starts.
_EXTRA_NETWORK = re.compile(r"<(lora|lyco|hypernet):([^<>]+)>", re.IGNORECASE)
_KIND_LABELS = {"lora": "LoRA", "lyco": "LoRA", "hypernet": "hypernetwork"}


@dataclass(frozen=True)
class ExtraNetworkTag:
    """One ``<kind:name[:weight...]>`` tag as typed: ``<lora:name:te_weight[:unet_weight]>`` in A1111."""

    kind: str  # lower case: "lora" | "lyco" | "hypernet"
    name: str
    args: tuple[str, ...]  # the values after the name, as typed (A1111: a missing weight is 1)
    text: str  # the whole tag as it appears in the prompt


def split_extra_networks(text: str) -> tuple[str, list[ExtraNetworkTag]]:
    """The prompt without its extra-network tags, and the tags in order.

    Each tag is removed and nothing else, as A1111 removes them, so the text the encoder reads (spaces and
    commas around a tag included) is A1111's and its images' prompts give the same embeddings. Linear time.
    """
    tags: list[ExtraNetworkTag] = []

    def found(match: re.Match[str]) -> str:
        name, *args = match.group(2).split(":")
        tags.append(ExtraNetworkTag(match.group(1).lower(), name.strip(), tuple(a.strip() for a in args), match.group()))
        return ""

    return _EXTRA_NETWORK.sub(found, text), tags


def strip_extra_networks(text: str) -> str:
    """The prompt without its extra-network tags (see :func:`split_extra_networks`)."""
    return split_extra_networks(text)[0]


def extra_network_tags(text: str) -> list[ExtraNetworkTag]:
    """The prompt's extra-network tags, in order."""
    return split_extra_networks(text)[1]


@dataclass(frozen=True)
class LoraUse:
    """One LoRA a prompt asks for, with A1111's two multipliers: `te` for the text encoder(s), `unet` for
    the UNet (``<lora:name:te:unet>``). `text` is the tag as typed, for messages."""

    name: str
    te: float
    unet: float
    text: str


MAX_LORA_WEIGHT = 5.0  # A1111's sliders stop at ±2; far beyond ±5 a LoRA only burns the image
_LORA_KINDS = ("lora", "lyco")  # <lyco:...>: the old LyCORIS extension's tag, a LoRA to A1111 since 1.5
_LORA_NAMED = ("te", "unet", "dyn")


def lora_uses(tags: Sequence[ExtraNetworkTag]) -> tuple[list[LoraUse], list[str]]:
    """The LoRAs that `tags` ask for, read as A1111 reads them, and the problems found (one line each).

    An argument with "=" is named (``te=``, ``unet=``, ``dyn=``), any other positional: te is the named te,
    else the first positional, else 1; unet is the named unet, else the second positional, else te. A weight
    that is not a number, or lies outside ±`MAX_LORA_WEIGHT`, drops its tag with a problem; ``dyn`` (a rank
    limit, positional third or named) and unknown names are ignored with a problem. ``<lyco:...>`` is a LoRA;
    hypernetwork tags are not LoRAs and are left to the caller.
    """
    uses: list[LoraUse] = []
    problems: list[str] = []
    for tag in tags:
        if tag.kind not in _LORA_KINDS:
            continue
        shown = _shown_tag(tag.text)
        if not tag.name:
            problems.append(f"{shown}: names no LoRA")
            continue
        positional: list[str] = []
        named: dict[str, str] = {}
        for arg in tag.args:
            parts = arg.split("=")
            if len(parts) == 2:  # A1111: "a=b" is named, "a=b=c" positional
                named[parts[0].strip()] = parts[1].strip()
            else:
                positional.append(arg)
        ignored = [f"{key}=" for key in named if key not in _LORA_NAMED]
        if "dyn" in named or len(positional) > 2:
            ignored.insert(0, "dyn (a rank limit)")
        if len(positional) > 3:
            ignored.append(f"{len(positional) - 3} more value(s)")
        if ignored:
            problems.append(f"{shown}: {', '.join(_shown_value(i) for i in ignored)} ignored (not supported)")
        te_text = named.get("te", positional[0] if positional else None)
        te, problem = _lora_weight(te_text, shown)
        unet_text = named.get("unet", positional[1] if len(positional) > 1 else None)
        unet, unet_problem = _lora_weight(unet_text, shown, default=te)
        if problem or unet_problem:
            problems.append(problem or unet_problem)
            continue
        uses.append(LoraUse(tag.name, te, unet, tag.text))
    return uses, problems


def _lora_weight(text: str | None, shown: str, default: float = 1.0) -> tuple[float, str]:
    if text is None:
        return default, ""
    try:
        weight = float(text)
    except ValueError:
        return default, f"{shown}: the weight {_shown_value(text)!r} is not a number (not applied)"
    if not abs(weight) <= MAX_LORA_WEIGHT:  # NaN fails too
        return default, (
            f"{shown}: the weight {_shown_value(text)} lies outside ±{MAX_LORA_WEIGHT:g} (not applied; "
            "a typo?)"
        )
    return weight, ""


def _shown_tag(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:79] + "…"


def _shown_value(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 30 else text[:29] + "…"


# ------------------------------------------------------------------------------------------- chunks
@dataclass
class Chunk:
    """Up to CHUNK_LENGTH token ids (no BOS/EOS, no padding) and one weight per token."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def build_chunks(
    fragments: Iterable[tuple[str, float]],
    tokenize: Callable[[list[str]], list[list[int]]],
    chunk_length: int = CHUNK_LENGTH,
    *,
    comma: int | None = None,
    backtrack: int = COMMA_BACKTRACK,
) -> list[Chunk]:
    """Split weighted fragments into chunks of at most `chunk_length` tokens; at least one chunk.

    `tokenize` maps a list of texts to their token ids without BOS/EOS (one call for all fragments).
    A chunk is closed when a token arrives and it is full, or at a BREAK (so a BREAK right after a
    full chunk adds no empty chunk, but ``BREAK BREAK`` does leave an empty one, as in A1111).

    Word wrap, as A1111 does it by default: when a full chunk meets a token that is not a comma and the
    chunk's last `comma` (the tokenizer's id for ",") is at most `backtrack` tokens from its end, the
    tokens after that comma move to the next chunk, so a phrase is not cut in two. Without this, long
    prompts from A1111 images would be encoded differently and could not be reproduced. A comma that opens
    a chunk does not count (A1111 forgets commas at each chunk's start). ``comma=None`` cuts at the limit.
    """
    fragments = list(fragments)
    texts = [text for text, weight in fragments if not is_break((text, weight))]
    token_lists = iter(tokenize(texts) if texts else [])
    chunks: list[Chunk] = []
    chunk = Chunk()
    last_comma = -1  # index in `chunk` of its latest comma
    for fragment in fragments:
        if is_break(fragment):
            chunks.append(chunk)
            chunk, last_comma = Chunk(), -1
            continue
        weight = fragment[1]
        for token in next(token_lists):
            full = len(chunk.tokens) == chunk_length
            if comma is not None and token == comma:
                last_comma = len(chunk.tokens)
            elif full and last_comma != -1 and backtrack > 0 and chunk_length - last_comma <= backtrack:
                cut = last_comma + 1
                moved = Chunk(chunk.tokens[cut:], chunk.weights[cut:])
                del chunk.tokens[cut:], chunk.weights[cut:]
                chunks.append(chunk)
                chunk, last_comma, full = moved, -1, False
            if full:
                chunks.append(chunk)
                chunk, last_comma = Chunk(), -1
            chunk.tokens.append(token)
            chunk.weights.append(weight)
    if chunk.tokens or not chunks:
        chunks.append(chunk)
    return chunks
