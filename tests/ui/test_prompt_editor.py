"""PromptEditor with real widgets and real key presses: counters, weight keys, undo, history, Ctrl+Return."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QTextCursor
from PySide6.QtWidgets import QMainWindow

from studio.ui.prompt_editor import HISTORY_LIMIT, PromptEditor, PromptField

CTRL = Qt.KeyboardModifier.ControlModifier
ALT = Qt.KeyboardModifier.AltModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def editor(qtbot) -> PromptEditor:
    widget = PromptEditor()
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def select(field: PromptField, start: int, end: int) -> None:
    cursor = field.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    field.setTextCursor(cursor)


def select_text(field: PromptField, word: str) -> None:
    start = field.toPlainText().index(word)
    select(field, start, start + len(word))


def type_into(qtbot, field: PromptField, text: str) -> None:
    field.setFocus()
    qtbot.keyClicks(field, text)


# ------------------------------------------------------------------------------------- counters
def test_typing_updates_the_token_counter(qtbot, editor: PromptEditor) -> None:
    assert editor.prompt_counter.text() == "0 / 75 tokens"
    type_into(qtbot, editor.prompt_edit, "a photo of a cat")
    assert editor.prompt_counter.text() == "5 / 75 tokens"
    type_into(qtbot, editor.negative_edit, "blurry")
    assert editor.negative_counter.text() == "1 / 75 tokens"
    assert editor.prompt_counter.property("warning") is not True


def test_emphasis_syntax_is_not_counted(qtbot, editor: PromptEditor) -> None:
    type_into(qtbot, editor.prompt_edit, "(cat:1.3)")
    assert editor.prompt_counter.text() == "1 / 75 tokens"


def test_long_prompt_shows_chunks_as_a_warning(qtbot, editor: PromptEditor) -> None:
    words = " ".join(["word"] * 100)
    editor.set_prompts(words)
    assert editor.prompt_counter.text() == "100 tokens · 2 chunks"
    assert editor.prompt_counter.property("warning") is True
    assert "chunks of 75" in editor.prompt_counter.toolTip()
    editor.set_prompts("a cat BREAK a dog")  # chunks asked for with BREAK are no warning
    assert editor.prompt_counter.text() == "4 tokens · 2 chunks"
    assert editor.prompt_counter.property("warning") is False
    editor.set_prompts("a cat")
    assert editor.prompt_counter.text() == "2 / 75 tokens"


def test_slow_counts_are_debounced_but_arrive(qtbot, editor: PromptEditor) -> None:
    editor._last_cost = 1.0  # as after counting a huge paste
    type_into(qtbot, editor.prompt_edit, "a photo of a cat")
    qtbot.waitUntil(lambda: editor.prompt_counter.text() == "5 / 75 tokens", timeout=3000)


# ---------------------------------------------------------------------------------- weight keys
def test_ctrl_up_and_down_nudge_the_selected_word(qtbot, editor: PromptEditor) -> None:
    field = editor.prompt_edit
    type_into(qtbot, field, "a photo of a cat, snow")
    select_text(field, "cat")
    qtbot.keyClick(field, Qt.Key.Key_Up, CTRL)
    assert field.toPlainText() == "a photo of a (cat:1.1), snow"
    assert field.textCursor().selectedText() == "cat"
    qtbot.keyClick(field, Qt.Key.Key_Up, CTRL)
    assert field.toPlainText() == "a photo of a (cat:1.2), snow"
    qtbot.keyClick(field, Qt.Key.Key_Down, CTRL)
    qtbot.keyClick(field, Qt.Key.Key_Down, CTRL)
    assert field.toPlainText() == "a photo of a cat, snow"
    assert field.textCursor().selectedText() == "cat"
    qtbot.keyClick(field, Qt.Key.Key_Down, CTRL)
    assert field.toPlainText() == "a photo of a (cat:0.9), snow"


def test_ctrl_up_without_selection_takes_the_word_under_the_cursor(qtbot, editor: PromptEditor) -> None:
    field = editor.negative_edit
    type_into(qtbot, field, "blurry, low quality")
    qtbot.keyClick(field, Qt.Key.Key_Up, CTRL)  # cursor at the end, after "quality"
    assert field.toPlainText() == "blurry, low (quality:1.1)"
    assert editor.negative_counter.text() == "4 / 75 tokens"


def test_one_undo_per_nudge_and_redo(qtbot, editor: PromptEditor) -> None:
    field = editor.prompt_edit
    type_into(qtbot, field, "a red cat")
    select_text(field, "red")
    for _ in range(3):
        qtbot.keyClick(field, Qt.Key.Key_Up, CTRL)
    assert field.toPlainText() == "a (red:1.3) cat"
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL)
    assert field.toPlainText() == "a (red:1.2) cat"
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL)
    assert field.toPlainText() == "a (red:1.1) cat"
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL)
    assert field.toPlainText() == "a red cat"
    qtbot.keyClick(field, Qt.Key.Key_Y, CTRL)
    assert field.toPlainText() == "a (red:1.1) cat"
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL | SHIFT)
    assert field.toPlainText() == "a (red:1.2) cat"


def test_nudge_positions_survive_characters_outside_the_bmp(qtbot, editor: PromptEditor) -> None:
    """Qt counts UTF-16 units, Python code points: an emoji before the word must not shift the edit."""
    field = editor.prompt_edit
    editor.set_prompts("🐱🐶 a cute cat")
    cursor = field.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.End)
    cursor.movePosition(QTextCursor.MoveOperation.PreviousWord, QTextCursor.MoveMode.KeepAnchor)
    field.setTextCursor(cursor)
    assert cursor.selectedText() == "cat"
    qtbot.keyClick(field, Qt.Key.Key_Up, CTRL)
    assert field.toPlainText() == "🐱🐶 a cute (cat:1.1)"
    assert field.textCursor().selectedText() == "cat"
    qtbot.keyClick(field, Qt.Key.Key_Up, CTRL)
    assert field.toPlainText() == "🐱🐶 a cute (cat:1.2)"


def test_window_shortcuts_do_not_steal_the_weight_keys(qtbot) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    editor = PromptEditor()
    window.setCentralWidget(editor)
    stolen: list[str] = []
    for keys in ("Ctrl+Up", "Alt+Up", "Ctrl+Y"):
        action = QAction(keys, window, shortcut=QKeySequence(keys))
        action.triggered.connect(lambda _=False, k=keys: stolen.append(k))
        window.addAction(action)
    with qtbot.waitActive(window):  # shortcuts only fire in the active window
        window.show()
        window.activateWindow()
    type_into(qtbot, editor.prompt_edit, "a cat")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Up, CTRL)
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Up, ALT)
    assert editor.prompt() == "a (cat:1.1)"
    assert stolen == []


# ------------------------------------------------------------------------------------ generate
def test_ctrl_return_requests_generation_without_a_newline(qtbot, editor: PromptEditor) -> None:
    field = editor.prompt_edit
    type_into(qtbot, field, "a cat")
    with qtbot.waitSignal(editor.generate_requested, timeout=1000):
        qtbot.keyClick(field, Qt.Key.Key_Return, CTRL)
    with qtbot.waitSignal(editor.generate_requested, timeout=1000):
        qtbot.keyClick(editor.negative_edit, Qt.Key.Key_Enter, CTRL | Qt.KeyboardModifier.KeypadModifier)
    assert field.toPlainText() == "a cat"
    assert editor.negative_prompt() == ""
    qtbot.keyClick(field, Qt.Key.Key_Return)  # a plain Return still makes a new line
    assert field.toPlainText() == "a cat\n"


def test_a_window_generate_shortcut_wins_once(qtbot) -> None:
    """With the window's Ctrl+Return action the editor stays out of the way: one generation, no newline."""
    window = QMainWindow()
    qtbot.addWidget(window)
    editor = PromptEditor()
    window.setCentralWidget(editor)
    fired: list[str] = []
    action = QAction("Generate", window, shortcut=QKeySequence("Ctrl+Return"))
    action.triggered.connect(lambda: fired.append("action"))
    window.addAction(action)
    editor.generate_requested.connect(lambda: fired.append("signal"))
    with qtbot.waitActive(window):  # shortcuts only fire in the active window
        window.show()
        window.activateWindow()
    type_into(qtbot, editor.prompt_edit, "a cat")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Return, CTRL)
    assert fired == ["action"]
    assert editor.prompt() == "a cat"


# --------------------------------------------------------------------------------- set_prompts
def test_set_prompts_is_one_undo_step_per_field(qtbot, editor: PromptEditor) -> None:
    type_into(qtbot, editor.prompt_edit, "typed prompt")
    type_into(qtbot, editor.negative_edit, "typed negative")
    with qtbot.waitSignal(editor.changed, timeout=1000):
        editor.set_prompts("restored prompt", "restored negative")
    assert (editor.prompt(), editor.negative_prompt()) == ("restored prompt", "restored negative")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Z, CTRL)
    qtbot.keyClick(editor.negative_edit, Qt.Key.Key_Z, CTRL)
    assert (editor.prompt(), editor.negative_prompt()) == ("typed prompt", "typed negative")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Y, CTRL)
    assert editor.prompt() == "restored prompt"
    assert editor.prompt_counter.text() == "2 / 75 tokens"


def test_set_prompts_without_undo_clears_the_undo_history(qtbot, editor: PromptEditor) -> None:
    editor.set_prompts("saved prompt", "saved negative", undoable=False)
    assert editor.prompt() == "saved prompt"
    assert editor.negative_counter.text() == "2 / 75 tokens"
    assert not editor.prompt_edit.document().isUndoAvailable()


# ------------------------------------------------------------------------------------- history
def test_alt_up_walks_history_and_alt_down_returns_to_the_draft(qtbot, editor: PromptEditor) -> None:
    editor.add_to_history("first cat", "first negative")
    editor.add_to_history("second dog", "")
    type_into(qtbot, editor.prompt_edit, "my draft")
    type_into(qtbot, editor.negative_edit, "draft neg")
    field = editor.prompt_edit
    qtbot.keyClick(field, Qt.Key.Key_Up, ALT)
    assert (editor.prompt(), editor.negative_prompt()) == ("second dog", "")
    qtbot.keyClick(field, Qt.Key.Key_Up, ALT)
    assert (editor.prompt(), editor.negative_prompt()) == ("first cat", "first negative")
    qtbot.keyClick(field, Qt.Key.Key_Up, ALT)  # the oldest: stays
    assert editor.prompt() == "first cat"
    assert editor.prompt_counter.text() == "2 / 75 tokens"
    qtbot.keyClick(editor.negative_edit, Qt.Key.Key_Down, ALT)  # either field walks
    assert editor.prompt() == "second dog"
    qtbot.keyClick(field, Qt.Key.Key_Down, ALT)
    assert (editor.prompt(), editor.negative_prompt()) == ("my draft", "draft neg")
    qtbot.keyClick(field, Qt.Key.Key_Down, ALT)  # already at the draft
    assert editor.prompt() == "my draft"


def test_walking_back_right_after_generating_skips_the_prompt_already_shown(
    qtbot, editor: PromptEditor
) -> None:
    editor.add_to_history("old", "")
    editor.set_prompts("current", "neg")
    editor.add_to_history("current", "neg")  # what the window does after queueing a job
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Up, ALT)
    assert editor.prompt() == "old"
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Down, ALT)
    assert (editor.prompt(), editor.negative_prompt()) == ("current", "neg")


def test_typing_while_walking_starts_a_new_draft(qtbot, editor: PromptEditor) -> None:
    editor.set_history([("newest", ""), ("older", "")])
    field = editor.prompt_edit
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_Up, ALT)
    qtbot.keyClick(field, Qt.Key.Key_Up, ALT)
    assert editor.prompt() == "older"
    qtbot.keyClicks(field, " edited")
    qtbot.keyClick(field, Qt.Key.Key_Up, ALT)
    assert editor.prompt() == "newest"
    qtbot.keyClick(field, Qt.Key.Key_Down, ALT)
    assert editor.prompt() == "older edited"


def test_history_walk_is_undoable(qtbot, editor: PromptEditor) -> None:
    editor.add_to_history("from history", "")
    type_into(qtbot, editor.prompt_edit, "draft")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Up, ALT)
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Z, CTRL)
    assert editor.prompt() == "draft"


def test_history_drop_down_restores_an_entry(qtbot, editor: PromptEditor) -> None:
    assert not editor.history_button.isEnabled()
    editor.add_to_history("a cat", "blurry")
    editor.add_to_history("rock & roll " + "very long words " * 40, "")
    menu = editor.history_button.menu()
    entries = [a for a in menu.actions() if not a.isSeparator()]
    assert editor.history_button.isEnabled()
    assert entries[0].text().startswith("rock && roll")  # a literal "&", not a mnemonic
    assert entries[0].text().endswith("…") and len(entries[0].text()) < 200
    assert "Negative prompt: blurry" in entries[1].toolTip()
    entries[1].trigger()
    assert (editor.prompt(), editor.negative_prompt()) == ("a cat", "blurry")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Z, CTRL)
    assert editor.prompt() == ""
    entries[-1].trigger()  # "Clear history"
    assert editor.history() == [] and not editor.history_button.isEnabled()


def test_history_is_deduplicated_newest_first_and_capped(qtbot, editor: PromptEditor) -> None:
    editor.add_to_history("a", "x")
    editor.add_to_history("b", "")
    editor.add_to_history("a", "x")
    editor.add_to_history("a", "y")
    editor.add_to_history("  ", "")  # nothing to remember
    assert editor.history() == [("a", "y"), ("a", "x"), ("b", "")]
    for i in range(HISTORY_LIMIT + 20):
        editor.add_to_history(f"prompt {i}", "")
    history = editor.history()
    assert len(history) == HISTORY_LIMIT
    assert history[0] == (f"prompt {HISTORY_LIMIT + 19}", "")


def test_set_history_accepts_persisted_lists_and_skips_junk(qtbot, editor: PromptEditor) -> None:
    editor.set_history([["a", "x"], ("b", ""), ["a", "x"], "ab", ["only one"], [1, 2], ("", " "), ("c", "z")])
    assert editor.history() == [("a", "x"), ("b", ""), ("c", "z")]
    editor.set_history([(f"p{i}", "") for i in range(HISTORY_LIMIT * 2)])
    assert len(editor.history()) == HISTORY_LIMIT


# ------------------------------------------------------------------------------- focus, a11y
def test_tab_moves_focus_instead_of_inserting_a_tab(qtbot, editor: PromptEditor) -> None:
    editor.focus_prompt()
    qtbot.waitUntil(editor.prompt_edit.hasFocus, timeout=1000)
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Tab)
    assert editor.prompt() == ""
    assert not editor.prompt_edit.hasFocus()


def test_fields_have_accessible_names_and_placeholders(editor: PromptEditor) -> None:
    assert editor.prompt_edit.accessibleName() == "Prompt"
    assert editor.negative_edit.accessibleName() == "Negative prompt"
    assert editor.prompt_counter.accessibleName() == "Prompt token count"
    assert editor.history_button.accessibleName() == "Prompt history"
    assert "Ctrl+Return" in editor.prompt_edit.placeholderText()
    assert editor.negative_edit.placeholderText()


def test_changed_is_emitted_when_the_user_types(qtbot, editor: PromptEditor) -> None:
    with qtbot.waitSignal(editor.changed, timeout=1000):
        type_into(qtbot, editor.negative_edit, "x")


def test_importing_the_editor_does_not_import_torch() -> None:
    code = "import sys, studio.ui.prompt_editor; print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_history_labels_and_tips_show_prompts_literally(editor):
    # A prompt restored from a file and generated goes into the history: its menu entry must neither
    # render HTML nor carry escapes.
    editor.set_history([("<b>bold</b> \x1b[31mred\u202e", "neg <i>x</i>")])
    [action] = [a for a in editor.history_menu.actions() if a.text() != "Clear history" and not a.isSeparator()]
    assert "\x1b" not in action.text() and "\\x1b[31mred\\u202e" in action.text()
    tip = action.toolTip()
    assert "&lt;b&gt;bold&lt;/b&gt;" in tip and "\\x1b" in tip and "\x1b" not in tip
    assert editor.history() == [("<b>bold</b> \x1b[31mred\u202e", "neg <i>x</i>")]  # kept as written
