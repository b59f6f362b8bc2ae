"""The prompts: prompt, negative prompt and the history of generated pairs, kept across restarts.

The editor binds to this view-model; the session reads the prompts from it and adds each generated
pair to the history. The token counter's tokenizer is loaded here, on a background pool, while the
window opens, so the first keystroke does not wait for it. The embeddings a prompt may call come here
too (:meth:`PromptState.set_embeddings`, from the LoRA and embedding browser's scans), so each counts as
its vectors; the editor recounts on ``embeddings_changed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.library.display import strip_controls
from studio.library.token_counter import TokenCounter, shared_counter
from studio.viewmodel.properties import Property, ViewModel
from studio.worker.tasks import TaskPool

__all__ = ["HISTORY_LIMIT", "PromptState", "clean_history"]

HISTORY_LIMIT = 200


def clean_history(items: Iterable[Any]) -> list[tuple[str, str]]:
    """A history as kept: (prompt, negative) pairs, newest first, no duplicates, no empty pairs, at
    most HISTORY_LIMIT; malformed items (a hand-edited file) are skipped."""
    history: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2:
            continue
        if not all(isinstance(part, str) for part in item):
            continue
        entry = (item[0], item[1])
        if entry in seen or not (entry[0].strip() or entry[1].strip()):
            continue
        seen.add(entry)
        history.append(entry)
        if len(history) == HISTORY_LIMIT:
            break
    return history


class PromptState(ViewModel):
    """Prompt, negative prompt and history (newest first)."""

    embeddings_changed = Signal()  # the token counts of both prompts may have changed

    prompt = Property("", persist=True)
    negative_prompt = Property("", persist=True)
    history = Property([], kind=list, persist=True, check=clean_history)

    def __init__(self, counter: TokenCounter | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.counter = counter or shared_counter()
        self._loader: TaskPool | None = None
        self._embedding_vectors: dict[str, int | None] = {}

    def warm_up(self) -> None:
        """Load the tokenizer in the background (once): counts are exact from the first keystroke."""
        if self.counter.loaded or self._loader is not None:
            return
        self._loader = TaskPool("token-counter", threads=1, parent=self)
        self._loader.submit(lambda _context: self.counter.load())

    def set_embeddings(self, vectors: Mapping[str, int | None]) -> None:
        """The embeddings in the folders, by name, with the vectors each stands for (None: unknown, a pickle,
        counted as 1): the token counts count an embedding's name as its vectors."""
        if dict(vectors) == self._embedding_vectors:
            return
        self._embedding_vectors = dict(vectors)
        self.counter.set_embeddings(vectors)
        self.embeddings_changed.emit()

    def set_prompts(self, prompt: str, negative: str = "") -> None:
        self.prompt, self.negative_prompt = prompt, negative

    def set_untrusted_prompts(self, prompt: Any, negative: Any) -> int:
        """Prompts read from a file's metadata: control characters (terminal escapes, BEL, NUL ...) and
        bidi overrides are removed, since they would be invisible in the editor yet travel into the next
        image's metadata; returns how many went. Everything else is kept as written."""
        clean_prompt, removed_p = strip_controls(prompt) if isinstance(prompt, str) else ("", 0)
        clean_negative, removed_n = strip_controls(negative) if isinstance(negative, str) else ("", 0)
        self.set_prompts(clean_prompt, clean_negative)
        return removed_p + removed_n

    def add_to_history(self, prompt: str, negative: str) -> None:
        """Remember a generated pair: newest first, no duplicates, at most HISTORY_LIMIT."""
        if prompt.strip() or negative.strip():
            self.history = [(prompt, negative), *self.history]

    def set_history(self, items: Iterable[Sequence[str]]) -> None:
        """Replace the history (newest first); malformed items are skipped, duplicates dropped."""
        self.history = list(items)

    def clear_history(self) -> None:
        self.history = []

    def shutdown(self) -> None:
        if self._loader is not None:
            self._loader.shutdown(timeout_ms=0)
