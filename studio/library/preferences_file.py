"""The preferences file: a small JSON object in the user config folder.

Written atomically; read leniently, since the user may edit it and another version may have written
it: a missing, damaged or non-object file reads as empty, and each view-model then checks the values
it takes (:func:`studio.viewmodel.properties.restore_values`). Keys nobody declares any more are kept
when the file is written again, so going back to an older version loses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.library.images import atomic_write_bytes
from studio.library.paths import preferences_path

__all__ = ["local_models", "read_preferences", "write_preferences"]

MAX_BYTES = 4 * 1024 * 1024
"""A preferences file is a few kilobytes; anything this big is not ours and is not read."""


def read_preferences(path: Path | None = None) -> dict[str, Any]:
    """The stored values by name ({} when there is no usable file)."""
    path = path or preferences_path()
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return raw if isinstance(raw, dict) else {}


def write_preferences(values: dict[str, Any], path: Path | None = None) -> None:
    """Replace the file with `values` (atomically: a crash leaves the old file or the new one).

    A lone surrogate (read from a hand-edited file as a ``\\udXXX`` escape, kept under an old key or in a
    prompt) has no UTF-8 form: it is written back as that same escape, so the file stays readable and
    reads back the same values, instead of the save failing."""
    path = path or preferences_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(values, indent=2, ensure_ascii=False)
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def local_models(values: dict[str, Any]) -> list[str]:
    """The local model folders and files the user added in the window (for ``studio models``)."""
    found = values.get("local_models")
    return [spec for spec in found if isinstance(spec, str)] if isinstance(found, list) else []


def network_folders(values: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The LoRA and embedding folders the user added in the window (an A1111 or ComfyUI install's), for
    the command line to find the same files."""

    def paths(key: str) -> list[str]:
        found = values.get(key)
        return [p for p in found if isinstance(p, str) and p.strip()] if isinstance(found, list) else []

    return paths("lora_folders"), paths("embedding_folders")
