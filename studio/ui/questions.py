"""Questions that do not stop the window: a message box opened non-modally, answered by callbacks.

Generation, downloads and previews go on while a question is open (a modal ``exec()`` would spin a
nested event loop), and tests answer it by clicking its buttons.

The text is always plain text: it names files and models (anything a file system or a file's metadata
holds), and a QMessageBox left at ``AutoText`` renders what looks like HTML (``<img src=...>`` loads a
local file). See :mod:`studio.ui.plain_text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

Choice = tuple[str, QMessageBox.ButtonRole, Callable[[], None]]


def ask(
    parent: QWidget,
    title: str,
    text: str,
    *,
    name: str,
    choices: Sequence[Choice],
    cancel: bool = True,
    icon: QMessageBox.Icon = QMessageBox.Icon.Question,
) -> QMessageBox:
    """Open the question `name` (its objectName) with one button per choice, plus Cancel (the default).
    `text` is shown as plain text, never as HTML."""
    box = QMessageBox(icon, title, "", QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # before the text: it is never parsed as HTML
    box.setText(text)
    box.setObjectName(name)
    for label, role, slot in choices:
        box.addButton(label, role).clicked.connect(slot)
    if cancel:
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.open()
    return box
