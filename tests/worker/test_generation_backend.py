"""The engine's thread on the OpenVINO backend: a real tiny model converted, cached and run; the
conversion said in the status bar and cancelled between its parts. A real Qt event loop, real files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from studio.engine import Engine, GenerationRequest
from studio.engine.backends import nncf_installed, openvino_installed
from studio.library.openvino_cache import OpenVinoCache
from studio.worker.generation import GenerationWork, GenerationWorker, JobOutcome, SavedImage, StepReport

WAIT_MS = 180_000  # a first conversion takes seconds on a tiny model, more on a busy machine
OPTIMISING = "Optimising for this CPU"

pytestmark = pytest.mark.skipif(not openvino_installed(), reason="OpenVINO is not installed")


class Listener:
    """A GenerationListener that keeps every report, in the order the GUI thread receives them."""

    def __init__(self, on_status=None) -> None:
        self.statuses: list[str] = []
        self.saved_images: list[SavedImage] = []
        self.steps: list[StepReport] = []
        self.outcomes: list[JobOutcome] = []
        self._on_status = on_status

    def started(self, job_id: int) -> None:
        pass

    def step(self, report: StepReport) -> None:
        self.steps.append(report)

    def saved(self, image: SavedImage) -> None:
        self.saved_images.append(image)

    def warning(self, job_id: int, text: str) -> None:
        pass

    def status(self, text: str) -> None:
        self.statuses.append(text)
        if self._on_status is not None:
            self._on_status(text)

    def ended(self, outcome: JobOutcome) -> None:
        self.outcomes.append(outcome)


def request(model: Path, **fields) -> GenerationRequest:
    base = {"prompt": "a red fox", "steps": 2, "seed": 7, "width": 64, "height": 64, "scheduler": "DDIM"}
    return GenerationRequest(model=str(model), **{**base, **fields})


@pytest.fixture
def worker(qtbot):
    workers: list[GenerationWorker] = []

    def make(engine_factory=None) -> GenerationWorker:
        workers.append(GenerationWorker(engine_factory))
        return workers[-1]

    yield make
    for made in workers:
        assert made.shutdown(WAIT_MS)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def run(qtbot, worker: GenerationWorker, work: GenerationWork, listener: Listener) -> JobOutcome:
    worker.run(work, listener)
    qtbot.waitUntil(lambda: bool(listener.outcomes), timeout=WAIT_MS)
    return listener.outcomes[0]


def test_an_openvino_job_is_optimised_once_says_so_and_says_which_backend_made_it(
    qtbot, worker, tiny_sd1, tmp_path, monkeypatch
):
    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path / "cache"))  # the app's own engine: the user's cache
    generation = worker()  # no engine_factory: the app's engine, made for the job's device, dtype and backend
    first = Listener()
    work = GenerationWork(1, request(tiny_sd1), tmp_path / "out", device="cpu", backend="openvino")
    outcome = run(qtbot, generation, work, first)
    assert outcome == JobOutcome(1, "done")
    optimising = [s for s in first.statuses if s.startswith(OPTIMISING)]
    assert optimising[0] == f"{OPTIMISING}: text encoder 1/4…" and optimising[-1].endswith("4/4…")
    (image,) = first.saved_images
    assert (image.backend, image.device) == ("openvino", "cpu") and image.metadata["backend"] == "openvino"
    assert image.path.is_file() and len(first.steps) == 2
    assert generation.engine.backend == "openvino"
    (cached,) = OpenVinoCache(tmp_path / "cache" / "openvino").entries()
    assert len(cached.parts) == 4 and cached.size > 0

    again = Listener()  # the same engine, the model loaded: nothing is optimised twice
    second = GenerationWork(2, request(tiny_sd1, seed=8), tmp_path / "out", device="cpu", backend="openvino")
    assert run(qtbot, generation, second, again) == JobOutcome(2, "done")
    assert not [s for s in again.statuses if s.startswith(OPTIMISING)]
    assert again.saved_images[0].backend == "openvino"


class HeldConversion(Engine):
    """A real engine whose every conversion step waits (up to a minute) for the job's cancel after it
    is reported: the user's Cancel, sent from the GUI thread when the status arrives, always lands
    mid-conversion, whatever the machine's speed."""

    def load(self, model: str, cancel: threading.Event | None = None, *, request=None):
        reporter = self.on_status  # the worker's: it reports to the GUI thread

        def on_status(text: str) -> None:
            reporter(text)
            cancel.wait(60)  # no cancel given to load: an AttributeError, and the test fails

        self.on_status = on_status
        try:
            return super().load(model, cancel, request=request)
        finally:
            self.on_status = reporter


def test_cancel_during_the_conversion_stops_it_between_parts(qtbot, worker, tiny_sd1, tmp_path):
    cache = tmp_path / "openvino"
    generation = worker(lambda: HeldConversion(device="cpu", backend="openvino", preview="none", openvino_cache=cache))
    work = GenerationWork(3, request(tiny_sd1), tmp_path / "out", device="cpu", backend="openvino")
    listener = Listener(on_status=lambda text: text.startswith(OPTIMISING) and work.cancel.set())  # the user's Cancel
    outcome = run(qtbot, generation, work, listener)
    assert outcome == JobOutcome(3, "cancelled")
    assert [s for s in listener.statuses if s.startswith(OPTIMISING)] == [f"{OPTIMISING}: text encoder 1/4…"]
    assert listener.saved_images == [] and files_in(tmp_path / "out") == []
    assert all(entry.parts == () for entry in OpenVinoCache(cache).entries())  # no part half-written


def test_an_engine_factorys_own_status_hook_is_kept(qtbot, worker, tiny_sd1, tmp_path):
    heard: list[str] = []
    own = heard.append
    generation = worker(lambda: Engine(device="cpu", backend="torch", preview="none", on_status=own))
    outcome = run(qtbot, generation, GenerationWork(4, request(tiny_sd1), tmp_path / "out", device="cpu"), Listener())
    assert outcome == JobOutcome(4, "done")
    assert generation.engine.on_status is own


@pytest.mark.skipif(not nncf_installed(), reason="NNCF is not installed")
def test_int8_on_the_torch_backend_fails_with_a_readable_line(qtbot, worker, tiny_sd1, tmp_path):
    generation = worker()
    work = GenerationWork(5, request(tiny_sd1), tmp_path / "out", device="cpu", dtype="int8", backend="torch")
    outcome = run(qtbot, generation, work, Listener())
    assert outcome.status == "failed" and outcome.message.startswith("int8 runs on the OpenVINO backend only")


def test_a_jobs_cpu_threads_reach_openvino_and_other_threads_make_a_new_engine(
    qtbot, worker, tiny_sd1, tmp_path, monkeypatch
):
    import studio.engine.openvino_pipeline as pipeline

    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path / "cache"))
    asked: list[int | None] = []  # the threads each compile was configured with
    real_config = pipeline.compile_config

    def config(precision: str, *, threads: int | None = None) -> dict:
        asked.append(threads)
        return real_config(precision, threads=threads)

    monkeypatch.setattr(pipeline, "compile_config", config)
    generation = worker()  # no engine_factory: the app's engine, made for the job's threads
    one = GenerationWork(6, request(tiny_sd1), tmp_path / "out", device="cpu", backend="openvino", threads=1)
    assert run(qtbot, generation, one, Listener()) == JobOutcome(6, "done")
    first = generation.engine
    assert first.threads == 1 and asked and set(asked) == {1}

    asked.clear()
    auto = GenerationWork(7, request(tiny_sd1), tmp_path / "out", device="cpu", backend="openvino")  # threads 0: Auto
    assert run(qtbot, generation, auto, Listener()) == JobOutcome(7, "done")
    assert generation.engine is not first and generation.engine.threads is None  # all physical cores
    assert asked and set(asked) == {None}
