"""The app's persisted preferences (its folders are in :mod:`studio.library.paths`).

Preferences are a small JSON file in the user config folder, written atomically, read leniently: a
damaged or hand-edited file never stops the app (bad values fall back to defaults). Window geometry
and splitter sizes are Qt's business and live in QSettings (see the main window).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.library.paths import default_output_dir, preferences_path


@dataclass
class Preferences:
    """The last used values; restored at start. None means: the model's default."""

    model: str = "sd-1.4"
    scheduler: str | None = None
    steps: int | None = None
    guidance: float | None = None
    guidance_rescale: float | None = None
    width: int | None = None
    height: int | None = None
    batch: int = 1
    strength: float = 0.75
    seed_mode: str = "random"  # "random" | "fixed" | "reuse"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    safety_checker: bool = True
    fit_mode: str = "crop"
    output_dir: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    history: list[list[str]] = field(default_factory=list)  # [prompt, negative], newest first
    local_models: list[str] = field(default_factory=list)  # folders and files the user added
    theme: str = "system"  # "system" | "light" | "dark"
    gallery_icon_size: int = 160

    @classmethod
    def load(cls, path: Path | None = None) -> Preferences:
        path = path or preferences_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        prefs = cls()
        defaults = asdict(prefs)
        for f in fields(cls):
            if f.name in raw and _same_kind(raw[f.name], defaults[f.name], f.type):
                setattr(prefs, f.name, raw[f.name])
        return prefs

    def save(self, path: Path | None = None) -> None:
        from studio.library.images import atomic_write_bytes

        path = path or preferences_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(asdict(self), indent=2, ensure_ascii=False).encode("utf-8"))

    def output_path(self) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else default_output_dir()


def _same_kind(value: Any, default: Any, annotation: Any) -> bool:
    """Accept a stored value only if it has the field's type (None allowed where the field allows it)."""
    text = str(annotation)
    if value is None:
        return "None" in text
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and ("bool" in text)
    if "int" in text and isinstance(value, int):
        return True
    if "float" in text and isinstance(value, int | float):
        return True
    if "str" in text and isinstance(value, str) and "list" not in text:
        return True
    if "list" in text and isinstance(value, list):
        return all(isinstance(v, str | list) for v in value)
    return False
