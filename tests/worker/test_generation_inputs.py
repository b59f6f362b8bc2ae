"""The engine's thread keeps a job's init image and mask by content, so "Reuse parameters" can restore
the canvas; a disk that will not take them costs a warning, never the images. A real tiny model, a real
Qt event loop, real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine import GenerationRequest
from studio.library.images import sha256_image
from studio.library.input_store import InputStore
from studio.library.metadata import read_metadata
from studio.viewmodel.job_queue import JobQueue
from studio.worker.generation import GenerationWork, GenerationWorker, JobOutcome, SavedImage

WAIT_MS = 120_000


class Listener:
    """A GenerationListener that keeps the reports this test reads."""

    def __init__(self) -> None:
        self.saved_images: list[SavedImage] = []
        self.warnings: list[str] = []
        self.outcomes: list[JobOutcome] = []

    def started(self, job_id: int) -> None:
        pass

    def step(self, report) -> None:
        pass

    def saved(self, image: SavedImage) -> None:
        self.saved_images.append(image)

    def warning(self, job_id: int, text: str) -> None:
        self.warnings.append(text)

    def status(self, text: str) -> None:
        pass

    def ended(self, outcome: JobOutcome) -> None:
        self.outcomes.append(outcome)


@pytest.fixture
def worker(qtbot, engine):
    made = GenerationWorker(lambda: engine)
    yield made
    assert made.shutdown(WAIT_MS)


def noise_image(seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def box_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    return mask


def request(model: Path, **fields) -> GenerationRequest:
    base = {"prompt": "a red door", "steps": 2, "seed": 7, "width": 64, "height": 64, "scheduler": "DDIM"}
    return GenerationRequest(model=str(model), **{**base, **fields})


def run(qtbot, worker: GenerationWorker, work: GenerationWork) -> Listener:
    listener = Listener()
    worker.run(work, listener)
    qtbot.waitUntil(lambda: bool(listener.outcomes), timeout=WAIT_MS)
    assert listener.outcomes == [JobOutcome(work.job_id, "done")]
    return listener


def kept_hashes(meta: dict) -> list[str]:
    fields = meta["request"]
    return [h for h in (fields.get("init_image_sha256"), fields.get("mask_image_sha256")) if h]


def test_an_inpainting_job_keeps_its_init_image_and_mask_under_the_metadatas_hashes(qtbot, worker, tiny_sd1, tmp_path):
    init, mask = noise_image(), box_mask()
    work = GenerationWork(
        1, request(tiny_sd1, init_image=init, mask_image=mask, invert_mask=True, batch=2), tmp_path / "out",
        device="cpu", inputs_dir=tmp_path / "inputs",
    )
    listener = run(qtbot, worker, work)
    assert len(listener.saved_images) == 2 and listener.warnings == []
    store = InputStore(tmp_path / "inputs")
    meta = read_metadata(listener.saved_images[1].path).studio  # what a reuse reads: the file's own metadata
    init_hash, mask_hash = kept_hashes(meta)
    assert np.array_equal(np.asarray(store.get(init_hash)), np.asarray(init))
    kept_mask = store.get(mask_hash)
    assert kept_mask.mode == "L" and np.array_equal(np.asarray(kept_mask), np.asarray(mask))
    assert len([p for p in (tmp_path / "inputs").rglob("*") if p.is_file()]) == 2  # once for the batch


def test_an_img2img_job_keeps_its_init_image_once_across_jobs(qtbot, worker, tiny_sd1, tmp_path):
    init = noise_image(seed=3).resize((80, 48))
    for job_id in (1, 2):  # the same canvas twice: one file
        work = GenerationWork(
            job_id, request(tiny_sd1, init_image=init, strength=0.5, seed=job_id), tmp_path / "out", device="cpu",
            inputs_dir=tmp_path / "inputs",
        )
        listener = run(qtbot, worker, work)
    [digest] = kept_hashes(listener.saved_images[0].metadata)
    assert digest == sha256_image(init)
    assert [p.name for p in (tmp_path / "inputs").rglob("*.png")] == [f"{digest}.png"]
    assert InputStore(tmp_path / "inputs").get(digest).size == (80, 48)


def test_without_an_inputs_folder_nothing_is_kept(qtbot, worker, tiny_sd1, tmp_path):
    run(qtbot, worker, GenerationWork(1, request(tiny_sd1, init_image=noise_image(), strength=0.5), tmp_path / "out", device="cpu"))
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_inputs_folder_that_cannot_be_written_warns_and_the_image_is_still_saved(qtbot, worker, tiny_sd1, tmp_path):
    (tmp_path / "data").write_text("a file where the folder should be", encoding="utf-8")  # fails for root too
    work = GenerationWork(
        1, request(tiny_sd1, init_image=noise_image(), mask_image=box_mask()), tmp_path / "out", device="cpu",
        inputs_dir=tmp_path / "data" / "inputs",
    )
    listener = run(qtbot, worker, work)
    [warning] = listener.warnings
    assert warning.startswith("could not keep the init image and mask for reuse: ")
    [saved] = listener.saved_images
    assert saved.path.is_file()


def test_the_queue_hands_its_inputs_folder_to_the_worker(qtbot, engine, tiny_sd1, tmp_path):
    service = JobQueue(tmp_path / "out", engine_factory=lambda: engine)
    try:
        init = noise_image(seed=9)
        with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
            service.submit(request(tiny_sd1, init_image=init, strength=0.5), device="cpu", inputs_dir=tmp_path / "inputs")
        assert InputStore(tmp_path / "inputs").get(sha256_image(init)) is not None
    finally:
        assert service.shutdown(WAIT_MS)
