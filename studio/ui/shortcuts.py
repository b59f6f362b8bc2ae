"""Help > Keyboard shortcuts: every key the window answers, grouped by where it works.

Rows come from the QActions themselves (their text and shortcuts), so the list cannot drift from what
the keys do; the few keys that fields handle themselves (prompt weights, history, the canvas) are
listed in :data:`FIELD_KEYS`.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

FIELD_KEYS: dict[str, list[tuple[str, str]]] = {
    "Prompt fields": [
        ("Generate", "Ctrl+Return"),
        ("Weight the selected words up / down", "Ctrl+Up / Ctrl+Down"),
        ("Older / newer prompt from the history", "Alt+Up / Alt+Down"),
    ],
    "Canvas (when it has focus)": [
        ("Paste an image", "Ctrl+V"),
        ("Open an image", "Ctrl+O"),
        ("Remove the image", "Delete"),
        ("Paint the mask / erase it", "drag / right-drag"),
        ("Brush / eraser / swap them", "B / E / X"),
        ("Brush smaller / larger", "[ / ]"),
        ("Brush softer / harder", "Shift+[ / Shift+]"),
        ("Undo / redo a stroke", "Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y"),
        ("Clear / invert / fill the mask", "Shift+Delete / Ctrl+I / Shift+Backspace"),
        ("Zoom about the pointer", "mouse wheel, + / -"),
        ("Pan", "Space+drag, middle-drag"),
        ("Fit the view", "0"),
        ("Outpaint: grow the canvas", "drag an edge of the picture"),
    ],
    "Fields": [("Change a number or choice with the mouse wheel", "click the field first")],
}


def action_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(what it does, its keys) for each action that has a shortcut; submenus are walked."""
    rows: list[tuple[str, str]] = []
    for action in actions:
        if action.menu() is not None:
            rows += action_rows(action.menu().actions())
            continue
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
        if keys:
            rows.append((action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…"), ", ".join(dict.fromkeys(keys))))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, groups: dict[str, list[tuple[str, str]]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Action", "Keys"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAccessibleName("Keyboard shortcuts")
        for title, rows in groups.items():
            group = QTreeWidgetItem(self.tree, [title])
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            group.setFirstColumnSpanned(True)
            for text, keys in rows:
                QTreeWidgetItem(group, [text, keys])
            group.setExpanded(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self.resize(560, 620)

    def rows(self) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            out[group.text(0)] = [(group.child(j).text(0), group.child(j).text(1)) for j in range(group.childCount())]
        return out
