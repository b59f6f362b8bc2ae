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

__all__ = ["SavableResult", "save_png_bytes", "save_result"]


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
    name = _output_name(result.metadata, result.seed, Path(output_dir), template, now)
    return save_new_image(result.image, name.candidates(), result.metadata)


def save_png_bytes(
    png: bytes,
    metadata: dict[str, Any],
    output_dir: str | Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    now: datetime | None = None,
) -> Path:
    """Save a PNG made elsewhere (a server's result, its metadata already inside) as the app saves its
    own: the same naming (always .png) and the same atomic no-overwrite write, the bytes as they came.
    `metadata` (read from the file: untrusted) only names the file; missing or odd values fall back to
    plain ones."""
    from studio.library.images import write_new_file

    seed = metadata.get("seed") if isinstance(metadata.get("seed"), int) else None
    name = _output_name(metadata, seed, Path(output_dir), template, now)
    return write_new_file(name.candidates(), png)


def _output_name(metadata: Any, seed: int | None, output_dir: Path, template: str, now: datetime | None):
    meta = metadata if isinstance(metadata, dict) else {}
    request = meta.get("request") if isinstance(meta.get("request"), dict) else {}
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}

    def number(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    fields = {
        "seed": seed,
        "prompt": request.get("prompt") if isinstance(request.get("prompt"), str) else "",
        "model": model.get("id") if isinstance(model.get("id"), str) else "model",
        "steps": number(request.get("steps")),
        "width": number(request.get("width")),
        "height": number(request.get("height")),
        "index": number(meta.get("batch_index")) or 0,
    }
    return plan_output(output_dir, fields, template=template, now=now)
