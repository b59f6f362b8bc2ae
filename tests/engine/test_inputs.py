"""A result carries the init image and mask exactly as its metadata hashes them: what a store keeps so
that the metadata alone makes the same pixels again (img2img, inpainting, inverted, outpainting)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine import GenerationRequest
from studio.engine.request import request_from_metadata
from studio.library.images import sha256_image


def noise_image(size=(80, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def box_mask(size=(80, 48), box=(16, 8, 48, 40)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask


def req(model, **kw) -> GenerationRequest:
    return GenerationRequest(**{"model": str(model), "prompt": "a red door", "steps": 2, "seed": 5, **kw})


def hashes(meta: dict) -> set[str]:
    request = meta["request"]
    return {h for h in (request.get("init_image_sha256"), request.get("mask_image_sha256")) if h}


def check_inputs(results) -> dict[str, Image.Image]:
    """Every result carries the same inputs, named by the metadata's hashes, each hashing to its name."""
    inputs = results[0].inputs
    for result in results:
        assert set(result.inputs) == hashes(result.metadata) == set(inputs)
    for digest, image in inputs.items():
        assert sha256_image(image) == digest
    return inputs


def test_txt2img_has_no_inputs(engine, tiny_sd1):
    [result] = engine.generate(req(tiny_sd1, width=64, height=64))
    assert result.inputs == {}


def test_img2img_keeps_the_init_image_as_read_before_it_is_resized(engine, tiny_sd1):
    init = noise_image()  # 80x48, generated at 64x64
    results = engine.generate(req(tiny_sd1, init_image=init, strength=0.5, width=64, height=64, batch=2))
    inputs = check_inputs(results)
    [(digest, kept)] = inputs.items()
    assert kept.size == (80, 48) and np.array_equal(np.asarray(kept), np.asarray(init))
    again, index = request_from_metadata(results[1].metadata, init_image=kept)  # the metadata alone, with it
    assert index == 1 and sha256_image(again.init_image) == digest


def test_an_rgba_init_image_is_kept_as_the_rgb_its_hash_is_of(engine, tiny_sd1):
    init = noise_image().convert("RGBA")
    init.putalpha(128)
    [result] = engine.generate(req(tiny_sd1, init_image=init, strength=0.5, width=64, height=64))
    [kept] = check_inputs([result]).values()
    assert kept.mode == "RGB"


@pytest.mark.parametrize("invert", [False, True])
def test_inpainting_keeps_the_init_image_and_the_mask_as_given(engine, tiny_sd1, invert):
    init, mask = noise_image(), box_mask()
    results = engine.generate(req(tiny_sd1, init_image=init, mask_image=mask, invert_mask=invert, width=64, height=64))
    inputs = check_inputs(results)
    meta = results[0].metadata["request"]
    kept_mask = inputs[meta["mask_image_sha256"]]
    assert kept_mask.mode == "L" and np.array_equal(np.asarray(kept_mask), np.asarray(mask))  # never inverted
    assert np.array_equal(np.asarray(inputs[meta["init_image_sha256"]]), np.asarray(init))


def test_a_mask_of_another_size_is_kept_as_resized_to_the_init_image(engine, tiny_sd1):
    init, mask = noise_image(), box_mask((40, 24), (8, 4, 24, 20))
    [result] = engine.generate(req(tiny_sd1, init_image=init, mask_image=mask))
    inputs = check_inputs([result])
    assert inputs[result.metadata["request"]["mask_image_sha256"]].size == init.size


def test_outpainting_keeps_the_init_image_before_it_grows(engine, tiny_sd1):
    init = noise_image((64, 64))
    [result] = engine.generate(req(tiny_sd1, init_image=init, expand=(0, 0, 64, 0)))
    assert result.image.size == (128, 64)
    inputs = check_inputs([result])
    assert list(inputs) == [result.metadata["request"]["init_image_sha256"]]  # no mask of its own
    assert next(iter(inputs.values())).size == (64, 64)


def test_outpainting_with_a_mask_keeps_both_before_they_grow(engine, tiny_sd1):
    init, mask = noise_image((64, 64)), box_mask((64, 64), (0, 0, 16, 64))
    [result] = engine.generate(req(tiny_sd1, init_image=init, mask_image=mask, invert_mask=True, expand=(64, 0, 0, 0)))
    inputs = check_inputs([result])
    assert len(inputs) == 2 and all(image.size == (64, 64) for image in inputs.values())


def test_the_metadata_and_the_store_alone_make_the_same_inpainted_pixels(engine, tiny_sd1, tmp_path):
    from studio.engine import RequestError
    from studio.library.input_store import InputStore

    store = InputStore(tmp_path / "inputs")
    first = req(tiny_sd1, init_image=noise_image(), mask_image=box_mask(), invert_mask=True, expand=(0, 0, 16, 0), width=96, height=48)
    [result] = engine.generate(first)
    store.keep(result.inputs)
    again, index = request_from_metadata(result.metadata, store=store)  # no image given: the store has them
    [repeat] = engine.generate(again)
    assert np.array_equal(np.asarray(repeat.image), np.asarray(result.image))
    assert repeat.metadata["request"] == result.metadata["request"]
    with pytest.raises(RequestError, match="not kept here"):
        request_from_metadata(result.metadata, store=InputStore(tmp_path / "empty"))
    with pytest.raises(RequestError, match="mask differs"):
        request_from_metadata(result.metadata, store=store, mask_image=box_mask(box=(0, 0, 8, 8)))
