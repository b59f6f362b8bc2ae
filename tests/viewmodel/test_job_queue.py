"""JobQueue on a real Qt event loop, a real generation thread and real tiny diffusers models.

No mocks: engines are real CPU engines (a subclass only adds a recording or a fault where a test needs
one), files are really written, signals really cross threads. Waits use signals with timeouts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QThread, QTimer
from PySide6.QtGui import QImage

from studio.engine import Engine, GenerationRequest
from studio.library.metadata import read_metadata
from studio.viewmodel.job_queue import Job, JobQueue, JobStatus
from studio.worker import SavedImage, StepReport
from studio.worker import generation as generation_module

WAIT_MS = 30_000


def request(model, **fields) -> GenerationRequest:
    base = {"prompt": "a red fox in the snow", "steps": 5, "seed": 1234, "width": 64, "height": 64, "scheduler": "DDIM"}
    return GenerationRequest(model=str(model), **{**base, **fields})


class Recorder:
    """Every signal of a service, in delivery order, with the thread each was delivered in."""

    NAMES = ("job_started", "step", "image_saved", "job_finished", "job_failed", "job_cancelled", "status")

    def __init__(self, service: JobQueue):
        self.events: list[tuple] = []
        self.threads: set[int] = set()
        for name in self.NAMES:
            getattr(service, name).connect(lambda *args, _name=name: self._record(_name, args))

    def _record(self, name: str, args: tuple) -> None:
        self.threads.add(threading.get_ident())
        self.events.append((name, *flatten(args)))

    def of(self, name: str, job_id: int | None = None) -> list[tuple]:
        return [e[1:] for e in self.events if e[0] == name and (job_id is None or e[1] == job_id)]

    def names_for(self, job_id: int) -> list[str]:
        return [e[0] for e in self.events if e[0] != "status" and e[1] == job_id]


@pytest.fixture(scope="module")
def cpu_engine():
    """One CPU engine shared by the tests of this module (models stay loaded between services)."""
    return Engine(device="cpu", preview="linear", max_models=4)


@pytest.fixture
def make_service(qtbot, tmp_path, cpu_engine):
    services: list[JobQueue] = []

    def make(**kwargs) -> JobQueue:
        kwargs.setdefault("engine_factory", lambda: cpu_engine)
        service = JobQueue(kwargs.pop("output_dir", tmp_path / "out"), **kwargs)
        services.append(service)
        return service

    yield make
    for service in services:
        assert service.shutdown(timeout_ms=WAIT_MS)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def flatten(args: tuple) -> tuple:
    """A typed report as the tuple the assertions index: (job id, step, total, preview, it/s, eta) and
    (job id, path, image, metadata)."""
    if len(args) == 1 and isinstance(args[0], StepReport):
        r = args[0]
        return (r.job_id, r.step, r.total, r.preview, r.it_per_s, r.eta_s)
    if len(args) == 1 and isinstance(args[0], SavedImage):
        r = args[0]
        return (r.job_id, str(r.path), r.image, r.metadata)
    return args


def wait_for_job(qtbot, service: JobQueue, job: Job, signal: str = "job_finished") -> None:
    if job.status.is_final:
        return
    with qtbot.waitSignal(getattr(service, signal), timeout=WAIT_MS, check_params_cb=lambda *args: flatten(args)[0] == job.id):
        pass


# --------------------------------------------------------------------------------------- one job


def test_job_reports_every_step_with_previews_and_saves_with_metadata(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    rec = Recorder(service)
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=5))
    assert job.status is JobStatus.DONE and job.error is None
    steps = rec.of("step", job.id)
    assert [s[1] for s in steps] == [1, 2, 3, 4, 5]
    assert {s[2] for s in steps} == {5}
    for _, _, _, preview, it_per_s, eta_s in steps:
        assert isinstance(preview, QImage) and not preview.isNull()
        assert (preview.width(), preview.height()) == (8, 8)  # latent resolution
        assert it_per_s > 0 and eta_s >= 0
    assert steps[-1][5] == 0.0
    saved = rec.of("image_saved", job.id)
    assert len(saved) == 1
    _, path, image, metadata = saved[0]
    assert Path(path).is_file() and Path(path).is_relative_to(tmp_path / "out")
    assert (image.width(), image.height()) == (64, 64) and not image.isNull()
    assert metadata["seed"] == 1234 and metadata["request"]["prompt"] == "a red fox in the snow"
    meta = read_metadata(path)
    assert meta is not None and meta.prompt == "a red fox in the snow" and meta.seed == 1234
    assert job.paths == [Path(path)]
    assert job.started is not None and job.finished is not None and job.created <= job.started <= job.finished
    assert rec.names_for(job.id) == ["job_started"] + ["step"] * 5 + ["image_saved", "job_finished"]
    statuses = [e[0] for e in rec.of("status")]
    assert any(s.startswith("Loading model tiny-sd1") for s in statuses) and statuses[-1] == "Ready"
    assert not service.is_busy() and service.jobs() == [] and service.job(job.id) is job
    assert files_in(tmp_path / "out") == [Path(path)]  # no placeholder, no temporary file


def test_batch_of_two_saves_two_images_with_consecutive_seeds(qtbot, make_service, tiny_sd1):
    service = make_service()
    rec = Recorder(service)
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=3, batch=2, seed=500))
    saved = rec.of("image_saved", job.id)
    assert [s[3]["seed"] for s in saved] == [500, 501]
    assert [read_metadata(s[1]).seed for s in saved] == [500, 501]
    assert len({s[1] for s in saved}) == 2 and all(Path(s[1]).is_file() for s in saved)
    assert len(job.paths) == 2


def test_engine_work_and_qimages_happen_off_the_gui_thread(qtbot, make_service, tiny_sd1, monkeypatch):
    gui_ident = threading.get_ident()
    gui_qthread = QThread.currentThread()
    engine_threads: list[int] = []
    qimage_threads: list[bool] = []

    class RecordingEngine(Engine):
        def generate(self, req, on_step=None, cancel=None):
            engine_threads.append(threading.get_ident())
            return super().generate(req, on_step=on_step, cancel=cancel)

    def factory():
        engine_threads.append(threading.get_ident())
        return RecordingEngine(device="cpu", preview="linear")

    real_pil_to_qimage = generation_module.pil_to_qimage

    def spy(image):
        qimage_threads.append(QThread.currentThread() is gui_qthread)
        return real_pil_to_qimage(image)

    monkeypatch.setattr(generation_module, "pil_to_qimage", spy)
    service = make_service(engine_factory=factory)
    rec = Recorder(service)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(5)
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        service.submit(request(tiny_sd1, steps=12))
    timer.stop()
    assert len(engine_threads) == 2 and gui_ident not in engine_threads  # factory and generate
    assert len(qimage_threads) == 13 and not any(qimage_threads)  # 12 previews + the result, none in the GUI
    assert rec.threads == {gui_ident}  # every signal is delivered in the GUI thread
    assert len(ticks) >= 5  # the GUI event loop kept running during the load and the 12 steps


def test_a_job_on_another_device_gets_a_new_engine(qtbot, make_service, tiny_sd1):
    made = []

    def factory():
        made.append(1)
        return Engine(device="cpu", preview="none")

    service = make_service(engine_factory=factory)
    rec = Recorder(service)
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        service.submit(request(tiny_sd1, steps=2))
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        service.submit(request(tiny_sd1, steps=2))
    assert len(made) == 1  # same settings: the engine (and its loaded model) is kept
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=2), device="cpu", dtype="float32")
    assert (job.device, job.dtype) == ("cpu", "float32")
    assert len(made) == 2
    assert all(s[3].isNull() for s in rec.of("step", job.id))  # preview="none": null QImages, still a signal
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=2), device="cpu", dtype="float32", backend="torch")
    assert job.backend == "torch" and len(made) == 3  # another backend: another engine


def test_submit_carries_the_backend_and_its_threads_into_the_work(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    works = []
    real_run = service._worker.run
    service._worker.run = lambda work, listener: works.append(work) or real_run(work, listener)
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=2), device="cpu", dtype="float32", backend="torch", threads=3)
    assert (job.device, job.dtype, job.backend, job.threads) == ("cpu", "float32", "torch", 3)
    (work,) = works
    assert (work.job_id, work.device, work.dtype, work.backend, work.threads) == (job.id, "cpu", "float32", "torch", 3)
    assert work.cancel is job._cancel and work.output_dir == tmp_path / "out"
    default = service.submit(request(tiny_sd1), output_dir=tmp_path)
    assert (default.backend, default.threads) == ("auto", 0)  # the defaults: Auto, all physical cores


def test_an_unknown_backend_fails_the_job_in_one_line(qtbot, make_service, tiny_sd1):
    service = make_service(engine_factory=None)  # the app's engine, made for the job's backend
    with qtbot.waitSignal(service.job_failed, timeout=WAIT_MS) as blocker:
        job = service.submit(request(tiny_sd1, steps=2), backend="tensorrt")
    assert blocker.args == [job.id, "unknown backend 'tensorrt': choose auto, torch, openvino"]


def test_set_output_dir_applies_to_the_next_job(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    rec = Recorder(service)
    service.set_output_dir(tmp_path / "elsewhere" / "nested")
    assert service.output_dir == tmp_path / "elsewhere" / "nested"
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=2))
    (path,) = [Path(s[1]) for s in rec.of("image_saved", job.id)]
    assert path.is_relative_to(tmp_path / "elsewhere" / "nested") and path.is_file()


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_from_a_step_slot_stops_the_job_and_writes_nothing(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    rec = Recorder(service)
    job_box: list[Job] = []

    def on_step(job_id, step, *_):
        if job_id == job_box[0].id and step == 2:
            assert service.cancel(job_id)
            assert job_box[0].cancel_requested
            assert "cancelling" in service.queue_model.index(0).data()

    service.step.connect(lambda report: on_step(*flatten((report,))))
    with qtbot.waitSignal(service.job_cancelled, timeout=WAIT_MS):
        job_box.append(service.submit(request(tiny_sd1, steps=20)))
    job = job_box[0]
    assert job.status is JobStatus.CANCELLED and job.paths == []
    steps_at_cancel = [s[1] for s in rec.of("step", job.id)]
    assert steps_at_cancel[:2] == [1, 2] and len(steps_at_cancel) < 20
    # Let everything settle: a following job runs to the end; nothing more arrives for the cancelled one.
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS):
        second = service.submit(request(tiny_sd1, steps=2, prompt="second"))
    assert [s[1] for s in rec.of("step", job.id)] == steps_at_cancel
    assert rec.names_for(job.id)[-1] == "job_cancelled" and "image_saved" not in rec.names_for(job.id)
    assert files_in(tmp_path / "out") == second.paths  # no partial file from the cancelled job
    assert service.cancel(job.id) is False  # already over


def test_cancel_between_batch_images_keeps_the_saved_ones(qtbot, make_service, tiny_sd1, monkeypatch):
    """The cancel lands after the first of three images is saved (a spy on the real save sets it)."""
    real_save = generation_module.save_result
    saved: list[Path] = []

    def save_then_cancel(result, output_dir):
        path = real_save(result, output_dir)
        saved.append(path)
        service.running_job()._cancel.set()  # what service.cancel() does; the worker sees it next
        return path

    monkeypatch.setattr(generation_module, "save_result", save_then_cancel)
    service = make_service()
    rec = Recorder(service)
    with qtbot.waitSignal(service.job_cancelled, timeout=WAIT_MS):
        job = service.submit(request(tiny_sd1, steps=2, batch=3, seed=70))
    assert len(saved) == 1 and saved[0].is_file()
    assert job.status is JobStatus.CANCELLED and job.paths == saved
    assert [s[3]["seed"] for s in rec.of("image_saved", job.id)] == [70]
    assert rec.names_for(job.id)[-2:] == ["image_saved", "job_cancelled"]


def test_cancel_a_queued_job_removes_it_and_it_never_runs(qtbot, make_service, tiny_sd1):
    service = make_service()
    rec = Recorder(service)
    first = service.submit(request(tiny_sd1, steps=3, prompt="first"))
    second = service.submit(request(tiny_sd1, steps=3, prompt="second"))
    third = service.submit(request(tiny_sd1, steps=3, prompt="third"))
    with qtbot.waitSignal(service.job_cancelled, timeout=1000):
        assert service.cancel(second.id)
    assert second.status is JobStatus.CANCELLED
    assert [j.id for j in service.jobs()] == [first.id, third.id]
    wait_for_job(qtbot, service, third)
    assert first.status is JobStatus.DONE and third.status is JobStatus.DONE
    assert rec.names_for(second.id) == ["job_cancelled"]
    assert [s[0] for s in rec.of("job_started")] == [first.id, third.id]


def test_cancel_all_stops_the_running_job_and_empties_the_queue(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    rec = Recorder(service)
    jobs = [service.submit(request(tiny_sd1, steps=200, prompt=f"job {n}")) for n in range(3)]
    with qtbot.waitSignal(service.step, timeout=WAIT_MS):
        pass
    service.cancel_all()
    assert [j.status for j in jobs[1:]] == [JobStatus.CANCELLED] * 2  # queued: cancelled at once
    qtbot.waitUntil(lambda: jobs[0].status is JobStatus.CANCELLED, timeout=WAIT_MS)
    assert not service.is_busy() and service.jobs() == []
    assert [s[0] for s in rec.of("job_started")] == [jobs[0].id]
    assert sorted(s[0] for s in rec.of("job_cancelled")) == [j.id for j in jobs]
    assert len(rec.of("step", jobs[0].id)) < 200
    assert files_in(tmp_path / "out") == []
    assert rec.of("status")[-1] == ("Ready",)


# ------------------------------------------------------------------------------------------- queue


def test_queue_runs_in_submission_order(qtbot, make_service, tiny_sd1):
    service = make_service()
    rec = Recorder(service)
    jobs = [service.submit(request(tiny_sd1, steps=2, seed=n, prompt=f"job {n}")) for n in range(3)]
    assert service.is_busy()
    assert [j.status for j in service.jobs()] == [JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.QUEUED]
    wait_for_job(qtbot, service, jobs[-1])
    ids = [j.id for j in jobs]
    assert [s[0] for s in rec.of("job_started")] == ids
    assert [s[0] for s in rec.of("job_finished")] == ids
    order = [(e[0], e[1]) for e in rec.events if e[0] in ("job_started", "job_finished")]
    assert order == [(name, i) for i in ids for name in ("job_started", "job_finished")]  # one at a time


def test_reordering_queued_jobs_changes_the_run_order(qtbot, make_service, tiny_sd1):
    service = make_service()
    rec = Recorder(service)
    a, b, c, d = (service.submit(request(tiny_sd1, steps=2, prompt=name)) for name in "abcd")
    assert service.move(d.id, 1)  # before b
    assert [j.id for j in service.jobs()] == [a.id, d.id, b.id, c.id]
    assert service.move(b.id, 0)  # clamped: the running job keeps row 0
    assert [j.id for j in service.jobs()] == [a.id, b.id, d.id, c.id]
    assert not service.move(a.id, 3)  # the running job does not move
    assert service.move(b.id, 99)  # clamped to the end
    assert [j.id for j in service.jobs()] == [a.id, d.id, c.id, b.id]
    wait_for_job(qtbot, service, b)
    assert [s[0] for s in rec.of("job_started")] == [a.id, d.id, c.id, b.id]


def test_queue_model_shows_status_and_progress(qtbot, make_service, tiny_sd1):
    service = make_service()
    model = service.queue_model
    first = service.submit(request(tiny_sd1, steps=200, prompt="a red fox " * 10))
    second = service.submit(request(tiny_sd1, steps=2, prompt="second"))
    with qtbot.waitSignal(service.step, timeout=WAIT_MS):
        pass
    running_text = model.index(0).data()
    assert running_text.startswith(f"#{first.id} · running ") and "/200 · a red fox" in running_text
    assert running_text.endswith("…")
    assert model.index(1).data() == f"#{second.id} · queued · second"
    assert model.index(0).data(model.JobIdRole) == first.id and model.index(1).data(model.StatusRole) == "queued"
    assert model.index(1).data(model.JobRole) is second
    service.cancel(first.id)
    wait_for_job(qtbot, service, second)
    assert model.rowCount() == 0


# ---------------------------------------------------------------------------------------- failures


def test_missing_model_fails_readably_and_the_next_job_runs(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    rec = Recorder(service)
    bad = service.submit(request(tmp_path / "no-such-model"))
    good = service.submit(request(tiny_sd1, steps=2))
    wait_for_job(qtbot, service, good)
    assert bad.status is JobStatus.FAILED and good.status is JobStatus.DONE
    ((_, message),) = rec.of("job_failed", bad.id)
    assert "not found" in message and "no-such-model" in message
    assert "\n" not in message and "Traceback" not in message
    assert bad.error == message


def test_corrupt_model_fails_readably_and_the_next_job_runs(qtbot, make_service, tiny_sd1, tmp_path):
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(tiny_sd1, corrupt)
    weights = corrupt / "unet" / "diffusion_pytorch_model.safetensors"
    with open(weights, "r+b") as stream:
        stream.truncate(weights.stat().st_size // 3)
    service = make_service()
    rec = Recorder(service)
    bad = service.submit(request(corrupt))
    good = service.submit(request(tiny_sd1, steps=2))
    wait_for_job(qtbot, service, good)
    assert bad.status is JobStatus.FAILED and good.status is JobStatus.DONE
    ((_, message),) = rec.of("job_failed", bad.id)
    assert "corrupt-model" in message and "truncated" in message  # found from the header, before loading
    assert "\n" not in message and "Traceback" not in message and 'File "' not in message
    assert files_in(tmp_path / "out") == good.paths


def test_invalid_request_fails_with_the_field_named(qtbot, make_service, tiny_sd1):
    service = make_service()
    with qtbot.waitSignal(service.job_failed, timeout=WAIT_MS) as blocker:
        job = service.submit(request(tiny_sd1, steps=0))
    assert blocker.args == [job.id, "steps must be between 1 and 500, got 0"]


def test_starting_clears_what_a_killed_save_left_in_the_output_folder(qtbot, make_service, tmp_path):
    import subprocess
    import sys

    from studio.library.images import temp_name

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    day = tmp_path / "out" / "2026-11-28"
    day.mkdir(parents=True)
    stale = day / temp_name("a.png", pid=dead.pid)
    stale.write_bytes(b"half an image")
    make_service()
    qtbot.waitUntil(lambda: not stale.exists(), timeout=WAIT_MS)


def test_an_unwritable_output_folder_fails_the_job_before_the_model_loads(qtbot, make_service, tmp_path):
    (tmp_path / "a-file").write_text("keep me")
    service = make_service(output_dir=tmp_path / "a-file" / "pictures")
    rec = Recorder(service)
    with qtbot.waitSignal(service.job_failed, timeout=WAIT_MS):
        # the model does not exist either: the folder is found first, before any loading
        job = service.submit(request(tmp_path / "no-such-model"))
    ((_, message),) = rec.of("job_failed", job.id)
    assert message == f"the output folder {tmp_path / 'a-file' / 'pictures'} cannot be made: {tmp_path / 'a-file'} is a file"
    assert not any(text.startswith("Loading") for (text,) in rec.of("status"))


def test_a_crash_inside_the_engine_fails_one_job_and_the_worker_goes_on(qtbot, make_service, tiny_sd1):
    class FlakyEngine(Engine):
        """Fails its first generations with the errors a real run can raise: no memory, a plain bug."""

        faults = [MemoryError(), RuntimeError("CUDA error: an illegal memory access\nCompile with TORCH_USE_CUDA_DSA")]

        def generate(self, req, on_step=None, cancel=None):
            if self.faults:
                raise self.faults.pop(0)
            return super().generate(req, on_step=on_step, cancel=cancel)

    service = make_service(engine_factory=lambda: FlakyEngine(device="cpu", preview="linear"))
    rec = Recorder(service)
    jobs = [service.submit(request(tiny_sd1, steps=2)) for _ in range(3)]
    wait_for_job(qtbot, service, jobs[2])
    assert [j.status for j in jobs] == [JobStatus.FAILED, JobStatus.FAILED, JobStatus.DONE]
    assert rec.of("job_failed", jobs[0].id)[0][1].startswith("out of memory")
    assert rec.of("job_failed", jobs[1].id)[0][1] == (
        "generation failed: RuntimeError: CUDA error: an illegal memory access"
    )


# ---------------------------------------------------------------------------------------- shutdown


def test_shutdown_while_generating_returns_quickly_and_leaves_no_files(qtbot, make_service, tiny_sd1, tmp_path):
    service = make_service()
    rec = Recorder(service)
    running = service.submit(request(tiny_sd1, steps=300))
    queued = service.submit(request(tiny_sd1, steps=2))
    with qtbot.waitSignal(service.step, timeout=WAIT_MS):
        pass
    start = time.monotonic()
    assert service.shutdown(timeout_ms=WAIT_MS)
    assert time.monotonic() - start < 5.0
    assert running.status is JobStatus.CANCELLED and queued.status is JobStatus.CANCELLED
    assert sorted(s[0] for s in rec.of("job_cancelled")) == [running.id, queued.id]  # delivered by shutdown
    assert files_in(tmp_path / "out") == []  # no image, no placeholder, no .part file
    assert service.shutdown() is True  # a second call is harmless
    with pytest.raises(RuntimeError, match="shut down"):
        service.submit(request(tiny_sd1))


def test_shutdown_when_idle_and_before_any_job(qtbot, make_service):
    service = make_service()
    assert service.shutdown(timeout_ms=5000)
    assert not service.is_busy()


# ------------------------------------------------------------------------------------------ import


def test_importing_the_worker_does_not_import_torch():
    code = "import sys, studio.worker, studio.viewmodel.job_queue; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]
