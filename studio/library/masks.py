"""Inpainting and outpainting masks: loading, the options AUTOMATIC1111 names, and the pixel work done
before and after a masked generation (no torch, no Qt: the engine, the CLI and the canvas share it).

A mask is an 8-bit "L" image the size of its init image: 255 regenerates a pixel, 0 keeps it, values in
between blend (a blurred edge). A file's mask is its alpha channel when it has transparency (what GIMP and
Krita users export: painted strokes, opaque, on a transparent layer), else its brightness (white = paint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.library.images import ImageLoadError, load_image, to_rgb

if TYPE_CHECKING:
    import os

    from PIL import Image

MASKED_CONTENT = ("original", "fill", "noise", "nothing")
"""What the masked area starts from, as A1111's "Masked content": the init image, its surroundings'
colours spread in, or latent noise / zeros (the engine's part)."""
INPAINT_AREAS = ("whole", "masked")
"""A1111's "Inpaint area": the whole picture at the request's size, or only the masked box (plus padding)
at the model's resolution, pasted back."""
OUTPAINT_FILLS = ("edge", "noise")
DEFAULT_MASK_BLUR = 4
DEFAULT_PADDING = 32
MAX_MASK_BLUR = 256
MAX_EXPAND = 2048


class MaskError(ValueError):
    """A mask that cannot be used, said in one line (the engine turns it into a request error)."""


@dataclass(frozen=True)
class Expansion:
    """Pixels added on each side of the canvas for outpainting."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    @classmethod
    def parse(cls, text: str) -> Expansion:
        """"L,T,R,B" in pixels (the CLI's --expand)."""
        parts = [part.strip() for part in str(text).split(",")]
        if len(parts) != 4 or not all(part.isdigit() for part in parts):
            raise MaskError(f"expand must be four whole numbers of pixels, left,top,right,bottom, got {text!r}")
        values = [int(part) for part in parts]
        if any(value > MAX_EXPAND for value in values):
            raise MaskError(f"expand: at most {MAX_EXPAND} px on a side, got {text!r}")
        return cls(*values)

    @property
    def is_empty(self) -> bool:
        return not (self.left or self.top or self.right or self.bottom)


def _alpha(image: Image.Image) -> Image.Image | None:
    """The image's alpha channel when some pixel is not fully opaque, else None."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:
            return alpha
    return None


def to_mask(image: Image.Image) -> Image.Image:
    """An image as a mask: its alpha where it has transparency (the alpha is the drawing), else its
    brightness."""
    alpha = _alpha(image)
    if alpha is not None:
        return alpha
    if image.mode == "L":
        return image.copy()
    return to_rgb(image).convert("L")  # 16-bit and float greys scaled to 8 bits, not clipped to white


def transparency(image: Image.Image) -> Image.Image | None:
    """Where a picture is see-through, as a mask (255: fully transparent), or None when it is opaque: a
    picture with holes erased in GIMP or Krita asks for them to be painted in."""
    alpha = _alpha(image)
    if alpha is None:
        return None
    from PIL import ImageOps

    return ImageOps.invert(alpha)


def moved(
    mask: Image.Image, old_box: tuple[float, float, float, float], new_box: tuple[float, float, float, float],
    size: tuple[int, int],
) -> Image.Image:
    """A mask drawn over a picture placed at `old_box` (x, y, width, height), redrawn at `size` over the
    same picture placed at `new_box`: a painted mask follows its picture when the output size or the fit
    mode changes. Where the old mask did not reach is unmasked."""
    from PIL import Image

    old_x, old_y, old_w, old_h = old_box
    new_x, new_y, new_w, new_h = new_box
    sx, sy = old_w / new_w, old_h / new_h  # new pixel -> old pixel
    coefficients = (sx, 0.0, old_x - new_x * sx, 0.0, sy, old_y - new_y * sy)
    return mask.convert("L").transform(
        tuple(size), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=0
    )


def read_mask(source: Image.Image | str | os.PathLike[str]) -> Image.Image:
    """A mask from a file or an image, at its own size. MaskError for a file that is not a readable image."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return to_mask(source)
    try:
        return load_image(source, convert=to_mask)
    except ImageLoadError as exc:
        raise MaskError(f"mask: {exc}") from None


def load_mask(source: Image.Image | str | os.PathLike[str], size: tuple[int, int]) -> tuple[Image.Image, list[str]]:
    """The mask for an init image of `size`, and the notes to show (a mask of another size is resized).
    Raises MaskError for a file that is not a readable image."""
    from PIL import Image

    mask = read_mask(source)
    notes = []
    if mask.size != tuple(size):
        notes.append(f"the mask is {mask.width}x{mask.height} and the image {size[0]}x{size[1]}: the mask was resized to fit")
        mask = mask.resize(tuple(size), Image.Resampling.BILINEAR)
    return mask, notes


def prepared_mask(mask: Image.Image, *, invert: bool = False) -> Image.Image:
    """The mask as the generation uses it (A1111's "Inpaint not masked" inverts it); an empty one is refused."""
    from PIL import ImageOps

    if invert:
        mask = ImageOps.invert(mask)
    if mask.getextrema()[1] == 0:
        raise MaskError("the mask is empty (all black): nothing to inpaint")
    return mask


def blurred(mask: Image.Image, radius: float) -> Image.Image:
    """A1111's "Mask blur": a Gaussian of `radius` px softens the seam between kept and new pixels."""
    from PIL import ImageFilter

    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask


def blurred_outpaint(mask: Image.Image, radius: float, kept: tuple[int, int, int, int]) -> Image.Image:
    """The blurred mask of an outpainting canvas: inside `kept` (the old picture's box) only the user's
    own mask is blurred, so the new area's edge never reaches into the old picture, which stays exactly
    as it was; the new area is blurred whole (its seam blends over the stretched edge)."""
    import numpy as np
    from PIL import Image

    full = np.asarray(blurred(mask, radius))
    left, top, right, bottom = kept
    own = Image.new("L", mask.size, 0)
    own.paste(mask.crop(kept), (left, top))
    inside = np.asarray(blurred(own, radius)).copy()
    result = full.copy()
    result[top:bottom, left:right] = inside[top:bottom, left:right]
    return Image.fromarray(result, mode="L")


def composite(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """The generated pixels where the mask paints, the original ones exactly where it is 0, blended
    between: a masked generation never changes what was not masked."""
    from PIL import Image

    if generated.size != original.size:
        generated = generated.resize(original.size, Image.Resampling.LANCZOS)
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), mask)


def filled(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill": the masked area painted with its surroundings' colours, spread in by blurs from
    wide to narrow (each blur of the kept pixels divided by the blur of where they are, so the colours
    are never darkened by the hole), the kept pixels unchanged."""
    import numpy as np
    from PIL import Image, ImageFilter

    keep = np.asarray(mask) < 128
    if keep.all():
        return image.copy()
    rgb = image.convert("RGB")
    pixels = np.asarray(rgb, dtype=np.float32)
    result = np.empty_like(pixels)
    result[:] = pixels[keep].mean(axis=0) if keep.any() else 127.0
    # Pillow blurs 8-bit images only: the kept pixels (the hole black) and where they are (255 / 0).
    kept = Image.fromarray(np.where(keep[..., None], np.asarray(rgb), 0).astype(np.uint8), mode="RGB")
    where = Image.fromarray(keep.astype(np.uint8) * 255, mode="L")
    for radius in (256, 64, 16, 4, 1):
        weight = np.asarray(where.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)[..., None]
        spread = np.asarray(kept.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
        valid = weight >= 64  # enough of the surroundings under the blur (8-bit: its average is then exact to ~1)
        result = np.where(valid, spread * 255.0 / np.maximum(weight, 1.0), result)
    result[keep] = pixels[keep]
    return Image.fromarray(np.clip(np.rint(result), 0, 255).astype(np.uint8), mode="RGB")


def masked_box(mask: Image.Image, padding: int, aspect: tuple[int, int]) -> tuple[int, int, int, int]:
    """A1111's "only masked" region: the mask's bounding box plus `padding`, grown to the generation's
    aspect ratio (so the crop is not distorted when scaled to the model's resolution), inside the image.
    (left, top, right, bottom), right and bottom exclusive."""
    box = mask.getbbox()
    if box is None:
        raise MaskError("the mask is empty (all black): nothing to inpaint")
    width, height = mask.size
    left, top = max(box[0] - padding, 0), max(box[1] - padding, 0)
    right, bottom = min(box[2] + padding, width), min(box[3] + padding, height)
    ratio = aspect[0] / aspect[1]
    box_w, box_h = right - left, bottom - top
    if box_w / box_h < ratio:
        left, right = _grown(left, right, round(box_h * ratio), width)
    else:
        top, bottom = _grown(top, bottom, round(box_w / ratio), height)
    return left, top, right, bottom


def _grown(start: int, end: int, wanted: int, limit: int) -> tuple[int, int]:
    """[start, end) grown evenly to `wanted` long, shifted back inside [0, limit) (cut at the limit)."""
    wanted = min(wanted, limit)
    extra = wanted - (end - start)
    start -= extra // 2
    end += extra - extra // 2
    if start < 0:
        end, start = end - start, 0
    if end > limit:
        start, end = max(start - (end - limit), 0), limit
    return start, end


def expanded(
    image: Image.Image, mask: Image.Image | None, expansion: Expansion, *, multiple: int = 8,
    fill: str = "edge", seed: int = 0,
) -> tuple[Image.Image, Image.Image, Expansion]:
    """Outpainting's canvas: `image` grown by `expansion` (each grown axis rounded up to the model's side
    `multiple`, the extra on the side asked), the new area pre-filled ("edge": its edge pixels stretched,
    "noise": random colours from `seed`) and masked; the old area keeps `mask` (or none). Returns the
    image, its mask and the expansion actually made."""
    import numpy as np
    from PIL import Image

    if fill not in OUTPAINT_FILLS:
        raise MaskError(f"outpaint fill must be one of {', '.join(OUTPAINT_FILLS)}, got {fill!r}")
    left, right = _rounded(image.width, expansion.left, expansion.right, multiple)
    top, bottom = _rounded(image.height, expansion.top, expansion.bottom, multiple)
    made = Expansion(left, top, right, bottom)
    pixels = np.asarray(image.convert("RGB"))
    grown = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="edge")
    new_area = np.ones(grown.shape[:2], dtype=bool)
    new_area[top : top + image.height, left : left + image.width] = False
    if fill == "noise":
        noise = np.random.default_rng(seed).integers(0, 256, grown.shape, dtype=np.uint8)
        grown[new_area] = noise[new_area]
    old_mask = np.zeros(pixels.shape[:2], dtype=np.uint8) if mask is None else np.asarray(mask.convert("L"))
    grown_mask = np.full(grown.shape[:2], 255, dtype=np.uint8)
    grown_mask[top : top + image.height, left : left + image.width] = old_mask
    return Image.fromarray(grown, mode="RGB"), Image.fromarray(grown_mask, mode="L"), made


def _rounded(side: int, before: int, after: int, multiple: int) -> tuple[int, int]:
    """(before, after) with their sum grown so that side + sum is a multiple (the extra on a side asked)."""
    if not (before or after):
        return 0, 0
    extra = -(side + before + after) % multiple
    return (before, after + extra) if after or not before else (before + extra, after)
