"""What the app keeps across restarts: the persisted properties of its view-models, in one file.

A view-model declares which of its properties persist (``Property(..., persist=True)``); the window
attaches each view-model to :class:`Preferences` once, which restores them from the file then, and
:meth:`Preferences.save` writes them all back. Nobody lists fields by hand. The app's own settings that
belong to no other view-model (theme, output folder) are :class:`AppSettings`.

Window geometry and splitter sizes are Qt's business and live in QSettings (see the main window).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from studio.library.paths import default_output_dir, preferences_path
from studio.library.preferences_file import read_preferences, write_preferences
from studio.viewmodel.properties import Property, ViewModel, one_of, persisted_values, restore_values

__all__ = ["THEME_KEYS", "AppSettings", "Preferences"]

THEME_KEYS = ("system", "light", "dark")


class AppSettings(ViewModel):
    """The app-wide choices: theme and output folder (None: the platform's Pictures folder)."""

    theme = Property("system", persist=True, check=one_of(THEME_KEYS))
    output_dir = Property(None, kind=str, persist=True)

    def output_path(self) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else default_output_dir()


class Preferences(QObject):
    """The preferences file and the view-models whose persisted properties it holds."""

    def __init__(self, path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path) if path else preferences_path()
        self.values: dict[str, Any] = read_preferences(self.path)
        self._models: list[ViewModel] = []

    def attach(self, model: ViewModel) -> list[str]:
        """Restore `model`'s persisted properties from the file and keep it for :meth:`save`; returns
        the names whose stored values were refused (they keep their defaults)."""
        self._models.append(model)
        return restore_values(model, self.values)

    def save(self) -> None:
        """Write every attached view-model's persisted values (keys of older versions are kept).
        Raises OSError when the file cannot be written."""
        for model in self._models:
            self.values.update(persisted_values(model))
        write_preferences(self.values, self.path)
