"""The init image of an img2img, inpainting or outpainting request, loaded once and hashed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from studio.engine.errors import RequestError

if TYPE_CHECKING:
    from PIL import Image


def read_init_image(source: Image.Image | str | Path) -> tuple[Image.Image, str]:
    """(the image as RGB, the sha256 of its pixels, which the metadata records). RequestError for a file
    that is not a readable image."""
    from PIL import Image

    from studio.library.images import ImageLoadError, load_image, sha256_image, to_rgb

    try:
        image = to_rgb(source) if isinstance(source, Image.Image) else load_image(source)
    except ImageLoadError as exc:
        raise RequestError(f"init image: {exc}") from None
    return image, sha256_image(image)
