"""Requests as JSON for the network: what the client writes the server reads back to the same request, with
the same images (by pixel hash); anything odd is refused with the field named."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from studio.engine.errors import RequestError
from studio.engine.request import GenerationRequest
from studio.engine.request_json import request_from_json, request_to_json
from studio.library.images import sha256_image


def _same(name: str) -> str:
    return name


def _image(mode="RGB", size=(16, 8)) -> Image.Image:
    data = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(data).convert(mode)


def test_a_request_round_trips_with_its_init_image_and_mask(tmp_path):
    init = _image()
    path = tmp_path / "init.png"
    init.save(path)
    mask = _image("L")
    request = GenerationRequest(
        model="sd-1.4", prompt="a (cat:1.2)", negative_prompt="dog", steps=7, seed=3, width=64, height=64,
        init_image=path, strength=0.5, mask_image=mask, mask_blur=2, expand=(8, 0, 0, 8), batch=2,
    )
    data = request_to_json(request)
    assert set(data) >= {"model", "prompt", "init_image", "mask_image", "expand"} and "guidance" not in data
    back = request_from_json(data, _same)
    assert back.expand == (8, 0, 0, 8) and back.steps == 7 and back.batch == 2 and back.strength == 0.5
    assert sha256_image(back.init_image) == sha256_image(init)
    assert sha256_image(back.mask_image) == sha256_image(mask)


def test_hashes_sent_with_the_images_are_checked():
    init = _image()
    buffer = io.BytesIO()
    init.save(buffer, "PNG")
    data = {"model": "m", "prompt": "p", "init_image": base64.b64encode(buffer.getvalue()).decode()}
    assert request_from_json({**data, "init_image_sha256": sha256_image(init)}, _same).init_image is not None
    with pytest.raises(RequestError) as wrong:
        request_from_json({**data, "init_image_sha256": "0" * 64}, _same)
    assert wrong.value.field == "init_image"
    with pytest.raises(RequestError) as alone:
        request_from_json({"model": "m", "prompt": "p", "mask_image_sha256": "0" * 64}, _same)
    assert alone.value.field == "mask_image"


@pytest.mark.parametrize("data, field", [
    ({"prompt": "p"}, "model"),
    ({"model": "m"}, "prompt"),
    ({"model": "m", "prompt": "p", "nope": 1}, "nope"),
    ({"model": "m", "prompt": "p", "steps": "7"}, "steps"),
    ({"model": "m", "prompt": "p", "guidance": True}, "guidance"),
    ({"model": "m", "prompt": "p", "expand": [1, 2]}, "init_image"),  # an expansion needs an init image first
    ({"model": "m", "prompt": "p", "expand": [1, 2], "init_image": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVQI12NgAAAAAgAB4iG8MwAAAABJRU5ErkJggg=="}, "expand"),
    ({"model": "m", "prompt": "p", "init_image": 5}, "init_image"),
    ({"model": "m", "prompt": "p", "init_image": "@@@"}, "init_image"),
    ({"model": "m", "prompt": "p", "init_image": base64.b64encode(b"GIF89a").decode()}, "init_image"),
    ({"model": "m", "prompt": "p", "batch": None}, "batch"),
])
def test_bad_fields_are_refused_by_name(data, field):
    with pytest.raises(RequestError) as refused:
        request_from_json(data, _same)
    assert refused.value.field == field


def test_the_model_policy_decides_what_a_name_means():
    def policy(name: str) -> str:
        if name != "ok":
            raise RequestError("not offered", field="model")
        return "/models/ok"

    assert request_from_json({"model": "ok", "prompt": "p"}, policy).model == "/models/ok"
    with pytest.raises(RequestError, match="not offered"):
        request_from_json({"model": "/etc/passwd", "prompt": "p"}, policy)
    with pytest.raises(RequestError):
        request_from_json(["not", "an", "object"], policy)
