"""Jobs, the queue model (checked by Qt's own model tester), QImage conversions, failure messages, saving."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPersistentModelIndex, QThread, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QImage
from PySide6.QtTest import QAbstractItemModelTester

from studio.engine import GenerationError, GenerationRequest, GenerationResult, ModelNotFoundError
from studio.library.images import SaveError
from studio.library.metadata import read_metadata
from studio.worker import (
    Job,
    JobQueueModel,
    JobStatus,
    describe_failure,
    pil_to_qimage,
    qimage_to_pil,
    save_result,
)
from studio.worker.generation import model_label


def job(job_id: int, prompt: str = "a red fox in the snow", **fields) -> Job:
    return Job(id=job_id, request=GenerationRequest(model="sd-1.4", prompt=prompt, **fields))


# -------------------------------------------------------------------------------------------- Job


def test_job_defaults_and_identity():
    a, b = job(1), job(1)
    assert a.status is JobStatus.QUEUED and a.step == 0 and a.paths == [] and a.error is None
    assert a.started is None and a.finished is None and a.created > 0
    assert a != b  # two submissions are two jobs even with equal fields
    assert not a.cancel_requested and a._cancel is not b._cancel
    assert "_cancel" not in repr(a)
    assert [s.is_final for s in JobStatus] == [False, False, True, True, True]


def test_display_text_for_each_state():
    item = job(3, "a red fox in the snow")
    assert item.display_text() == "#3 · queued · a red fox in the snow"
    item.status = JobStatus.RUNNING
    assert item.display_text() == "#3 · starting · a red fox in the snow"
    item.step, item.total = 12, 30
    assert item.display_text() == "#3 · running 12/30 · a red fox in the snow"
    item._cancel.set()
    assert item.display_text() == "#3 · cancelling · a red fox in the snow"
    item.status = JobStatus.FAILED
    assert item.display_text() == "#3 · failed · a red fox in the snow"
    assert job(4, "").display_text() == "#4 · queued"


def test_long_and_multiline_prompts_are_shortened_on_one_line():
    item = job(1, "line one\n\nline   two " + "word " * 40)
    text = item.short_prompt()
    assert len(text) == 40 and text.endswith("…") and "\n" not in text and text.startswith("line one line two")
    tip = job(2, "fox", negative_prompt="blur", width=64, height=64, steps=5, seed=9).tooltip()
    assert tip.splitlines() == ["fox", "Negative: blur", "model sd-1.4, 64x64, steps 5, batch 1, seed 9"]


# ------------------------------------------------------------------------------------ queue model


@pytest.fixture
def model(qtbot):
    """A queue model watched by Qt's model tester: a broken model invariant is a Qt warning, caught here."""
    warnings: list[str] = []

    def handler(mode, _context, message):
        if mode != QtMsgType.QtDebugMsg and mode != QtMsgType.QtInfoMsg:
            warnings.append(message)

    previous = qInstallMessageHandler(handler)
    try:
        queue = JobQueueModel()
        tester = QAbstractItemModelTester(queue, QAbstractItemModelTester.FailureReportingMode.Warning)
        yield queue
        del tester
    finally:
        qInstallMessageHandler(previous)
    assert warnings == []


def ids(queue: JobQueueModel) -> list[int]:
    return [queue.index(row).data(JobQueueModel.JobIdRole) for row in range(queue.rowCount())]


def test_queue_model_append_move_remove(qtbot, model):
    jobs = [job(n, f"prompt {n}") for n in (1, 2, 3, 4)]
    for item in jobs:
        model.append(item)
    assert ids(model) == [1, 2, 3, 4] and model.jobs() == jobs
    with qtbot.waitSignal(model.rowsMoved, timeout=1000):
        assert model.move(4, 1)
    assert ids(model) == [1, 4, 2, 3]
    tracked = QPersistentModelIndex(model.index(1))  # views keep selections through persistent indexes
    assert model.move(4, 3) and ids(model) == [1, 2, 3, 4]  # downwards
    assert tracked.row() == 3 and tracked.data(JobQueueModel.JobIdRole) == 4
    assert model.move(4, 0) and tracked.row() == 0 and ids(model) == [4, 1, 2, 3]
    assert model.move(4, 3) and tracked.row() == 3
    assert not model.move(4, 3) and not model.move(4, 9) and not model.move(99, 0)
    assert model.remove(2) is jobs[1] and ids(model) == [1, 3, 4]
    assert model.remove(2) is None
    assert model.row_of(4) == 2 and model.row_of(2) == -1 and model.job_at(0) is jobs[0] and model.job_at(7) is None


def test_queue_model_roles_and_refresh(qtbot, model):
    item = job(7, "fox")
    model.append(item)
    index = model.index(0)
    assert index.data() == "#7 · queued · fox"
    assert index.data(JobQueueModel.StatusRole) == "queued" and index.data(JobQueueModel.JobRole) is item
    assert "fox" in index.data(0x03)  # ToolTipRole
    assert model.index(5).data() is None
    assert {b"jobId", b"status", b"job"} <= set(model.roleNames().values())
    item.status, item.step, item.total = JobStatus.RUNNING, 1, 4
    with qtbot.waitSignal(model.dataChanged, timeout=1000):
        model.refresh(7)
    assert index.data() == "#7 · running 1/4 · fox"


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
