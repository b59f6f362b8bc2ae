"""Inpainting and outpainting on real tiny pipelines: paste-back keeps every unmasked pixel, "only masked"
touches only its padded box, outpainting grows the canvas, the masked-content modes differ, bad masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from studio.engine import Engine, GenerationRequest, RequestError
from studio.engine.tiny import make_tiny_model
from studio.library.metadata.a1111 import format_parameters


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu", dtype="float32", backend="torch", max_models=3, preview="none")


@pytest.fixture(scope="module")
def tiny_deci(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-deci", "deci", seed=0)


@pytest.fixture(params=["sd1", "sd2", "deci"])
def model(request, tiny_sd1, tiny_sd2, tiny_deci):
    return {"sd1": tiny_sd1, "sd2": tiny_sd2, "deci": tiny_deci}[request.param]


def noise_image(side=64, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def box_mask(side=64, box=(16, 16, 48, 48)) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def req(model, **kw) -> GenerationRequest:
    return GenerationRequest(**{"model": str(model), "prompt": "a red door", "steps": 3, "seed": 5, **kw})


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def untouched(mask: Image.Image, blur: int = 4) -> np.ndarray:
    """Where the blurred mask is 0: the pixels inpainting must leave exactly as they were."""
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(blur))) == 0


def test_inpainting_changes_the_mask_and_keeps_every_other_pixel(engine, model):
    init, mask = noise_image(), box_mask()
    [result] = engine.generate(req(model, init_image=init, mask_image=mask))
    out, src, keep = pixels(result.image), pixels(init), untouched(mask)
    assert result.image.size == (64, 64)
    assert keep.sum() > 1500 and np.array_equal(out[keep], src[keep])
    assert np.abs(out[24:40, 24:40] - src[24:40, 24:40]).mean() > 5


def test_only_masked_touches_only_the_padded_box(engine, tiny_sd1):
    init, mask = noise_image(128), box_mask(128, (56, 56, 72, 72))
    [result] = engine.generate(req(tiny_sd1, init_image=init, mask_image=mask, inpaint_area="masked", padding=8, width=64, height=64))
    assert result.image.size == (128, 128)  # the picture keeps its size; the box was generated at 64x64
    changed = np.argwhere((pixels(result.image) != pixels(init)).any(axis=2))
    assert changed.size and changed.min(axis=0).tolist() >= [48, 48] and changed.max(axis=0).tolist() <= [79, 79]
    meta = result.metadata
    assert meta["request"]["inpaint_area"] == "masked" and meta["request"]["padding"] == 8
    assert "Inpaint area: Only masked, Masked area padding: 8" in format_parameters(meta)


def test_outpainting_64_px_on_one_side_keeps_the_old_picture(engine, model):
    init = noise_image()
    [result] = engine.generate(req(model, init_image=init, expand=(0, 0, 64, 0)))
    assert result.image.size == (128, 64)
    assert np.array_equal(pixels(result.image)[:, :64], pixels(init))
    assert result.metadata["request"]["expand"] == [0, 0, 64, 0]


def test_the_masked_content_modes_start_differently_and_seeds_repeat(engine, tiny_sd1):
    init, mask = noise_image(), box_mask()
    images = {
        content: pixels(engine.generate(req(tiny_sd1, init_image=init, mask_image=mask, masked_content=content))[0].image)
        for content in ("original", "fill", "noise", "nothing")
    }
    names = list(images)
    assert all(not np.array_equal(images[a], images[b]) for i, a in enumerate(names) for b in names[i + 1 :])
    again = engine.generate(req(tiny_sd1, init_image=init, mask_image=mask, masked_content="noise"))[0].image
    assert np.array_equal(pixels(again), images["noise"])


def test_invert_regenerates_what_the_mask_leaves(engine, tiny_sd1):
    init, mask = noise_image(), box_mask(box=(0, 0, 64, 32))  # the top half
    [result] = engine.generate(req(tiny_sd1, init_image=init, mask_image=mask, invert_mask=True, mask_blur=0))
    out, src = pixels(result.image), pixels(init)
    assert np.array_equal(out[:32], src[:32]) and not np.array_equal(out[32:], src[32:])
    assert "Mask mode: Inpaint not masked" in format_parameters(result.metadata)


def test_metadata_names_the_options_as_a1111_and_hashes_the_mask(engine, tiny_sd1):
    [result] = engine.generate(req(tiny_sd1, init_image=noise_image(), mask_image=box_mask(), masked_content="fill"))
    request = result.metadata["request"]
    assert (request["mask_blur"], request["masked_content"], request["inpaint_area"]) == (4, "fill", "whole")
    assert len(request["mask_image_sha256"]) == 64 and len(request["init_image_sha256"]) == 64
    assert "Mask blur: 4, Masked content: fill, Inpaint area: Whole picture" in format_parameters(result.metadata)


def test_a_mask_of_another_size_is_resized_with_a_note(engine, tiny_sd1):
    [result] = engine.generate(req(tiny_sd1, init_image=noise_image(), mask_image=box_mask(32, (8, 8, 24, 24))))
    assert any("resized" in warning for warning in result.warnings)


def test_bad_masks_get_one_clear_message(engine, tiny_sd1, tmp_path):
    with pytest.raises(RequestError, match="nothing to inpaint"):
        engine.generate(req(tiny_sd1, init_image=noise_image(), mask_image=Image.new("L", (64, 64), 0)))
    with pytest.raises(RequestError, match="nothing to inpaint"):
        engine.generate(req(tiny_sd1, init_image=noise_image(), mask_image=Image.new("L", (64, 64), 255), invert_mask=True))
    not_an_image = tmp_path / "mask.png"
    not_an_image.write_text("no pixels here", encoding="utf-8")
    with pytest.raises(RequestError, match="^mask: .*not an image"):
        engine.generate(req(tiny_sd1, init_image=noise_image(), mask_image=not_an_image))
    with pytest.raises(RequestError, match="needs an init image"):
        engine.generate(req(tiny_sd1, mask_image=box_mask()))
    with pytest.raises(RequestError, match="masked content must be one of"):
        engine.generate(req(tiny_sd1, init_image=noise_image(), mask_image=box_mask(), masked_content="latent"))


@pytest.mark.parametrize("family", ["sd1-inpaint", "sd2-inpaint"])
def test_a_real_inpainting_model_runs_natively_and_refuses_plain_jobs(engine, tmp_path, family):
    model = make_tiny_model(tmp_path / family, family, seed=0)  # a 9-channel UNet: latents, mask, masked image
    init, mask = noise_image(), box_mask()
    for content in ("original", "noise"):
        [result] = engine.generate(req(model, init_image=init, mask_image=mask, masked_content=content))
        keep = untouched(mask)
        assert np.array_equal(pixels(result.image)[keep], pixels(init)[keep])
        assert not np.array_equal(pixels(result.image), pixels(init))
        assert result.metadata["model"]["family"] == family.removesuffix("-inpaint")
    with pytest.raises(RequestError, match="is an inpainting model: give it an init image and a mask"):
        engine.generate(req(model, width=64, height=64))


def test_a_canvas_off_the_side_rule_is_generated_at_the_nearest_allowed_size_with_a_note(engine, tiny_deci):
    init = noise_image(96)  # DeciDiffusion's sides are multiples of 64
    [result] = engine.generate(req(tiny_deci, init_image=init, mask_image=box_mask(96, (16, 16, 48, 48))))
    assert result.image.size == (128, 128)
    assert any("multiples of 64 px: it was generated at 128x128" in w for w in result.warnings)
