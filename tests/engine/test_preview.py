"""The linear latent preview: design.md's factors, applied to x0 or latents."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from studio.engine.preview import SD_LATENT_RGB_FACTORS, LinearPreview  # noqa: E402


def test_linear_preview_applies_the_factors():
    latents = torch.zeros(2, 4, 3, 5)
    latents[0, 3] = -1.0  # channel 4 at -1: RGB = (0.2120, 0.2616, 0.7177) -> bluish
    image = LinearPreview()(latents)
    assert image.size == (5, 3) and image.mode == "RGB"
    expected = tuple(round((-f + 1) * 127.5) for f in SD_LATENT_RGB_FACTORS[3])
    assert all(abs(a - b) <= 1 for a, b in zip(image.getpixel((0, 0)), expected, strict=True))


def test_preview_is_clamped():
    image = LinearPreview()(torch.full((1, 4, 2, 2), 50.0))
    assert all(0 <= c <= 255 for c in image.getpixel((1, 1)))
