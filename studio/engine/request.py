"""Generation requests and results, and the checks that turn bad input into clear messages.

A request left partly empty (None) is completed from the model's defaults once the model is known;
checks that need the model (the family's size rule, the prompt's token count) happen then too.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.engine.catalog import FAMILY_SIZE_MULTIPLE, ModelDefaults
from studio.engine.errors import RequestError
from studio.engine.schedulers import canonical_name
from studio.library.prompt_syntax import weight_problem

if TYPE_CHECKING:
    from PIL import Image

    from studio.library.input_store import InputStore

MAX_SEED = 2**32 - 1
MAX_SIDE = 4096
MAX_BATCH = 64
STEPS_RANGE = (1, 500)
GUIDANCE_RANGE = (0.0, 50.0)
MAX_PROMPT_BYTES = 64 * 1024
"""A prompt longer than this (64 KiB of UTF-8) is refused: CLIP reads 77 tokens a chunk, and the longest
real prompts are a few KiB; a 10 MB one took 87 s just to parse its weights."""


@dataclass
class GenerationRequest:
    model: str
    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None  # None: a random seed, reported in the results
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    batch: int = 1
    init_image: Image.Image | str | Path | None = None  # set -> img2img
    strength: float | None = None
    guidance_rescale: float | None = None
    safety_checker: bool | None = None  # None: the model's default (on for sd-1.4)
    # Inpainting and outpainting (with an init image; library.masks holds the choices and their meaning):
    mask_image: Image.Image | str | Path | None = None  # set -> inpainting; 255 regenerates, 0 keeps
    mask_blur: int | None = None  # px (A1111 "Mask blur", default 4)
    masked_content: str | None = None  # original | fill | noise | nothing (default original)
    inpaint_area: str | None = None  # whole | masked (default whole)
    padding: int | None = None  # px around the mask with inpaint_area "masked" (default 32)
    invert_mask: bool = False  # A1111 "Inpaint not masked"
    expand: tuple[int, int, int, int] | None = None  # outpainting: px added left, top, right, bottom
    outpaint_fill: str | None = None  # edge | noise: what the new area starts as (default edge)

    @property
    def is_img2img(self) -> bool:
        return self.init_image is not None

    @property
    def is_masked(self) -> bool:
        """Inpainting or outpainting: only part of the init image is regenerated."""
        return self.init_image is not None and (self.mask_image is not None or self.expand is not None)

    def with_defaults(self, defaults: ModelDefaults, family: str) -> GenerationRequest:
        """A copy with every None filled from the model's defaults, then checked against its family.

        The scheduler gets its one canonical spelling ("euler_a", "k_euler_a" -> "Euler a"), so metadata
        and the A1111 text carry only names other tools read.
        """
        scheduler = self.scheduler if self.scheduler is not None else defaults.scheduler
        filled = replace(
            self,
            steps=defaults.steps if self.steps is None else self.steps,
            guidance=defaults.guidance if self.guidance is None else self.guidance,
            guidance_rescale=defaults.guidance_rescale if self.guidance_rescale is None else self.guidance_rescale,
            seed=secrets.randbelow(MAX_SEED + 1) if self.seed is None else self.seed,
            width=defaults.size if self.width is None else self.width,
            height=defaults.size if self.height is None else self.height,
            scheduler=None if scheduler is None else canonical_name(scheduler),
            strength=(defaults.strength if self.strength is None else self.strength) if self.is_img2img else None,
            **self._masked_defaults(),
        )
        filled.validate(family)
        return filled

    def _masked_defaults(self) -> dict[str, Any]:
        """A1111's defaults for the inpainting options of a masked request (None for the others)."""
        from studio.library.masks import DEFAULT_MASK_BLUR, DEFAULT_PADDING

        if not self.is_masked:
            return {"mask_blur": None, "masked_content": None, "inpaint_area": None, "padding": None, "outpaint_fill": None}

        def given(value, default):
            return default if value is None else value

        return {
            "mask_blur": given(self.mask_blur, DEFAULT_MASK_BLUR),
            "masked_content": given(self.masked_content, "original"),
            "inpaint_area": given(self.inpaint_area, "whole"),
            "padding": given(self.padding, DEFAULT_PADDING),
            "outpaint_fill": given(self.outpaint_fill, "edge") if self.expand is not None else None,
        }

    def validate(self, family: str | None = None) -> None:
        """Raise RequestError naming the first field that is wrong (type or range). None fields are not
        checked. Cheap checks first: a huge prompt is refused by its size before its weights are parsed."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise RequestError("no model given", field="model")
        for name, text in (("prompt", self.prompt), ("negative prompt", self.negative_prompt)):
            _check_text(name, text)
        for name, text in (("prompt", self.prompt), ("negative prompt", self.negative_prompt)):
            problem = weight_problem(text)
            if problem:
                raise RequestError(f"{name}: {problem}", field=field_of(name))
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise RequestError(f"scheduler must be a name, got {_shown(self.scheduler)}", field="scheduler")
        if self.safety_checker is not None and not isinstance(self.safety_checker, bool):
            raise RequestError(
                f"safety checker must be true or false, got {_shown(self.safety_checker)}", field="safety_checker"
            )
        if self.scheduler is not None:
            try:
                canonical_name(self.scheduler)  # an unknown name is refused before any model is loaded
            except RequestError as exc:
                raise RequestError(str(exc), field="scheduler") from None
        _check_int("batch", self.batch, 1, MAX_BATCH)
        if self.steps is not None:
            _check_int("steps", self.steps, *STEPS_RANGE)
        if self.guidance is not None:
            _check_float("guidance", self.guidance, *GUIDANCE_RANGE)
        if self.guidance_rescale is not None:
            _check_float("guidance rescale", self.guidance_rescale, 0.0, 1.0)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, MAX_SEED)
        self._validate_masking()
        if self.strength is not None:
            _check_float("strength", self.strength, 0.0, 1.0)
            if self.strength == 0.0:
                raise RequestError("strength must be above 0 (0 would return the init image unchanged)", field="strength")
        multiple = FAMILY_SIZE_MULTIPLE.get(family or "", 8)
        for name, value in (("width", self.width), ("height", self.height)):
            if value is None:
                continue
            _check_int(name, value, multiple, MAX_SIDE)
            if value % multiple:
                why = " (DeciDiffusion's UNet halves the latent three times)" if family == "deci" else ""
                raise RequestError(
                    f"{name} {value} px is not a multiple of {multiple}{why}; "
                    f"try {max(multiple, value // multiple * multiple)} or {(value // multiple + 1) * multiple}",
                    field=name,
                )


    def _validate_masking(self) -> None:
        from studio.library.masks import (
            INPAINT_AREAS,
            MASKED_CONTENT,
            MAX_EXPAND,
            MAX_MASK_BLUR,
            OUTPAINT_FILLS,
        )

        if (self.mask_image is not None or self.expand is not None) and self.init_image is None:
            raise RequestError("a mask or an expansion needs an init image to inpaint or outpaint", field="init_image")
        if self.mask_blur is not None:
            _check_int("mask blur", self.mask_blur, 0, MAX_MASK_BLUR)
        if self.padding is not None:
            _check_int("padding", self.padding, 0, MAX_SIDE)
        for name, value, choices in (
            ("masked content", self.masked_content, MASKED_CONTENT),
            ("inpaint area", self.inpaint_area, INPAINT_AREAS),
            ("outpaint fill", self.outpaint_fill, OUTPAINT_FILLS),
        ):
            if value is not None and value not in choices:
                raise RequestError(f"{name} must be one of {', '.join(choices)}, got {_shown(value)}", field=field_of(name))
        if not isinstance(self.invert_mask, bool):
            raise RequestError(f"invert mask must be true or false, got {_shown(self.invert_mask)}", field="invert_mask")
        if self.expand is not None:
            if not isinstance(self.expand, list | tuple) or len(self.expand) != 4:
                raise RequestError(
                    f"expand must be four numbers of pixels (left, top, right, bottom), got {_shown(self.expand)}",
                    field="expand",
                )
            for side, value in zip(("left", "top", "right", "bottom"), self.expand, strict=True):
                _check_int(f"expand {side}", value, 0, MAX_EXPAND)


def _shown(value: Any, limit: int = 40) -> str:
    """A wrong value as a message shows it: its repr, cut short (a 5000-digit number, a long list), never
    raising (int's repr refuses more than 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit number"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_of(name: str) -> str:
    """The request field a message's words name: "negative prompt" -> negative_prompt, "expand left" ->
    expand (one field of four numbers)."""
    return "expand" if name.startswith("expand ") else name.replace(" ", "_")


def _check_text(name: str, text: Any) -> None:
    field = field_of(name)
    if not isinstance(text, str):
        raise RequestError(f"the {name} must be text, got {_shown(text)}", field=field)
    if len(text) > MAX_PROMPT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_PROMPT_BYTES:
        size = len(text.encode("utf-8", "surrogatepass"))
        raise RequestError(
            f"the {name} is {size:,} bytes long; at most {MAX_PROMPT_BYTES // 1024} KiB is accepted", field=field
        )
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise RequestError(f"the {name} holds a lone surrogate (invalid Unicode text)", field=field)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be a whole number, got {_shown(value)}", field=field_of(name))
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low} and {high}, got {_shown(value)}", field=field_of(name))


def _check_float(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN != NaN
        raise RequestError(f"{name} must be a number, got {_shown(value)}", field=field_of(name))
    if not low <= value <= high:
        shown = f"{value:g}" if isinstance(value, float) or abs(value) < 10**15 else _shown(value)
        raise RequestError(f"{name} must be between {low:g} and {high:g}, got {shown}", field=field_of(name))


@dataclass(frozen=True)
class StepEvent:
    """One denoising step done. `preview` is a small PIL image of the predicted result (or None).

    Counted in the user's steps, not the scheduler's UNet evaluations (PNDM makes one more): `step` runs
    1..`total`, each once; `total` is the request's steps (img2img: the share its strength runs).
    """

    step: int  # 1-based
    total: int
    preview: Image.Image | None
    batch: int = 1


@dataclass
class GenerationResult:
    image: Image.Image
    seed: int
    nsfw: bool | None
    metadata: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    inputs: dict[str, Image.Image] = field(default_factory=dict)
    """digest -> image: the init image and mask exactly as the metadata's ``init_image_sha256`` and
    ``mask_image_sha256`` hash them (before any resize, outpainting growth or inversion), for
    :class:`~studio.library.input_store.InputStore`; empty for txt2img. Shared by a batch's results."""


STORED_FIELDS = frozenset({f.name for f in fields(GenerationRequest)} - {"init_image", "mask_image"})
"""The request fields that metadata and the saved queue carry as values (an init image and a mask are
files, recorded by hash)."""


def request_fields(request: GenerationRequest) -> dict[str, Any]:
    """The request as JSON-ready fields for metadata (the init image and mask are recorded by hash elsewhere)."""
    data = asdict(replace(request, init_image=None, mask_image=None))
    data.pop("init_image")
    data.pop("mask_image")
    if data.get("expand") is not None:
        data["expand"] = list(data["expand"])
    return data


def request_from_metadata(
    meta: Mapping[str, Any],
    *,
    init_image: Image.Image | str | Path | None = None,
    mask_image: Image.Image | str | Path | None = None,
    store: InputStore | None = None,
) -> tuple[GenerationRequest, int]:
    """The request that made an image, from our metadata JSON alone, and the image's index in its batch.

    Run the request and take result[index] to get the same pixels: the batch is run again as it was
    (same first seed and size) because batched maths may round differently from a single image's. For
    img2img and inpainting the init image and the mask are not in the metadata, only their hashes: pass
    them as `init_image` / `mask_image`, or give the `store` the window and the CLI keep them in
    (:class:`~studio.library.input_store.InputStore`); an image whose hash differs is refused (it would
    give other pixels). Unknown keys are ignored; missing ones stay None (the model's defaults).
    """
    request = meta.get("request")
    if not isinstance(request, Mapping):
        raise RequestError("no generation request in this metadata")
    values = {key: value for key, value in request.items() if key in STORED_FIELDS}
    if isinstance(values.get("expand"), list):
        values["expand"] = tuple(values["expand"])
    model = meta.get("model") if isinstance(meta.get("model"), Mapping) else {}
    if not values.get("model"):
        values["model"] = model.get("path") or model.get("id") or model.get("repo")
    if not isinstance(values.get("model"), str) or not isinstance(values.get("prompt"), str):
        raise RequestError("this metadata names no model or prompt")
    index = meta.get("batch_index", 0)
    index = index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else 0
    for field_name, key, given, label in (
        ("init_image", "init_image_sha256", init_image, "init image"),
        ("mask_image", "mask_image_sha256", mask_image, "mask"),
    ):
        image = _matching_input(request.get(key), given, store, label)
        if image is not None:
            values[field_name] = image
    generation = GenerationRequest(**values)
    generation.validate()
    if index >= generation.batch:
        raise RequestError(f"batch index {index} is outside the batch of {generation.batch}")
    return generation, index


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _matching_input(wanted: Any, given: Image.Image | str | Path | None, store: InputStore | None, label: str):
    """The init image or mask a recorded hash asks for: the one given (checked), else the store's."""
    if given is None and wanted and store is not None:
        given = store.get(wanted)
        if given is None:
            raise RequestError(f"this image was made from {_a(label)} that is not kept here any more: give it again")
    if wanted and given is None:
        raise RequestError(f"this image was made from {_a(label)}: give the same {label} again")
    if given is None:
        return None
    if not wanted:
        raise RequestError(f"this image was made without {_a(label)}" + (" (txt2img)" if label == "init image" else ""))
    from PIL import Image as PILImage

    from studio.library.images import ImageLoadError, load_image, sha256_image, to_rgb

    try:
        if label == "mask":
            from studio.library.masks import MaskError, read_mask

            try:
                image = read_mask(given)
            except MaskError as exc:
                raise RequestError(str(exc)) from None
        else:
            image = to_rgb(given) if isinstance(given, PILImage.Image) else load_image(given)
    except ImageLoadError as exc:
        raise RequestError(f"{label}: {exc}") from None
    if sha256_image(image) != wanted:
        raise RequestError(f"the {label} differs from the one this image was made from (its hash does not match)")
    return image
