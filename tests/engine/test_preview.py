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


@pytest.mark.parametrize(("name", "has_x0"), [("DDIM", True), ("Euler", True), ("DPM++ 2M", True), ("UniPC", True), ("PNDM", False)])
def test_x0_is_captured_where_the_scheduler_has_it(name, has_x0):
    from studio.engine.generate import _capture_x0
    from studio.engine.schedulers import make_scheduler
    from studio.engine.tiny import SD1_SCHEDULER

    scheduler = make_scheduler(name, {k: v for k, v in SD1_SCHEDULER.items() if k != "_class_name"})
    scheduler.set_timesteps(5)
    captured = _capture_x0(scheduler)
    torch.manual_seed(0)
    sample = torch.randn(1, 4, 8, 8) * scheduler.init_noise_sigma
    t = scheduler.timesteps[0]
    out = scheduler.step(torch.randn(1, 4, 8, 8), t, scheduler.scale_model_input(sample, t))
    assert bool(captured) is has_x0
    if has_x0:
        x0 = captured[0]
        assert x0.shape == sample.shape and not torch.equal(x0, out.prev_sample)
