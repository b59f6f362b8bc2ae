"""Text from files shown in widgets exactly as it is: never as HTML, never acting on the layout.

Prompts, model names, file names and paths, metadata and exception messages come from files anyone can
craft. Qt renders a tooltip, and a QLabel or QMessageBox left at its default ``AutoText`` format, as
rich text whenever the text *looks* like HTML (``Qt.mightBeRichText``), and its rich text loads the
local files that ``<img src=...>`` names: a prompt ``<img src="/dev/zero">`` in a tooltip aborted the
app (``std::bad_alloc``), and any local image could be shown. So:

* labels showing such text are :func:`plain_label` s (or get ``setTextFormat(PlainText)`` once);
* message boxes get ``setTextFormat(PlainText)`` (see :func:`studio.ui.questions.ask`);
* tooltips, which have no text format of their own, go through :func:`plain_tooltip`;
* multi-line views use ``QPlainTextEdit.setPlainText``, never ``setHtml`` or ``QTextEdit.setText``.

Control characters (terminal escapes, bidi overrides, ...) are made visible by
:func:`studio.library.display.printable` on the way.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGuiNamespace
from PySide6.QtWidgets import QLabel, QWidget

from studio.library.display import printable

__all__ = ["menu_text", "one_line", "plain_label", "plain_tooltip", "single_spaced"]


def one_line(text: object) -> str:
    """`text` for a one-line label: line breaks become spaces, every other harmful character is
    shown as an escape (a caption must neither grow nor act on the layout)."""
    return printable(str(text).replace("\r\n", " ").replace("\n", " "))


def single_spaced(text: object) -> str:
    """`text` with every run of whitespace (line breaks, tabs) made one space and control characters
    shown as escapes: a prompt as a short label (a menu entry)."""
    return printable(" ".join(str(text).split()))


def menu_text(text: object) -> str:
    """`text` (already fit for display) as a QAction's or button's text: "&" is shown, not taken as
    the mnemonic marker ("Tom & Jerry" would otherwise lose its ampersand and underline a letter)."""
    return str(text).replace("&", "&&")


def plain_tooltip(text: object) -> str:
    """A tooltip showing `text` literally.

    Qt renders a tooltip as HTML whenever it looks like HTML (``Qt.mightBeRichText``: a file name or
    prompt with "<b>" in it), so such text is escaped into HTML that displays exactly it; text that
    does not look like HTML is returned as it is (shown as plain text). Control characters are made
    visible, line breaks kept."""
    shown = printable(text, keep_newlines=True)
    if not QtGuiNamespace.mightBeRichText(shown):
        return shown
    return "<p style='white-space:pre-wrap'>" + html.escape(shown).replace("\n", "<br>") + "</p>"


def plain_label(text: str = "", parent: QWidget | None = None, **properties) -> QLabel:
    """A QLabel that always shows its text as plain text (a QLabel's default, ``AutoText``, renders
    anything that looks like HTML). `properties` are Qt properties, as for ``QLabel(...)``."""
    label = QLabel(parent, **properties)
    label.setTextFormat(Qt.TextFormat.PlainText)
    if text:
        label.setText(text)
    return label
