"""Saving a generated image: a fresh safe name in the output folder, metadata embedded, atomic.

Shared by the CLI and the app's worker so both name and write files the same way. Takes any object
with `image`, `seed` and `metadata` (the engine's GenerationResult) so this layer needs no engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from studio.library.images import save_image
from studio.library.naming import discard_placeholder, output_path


class SavableResult(Protocol):
    image: Any
    seed: int
    metadata: dict


def save_result(result: SavableResult, output_dir: str | Path) -> Path:
    """Reserve a unique name (an empty placeholder), save atomically, and drop the placeholder if the
    save fails or is interrupted, so no empty or partial file is ever left behind."""
    request = result.metadata["request"]
    fields = {
        "seed": result.seed,
        "prompt": request["prompt"],
        "model": result.metadata["model"]["id"],
        "steps": request["steps"],
        "width": request["width"],
        "height": request["height"],
        "index": result.metadata["batch_index"],
    }
    path = output_path(Path(output_dir), fields)
    try:
        return save_image(result.image, path, result.metadata)
    except BaseException:
        discard_placeholder(path)
        raise
