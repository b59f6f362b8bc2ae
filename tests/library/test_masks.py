"""Masks for inpainting and outpainting: loading (alpha or brightness), the A1111 options, paste-back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.library.masks import (
    Expansion,
    MaskError,
    blurred,
    composite,
    expanded,
    filled,
    load_mask,
    masked_box,
    prepared_mask,
)


def square_mask(size=(64, 64), box=(16, 16, 32, 32)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def gradient(size=(64, 64)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    rgb = np.stack(np.broadcast_arrays(x[None, :], x[::-1][None, :], np.full((size[1], 1), 90, np.uint8)), -1)
    return Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)), "RGB")


def test_a_png_with_transparency_gives_its_alpha_and_a_plain_one_its_brightness(tmp_path):
    strokes = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(strokes).rectangle((10, 10, 19, 19), fill=(200, 30, 30, 255))  # a red stroke, opaque
    strokes.save(tmp_path / "strokes.png")
    square_mask().convert("RGB").save(tmp_path / "plain.png")
    alpha, notes = load_mask(tmp_path / "strokes.png", (64, 64))
    assert notes == [] and alpha.mode == "L" and alpha.getbbox() == (10, 10, 20, 20)
    plain, _ = load_mask(tmp_path / "plain.png", (64, 64))
    assert plain.getbbox() == (16, 16, 32, 32)


def test_a_mask_of_another_size_is_resized_with_a_note():
    mask, notes = load_mask(square_mask((32, 32), (8, 8, 16, 16)), (64, 64))
    assert mask.size == (64, 64) and "resized" in notes[0] and "32x32" in notes[0]


def test_a_file_that_is_not_an_image_is_one_clear_error(tmp_path):
    path = tmp_path / "mask.png"
    path.write_text("not a picture", encoding="utf-8")
    with pytest.raises(MaskError, match="^mask: .*not an image"):
        load_mask(path, (64, 64))


def test_an_all_black_mask_has_nothing_to_inpaint_and_invert_flips_it():
    with pytest.raises(MaskError, match="nothing to inpaint"):
        prepared_mask(Image.new("L", (8, 8), 0))
    flipped = prepared_mask(square_mask(), invert=True)
    assert flipped.getpixel((0, 0)) == 255 and flipped.getpixel((20, 20)) == 0
    with pytest.raises(MaskError, match="nothing to inpaint"):
        prepared_mask(Image.new("L", (8, 8), 255), invert=True)


def test_paste_back_keeps_every_unmasked_pixel_exactly():
    original, generated = gradient(), Image.new("RGB", (64, 64), (0, 255, 0))
    soft = blurred(square_mask(box=(8, 8, 40, 40)), 4)
    out = np.asarray(composite(original, generated, soft), dtype=np.int16)
    outside = np.asarray(soft) == 0
    assert outside.sum() > 1500 and np.array_equal(out[outside], np.asarray(original, dtype=np.int16)[outside])
    assert (out[24, 24] == (0, 255, 0)).all()  # the middle of the mask is the generated pixel
    assert 0 < np.asarray(soft)[24, 4] < 255  # the blur makes a soft edge outside the painted square


def test_fill_spreads_the_surroundings_into_the_hole_and_keeps_the_rest():
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    ImageDraw.Draw(image).rectangle((16, 16, 31, 31), fill=(0, 0, 255))  # what the mask hides
    out = np.asarray(filled(image, square_mask()), dtype=np.int16)
    assert np.abs(out[24, 24] - (200, 40, 40)).max() <= 3  # the hole takes the surrounding red
    assert (out[0, 0] == (200, 40, 40)).all()


def test_only_masked_box_is_padded_grown_to_the_aspect_and_kept_inside():
    mask = square_mask((512, 512), (100, 200, 164, 232))  # 64 x 32
    assert masked_box(mask, 32, (512, 512)) == (68, 152, 196, 280)  # 128 x 128 around it
    assert masked_box(mask, 0, (512, 256)) == (100, 200, 164, 232)
    corner = square_mask((512, 512), (0, 0, 16, 16))
    assert masked_box(corner, 32, (512, 512)) == (0, 0, 48, 48)
    with pytest.raises(MaskError):
        masked_box(Image.new("L", (8, 8), 0), 4, (8, 8))


def test_outpainting_grows_the_canvas_on_the_side_asked_and_keeps_the_old_area():
    image = gradient((64, 64))
    grown, mask, made = expanded(image, None, Expansion(right=64), multiple=8)
    assert grown.size == (128, 64) and made == Expansion(right=64)
    assert np.array_equal(np.asarray(grown)[:, :64], np.asarray(image))
    assert np.asarray(mask)[:, :64].max() == 0 and np.asarray(mask)[:, 64:].min() == 255
    assert (np.asarray(grown)[:, 100] == np.asarray(image)[:, 63]).all()  # the edge stretched


def test_outpainting_rounds_up_to_the_models_side_rule_and_noise_differs_from_edge():
    image = gradient((64, 64))
    grown, _mask, made = expanded(image, None, Expansion(left=30, top=10), multiple=64, fill="noise", seed=3)
    assert grown.size == (128, 128) and made == Expansion(left=64, top=64)
    again, _m, _e = expanded(image, None, Expansion(left=30, top=10), multiple=64, fill="noise", seed=3)
    assert np.array_equal(np.asarray(grown), np.asarray(again))  # seeded
    edge, _m, _e = expanded(image, None, Expansion(left=30, top=10), multiple=64)
    assert not np.array_equal(np.asarray(grown), np.asarray(edge))


def test_expand_text_is_four_numbers():
    assert Expansion.parse("0, 64,0,8") == Expansion(0, 64, 0, 8)
    for bad in ("64", "a,b,c,d", "-1,0,0,0", "0,0,0,99999"):
        with pytest.raises(MaskError, match="expand"):
            Expansion.parse(bad)


def test_a_16_bit_grey_mask_is_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from studio.library.masks import read_mask

    values = np.array([[0, 8000, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert np.asarray(read_mask(path)).tolist() == [[0, 31, 128, 255]]
