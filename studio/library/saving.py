"""Saving a generated image: a fresh safe name in the output folder, metadata embedded, atomic.

Shared by the CLI and the app's worker so both name and write files the same way. Takes any object
with `image`, `seed` and `metadata` (the engine's GenerationResult) so this layer needs no engine.

No name is reserved in advance: the complete image is written to a hidden temporary file and then
published under the first free ``-N`` name in one atomic no-overwrite step, so a crash or ``kill -9``
at any moment leaves either a complete image or nothing visible (a killed writer's hidden temporary
file is removed by the next save into that folder).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from studio.library.images import save_new_image
from studio.library.naming import DEFAULT_TEMPLATE, plan_output

__all__ = ["SavableResult", "save_result"]


class SavableResult(Protocol):
    image: Any
    seed: int
    metadata: dict


def save_result(
    result: SavableResult,
    output_dir: str | Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    now: datetime | None = None,
) -> Path:
    """Save ``result`` as a PNG with its metadata under a new name from ``template``; returns the path.

    Never overwrites an existing file (a name taken meanwhile, even by another process, gets "-1",
    "-2", ...) and never leaves an empty or partial file, whatever happens.  Raises ValueError for a bad
    template or a name that cannot be made to fit (nothing written), and
    :class:`~studio.library.images.SaveError` when encoding or writing fails (nothing left behind).
    ``now`` fixes the {date} and {time} fields (default: the current time).
    """
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
    name = plan_output(Path(output_dir), fields, template=template, now=now)
    return save_new_image(result.image, name.candidates(), result.metadata)
