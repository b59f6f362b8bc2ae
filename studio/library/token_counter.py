"""Live CLIP token counts for the prompt fields, without torch.

CLIP reads 75 content tokens per chunk (77 with BOS/EOS); longer prompts are split into chunks that
are encoded separately, which users need to know while typing (words past a chunk boundary weigh
differently). The count must be exact, so it uses CLIP's own byte-pair tokenizer
(``studio/resources/clip_tokenizer/tokenizer.json``) through the Rust ``tokenizers`` library: it loads
in about 0.1 s and counts a 500-word prompt in a few milliseconds, so the editor can recount on every
keystroke. Emphasis syntax is removed and chunks are built by
:func:`studio.library.prompt_syntax.build_chunks`, the very function the engine uses, so what the
editor shows is what the text encoder reads (each weighted fragment is tokenized on its own, as in
A1111; BREAK ends a chunk early).

Textual-inversion embeddings: a prompt calls one by its name used as a word, and the engine replaces that
word by the embedding's vectors, so the count must too. :meth:`TokenCounter.set_embeddings` gives the
counter the names in the embedding folders and how many vectors each stands for (the window's LoRA and
embedding browser passes what it scanned); each name found as a whole word, in any case (as the engine
matches it), counts its vectors instead of its word's tokens. A file whose vectors are unknown (a pickle,
not read without loading it) counts as one.

If the tokenizer cannot be loaded (a broken install), counts fall back to a rough estimate and
:attr:`TokenCounter.exact` is False, so the window still works and can say "about".
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from studio.library.prompt_syntax import (
    CHUNK_LENGTH,
    build_chunks,
    is_break,
    parse_prompt_attention,
    strip_extra_networks,
)

__all__ = ["CHUNK_LENGTH", "EMBEDDING_TOKEN", "TOKENIZER_PATH", "TokenCount", "TokenCounter", "shared_counter"]

log = logging.getLogger(__name__)

TOKENIZER_PATH = Path(__file__).resolve().parent.parent / "resources" / "clip_tokenizer" / "tokenizer.json"
_CACHE_SIZE = 16
# Fallback estimate: CLIP's pre-tokenizer splits letters, single digits and punctuation runs apart.
_ROUGH = re.compile(r"[^\W\d_]+|\d|[^\w\s]+|_+")
EMBEDDING_TOKEN = -1
"""The id counted for each vector of an embedding: never a real token (nor the comma that word wrap looks for)."""
MAX_EMBEDDING_VECTORS = 75 * 8  # a larger count in a crafted header is not believed (counted as 1)


class _Embeddings:
    """The embedding names the counter recognises: one pattern (longest names first, so "bad-hands-5" wins
    over "bad") and the vectors of each name, by its case-folded spelling."""

    def __init__(self, vectors: Mapping[str, int | None]) -> None:
        self.vectors: dict[str, int] = {}
        for name, count in vectors.items():
            if not isinstance(name, str) or not name.strip():
                continue
            ok = type(count) is int and 0 < count <= MAX_EMBEDDING_VECTORS
            self.vectors.setdefault(name.casefold(), count if ok else 1)  # type: ignore[arg-type]
        names = sorted({name for name in vectors if isinstance(name, str) and name.strip()}, key=len, reverse=True)
        # As the engine finds a name: the whole word, in any case (CLIP lower-cases what it reads).
        self.pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE) if names else None
        )


class TokenCount(NamedTuple):
    """Content tokens (no BOS/EOS), the number of 75-token chunks the engine will encode, and how
    many of the chunk ends were asked for with BREAK (so the editor warns only of automatic splits)."""

    tokens: int
    chunks: int
    breaks: int = 0


class TokenCounter:
    """CLIP token counts; the tokenizer is loaded once, lazily, by whichever thread first needs it.

    Thread-safe: loading is guarded by a lock (a background warm-up and the GUI thread may race), and
    the small result cache by another, so the same counter can be shared by every prompt field.
    """

    def __init__(self, path: Path | str = TOKENIZER_PATH, chunk_length: int = CHUNK_LENGTH) -> None:
        self.path = Path(path)
        self.chunk_length = chunk_length
        self._tokenizer: Any = None
        self._comma_id: int | None = None
        self._failed = False
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, TokenCount] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._embeddings = _Embeddings({})
        self._generation = 0  # set_embeddings: counts made before it are not cached after it

    # --------------------------------------------------------------------------------- embeddings
    def set_embeddings(self, vectors: Mapping[str, int | None]) -> None:
        """The embeddings a prompt may call, by name, with their vector counts (None or nonsense: 1). Replaces
        the previous set; counts are recounted from now on."""
        embeddings = _Embeddings(vectors)
        with self._cache_lock:
            self._embeddings = embeddings
            self._generation += 1
            self._cache.clear()

    def embedding_vectors(self) -> dict[str, int]:
        """The embeddings known, by case-folded name, with the vectors each counts for."""
        return dict(self._embeddings.vectors)

    # ------------------------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        """True once a load was attempted and finished (successfully or not)."""
        return self._tokenizer is not None or self._failed

    @property
    def exact(self) -> bool:
        """False when the tokenizer could not be loaded and counts are estimates."""
        self.load()
        return self._tokenizer is not None

    def load(self) -> None:
        """Load the tokenizer if not done yet; safe to call from any thread, any number of times."""
        if self.loaded:
            return
        with self._load_lock:
            if self.loaded:
                return
            try:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.path))
                tokenizer.no_truncation()
                tokenizer.no_padding()
            except Exception as exc:  # a missing file or library must not take the window down
                log.warning("CLIP tokenizer unavailable (%s): token counts are estimates", exc)
                self._failed = True
            else:
                ids = tokenizer.encode(",", add_special_tokens=False).ids
                self._comma_id = ids[0] if len(ids) == 1 else None  # set before the tokenizer: it means loaded
                self._tokenizer = tokenizer

    # ----------------------------------------------------------------------------------- counting
    def _tokenize(self, texts: list[str], embeddings: _Embeddings | None = None) -> list[list[int]]:
        # One encode per fragment (not encode_batch): a prompt has few fragments, and the batch call
        # starts a Rust thread pool that makes the library warn after any later fork.
        pattern = embeddings.pattern if embeddings is not None else None
        if pattern is None:
            return [self._encode(text) for text in texts]
        token_lists = []
        for text in texts:
            ids: list[int] = []
            done = 0
            for match in pattern.finditer(text):
                # CLIP splits words at spaces and punctuation first, so the text around a name tokenizes
                # alone exactly as it does in the whole (the name never shares a token with its neighbours).
                ids += self._encode(text[done : match.start()])
                ids += [EMBEDDING_TOKEN] * embeddings.vectors.get(match.group().casefold(), 1)
                done = match.end()
            ids += self._encode(text[done:])
            token_lists.append(ids)
        return token_lists

    def _encode(self, text: str) -> list[int]:
        if not text:
            return []
        tokenizer = self._tokenizer
        if tokenizer is None:
            return [0] * len(_ROUGH.findall(text))
        return tokenizer.encode(text, add_special_tokens=False).ids

    def _comma(self) -> int | None:
        """The id of "," (word wrap at chunk ends, as the engine does); None while counts are estimates."""
        return self._comma_id if self._tokenizer is not None else None

    def measure(self, text: str) -> TokenCount:
        """Tokens and chunks of `text` as the engine will encode it (emphasis syntax removed, embedding names
        counted as their vectors)."""
        with self._cache_lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            embeddings, generation = self._embeddings, self._generation
        if not text.strip():
            result = TokenCount(0, 1)
        else:
            self.load()
            fragments = parse_prompt_attention(strip_extra_networks(text))  # <lora:…> tags are not encoded
            chunks = build_chunks(
                fragments, lambda texts: self._tokenize(texts, embeddings), self.chunk_length, comma=self._comma()
            )
            breaks = sum(1 for fragment in fragments if is_break(fragment))
            result = TokenCount(sum(len(chunk.tokens) for chunk in chunks), len(chunks), breaks)
        with self._cache_lock:
            if generation != self._generation:
                return result  # the embeddings changed meanwhile: not worth keeping
            self._cache[text] = result
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def count(self, text: str) -> int:
        """Number of content tokens (no BOS/EOS) after removing emphasis syntax."""
        return self.measure(text).tokens

    def chunks(self, text: str) -> int:
        """Number of 75-token chunks the engine splits the prompt into (BREAK starts a new one)."""
        return self.measure(text).chunks


_shared: TokenCounter | None = None
_shared_lock = threading.Lock()


def shared_counter() -> TokenCounter:
    """The process-wide counter: one tokenizer in memory, however many prompt fields there are."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TokenCounter()
        return _shared
