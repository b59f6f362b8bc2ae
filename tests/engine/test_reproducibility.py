"""A seed reproduces (design.md section 7): for every offered scheduler, on every family, txt2img and img2img.

Same request -> identical pixels, whatever the global torch RNG holds; and an image's own embedded
metadata, read back from a real PNG, is enough to regenerate identical pixels. Schedulers added to
`schedulers.names()` (ancestral and SDE ones too) get these tests for free.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine import GenerationRequest, RequestError
from studio.engine.request import request_from_metadata
from studio.engine.schedulers import names
from studio.library.metadata import read_metadata
from studio.library.saving import save_result

FAMILIES = ("sd1", "sd2", "deci")
MODES = ("txt2img", "img2img")


@pytest.fixture(scope="module")
def tiny_deci(tmp_path_factory) -> Path:
    from studio.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-deci", "deci", seed=0)


@pytest.fixture(scope="module")
def models(tiny_sd1, tiny_sd2, tiny_deci) -> dict[str, Path]:
    return {"sd1": tiny_sd1, "sd2": tiny_sd2, "deci": tiny_deci}


@pytest.fixture(scope="module")
def init_file(tmp_path_factory) -> Path:
    """A real init image with structure (a gradient), as a PNG file."""
    x = np.linspace(0, 255, 64, dtype=np.uint8)
    pixels = np.stack([np.tile(x, (64, 1)), np.tile(x[:, None], (1, 64)), np.full((64, 64), 90, np.uint8)], axis=-1)
    path = tmp_path_factory.mktemp("init") / "init.png"
    Image.fromarray(pixels, "RGB").save(path)
    return path


def request(model: Path, scheduler: str, mode: str, init_file: Path, **kw) -> GenerationRequest:
    base = {"prompt": "a red fox in the snow", "negative_prompt": "blurry", "steps": 3, "seed": 42,
            "width": 64, "height": 64, "scheduler": scheduler}
    if mode == "img2img":
        base.update(init_image=init_file, strength=0.6)  # 3 steps: the last 2 run
    return GenerationRequest(model=str(model), **{**base, **kw})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def refused(family: str, scheduler: str) -> bool:
    """PNDM cannot keep DeciDiffusion's zero-terminal-SNR schedule: the engine says so instead of running."""
    return family == "deci" and scheduler == "PNDM"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scheduler", names())
def test_same_request_same_pixels_whatever_the_global_rng(engine, models, init_file, scheduler, family, mode):
    req = request(models[family], scheduler, mode, init_file)
    if refused(family, scheduler):
        with pytest.raises(RequestError, match="zero-terminal-SNR"):
            engine.generate(req)
        return
    torch.manual_seed(1)
    first = engine.generate(req)[0]
    torch.manual_seed(2)  # anything drawing from the global RNG would now draw other numbers
    torch.randn(1000)
    second = engine.generate(req)[0]
    assert np.array_equal(pixels(first.image), pixels(second.image)), (scheduler, family, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scheduler", names())
def test_the_images_own_metadata_regenerates_its_pixels(
    engine, models, init_file, tmp_path, scheduler, family, mode
):
    if refused(family, scheduler):
        pytest.skip("refused combination (see the test above)")
    torch.manual_seed(3)
    original = engine.generate(request(models[family], scheduler, mode, init_file))[0]
    path = save_result(original, tmp_path)
    meta = read_metadata(path)
    assert meta is not None and meta.source == "latent-studio" and meta.studio is not None
    saved = pixels(Image.open(path))
    assert np.array_equal(saved, pixels(original.image))  # PNG is lossless: the file holds the pixels

    torch.manual_seed(4)
    again_request, index = request_from_metadata(meta.studio, init_image=init_file if mode == "img2img" else None)
    again = engine.generate(again_request)[index]
    assert np.array_equal(pixels(again.image), saved), (scheduler, family, mode)
    assert again.metadata["request"] == original.metadata["request"]

    if mode == "txt2img":  # "reuse parameters" fields alone (the model's defaults fill the rest)
        fields = GenerationRequest(**meta.to_request_fields())
        assert np.array_equal(pixels(engine.generate(fields)[0].image), saved)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_image_of_a_batch_regenerates_from_its_own_metadata(engine, models, init_file, tmp_path, family):
    """Image i of a batch (seed + i) comes back from its own file: the metadata keeps the batch's first seed
    and size, so the same batch runs again (batched maths may round differently from a single image's)."""
    torch.manual_seed(5)
    batch = engine.generate(request(models[family], "Euler a", "txt2img", init_file, seed=900, batch=3))
    assert [r.seed for r in batch] == [900, 901, 902]
    files = [save_result(result, tmp_path) for result in batch]
    assert len(set(files)) == 3
    for i, path in enumerate(files):
        meta = read_metadata(path)
        assert meta is not None and meta.seed == 900 + i
        torch.manual_seed(100 + i)
        req, index = request_from_metadata(meta.studio)
        assert (index, req.batch, req.seed) == (i, 3, 900)
        assert np.array_equal(pixels(engine.generate(req)[index].image), pixels(Image.open(path)))
    assert not np.array_equal(pixels(batch[0].image), pixels(batch[1].image))


def test_img2img_metadata_wants_the_same_init_image(engine, tiny_sd1, init_file, tmp_path):
    result = engine.generate(request(tiny_sd1, "Euler a", "img2img", init_file))[0]
    meta = read_metadata(save_result(result, tmp_path))
    assert meta is not None and meta.studio["request"]["init_image_sha256"]
    with pytest.raises(RequestError, match="init image"):
        request_from_metadata(meta.studio)
    other = Image.new("RGB", (64, 64), (1, 2, 3))
    with pytest.raises(RequestError, match="differs"):
        request_from_metadata(meta.studio, init_image=other)
    # The same pixels as an open image, not the file, are the same init image.
    req, _ = request_from_metadata(meta.studio, init_image=Image.open(init_file))
    assert np.array_equal(pixels(engine.generate(req)[0].image), pixels(result.image))


@pytest.mark.parametrize("scheduler", names())
def test_x0_capture_keeps_the_step_signature(scheduler):
    """diffusers passes the per-image generator (and eta) only to a `step` whose signature names them."""
    from studio.engine.generate import _capture_x0
    from studio.engine.schedulers import make_scheduler
    from studio.engine.tiny import SD1_SCHEDULER

    instance = make_scheduler(scheduler, {k: v for k, v in SD1_SCHEDULER.items() if k != "_class_name"})
    before = inspect.signature(instance.step)
    _capture_x0(instance)
    assert inspect.signature(instance.step) == before
    assert instance.step.__wrapped__ is not None  # and the wrapper is really there


@pytest.fixture(scope="module")
def tiny_euler_karras(tiny_sd1, tmp_path_factory) -> Path:
    """tiny sd1 shipping a scheduler we do not offer: Euler with Karras sigmas."""
    import json

    folder = tmp_path_factory.mktemp("models") / "tiny-sd1-euler-karras"
    shutil.copytree(tiny_sd1, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update({"_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": True})
    config_path.write_text(json.dumps(config))
    return folder


def test_a_models_own_unoffered_scheduler_regenerates_by_name(engine, tiny_euler_karras, tiny_sd2, init_file, tmp_path):
    original = engine.generate(request(tiny_euler_karras, None, "txt2img", init_file))[0]
    assert original.metadata["request"]["scheduler"] == "Euler Karras"
    assert original.metadata["scheduler_config"]["_class_name"] == "EulerDiscreteScheduler"
    meta = read_metadata(save_result(original, tmp_path))
    again_request, index = request_from_metadata(meta.studio)
    assert np.array_equal(pixels(engine.generate(again_request)[index].image), pixels(original.image))
    # That name means "the model's own": a model that ships another scheduler cannot run it.
    with pytest.raises(RequestError, match="not offered"):
        engine.generate(request(tiny_sd2, "Euler Karras", "txt2img", init_file))
