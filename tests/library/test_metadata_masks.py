"""Metadata of inpainting and outpainting: the mask settings and the input hashes, from our JSON and from
A1111's text, read back as typed fields (hostile values become None, never an exception)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from studio.library import format_parameters, read_metadata, save_image
from studio.library.masks import INPAINT_AREAS, MASKED_CONTENT, MAX_EXPAND, MAX_MASK_BLUR, OUTPAINT_FILLS
from studio.library.metadata import ImageMetadata
from studio.library.metadata.a1111 import from_a1111
from studio.library.metadata.ours import from_studio
from studio.library.metadata.record import MASK_FIELDS, checked

from . import samples as S
from .test_metadata import assert_usable

INIT = "a" * 64
MASK = "0123456789abcdef" * 4
MASK_SETTINGS = (
    "mask_blur",
    "masked_content",
    "inpaint_area",
    "padding",
    "invert_mask",
    "outpaint_fill",
    "expand",
)

MASKED_REQUEST: dict[str, Any] = {
    "mask_blur": 8,
    "masked_content": "noise",
    "inpaint_area": "masked",
    "padding": 16,
    "invert_mask": True,
    "expand": [0, 64, 128, 0],
    "outpaint_fill": "noise",
    "init_image_sha256": INIT,
    "mask_image_sha256": MASK,
    "strength": 0.75,
}

A1111_INPAINT = (
    "a cat on a bench\n"
    "Negative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model: v1-5-pruned, "
    "Denoising strength: 0.75, Mask blur: 8, Inpaint area: Only masked, Masked area padding: 16, "
    "Masked content: latent noise, Mask mode: Inpaint not masked, Version: v1.10.1"
)


def masked(**changes: Any) -> dict[str, Any]:
    """Our metadata of a masked request, with `changes`."""
    return S.studio_meta(**(MASKED_REQUEST | changes))


def a1111(pairs: str) -> ImageMetadata:
    return checked(from_a1111(f"a cat\nSteps: 20, Sampler: Euler, Seed: 5, Size: 512x512, {pairs}"))


def mask_values(meta: ImageMetadata) -> dict[str, Any]:
    return {name: getattr(meta, name) for name in MASK_FIELDS}


# --------------------------------------------------------------------------------------------------
# Our JSON
# --------------------------------------------------------------------------------------------------


def test_a_masked_request_round_trips_through_a_png(tmp_path: Path) -> None:
    path = save_image(Image.new("RGB", (8, 8)), tmp_path / "inpainted.png", masked())
    meta = read_metadata(path)
    assert meta is not None and meta.source == "latent-studio"
    assert mask_values(meta) == {
        "mask_blur": 8,
        "masked_content": "noise",
        "inpaint_area": "masked",
        "padding": 16,
        "invert_mask": True,
        "outpaint_fill": "noise",
        "expand": (0, 64, 128, 0),
        "init_image_sha256": INIT,
        "mask_image_sha256": MASK,
    }
    assert meta.input_hashes() == (INIT, MASK)
    fields = meta.to_request_fields()
    assert {name: fields[name] for name in MASK_SETTINGS} == {
        "mask_blur": 8,
        "masked_content": "noise",
        "inpaint_area": "masked",
        "padding": 16,
        "invert_mask": True,
        "outpaint_fill": "noise",
        "expand": (0, 64, 128, 0),
    }
    assert "init_image_sha256" not in fields and "mask_image_sha256" not in fields  # files, not settings
    assert_usable(meta)
    assert json.loads(json.dumps(meta.to_dict()))["expand"] == [0, 64, 128, 0]


def test_every_choice_the_engine_takes_is_read_back() -> None:
    for content in MASKED_CONTENT:
        assert from_studio(masked(masked_content=content)).masked_content == content
    for area in INPAINT_AREAS:
        assert from_studio(masked(inpaint_area=area)).inpaint_area == area
    for fill in OUTPAINT_FILLS:
        assert from_studio(masked(outpaint_fill=fill)).outpaint_fill == fill
    limits = from_studio(masked(mask_blur=MAX_MASK_BLUR, padding=8192, expand=[MAX_EXPAND] * 4))
    assert (limits.mask_blur, limits.padding, limits.expand) == (MAX_MASK_BLUR, 8192, (MAX_EXPAND,) * 4)
    zeros = from_studio(masked(mask_blur=0, padding=0, expand=[0, 0, 0, 0], invert_mask=False))
    assert (zeros.mask_blur, zeros.padding, zeros.expand, zeros.invert_mask) == (0, 0, (0, 0, 0, 0), False)


def test_the_summary_shows_the_mask_settings() -> None:
    lines = from_studio(masked()).summary().splitlines()
    for line in (
        "Mask blur: 8",
        "Mask mode: Inpaint not masked",
        "Masked content: latent noise",
        "Inpaint area: Only masked",
        "Masked area padding: 16",
        "Outpaint expand: left 0, top 64, right 128, bottom 0 px",
        "Outpaint fill: noise",
    ):
        assert line in lines
    whole = from_studio(masked(inpaint_area="whole", invert_mask=False)).summary()
    assert "Inpaint area: Whole picture" in whole
    assert "Masked area padding" not in whole and "Mask mode" not in whole  # unused / the default


def test_an_outpainting_without_a_mask_of_its_own() -> None:
    request = {
        "mask_blur": 4,
        "masked_content": "original",
        "inpaint_area": "whole",
        "padding": 32,
        "invert_mask": False,
        "expand": [64, 0, 0, 0],
        "outpaint_fill": "edge",
        "init_image_sha256": INIT,
        "mask_image_sha256": None,
    }
    meta = from_studio(S.studio_meta(**request))
    assert meta.expand == (64, 0, 0, 0) and meta.outpaint_fill == "edge" and meta.invert_mask is False
    assert meta.input_hashes() == (INIT, None)


def test_txt2img_and_img2img_have_no_mask_settings(tmp_path: Path) -> None:
    # A txt2img request as build_metadata writes it: every field, the masked ones None, invert_mask False.
    txt2img = S.studio_meta(
        mask_blur=None,
        masked_content=None,
        inpaint_area=None,
        padding=None,
        invert_mask=False,
        expand=None,
        outpaint_fill=None,
    )
    for meta in (
        from_studio(txt2img),
        read_metadata(save_image(Image.new("RGB", (8, 8)), tmp_path / "t.png", txt2img)),
        from_studio(S.STUDIO_META),
    ):
        assert meta is not None
        assert all(value is None for value in mask_values(meta).values()), mask_values(meta)
        assert meta.input_hashes() == (None, None)
        assert not set(MASK_SETTINGS) & set(meta.to_request_fields())
        assert "Mask" not in meta.summary()
    img2img = from_studio(
        S.studio_meta(**(txt2img["request"] | {"init_image_sha256": INIT, "strength": 0.6}))
    )
    assert img2img.input_hashes() == (INIT, None) and img2img.invert_mask is None
    for text in (S.A1111_CLASSIC, S.A1111_HIRES_LORA, S.A1111_NO_NEGATIVE):
        assert all(value is None for value in mask_values(checked(from_a1111(text))).values())


# --------------------------------------------------------------------------------------------------
# A1111 text
# --------------------------------------------------------------------------------------------------


def test_a1111_inpainting_keys_become_fields() -> None:
    meta = checked(from_a1111(A1111_INPAINT))
    assert (meta.mask_blur, meta.inpaint_area, meta.padding, meta.masked_content, meta.invert_mask) == (
        8,
        "masked",
        16,
        "noise",
        True,
    )
    assert (meta.outpaint_fill, meta.expand, meta.input_hashes()) == (None, None, (None, None))
    assert meta.strength == 0.75
    assert not {"Mask blur", "Inpaint area", "Masked area padding", "Masked content", "Mask mode"} & set(
        meta.extra
    )
    assert meta.extra["Version"] == "v1.10.1"
    assert meta.to_request_fields()["invert_mask"] is True
    assert_usable(meta)


@pytest.mark.parametrize(
    ("name", "content"),
    [("fill", "fill"), ("original", "original"), ("latent noise", "noise"), ("latent nothing", "nothing")],
)
def test_a1111_masked_content_names(name: str, content: str) -> None:
    assert a1111(f"Mask blur: 4, Masked content: {name}").masked_content == content


def test_a1111_defaults_fill_what_it_leaves_out_of_an_inpainting() -> None:
    # A1111 writes "Masked content" only when not "original", "Mask mode" only when inverted and "Inpaint
    # area" only for "Only masked"; "Mask blur" alone says the image was inpainted.
    meta = checked(from_a1111(S.A1111_MULTILINE_IMG2IMG))
    assert (meta.mask_blur, meta.masked_content, meta.inpaint_area, meta.invert_mask, meta.padding) == (
        4,
        "original",
        "whole",
        False,
        None,
    )
    assert "Mask blur" not in meta.extra
    assert a1111("Masked content: fill").mask_blur is None  # A1111 leaves out a blur of 0: not guessed


def test_our_own_a1111_text_reads_back_to_the_same_settings() -> None:
    text = format_parameters(masked())
    assert "Mask blur: 8, Mask mode: Inpaint not masked, Masked content: latent noise" in text
    meta = checked(from_a1111(text))
    assert (meta.mask_blur, meta.masked_content, meta.inpaint_area, meta.padding, meta.invert_mask) == (
        8,
        "noise",
        "masked",
        16,
        True,
    )
    whole = checked(from_a1111(format_parameters(masked(inpaint_area="whole", invert_mask=False))))
    assert (whole.inpaint_area, whole.padding, whole.invert_mask) == ("whole", None, False)


@pytest.mark.parametrize(
    ("pairs", "key"),
    [
        ("Mask blur: abc", "Mask blur"),
        ("Mask blur: -4", "Mask blur"),
        ("Mask blur: 1" + "0" * 100, "Mask blur"),
        (f"Mask blur: {MAX_MASK_BLUR + 1}", "Mask blur"),
        ("Mask blur: 2.5", "Mask blur"),
        ("Mask blur: 4, Masked area padding: 8193", "Masked area padding"),
        ("Mask blur: 4, Masked area padding: nan", "Masked area padding"),
        ("Mask blur: 4, Masked content: lama cleaner", "Masked content"),
        ("Mask blur: 4, Inpaint area: ../../x", "Inpaint area"),
        ("Mask blur: 4, Mask mode: sometimes", "Mask mode"),
        ('Mask blur: 4, Mask mode: "{\\"a\\": 1}"', "Mask mode"),
    ],
)
def test_a1111_values_it_never_writes_stay_text(pairs: str, key: str) -> None:
    meta = a1111(pairs)
    field = {
        "Mask blur": "mask_blur",
        "Masked area padding": "padding",
        "Masked content": "masked_content",
        "Inpaint area": "inpaint_area",
        "Mask mode": "invert_mask",
    }[key]
    assert getattr(meta, field) is None
    assert key in meta.extra  # the raw text is still shown
    assert_usable(meta)


# --------------------------------------------------------------------------------------------------
# Hostile values in our JSON: None, never an exception
# --------------------------------------------------------------------------------------------------

HOSTILE: list[tuple[str, Any]] = [
    ("mask_blur", "8"),
    ("mask_blur", "abc"),
    ("mask_blur", 10**100),
    ("mask_blur", -1),
    ("mask_blur", MAX_MASK_BLUR + 1),
    ("mask_blur", True),
    ("mask_blur", 4.0),
    ("mask_blur", [4]),
    ("padding", "32"),
    ("padding", 8193),
    ("padding", False),
    ("padding", 1e308),
    ("masked_content", "latent noise"),  # A1111's words, not ours
    ("masked_content", "NOISE"),
    ("masked_content", 1),
    ("masked_content", ["noise"]),
    ("inpaint_area", "Only masked"),
    ("inpaint_area", None),
    ("outpaint_fill", "../../x"),
    ("outpaint_fill", {"edge": 1}),
    ("invert_mask", 1),
    ("invert_mask", "true"),
    ("invert_mask", 0),
    ("expand", [1, 2, 3]),
    ("expand", [1, 2, 3, 4, 5]),
    ("expand", [1, 2, 3, True]),
    ("expand", [1, 2, 3, -4]),
    ("expand", [1, 2, 3, MAX_EXPAND + 1]),
    ("expand", [1, 2, 3, 10**100]),
    ("expand", [1, 2, 3, "4"]),
    ("expand", [1.0, 2, 3, 4]),
    ("expand", "1,2,3,4"),
    ("expand", {"left": 1}),
    ("expand", 4),
    ("init_image_sha256", "../../x"),
    ("init_image_sha256", "A" * 64),
    ("init_image_sha256", "a" * 63),
    ("init_image_sha256", "a" * 65),
    ("init_image_sha256", "a" * 63 + "\n"),
    ("init_image_sha256", "g" * 64),
    ("init_image_sha256", 10**100),
    ("mask_image_sha256", "../../" + "a" * 58),
    ("mask_image_sha256", "a" * 63 + "\ufffd"),
    ("mask_image_sha256", ["a" * 64]),
    ("mask_image_sha256", True),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE)
def test_hostile_values_in_our_json_become_none(name: str, value: Any) -> None:
    meta = from_studio(masked(**{name: value}))
    assert getattr(meta, name) is None
    for other in MASK_FIELDS:  # the rest of the request is still read
        if other != name:
            assert getattr(meta, other) is not None, other
    assert_usable(checked(meta))


def test_hostile_values_written_into_a_file_never_raise(tmp_path: Path) -> None:
    # Through a real file, the request spliced in as JSON text (numbers too long for Python's int parser).
    body = (
        json.dumps(MASKED_REQUEST)[:-1]
        + ', "mask_blur": 1'
        + "0" * 5000
        + ', "padding": 1e999, "expand": [1, 2, 3]}'
    )
    document = '{"schema": 1, "app": "latent-studio", "request": ' + body + "}"
    path = tmp_path / "hostile.png"
    path.write_bytes(S.png_bytes(S.itxt_chunk("latent-studio", document)))
    meta = read_metadata(path)
    assert meta is not None and meta.source == "latent-studio"
    assert (meta.mask_blur, meta.padding, meta.expand) == (None, None, None)
    assert meta.masked_content == "noise" and meta.input_hashes() == (INIT, MASK)
    assert_usable(meta)


def test_checked_repairs_whatever_a_reader_puts_in_the_fields() -> None:
    meta = ImageMetadata(
        source="latent-studio",
        mask_blur="8",  # type: ignore[arg-type]
        masked_content=object(),  # type: ignore[arg-type]
        inpaint_area="masked",
        padding=10**100,
        invert_mask=1,  # type: ignore[arg-type]
        outpaint_fill="edge",
        expand=[1, 2, 3, 4],  # type: ignore[arg-type]
        init_image_sha256="../../x",
        mask_image_sha256=MASK,
    )
    assert mask_values(checked(meta)) == {
        "mask_blur": None,
        "masked_content": None,
        "inpaint_area": "masked",
        "padding": None,
        "invert_mask": None,
        "outpaint_fill": "edge",
        "expand": (1, 2, 3, 4),
        "init_image_sha256": None,
        "mask_image_sha256": MASK,
    }
    assert_usable(meta)


def test_a_request_that_is_not_a_dict_gives_no_mask_fields() -> None:
    for request in (None, [MASKED_REQUEST], "mask_blur", 4):
        meta = from_studio({"schema": 1, "app": "latent-studio", "request": request})
        assert all(value is None for value in mask_values(meta).values())
