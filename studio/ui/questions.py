"""Questions that do not stop the window: a message box opened non-modally, answered by callbacks.

Generation, downloads and previews go on while a question is open (a modal ``exec()`` would spin a
nested event loop), and tests answer it by clicking its buttons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    """Open the question `name` (its objectName) with one button per choice, plus Cancel (the default)."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName(name)
    for label, role, slot in choices:
        box.addButton(label, role).clicked.connect(slot)
    if cancel:
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.open()
    return box
