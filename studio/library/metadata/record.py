"""The result type: what an image says about how it was made, normalised across tools."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from studio.library.metadata.values import (
    GUIDANCE_RANGE,
    SEED_RANGE,
    SIDE_RANGE,
    STEPS_RANGE,
    STRENGTH_RANGE,
    bounded_float,
    bounded_int,
    bounded_name,
    clean_text,
    clean_value,
    display_value,
    fmt_number,
    truncate,
)

_SOURCE_LABELS = {
    "latent-studio": "Latent Studio",
    "a1111": "AUTOMATIC1111 parameters",
    "comfyui": "ComfyUI",
    "invokeai": "InvokeAI",
    "unknown": "unknown tool",
}


@dataclass
class ImageMetadata:
    """What an image says about how it was made, normalised across tools.

    ``studio`` is our full JSON when the image came from us (the only source precise enough to
    regenerate pixels); ``raw`` keeps the text entries found (truncated) so nothing is hidden from
    the user; ``extra`` holds other tool parameters as display strings.
    """

    source: str
    prompt: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    model: str | None = None
    strength: float | None = None
    guidance_rescale: float | None = None  # only our own metadata records it
    nsfw: bool | None = None
    studio: dict[str, Any] | None = None
    raw: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    REQUEST_FIELDS: ClassVar[tuple[str, ...]] = (
        "prompt",
        "negative_prompt",
        "steps",
        "guidance",
        "seed",
        "width",
        "height",
        "scheduler",
        "model",
        "strength",
        "guidance_rescale",
    )

    def to_request_fields(self) -> dict[str, Any]:
        """The non-None request fields, for "reuse parameters" (names match GenerationRequest)."""
        return {name: getattr(self, name) for name in self.REQUEST_FIELDS if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``studio info --json``)."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """Human-readable lines for ``studio info``."""
        lines = [f"Source: {_SOURCE_LABELS.get(self.source, self.source)}"]
        if self.prompt is not None:
            lines.append(f"Prompt: {self.prompt}")
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        size = f"{self.width}x{self.height}" if self.width is not None and self.height is not None else None
        for label, value in (
            ("Steps", self.steps),
            ("Guidance (CFG)", self.guidance),
            ("Seed", self.seed),
            ("Size", size),
            ("Scheduler", self.scheduler),
            ("Model", self.model),
            ("Strength", self.strength),
            ("NSFW", self.nsfw),
        ):
            if value is not None:
                lines.append(f"{label}: {fmt_number(value)}")
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        return "\n".join(lines)


def checked(meta: ImageMetadata) -> ImageMetadata:
    """`meta` with every field of the type its annotation promises, within a plausible range, and every
    string valid Unicode; anything else becomes None (or is left out of ``raw`` / ``extra``).

    The readers already convert defensively; this is the single place that guarantees the contract to
    every consumer (``studio info``, the gallery's SQLite, the window) whatever a reader missed: a
    value that fails here would otherwise surface far away, as an encoding error or a widget refusing it.
    """
    meta.prompt = clean_text(meta.prompt) if isinstance(meta.prompt, str) else None
    meta.negative_prompt = clean_text(meta.negative_prompt) if isinstance(meta.negative_prompt, str) else None
    meta.model = bounded_name(meta.model)
    meta.scheduler = bounded_name(meta.scheduler)
    meta.steps = bounded_int(meta.steps, *STEPS_RANGE)
    meta.seed = bounded_int(meta.seed, *SEED_RANGE)
    meta.width = bounded_int(meta.width, *SIDE_RANGE)
    meta.height = bounded_int(meta.height, *SIDE_RANGE)
    meta.guidance = bounded_float(meta.guidance, *GUIDANCE_RANGE)
    meta.strength = bounded_float(meta.strength, *STRENGTH_RANGE)
    meta.guidance_rescale = bounded_float(meta.guidance_rescale, 0.0, 1.0)
    meta.nsfw = meta.nsfw if isinstance(meta.nsfw, bool) else None
    meta.source = meta.source if meta.source in _SOURCE_LABELS else "unknown"
    meta.studio = clean_value(meta.studio) if isinstance(meta.studio, dict) else None
    meta.raw = {
        clean_text(key): truncate(clean_text(value))
        for key, value in (meta.raw.items() if isinstance(meta.raw, dict) else ())
        if isinstance(key, str) and isinstance(value, str)
    }
    extra: dict[str, str] = {}
    for key, value in meta.extra.items() if isinstance(meta.extra, dict) else ():
        shown = display_value(value)
        if isinstance(key, str) and shown is not None:
            extra[truncate(clean_text(key), 200)] = shown
    meta.extra = extra
    return meta
