"""QImage conversions, failure messages, saving."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QThread
from PySide6.QtGui import QImage

from studio.engine import GenerationError, GenerationResult, ModelNotFoundError
from studio.library.images import SaveError
from studio.library.metadata import read_metadata
from studio.worker import (
    describe_failure,
    pil_to_qimage,
    qimage_to_pil,
    save_result,
)
from studio.worker.generation import model_label

# --------------------------------------------------------------------------------------- QImages


@pytest.mark.parametrize(("mode", "size"), [("RGB", (7, 5)), ("RGBA", (5, 3)), ("L", (3, 9)), ("P", (6, 2))])
def test_pil_qimage_round_trip_keeps_pixels(mode, size):
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4}.get(mode, 1)
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode if mode != "P" else "L")
    if mode == "P":
        image = image.convert("P")
    qimage = pil_to_qimage(image)
    del image  # the QImage owns its pixels
    assert (qimage.width(), qimage.height()) == size and not qimage.isNull()
    back = qimage_to_pil(qimage)
    expected = {"RGBA": "RGBA"}.get(mode, "RGB")
    assert back.mode == expected and back.size == size


def test_round_trip_is_exact_for_odd_widths():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # 21 bytes a row: not 4-aligned
    back = qimage_to_pil(pil_to_qimage(Image.fromarray(pixels, "RGB")))
    assert np.array_equal(np.asarray(back), pixels)
    rgba = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    assert np.array_equal(np.asarray(qimage_to_pil(pil_to_qimage(Image.fromarray(rgba, "RGBA")))), rgba)


def test_none_and_null_images():
    assert pil_to_qimage(None).isNull()
    with pytest.raises(ValueError, match="null"):
        qimage_to_pil(QImage())


def test_qimage_from_another_thread_outlives_it(qtbot):
    """A QImage made in a worker thread stays valid after the thread and its PIL image are gone."""
    made: list[QImage] = []

    class Maker(QThread):
        def run(self):
            made.append(pil_to_qimage(Image.new("RGB", (4, 4), (10, 20, 30))))

    thread = Maker()
    with qtbot.waitSignal(thread.finished, timeout=5000):
        thread.start()
    assert thread.wait(5000)
    assert made[0].pixelColor(3, 3).getRgb()[:3] == (10, 20, 30)


# -------------------------------------------------------------------------------------- messages


def test_failure_messages_are_one_readable_line():
    assert describe_failure(ModelNotFoundError("model 'x' not found: not in the catalogue")) == (
        "model 'x' not found: not in the catalogue"
    )
    assert describe_failure(GenerationError("out of memory at 64x64, batch 1")) == "out of memory at 64x64, batch 1"
    assert describe_failure(MemoryError()).startswith("out of memory")
    crash = RuntimeError("Error(s) in loading state_dict\n\tsize mismatch for conv_in.weight")
    assert describe_failure(crash, "loading", "/models/my-model/") == (
        "could not load model my-model: RuntimeError: Error(s) in loading state_dict"
    )
    assert describe_failure(crash) == "generation failed: RuntimeError: Error(s) in loading state_dict"
    assert describe_failure(SaveError("cannot save /x.png: No space left on device"), "saving") == (
        "cannot save /x.png: No space left on device"
    )
    assert describe_failure(ValueError("bad template"), "saving") == "could not save the image: ValueError: bad template"
    assert describe_failure(RuntimeError()) == "generation failed: RuntimeError"
    long = describe_failure(RuntimeError("x" * 5000))
    assert len(long) == 400 and long.endswith("…")


def test_model_labels():
    assert model_label("sd-1.4") == "sd-1.4"
    assert model_label("Deci/DeciDiffusion-v1-0") == "Deci/DeciDiffusion-v1-0"  # a hub id stays whole
    assert model_label("/home/me/models/dreamy.safetensors") == "dreamy.safetensors"
    assert model_label("./models/tiny/") == "tiny"


# ---------------------------------------------------------------------------------------- saving


def result(seed: int = 5, **meta_overrides) -> GenerationResult:
    meta = {
        "schema": 1,
        "app": "latent-studio",
        "model": {"id": "tiny", "repo": None, "revision": None, "family": "sd1", "path": None, "hash": None},
        "request": {"prompt": "a red fox", "negative_prompt": "", "steps": 3, "width": 8, "height": 8, "seed": seed},
        "seed": seed,
        "batch_index": 0,
        **meta_overrides,
    }
    return GenerationResult(image=Image.new("RGB", (8, 8), "red"), seed=seed, nsfw=None, metadata=meta)


def test_save_result_writes_metadata_under_unique_names(tmp_path):
    first = save_result(result(), tmp_path)
    second = save_result(result(), tmp_path)
    assert first != second and first.is_file() and second.is_file()
    assert read_metadata(first).prompt == "a red fox" and read_metadata(first).seed == 5


def test_failed_save_leaves_no_placeholder(tmp_path):
    with pytest.raises(SaveError):
        save_result(result(extra=math.nan), tmp_path)  # metadata that cannot be JSON: encoding fails
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
