"""The prompt editor: prompt and negative prompt, live CLIP token counts, weight keys and history.

Keys inside either field (all keyboard, no mouse needed):

- Ctrl+Up / Ctrl+Down: raise / lower the weight of the selection or the word under the cursor
  (A1111 syntax, :func:`studio.library.prompt_weights.nudge`), or the multiplier of the ``<lora:name:w>`` tag
  the cursor is in, one undo step per press, selection kept so the key can be pressed again;
- Alt+Up / Alt+Down: walk back / forward through the prompts already generated (both fields); what
  was being typed is kept as a draft and comes back past the newest entry;
- Ctrl+Return / Ctrl+Enter: ``generate_requested`` (never a newline); Tab / Shift+Tab: next field;
- Ctrl+Z, Ctrl+Shift+Z and Ctrl+Y: each field's own undo / redo, on every platform.

Token counts use CLIP's real tokenizer (:mod:`studio.library.token_counter`, no torch): 2-4 ms for a
500-word prompt, so counts follow every keystroke; should a huge paste make a count slow (> 8 ms),
recounting is debounced instead of stalling the typing. An embedding's name counts as its vectors.

The LoRA and embedding browser inserts its tags with :meth:`PromptEditor.insert_at_cursor`, into the
field that had the focus last (prompt or negative prompt).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.library.prompt_weights import STEP, nudge
from studio.library.token_counter import CHUNK_LENGTH, TokenCounter
from studio.ui.plain_text import menu_text, plain_tooltip, single_spaced
from studio.viewmodel.prompt_state import HISTORY_LIMIT, PromptState

__all__ = ["HISTORY_LIMIT", "HISTORY_MENU_SIZE", "PromptEditor", "PromptField", "spaced_insertion"]

HISTORY_MENU_SIZE = 30
_MENU_LABEL_PX = 460
_SLOW_COUNT_S = 0.008  # a count slower than this (huge paste) is debounced
_DEBOUNCE_MS = 150

_CHUNK_TIP = (
    f"CLIP reads {CHUNK_LENGTH} tokens at a time: a longer prompt is split into chunks of {CHUNK_LENGTH} "
    "tokens that are encoded separately and joined, so words near a chunk boundary lose some context. "
    "BREAK starts a new chunk where you want it. Emphasis syntax like (word:1.2) is not counted."
)


# ------------------------------------------------------------------------------- UTF-16 positions
def _to_utf16(text: str, index: int) -> int:
    """Qt cursor position of the Python index `index` (characters beyond U+FFFF count twice)."""
    if text.isascii():
        return index
    return index + sum(1 for ch in text[:index] if ord(ch) > 0xFFFF)


def _from_utf16(text: str, position: int) -> int:
    """Python index of the Qt cursor position `position`."""
    if text.isascii():
        return min(position, len(text))
    units = 0
    for index, ch in enumerate(text):
        if units >= position:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


# ----------------------------------------------------------------------------------------- field
class PromptField(QPlainTextEdit):
    """A prompt text field that owns the editing keys; history and generation go to its owner."""

    generate_requested = Signal()
    history_step = Signal(int)  # +1: older (Alt+Up), -1: newer (Alt+Down)
    focused = Signal()  # the field got the keyboard focus

    def __init__(self, name: str, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name.replace(" ", "_"))
        self.setAccessibleName(name)
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)  # prompts never need tab characters; Tab must reach the next field
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)

    @staticmethod
    def _action(event: QKeyEvent) -> str | None:
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ctrl, alt = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier
        shift = Qt.KeyboardModifier.ShiftModifier
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and mods == ctrl:
            return "generate"
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            up = key == Qt.Key.Key_Up
            if mods == ctrl:
                return "weight_up" if up else "weight_down"
            if mods == alt:
                return "older" if up else "newer"
        if (key == Qt.Key.Key_Y and mods == ctrl) or (key == Qt.Key.Key_Z and mods == ctrl | shift):
            return "redo"
        return None

    def event(self, event: QEvent) -> bool:
        # Claim our keys before window shortcuts see them, except Ctrl+Return: a window-wide
        # "Generate" shortcut should win, and without one keyPressEvent emits generate_requested.
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            action = self._action(event)
            if action is not None and action != "generate":
                event.accept()
                return True
        return super().event(event)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        super().focusInEvent(event)
        self.focused.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        action = self._action(event)
        if action is None:
            super().keyPressEvent(event)
            return
        event.accept()
        if action == "generate":
            self.generate_requested.emit()
        elif action in ("weight_up", "weight_down"):
            self.nudge_weight(STEP if action == "weight_up" else -STEP)
        elif action in ("older", "newer"):
            self.history_step.emit(1 if action == "older" else -1)
        elif action == "redo":
            self.redo()

    def nudge_weight(self, delta: float) -> bool:
        """Apply :func:`weights.nudge` as one undo step, then select the nudged words; True if changed."""
        text = self.toPlainText()
        cursor = self.textCursor()
        start = _from_utf16(text, cursor.selectionStart())
        end = _from_utf16(text, cursor.selectionEnd())
        new, sel_start, sel_end = nudge(text, start, end, delta)
        if new != text:
            # Replace only the span that differs: the undo entry stays small and the view does not jump.
            prefix = 0
            limit = min(len(text), len(new))
            while prefix < limit and text[prefix] == new[prefix]:
                prefix += 1
            suffix = 0
            while suffix < limit - prefix and text[-1 - suffix] == new[-1 - suffix]:
                suffix += 1
            edit = QTextCursor(self.document())
            edit.beginEditBlock()
            edit.setPosition(_to_utf16(text, prefix))
            edit.setPosition(_to_utf16(text, len(text) - suffix), QTextCursor.MoveMode.KeepAnchor)
            edit.insertText(new[prefix : len(new) - suffix])
            edit.endEditBlock()
        selection = QTextCursor(self.document())
        selection.setPosition(_to_utf16(new, sel_start))
        selection.setPosition(_to_utf16(new, sel_end), QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(selection)
        return new != text

    def insert_at_cursor(self, text: str, separator: str = " ") -> None:
        """Insert `text` at the cursor (replacing a selection) as one undo step, apart from the words around
        it (:func:`spaced_insertion`); the cursor ends right after `text`."""
        whole = self.toPlainText()
        cursor = self.textCursor()
        start = _from_utf16(whole, cursor.selectionStart())
        end = _from_utf16(whole, cursor.selectionEnd())
        inserted, offset = spaced_insertion(whole[:start], whole[end:], text, separator)
        edit = QTextCursor(self.document())
        edit.beginEditBlock()
        edit.setPosition(cursor.selectionStart())
        edit.setPosition(cursor.selectionEnd(), QTextCursor.MoveMode.KeepAnchor)
        edit.insertText(inserted)
        edit.endEditBlock()
        after = QTextCursor(self.document())
        after.setPosition(_to_utf16(whole[:start] + inserted, start + offset))
        self.setTextCursor(after)
        self.ensureCursorVisible()

    def replace_text(self, text: str) -> None:
        """Replace the whole text as one undo step (Ctrl+Z brings the previous text back)."""
        if text == self.toPlainText():
            return
        edit = QTextCursor(self.document())
        edit.beginEditBlock()
        edit.select(QTextCursor.SelectionType.Document)
        edit.insertText(text)
        edit.endEditBlock()
        end = QTextCursor(self.document())
        end.movePosition(QTextCursor.MoveOperation.End)
        self.setTextCursor(end)


def spaced_insertion(before: str, after: str, text: str, separator: str = " ") -> tuple[str, int]:
    """What to insert between `before` and `after` so that `text` stands apart from its neighbours, and where
    `text` ends in it: `separator` (" " or ", ") after a word, only the space after a comma, nothing at the
    start, after white space, an opening bracket, ":" or "|"; the same before a following word (not before a
    comma, closing bracket, ":" or "|")."""
    lead = ""
    if before and not before[-1].isspace() and before[-1] not in "([{<:|":
        lead = " " if before[-1] in ",;" else separator
    trail = ""
    if after and not after[0].isspace() and after[0] not in ",;:|)]}>":
        trail = separator
    return lead + text + trail, len(lead) + len(text)


# ---------------------------------------------------------------------------------------- editor
class PromptEditor(QWidget):
    """Prompt + negative prompt with token counters, weight keys and a history of generated prompts.

    Shows a :class:`~studio.viewmodel.prompt_state.PromptState` (prompts and history live there, and
    persist there); what the user types is written to it as it is typed, and prompts it is given (a
    restored image, a history entry) replace the fields' text as one undoable step. The window listens
    to ``generate_requested``.
    """

    changed = Signal()
    generate_requested = Signal()
    history_changed = Signal()

    def __init__(
        self, state: PromptState | None = None, parent: QWidget | None = None, counter: TokenCounter | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state if state is not None else PromptState(counter=counter, parent=self)
        self._counter = self.state.counter
        self.state.warm_up()  # the tokenizer loads in the background while the window opens
        self._walk_index = -1  # -1: editing the draft; otherwise the history entry shown
        self._walk_floor = 0  # first entry of this walk (entries equal to the draft are skipped)
        self._draft: tuple[str, str] = ("", "")
        self._applying = False  # text set by us, not typed: the history walk goes on

        self.prompt_edit = PromptField(
            "Prompt",
            "Describe the image…  Ctrl+Return generates · Ctrl+↑/↓ weights a word · Alt+↑/↓ history",
        )
        self.negative_edit = PromptField("Negative prompt", "What to avoid: blurry, low quality, watermark…")
        self.prompt_counter = self._make_counter("Prompt token count")
        self.negative_counter = self._make_counter("Negative prompt token count")
        self._counter_of = {self.prompt_edit: self.prompt_counter, self.negative_edit: self.negative_counter}
        self._last_field = self.prompt_edit  # where the browser's tags go
        self._timers: dict[PromptField, QTimer] = {}
        self._last_cost = 0.0

        self.history_menu = QMenu(self)
        self.history_menu.setToolTipsVisible(True)
        self.history_button = QToolButton(self, text="History")
        self.history_button.setAccessibleName("Prompt history")
        self.history_button.setToolTip("Recent prompts (Alt+↑ / Alt+↓ in a prompt field)")
        self.history_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.history_button.setMenu(self.history_menu)

        prompt_label = QLabel("&Prompt", self)
        prompt_label.setBuddy(self.prompt_edit)
        negative_label = QLabel("&Negative prompt", self)
        negative_label.setBuddy(self.negative_edit)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(prompt_label)
        header.addStretch(1)
        header.addWidget(self.history_button)
        layout.addLayout(header)
        layout.addWidget(self.prompt_edit, 3)
        layout.addWidget(self.prompt_counter)
        layout.addWidget(negative_label)
        layout.addWidget(self.negative_edit, 2)
        layout.addWidget(self.negative_counter)
        self.prompt_edit.setMinimumHeight(self.prompt_edit.fontMetrics().lineSpacing() * 4 + 12)
        self.negative_edit.setMinimumHeight(self.negative_edit.fontMetrics().lineSpacing() * 2 + 12)

        for field in (self.prompt_edit, self.negative_edit):
            field.textChanged.connect(lambda f=field: self._on_text_changed(f))
            field.generate_requested.connect(self.generate_requested)
            field.history_step.connect(self._on_history_step)
            field.focused.connect(lambda f=field: setattr(self, "_last_field", f))
        self._apply((self.state.prompt, self.state.negative_prompt), undoable=False)
        for field in (self.prompt_edit, self.negative_edit):
            self._show_count(field)
        self.state.prompt_changed.connect(self._on_state_prompts)
        self.state.negative_prompt_changed.connect(self._on_state_prompts)
        self.state.history_changed.connect(self._on_history_changed)
        self.state.embeddings_changed.connect(self._recount)
        self._rebuild_menu()

    @property
    def _history(self) -> list[tuple[str, str]]:
        return self.state.history

    # -------------------------------------------------------------------------------------- API
    def prompt(self) -> str:
        return self.prompt_edit.toPlainText()

    def negative_prompt(self) -> str:
        return self.negative_edit.toPlainText()

    def set_prompts(self, prompt: str, negative: str = "", *, undoable: bool = True) -> None:
        """Show these prompts; with `undoable`, Ctrl+Z in a field brings its previous text back (one
        step per field). ``undoable=False`` also clears the undo history (e.g. at start-up)."""
        self._walk_index = -1
        self._apply((prompt, negative), undoable=undoable)

    def add_to_history(self, prompt: str, negative: str) -> None:
        """Remember a generated prompt pair: newest first, no duplicates, at most HISTORY_LIMIT."""
        self.state.add_to_history(prompt, negative)

    def history(self) -> list[tuple[str, str]]:
        """Newest first, as (prompt, negative prompt) pairs: the window persists this list."""
        return list(self._history)

    def set_history(self, items: Iterable[Sequence[str]]) -> None:
        """Replace the history (newest first); malformed items are skipped, duplicates dropped."""
        self.state.set_history(items)

    def _on_history_changed(self, _history) -> None:
        self._walk_index = -1
        self._rebuild_menu()
        self.history_changed.emit()

    def _on_state_prompts(self, _text: str) -> None:
        """Prompts set on the state by others (a restored image): shown as one undoable step."""
        prompts = (self.state.prompt, self.state.negative_prompt)
        if prompts != (self.prompt(), self.negative_prompt()) and not self._applying:
            self._walk_index = -1
            self._apply(prompts)

    def focus_prompt(self) -> None:
        self.prompt_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def last_field(self) -> PromptField:
        """The field that had the keyboard focus last (the prompt until one had it)."""
        return self._last_field

    def insert_at_cursor(self, text: str, separator: str = " ", *, focus: bool = True) -> PromptField:
        """Insert `text` (a ``<lora:name:1>`` tag, an embedding's name) at the cursor of the field that had
        the focus last, as one undoable step, with `separator` from the words around it; with `focus`, that
        field takes the focus back, so Ctrl+Up / Ctrl+Down can adjust what was inserted. Returns the field."""
        field = self._last_field
        field.insert_at_cursor(text, separator)
        if focus:
            field.setFocus(Qt.FocusReason.OtherFocusReason)
        return field

    # ----------------------------------------------------------------------------------- history
    def history_back(self) -> bool:
        """Show the next older entry (Alt+Up); the first step keeps the current text as the draft."""
        if self._walk_index == -1:
            draft = (self.prompt(), self.negative_prompt())
            index = 0
            while index < len(self._history) and self._history[index] == draft:
                index += 1  # just generated: the newest entry is what is already shown
            if index >= len(self._history):
                return False
            self._draft, self._walk_floor = draft, index
        else:
            index = self._walk_index + 1
            if index >= len(self._history):
                return False
        self._walk_index = index
        self._apply(self._history[index])
        return True

    def history_forward(self) -> bool:
        """Show the next newer entry (Alt+Down), and past the newest, the draft."""
        if self._walk_index == -1:
            return False
        index = self._walk_index - 1
        if index < self._walk_floor:
            self._walk_index = -1
            self._apply(self._draft)
        else:
            self._walk_index = index
            self._apply(self._history[index])
        return True

    def restore_history_entry(self, index: int) -> None:
        """Show history entry `index` (the drop-down); undoable like any other replacement."""
        if 0 <= index < len(self._history):
            self.set_prompts(*self._history[index])

    def _on_history_step(self, step: int) -> None:
        if step > 0:
            self.history_back()
        else:
            self.history_forward()

    def _rebuild_menu(self) -> None:
        menu = self.history_menu
        menu.clear()
        metrics = menu.fontMetrics()
        for index, (prompt, negative) in enumerate(self._history[:HISTORY_MENU_SIZE]):
            label = single_spaced(prompt) or "(empty prompt)"
            label = metrics.elidedText(label, Qt.TextElideMode.ElideRight, _MENU_LABEL_PX)
            action = menu.addAction(menu_text(label))
            tip = prompt if not negative else f"{prompt}\n\nNegative prompt: {negative}"
            action.setToolTip(plain_tooltip(tip[:2000]))  # shown literally, never as HTML
            action.triggered.connect(lambda _checked=False, i=index: self.restore_history_entry(i))
        if self._history:
            menu.addSeparator()
            menu.addAction("Clear history", lambda: self.set_history([]))
        self.history_button.setEnabled(bool(self._history))

    # ------------------------------------------------------------------------------ text changes
    def _apply(self, prompts: tuple[str, str], *, undoable: bool = True) -> None:
        self._applying = True
        try:
            for field, text in zip((self.prompt_edit, self.negative_edit), prompts, strict=True):
                if text == field.toPlainText():
                    continue
                if undoable:
                    field.replace_text(text)
                else:
                    field.blockSignals(True)
                    field.setPlainText(text)
                    field.blockSignals(False)
                    self._show_count(field)
        finally:
            self._applying = False
        self.changed.emit()

    def _on_text_changed(self, field: PromptField) -> None:
        if self._last_cost < _SLOW_COUNT_S:
            self._show_count(field)
        else:
            timer = self._timers.get(field)
            if timer is None:
                timer = self._timers[field] = QTimer(self, singleShot=True, interval=_DEBOUNCE_MS)
                timer.timeout.connect(lambda f=field: self._show_count(f))
            timer.start()
        if field is self.prompt_edit:
            self.state.prompt = field.toPlainText()
        else:
            self.state.negative_prompt = field.toPlainText()
        if not self._applying:
            self._walk_index = -1  # typing makes the current text the new draft
            self.changed.emit()

    # ----------------------------------------------------------------------------------- counter
    def _recount(self) -> None:
        for field in (self.prompt_edit, self.negative_edit):
            self._show_count(field)

    def _make_counter(self, name: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName("tokenCounter")
        label.setAccessibleName(name)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        label.setStyleSheet('QLabel[warning="true"] { color: #d97706; font-weight: 600; }')
        return label

    def _show_count(self, field: PromptField) -> None:
        label = self._counter_of[field]
        text = field.toPlainText()
        if text.strip():
            self._counter.load()  # normally done by the warm-up; its 0.1 s must not look like a slow count
        began = time.perf_counter()
        count = self._counter.measure(text)
        self._last_cost = time.perf_counter() - began
        about = "" if not text.strip() or self._counter.exact else "~"
        if count.chunks == 1 and count.tokens <= CHUNK_LENGTH:
            label.setText(f"{about}{count.tokens} / {CHUNK_LENGTH} tokens")
        else:
            label.setText(f"{about}{count.tokens} tokens · {count.chunks} chunks")
        # Chunks the user asked for with BREAK are no surprise; an automatic split is.
        warning = count.chunks > count.breaks + 1
        if warning:
            label.setToolTip(
                f"Over {CHUNK_LENGTH} tokens: this prompt is split into {count.chunks} chunks.\n\n{_CHUNK_TIP}"
            )
        else:
            label.setToolTip(_CHUNK_TIP)
        if label.property("warning") != warning:
            label.setProperty("warning", warning)
            label.style().unpolish(label)
            label.style().polish(label)
