"""What the app keeps across restarts: the persisted properties of its view-models, in one file.

A view-model declares which of its properties persist (``Property(..., persist=True)``); the window
attaches each view-model to :class:`Preferences` once, which restores them from the file then, and
:meth:`Preferences.save` writes them all back. Nobody lists fields by hand. The app's own settings that
belong to no other view-model (theme, output folder, the LoRA and embedding folders the user added) are
:class:`AppSettings`.

Window geometry and splitter sizes are Qt's business and live in QSettings (see the main window).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from studio.library.paths import default_output_dir, embeddings_dir, loras_dir, preferences_path
from studio.library.preferences_file import read_preferences, write_preferences
from studio.viewmodel.properties import Property, ViewModel, one_of, persisted_values, restore_values

__all__ = ["MAX_ADDED_FOLDERS", "THEME_KEYS", "AppSettings", "Preferences", "clean_folders"]

THEME_KEYS = ("system", "light", "dark")
MAX_ADDED_FOLDERS = 50
"""Folders the user may add per kind (a hand-edited file with thousands would make every scan crawl)."""


def clean_folders(items: Any) -> list[str]:
    """Added folders as kept: absolute paths as text (``~`` allowed), no duplicates, order kept, at
    most `MAX_ADDED_FOLDERS`; anything else in a hand-edited file (numbers, empty or multi-line text, NUL) is
    skipped, so one bad entry does not lose the others."""
    if not isinstance(items, list):
        raise TypeError("folders must be a list")
    kept: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        text = item.strip()
        if not text or "\0" in text or "\n" in text or "\r" in text or text in kept:
            continue
        try:
            if not Path(text).expanduser().is_absolute():  # relative to what? the folder the app started in
                continue
        except RuntimeError:  # "~nobody/...": no such user
            continue
        kept.append(text)
        if len(kept) == MAX_ADDED_FOLDERS:
            break
    return kept


class AppSettings(ViewModel):
    """The app-wide choices: theme, output folder (None: the platform's Pictures folder), and the LoRA and
    embedding folders the user added (an A1111 or ComfyUI install's ``models/Lora``, ``embeddings``...: read
    where they are, never copied). The app's own folders under the user data folder are always scanned and
    never stored, so moving the data folder ($LATENT_STUDIO_DATA) moves them too."""

    theme = Property("system", persist=True, check=one_of(THEME_KEYS))
    output_dir = Property(None, kind=str, persist=True)
    lora_folders = Property([], kind=list, persist=True, check=clean_folders, doc="LoRA folders the user added")
    embedding_folders = Property(
        [], kind=list, persist=True, check=clean_folders, doc="textual-inversion folders the user added"
    )

    def output_path(self) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else default_output_dir()

    def network_folders(self) -> tuple[list[Path], list[Path]]:
        """Every LoRA folder and every embedding folder to scan: the app's own first (``loras`` and
        ``embeddings`` in the user data folder), then the added ones, each once."""
        return (
            _with_default(loras_dir(), self.lora_folders),
            _with_default(embeddings_dir(), self.embedding_folders),
        )

    def add_network_folder(self, kind: str, folder: str | Path) -> bool:
        """Add a `kind` ("lora" or "embedding") folder; False when it is already scanned (the app's own
        included) or the list is full."""
        name = _folders_property(kind)
        text = str(Path(folder).expanduser().absolute())
        scanned = self.network_folders()[0 if name == "lora_folders" else 1]
        current = list(getattr(self, name))
        if any(_same(Path(text), known) for known in scanned) or len(current) >= MAX_ADDED_FOLDERS:
            return False
        setattr(self, name, [*current, text])
        return True

    def remove_network_folder(self, kind: str, folder: str | Path) -> bool:
        """Stop scanning an added folder (its files stay where they are); the app's own cannot be removed."""
        name = _folders_property(kind)
        current = list(getattr(self, name))
        kept = [text for text in current if not _same(Path(text).expanduser(), Path(folder).expanduser())]
        if len(kept) == len(current):
            return False
        setattr(self, name, kept)
        return True


def _folders_property(kind: str) -> str:
    if kind not in ("lora", "embedding"):
        raise ValueError(f"unknown network kind {kind!r} (expected 'lora' or 'embedding')")
    return f"{kind}_folders"


def _with_default(default: Path, added: list[str]) -> list[Path]:
    folders = [default]
    for text in added:
        path = Path(text).expanduser()
        if not any(_same(path, known) for known in folders):
            folders.append(path)
    return folders


def _same(a: Path, b: Path) -> bool:
    """One folder under two spellings (a trailing slash, "..", a symbolic link)?"""
    if a == b:
        return True
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError, ValueError):
        return False


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
