"""Icons shipped in studio/resources/icons (SVG): no icon themes or network fonts needed."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from studio.library.resources import RESOURCES


@cache
def icon(name: str) -> QIcon:
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
