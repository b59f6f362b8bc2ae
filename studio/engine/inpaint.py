"""Inpainting and outpainting around diffusers' inpaint pipeline: the canvas before, the paste-back after.

diffusers' StableDiffusionInpaintPipeline runs both kinds of model: a real inpainting UNet (9 input
channels: latents, mask, masked image) natively, and any 4-channel model by masked latent blending (at
each step the unmasked latents are reset to the init image's, noised to that step). Around it, as
AUTOMATIC1111 does: the mask is loaded (alpha or brightness), inverted if asked and blurred; the canvas
is grown for outpainting; "only masked" crops the mask's padded box and generates it at the request's
size; the masked content is prepared (the image, its surroundings' colours, latent noise or zeros); and
the result is composited back over the untouched original with the blurred mask, so that every pixel
the mask does not reach is exactly the original's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from studio.engine.catalog import FAMILY_SIZE_MULTIPLE
from studio.engine.errors import RequestError
from studio.library import masks

if TYPE_CHECKING:
    from PIL import Image

    from studio.engine.request import GenerationRequest


@dataclass
class MaskedJob:
    """A masked request's images: what the pipeline gets, and what the result is pasted back onto."""

    original: Image.Image  # the canvas at the output size (the init image, grown when outpainting)
    init: Image.Image  # what the pipeline starts from, at the generation size (the crop for "only masked")
    mask: Image.Image  # the blurred mask at the generation size
    overlay: Image.Image  # the blurred mask at the output size: where the result replaces the original
    box: tuple[int, int, int, int] | None  # "only masked": the region of `original` that was generated
    init_hash: str
    mask_hash: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Canvas:
    """The init image and its mask, loaded, grown for outpainting, inverted: before any size is chosen.

    `init` and `given_mask` are the images as the metadata hashes them (the init image before it is
    grown, the mask as given, at the init image's size, before any inversion): kept with the result so
    that the metadata alone makes the same pixels again."""

    image: Image.Image
    mask: Image.Image
    init: Image.Image
    given_mask: Image.Image | None  # None: outpainting without a mask of its own
    init_hash: str
    mask_hash: str
    notes: list[str]
    kept: tuple[int, int, int, int] | None = None  # outpainting: the old picture's box in the canvas

    def inputs(self) -> dict[str, Image.Image]:
        """digest -> image, for :attr:`~studio.engine.request.GenerationResult.inputs`."""
        found = {self.init_hash: self.init}
        if self.given_mask is not None and self.mask_hash:
            found.setdefault(self.mask_hash, self.given_mask)
        return found


def load_canvas(req: GenerationRequest, family: str) -> Canvas:
    """The request's init image and mask (outpainting's grown canvas), checked. RequestError for a file
    that is not an image or a mask with nothing to inpaint."""
    from studio.engine.init_image import read_init_image
    from studio.library.images import sha256_image

    image, init_hash = read_init_image(req.init_image)
    init = image
    try:
        notes: list[str] = []
        mask, given, mask_hash, kept = None, None, "", None
        if req.mask_image is not None:
            mask, notes = masks.load_mask(req.mask_image, image.size)
            given, mask_hash = mask, sha256_image(mask)  # the mask as given, before any inversion
            if req.invert_mask:
                mask = masks.prepared_mask(mask, invert=True)
        if req.expand is not None:
            multiple = FAMILY_SIZE_MULTIPLE.get(family, 8)
            grown, mask, made = masks.expanded(
                image, mask, masks.Expansion(*req.expand), multiple=multiple, fill=req.outpaint_fill or "edge",
                seed=req.seed or 0,
            )
            if made != masks.Expansion(*req.expand):
                notes.append(f"the canvas grew by {made.left},{made.top},{made.right},{made.bottom} px (left, top, right, bottom): sides are multiples of {multiple} px")
            kept = (made.left, made.top, made.left + image.width, made.top + image.height)
            image = grown
        masks.prepared_mask(mask)  # nothing to inpaint: refused before the model runs
    except masks.MaskError as exc:
        raise RequestError(str(exc)) from None
    return Canvas(
        image=image, mask=mask, init=init, given_mask=given, init_hash=init_hash, mask_hash=mask_hash, notes=notes,
        kept=kept,
    )


def sized(req: GenerationRequest, canvas: Canvas, family: str) -> GenerationRequest:
    """The request with the canvas's size where it gave none (rounded to the family's side rule), as
    A1111 keeps the picture's size for inpainting; "only masked" generates at the model's own size."""
    if req.width is not None or req.height is not None or req.inpaint_area == "masked":
        return req
    multiple = FAMILY_SIZE_MULTIPLE.get(family, 8)

    def side(value: int) -> int:
        return max(multiple, round(value / multiple) * multiple)

    width, height = side(canvas.image.width), side(canvas.image.height)
    if (width, height) != canvas.image.size:
        canvas.notes.append(
            f"the picture is {canvas.image.width}x{canvas.image.height} and this model's sides are multiples of "
            f"{multiple} px: it was generated at {width}x{height}"
        )
    return replace(req, width=width, height=height)


def prepare(req: GenerationRequest, canvas: Canvas) -> MaskedJob:
    """The pipeline's input for a request with its defaults filled in (mask blur, area, content...)."""
    from PIL import Image

    size = (req.width, req.height)
    radius = req.mask_blur or 0
    soft = masks.blurred(canvas.mask, radius) if canvas.kept is None else masks.blurred_outpaint(canvas.mask, radius, canvas.kept)
    if req.inpaint_area == "masked":
        box = masks.masked_box(canvas.mask, req.padding or 0, size)
        original, overlay = canvas.image, soft
        crop, crop_mask = canvas.image.crop(box), soft.crop(box)
        init = crop.resize(size, Image.Resampling.LANCZOS)
        mask = crop_mask.resize(size, Image.Resampling.BILINEAR)
    else:
        box = None
        original = canvas.image if canvas.image.size == size else canvas.image.resize(size, Image.Resampling.LANCZOS)
        overlay = soft if soft.size == size else soft.resize(size, Image.Resampling.BILINEAR)
        init, mask = original, overlay
    if req.masked_content == "fill":
        init = masks.filled(init, mask)
    return MaskedJob(original, init, mask, overlay, box, canvas.init_hash, canvas.mask_hash, list(canvas.notes))


def latent_fill(job: MaskedJob, req: GenerationRequest):
    """For "latent noise" / "latent nothing": (the mask at latent size, the kind, a generator for the
    noise) for :class:`MaskedContentInpaintPipeline`; None for the pixel-space contents."""
    if req.masked_content not in ("noise", "nothing"):
        return None
    import numpy as np
    import torch
    from PIL import Image

    side = (max(req.width // 8, 1), max(req.height // 8, 1))
    small = np.asarray(job.mask.resize(side, Image.Resampling.BOX), dtype=np.float32) / 255.0
    mask = torch.from_numpy(small >= 0.5)[None, None]
    return mask, req.masked_content, torch.Generator("cpu").manual_seed(req.seed or 0)


def inpaint_pipeline(components: dict):
    """diffusers' inpaint pipeline over `components`, able to start the masked area from latent noise or
    zeros (AUTOMATIC1111's "latent noise" / "latent nothing")."""
    from diffusers import StableDiffusionInpaintPipeline

    class MaskedContentInpaintPipeline(StableDiffusionInpaintPipeline):
        """`latent_fill` (see :func:`latent_fill`), set around one call: the image's latents have their
        masked area replaced before they are noised to the first step; the unmasked area, which the
        blending resets at every step, keeps the image's own latents."""

        latent_fill = None

        def prepare_latents(self, *args, return_noise=False, return_image_latents=False, **kwargs):
            if self.latent_fill is None:
                return super().prepare_latents(
                    *args, return_noise=return_noise, return_image_latents=return_image_latents, **kwargs
                )
            import torch

            latents, noise, image_latents = super().prepare_latents(
                *args, return_noise=True, return_image_latents=True, **kwargs
            )
            mask, kind, generator = self.latent_fill
            if kind == "noise":
                filler = torch.randn(image_latents.shape, generator=generator, dtype=torch.float32).to(image_latents)
            else:
                filler = torch.zeros_like(image_latents)
            start = torch.where(mask.to(image_latents.device), filler, image_latents)
            if not kwargs.get("is_strength_max", True):
                latents = self.scheduler.add_noise(start, noise, kwargs["timestep"])
            outputs = (latents,)
            if return_noise:
                outputs += (noise,)
            if return_image_latents:
                outputs += (image_latents,)
            return outputs

    return MaskedContentInpaintPipeline(**components)


def paste_back(job: MaskedJob, generated: Image.Image) -> Image.Image:
    """The generated image over the original, through the blurred mask (unmasked pixels exactly kept)."""
    if job.box is None:
        return masks.composite(job.original, generated, job.overlay)
    from PIL import Image

    left, top, right, bottom = job.box
    placed = job.original.copy()
    placed.paste(generated.resize((right - left, bottom - top), Image.Resampling.LANCZOS), (left, top))
    return masks.composite(job.original, placed, job.overlay)
