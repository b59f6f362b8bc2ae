"""Light, dark, or whatever the desktop uses.

"System" leaves colours to the platform (Qt follows the desktop's palette and its light/dark switch).
"Light" and "Dark" are explicit Fusion palettes, so they look the same on every desktop, including those
whose Qt platform theme ignores a colour-scheme request. Widgets draw with palette roles (never fixed
colours), so every theme applies everywhere.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEMES = {"system": "&System", "light": "&Light", "dark": "&Dark"}

_original: dict[str, object] = {}


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = QPalette.ColorRole
    base, window, text = QColor(30, 30, 32), QColor(45, 45, 48), QColor(230, 230, 230)
    for role, color in (
        (roles.Window, window), (roles.WindowText, text), (roles.Base, base), (roles.AlternateBase, window),
        (roles.ToolTipBase, QColor(60, 60, 64)), (roles.ToolTipText, text), (roles.Text, text),
        (roles.Button, window), (roles.ButtonText, text), (roles.BrightText, QColor(255, 90, 90)),
        (roles.Link, QColor(110, 170, 255)), (roles.Highlight, QColor(60, 120, 215)),
        (roles.HighlightedText, QColor(255, 255, 255)), (roles.PlaceholderText, QColor(150, 150, 150)),
        (roles.Mid, QColor(120, 120, 125)), (roles.Dark, QColor(20, 20, 22)), (roles.Light, QColor(75, 75, 80)),
    ):
        palette.setColor(role, color)
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(125, 125, 125))
    return palette


def apply_theme(key: str) -> None:
    """Apply "system", "light" or "dark" to the whole application (unknown keys mean "system")."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if not _original:
        _original["style"] = app.style().name()
        _original["palette"] = QPalette(app.palette())
    hints = QGuiApplication.styleHints()
    if key in ("light", "dark"):
        _original["applied"] = True
        app.setStyle(QStyleFactory.create("Fusion"))
        app.setPalette(dark_palette() if key == "dark" else app.style().standardPalette())
        if hasattr(hints, "setColorScheme"):
            hints.setColorScheme(Qt.ColorScheme.Dark if key == "dark" else Qt.ColorScheme.Light)
        return
    if not _original.pop("applied", False):
        return  # never changed: leave the platform's palette alone (it follows the desktop live)
    if hasattr(hints, "unsetColorScheme"):
        hints.unsetColorScheme()
    if app.style().name() != _original["style"]:
        app.setStyle(QStyleFactory.create(str(_original["style"])))
    app.setPalette(_original["palette"])


def is_dark(palette: QPalette | None = None) -> bool:
    palette = palette or QApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < 128
