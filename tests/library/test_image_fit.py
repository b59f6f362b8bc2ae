"""Fitting an init image to the output size, on PIL images alone (no widget)."""

from __future__ import annotations

import pytest
from PIL import Image

from studio.library.image_fit import FIT_MODES, prepare_image

RED = (220, 30, 30)
BLUE = (30, 30, 220)


def halves(size: tuple[int, int] = (200, 100)) -> Image.Image:
    """Left half red, right half blue: where each colour lands shows the geometry."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def close(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def test_fit_pads_with_the_image_s_own_edges_crop_covers_and_stretch_fills():
    fitted = prepare_image(halves(), (100, 100), "fit")  # 100x50 inside, bands above and below
    assert fitted.size == (100, 100)
    assert close(fitted.getpixel((10, 50)), RED) and close(fitted.getpixel((90, 50)), BLUE)
    assert close(fitted.getpixel((10, 2)), RED) and close(fitted.getpixel((90, 97)), BLUE)  # edge-extended
    cropped = prepare_image(halves(), (100, 100), "crop")  # the middle 100x100 of the source
    assert close(cropped.getpixel((5, 50)), RED) and close(cropped.getpixel((95, 50)), BLUE)
    stretched = prepare_image(halves(), (50, 200), "stretch")
    assert close(stretched.getpixel((5, 100)), RED) and close(stretched.getpixel((45, 100)), BLUE)


def test_the_source_is_never_modified():
    source = halves()
    before = source.tobytes()
    for mode in FIT_MODES:
        assert prepare_image(source, source.size, mode) is not source
    assert source.tobytes() == before


def test_prepare_image_handles_portrait_and_tiny_sources():
    tall = Image.new("RGB", (10, 400), RED)
    for mode in FIT_MODES:
        assert prepare_image(tall, (64, 48), mode).size == (64, 48)
    assert prepare_image(Image.new("L", (1, 1), 255), (8, 8), "fit").getpixel((4, 4)) == (255, 255, 255)
    with pytest.raises(ValueError, match="fit mode"):
        prepare_image(tall, (8, 8), "zoom")
