"""The result type: what an image says about how it was made, normalised across tools."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from studio.library.metadata.values import (
    GUIDANCE_RANGE,
    MAX_PADDING,
    SEED_RANGE,
    SIDE_RANGE,
    STEPS_RANGE,
    STRENGTH_RANGE,
    bounded_choice,
    bounded_float,
    bounded_int,
    bounded_name,
    bounded_sides,
    clean_text,
    clean_value,
    display_value,
    fmt_number,
    sha256_hex,
    truncate,
)

MASK_SETTINGS = ("mask_blur", "masked_content", "inpaint_area", "padding", "invert_mask", "outpaint_fill", "expand")
"""The inpainting and outpainting request fields "reuse parameters" restores."""
MASK_FIELDS = (*MASK_SETTINGS, "init_image_sha256", "mask_image_sha256")
"""The inpainting / outpainting fields, and the hashes of the input images (img2img has an init hash)."""


def mask_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`MASK_FIELDS` found in `values` (our request dict, or a record's own fields), each of
    the exact type and range the engine takes, else None: a choice out of :mod:`studio.library.masks`'
    lists, a non-negative int within its limit, a real bool, four sides, a 64-character lowercase hex
    digest. Never raises on what an untrusted file holds."""
    from studio.library import masks  # not at the top: masks imports images, which imports this package

    return {
        "mask_blur": bounded_int(values.get("mask_blur"), 0, masks.MAX_MASK_BLUR),
        "masked_content": bounded_choice(values.get("masked_content"), masks.MASKED_CONTENT),
        "inpaint_area": bounded_choice(values.get("inpaint_area"), masks.INPAINT_AREAS),
        "padding": bounded_int(values.get("padding"), 0, MAX_PADDING),
        "invert_mask": values.get("invert_mask") if isinstance(values.get("invert_mask"), bool) else None,
        "outpaint_fill": bounded_choice(values.get("outpaint_fill"), masks.OUTPAINT_FILLS),
        "expand": bounded_sides(values.get("expand"), masks.MAX_EXPAND),
        "init_image_sha256": sha256_hex(values.get("init_image_sha256")),
        "mask_image_sha256": sha256_hex(values.get("mask_image_sha256")),
    }


_A1111_CONTENT = {"noise": "latent noise", "nothing": "latent nothing"}
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
    # Inpainting and outpainting (None for txt2img and plain img2img), as GenerationRequest names them.
    mask_blur: int | None = None
    masked_content: str | None = None  # studio.library.masks.MASKED_CONTENT
    inpaint_area: str | None = None  # studio.library.masks.INPAINT_AREAS
    padding: int | None = None
    invert_mask: bool | None = None
    outpaint_fill: str | None = None  # studio.library.masks.OUTPAINT_FILLS
    expand: tuple[int, int, int, int] | None = None  # px added left, top, right, bottom
    # The input images by their digest (only ours records them): 64 lowercase hex characters, else None.
    init_image_sha256: str | None = None
    mask_image_sha256: str | None = None
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
        *MASK_SETTINGS,
    )

    def to_request_fields(self) -> dict[str, Any]:
        """The non-None request fields, for "reuse parameters" (names match GenerationRequest)."""
        return {name: getattr(self, name) for name in self.REQUEST_FIELDS if getattr(self, name) is not None}

    def reuse_fields(self) -> dict[str, Any]:
        """What "reuse parameters" restores: the request fields, and the hashes of the init image and the
        mask (``init_image_sha256``, ``mask_image_sha256``) by which the window finds the canvas it kept."""
        fields = self.to_request_fields()
        for name, value in zip(("init_image_sha256", "mask_image_sha256"), self.input_hashes(), strict=True):
            if value is not None:
                fields[name] = value
        return fields

    def input_hashes(self) -> tuple[str | None, str | None]:
        """The SHA-256 of the init image and of the mask the image was made from ((None, None) for txt2img;
        the mask's is None for img2img and for an outpainting without a mask of its own)."""
        return self.init_image_sha256, self.mask_image_sha256

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
        lines += self._mask_lines()
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        return "\n".join(lines)

    def _mask_lines(self) -> list[str]:
        """The inpainting / outpainting settings, in A1111's words where it has them."""
        content = _A1111_CONTENT.get(self.masked_content or "", self.masked_content)
        area = {"whole": "Whole picture", "masked": "Only masked"}.get(self.inpaint_area or "")
        sides = self.expand
        expand = None if sides is None else "left {}, top {}, right {}, bottom {} px".format(*sides)
        # As A1111 writes them: "Mask mode" only when inverted, the padding only with "Only masked".
        mode = "Inpaint not masked" if self.invert_mask is True else None
        padding = None if self.inpaint_area == "whole" else self.padding
        lines = []
        for label, value in (
            ("Mask blur", self.mask_blur),
            ("Mask mode", mode),
            ("Masked content", content),
            ("Inpaint area", area),
            ("Masked area padding", padding),
            ("Outpaint expand", expand),
            ("Outpaint fill", self.outpaint_fill),
        ):
            if value is not None:
                lines.append(f"{label}: {fmt_number(value)}")
        return lines


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
    for name, value in mask_fields({name: getattr(meta, name, None) for name in MASK_FIELDS}).items():
        setattr(meta, name, value)
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
