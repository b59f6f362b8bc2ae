"""Text from files is shown literally, never as HTML: the shared helpers, and the message boxes.

Qt's rich text loads the local files ``<img src=...>`` names (``/dev/zero`` aborts the process), so
these tests only ever check formats and escaping; nothing here renders rich text. The UI tests' markup
names ``/dev/null``: should a regression render it, the test fails instead of aborting the whole run.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGui
from PySide6.QtWidgets import QMessageBox, QWidget

from studio.ui.plain_text import menu_text, one_line, plain_label, plain_tooltip, single_spaced
from studio.ui.questions import ask

PAYLOAD = '<img src="/dev/null"><b>bold</b>'
"""What a crafted prompt, model name or path holds."""


def assert_shown_literally(tooltip: str, text: str) -> None:
    """`tooltip`, shown by Qt (AutoText), displays `text` and renders no tag of it."""
    assert QtGui.mightBeRichText(tooltip)
    assert tooltip.startswith("<p style='white-space:pre-wrap'>") and tooltip.endswith("</p>")
    assert html.escape(text) in tooltip and "<img" not in tooltip and "<b>" not in tooltip


def test_plain_tooltip_escapes_what_qt_would_render_as_html():
    tip = plain_tooltip(PAYLOAD)
    assert_shown_literally(tip, PAYLOAD)
    assert tip == (
        "<p style='white-space:pre-wrap'>&lt;img src=&quot;/dev/null&quot;&gt;&lt;b&gt;bold&lt;/b&gt;</p>"
    )
    # Qt takes "&lt;" before any tag on the first line as a sign of HTML too: it must stay "&lt;".
    assert plain_tooltip("a &lt; b") == "<p style='white-space:pre-wrap'>a &amp;lt; b</p>"
    # Line breaks are kept, control characters made visible, in both forms.
    assert plain_tooltip("<b>x</b>\x1b[2J\nline 2") == (
        "<p style='white-space:pre-wrap'>&lt;b&gt;x&lt;/b&gt;\\x1b[2J<br>line 2</p>"
    )
    assert plain_tooltip("red fox\x07\nseed 5") == "red fox\\x07\nseed 5"


def test_plain_tooltip_leaves_text_qt_shows_as_plain_text_alone():
    for text in ("a red fox", "3 < 4 and 5 > 2", "/tmp/images/fox.png", "first line\n<b>second</b>", ""):
        assert not QtGui.mightBeRichText(plain_tooltip(text))
        assert plain_tooltip(text) == text
    assert plain_tooltip(42) == "42"


def test_one_line_single_spaced_and_menu_text():
    assert one_line("<b>a</b>\r\nb\nc\x1b") == "<b>a</b> b c\\x1b"  # no HTML meaning in a plain label
    assert one_line("tab\there\u202e") == "tab\\there\\u202e"
    assert single_spaced("  a\n\n b\t c\x07 ") == "a b c\\x07"
    assert menu_text("Tom & Jerry") == "Tom && Jerry"


def test_plain_label_never_takes_text_as_html(qtbot):
    label = plain_label(PAYLOAD, wordWrap=True, accessibleName="x")
    qtbot.addWidget(label)
    assert label.textFormat() == Qt.TextFormat.PlainText
    assert label.text() == PAYLOAD and label.wordWrap() and label.accessibleName() == "x"
    empty = plain_label()
    qtbot.addWidget(empty)
    assert empty.textFormat() == Qt.TextFormat.PlainText and empty.text() == ""


def test_questions_show_their_text_as_plain_text(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    answered = []
    box = ask(
        parent, "Remove?", f"Move {PAYLOAD} to the trash?", name="question",
        choices=[("Move", QMessageBox.ButtonRole.DestructiveRole, lambda: answered.append(True))],
    )
    assert box.textFormat() == Qt.TextFormat.PlainText
    assert box.text() == f"Move {PAYLOAD} to the trash?"
    assert box.objectName() == "question"
    assert box.defaultButton() == box.button(QMessageBox.StandardButton.Cancel)
    [move] = [button for button in box.buttons() if button.text() == "Move"]
    move.click()
    assert answered == [True]
