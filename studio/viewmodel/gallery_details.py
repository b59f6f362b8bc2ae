"""What the gallery says about one image, as text ready to show: the detail pane's fields, the raw metadata
chunks, a thumbnail's tooltip. Every piece that comes from the file goes through
:func:`~studio.library.display.printable` here (a prompt may carry terminal escapes, bidi overrides or
carriage returns, shown as visible escapes); the widgets that show it must still show it as plain text
(never HTML).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from studio.library.display import printable
from studio.library.gallery import GalleryImage
from studio.library.metadata import ImageMetadata

__all__ = ["DETAIL_KEYS", "SOURCE_LABELS", "ImageDetails", "describe_image", "file_name", "tooltip_text"]

SOURCE_LABELS = {
    "latent-studio": "Latent Studio",
    "a1111": "AUTOMATIC1111 (parameters)",
    "comfyui": "ComfyUI",
    "invokeai": "InvokeAI",
}
DETAIL_KEYS = (
    "prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler", "model", "size", "source", "created",
    "file",
)
"""The detail pane's fields, in order (the pane gives each its label)."""
MISSING = "—"


@dataclass(frozen=True)
class ImageDetails:
    """The selected image as the detail pane shows it."""

    image: GalleryImage
    caption: str
    """The file name, printable."""
    fields: dict[str, str]
    """:data:`DETAIL_KEYS` -> text (:data:`MISSING` for a value the image does not record)."""
    raw: str
    """Every metadata chunk, ``[key]`` then its text; empty when the file has none."""


def file_name(path: Path) -> str:
    """A file name fit for a label or a message (it may hold anything a file system allows)."""
    return printable(path.name)


def tooltip_text(image: GalleryImage) -> str:
    """Prompt, model, seed, size and path, every piece printable; plain text (the view escapes it for a
    tooltip, which Qt would otherwise render as HTML: a prompt "<img src=...>" loads the file it names)."""
    prompt = image.prompt or ""
    if len(prompt) > 300:
        prompt = prompt[:299] + "…"
    details = [printable(image.model) if image.model else None, f"seed {image.seed}" if image.seed is not None else None]
    if image.width and image.height:
        details.append(f"{image.width}×{image.height}")
    lines = [printable(prompt, keep_newlines=True)] if prompt else []
    line = " · ".join(d for d in details if d)
    if line:
        lines.append(line)
    lines.append(printable(image.path))
    return "\n".join(lines)


def describe_image(image: GalleryImage, meta: ImageMetadata | None) -> ImageDetails:
    """The details of `image`; `meta` is what its file says now (None when it cannot be read: what the
    catalogue knows is shown)."""

    def text(value, multiline: bool = False) -> str:
        return MISSING if value is None or value == "" else printable(value, keep_newlines=multiline)

    guidance = meta.guidance if meta is not None else None
    values = {
        "prompt": image.prompt if image.prompt is not None else (meta.prompt if meta else None),
        "negative_prompt": image.negative_prompt,
        "seed": image.seed,
        "steps": image.steps,
        "guidance": f"{guidance:g}" if isinstance(guidance, float) else guidance,
        "scheduler": image.scheduler,
        "model": image.model,
        "size": f"{image.width} × {image.height}" if image.width and image.height else None,
        "source": SOURCE_LABELS.get(image.source or "", image.source) or "no generation parameters found",
        "created": _date(image.created) if image.created else None,
        "file": f"{image.path}  ({_file_size(image.size)})",
    }
    raw = meta.raw if meta is not None else {}
    return ImageDetails(
        image=image,
        caption=file_name(image.path),
        fields={key: text(value, multiline=key in ("prompt", "negative_prompt")) for key, value in values.items()},
        raw="\n\n".join(f"[{printable(key)}]\n{printable(value, keep_newlines=True)}" for key, value in raw.items()),
    )


def _date(stamp: float) -> str | None:
    """``stamp`` as local date and time; None for one no calendar holds (a catalogue changed by hand)."""
    try:
        return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


def _file_size(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
