"""The generation thread and the job queue the window talks to.

Threads: the GUI thread owns :class:`GenerationService`, the jobs and the queue model. One ``QThread``
owns a :class:`GenerationWorker` and, inside it, the :class:`~studio.engine.Engine` (made lazily on the
first job, in that thread, so torch is neither imported when the window starts nor ever used from two
threads). The service hands the worker one job at a time through a queued signal; the worker reports
back through queued signals, which Qt delivers in the GUI thread in the order they were sent. The only
object both threads touch directly is each job's cancel ``threading.Event``: setting it makes the
engine raise ``Cancelled`` within one step, without waiting for the worker's event loop.

Previews and results are turned into QImages in the worker thread (see :mod:`studio.worker.qimage`),
so the GUI thread only paints.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

from studio.engine.errors import Cancelled, GenerationError, ModelNotFoundError, RequestError
from studio.engine.request import GenerationRequest
from studio.worker.jobs import Job, JobQueueModel, JobStatus
from studio.worker.qimage import pil_to_qimage

if TYPE_CHECKING:
    from studio.engine import Engine, StepEvent

from studio.library.display import first_line, typed_first_line  # noqa: E402
from studio.library.folders import FolderError, check_writable_folder  # noqa: E402
from studio.library.images import sweep_stale_temp_files  # noqa: E402
from studio.library.saving import save_result  # noqa: E402 - shared with the CLI

__all__ = ["FAILURE_MODEL_MISSING", "GenerationService", "GenerationWorker", "describe_failure", "failure_kind", "save_result"]

log = logging.getLogger(__name__)

EngineFactory = Callable[[], "Engine"]
KEEP_FINISHED_JOBS = 200
"""Finished jobs remembered for :meth:`GenerationService.job` (each holds its request, maybe an init image)."""
MAX_MESSAGE_CHARS = 400


# ------------------------------------------------------------------------------------------- saving


# ----------------------------------------------------------------------------------------- messages


def model_label(model: str) -> str:
    """A short name for status messages: a folder's or file's name rather than its whole path."""
    text = str(model).strip().rstrip("/\\")
    if "/" in text or "\\" in text:
        candidate = Path(text).expanduser()
        if candidate.exists() or text.startswith((".", "/", "~")) or "\\" in text:
            return candidate.name or text
    return text


FAILURE_MODEL_MISSING = "model-missing"
"""A job failed because its model is not downloaded or not found: the window offers the model manager."""


def failure_kind(exc: BaseException) -> str:
    """What kind of failure this is, for the actions a window offers next to the message ("" if none)."""
    return FAILURE_MODEL_MISSING if isinstance(exc, ModelNotFoundError) else ""


def describe_failure(exc: BaseException, phase: str = "generating", model: str = "") -> str:
    """One readable line for a failed job, never a traceback.

    RequestError and GenerationError already carry a message meant for users. Anything else (a corrupt
    model file, a bug in a library) is named with its type and first line, prefixed with what we were
    doing, so the user knows whether the model, the generation or the save went wrong.
    """
    if isinstance(exc, MemoryError):
        text = "out of memory: try a smaller size or batch, or close other programs"
    elif isinstance(exc, RequestError | GenerationError | FolderError):
        text = first_line(exc)
    else:
        detail = typed_first_line(exc)
        if phase == "loading":
            text = f"could not load model {model_label(model)}: {detail}"
        elif phase == "saving":  # SaveError says "cannot save PATH: why" already
            line = first_line(exc)
            text = line if line.startswith("cannot save") else f"could not save the image: {detail}"
        else:
            text = f"generation failed: {detail}"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


# ------------------------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class _Work:
    """Everything the worker needs for one job, fixed when the job is dispatched."""

    job_id: int
    request: GenerationRequest
    cancel: threading.Event
    output_dir: Path
    device: str
    dtype: str


class _StepRate:
    """Iterations per second and time left, from a moving average of step durations.

    The first interval starts when generation starts (after the model is loaded), so it includes the
    prompt encoding; the average then follows the steps' real pace within a few steps.
    """

    SMOOTHING = 0.3

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._average: float | None = None

    def update(self, step: int, total: int) -> tuple[float, float]:
        now = time.perf_counter()
        elapsed, self._last = max(now - self._last, 1e-9), now
        if self._average is None:
            self._average = elapsed
        else:
            self._average += self.SMOOTHING * (elapsed - self._average)
        return 1.0 / self._average, self._average * max(total - step, 0)


class GenerationWorker(QObject):
    """Lives in the generation thread; runs one job per :meth:`run` call and reports through signals.

    Not for use on its own: :class:`GenerationService` creates it, moves it to its thread and connects
    it. Its attributes are touched only from the generation thread (or after that thread has stopped).
    """

    job_started = Signal(int)
    step = Signal(int, int, int, QImage, float, float)
    image_saved = Signal(int, str, QImage, object)
    warning = Signal(int, str)
    job_finished = Signal(int)
    job_failed = Signal(int, str, str)  # job id, message, failure_kind
    job_cancelled = Signal(int)
    status = Signal(str)

    def __init__(self, engine_factory: EngineFactory | None = None):
        super().__init__()
        self._engine_factory = engine_factory
        self.engine: Engine | None = None
        self._engine_key: tuple[str, str] | None = None
        self._cancel: threading.Event | None = None
        self._last_download = (0.0, -1)

    # ------------------------------------------------------------------------------------ engine
    def _engine_for(self, device: str, dtype: str) -> Engine:
        """The engine for this device and dtype, made on first use or when the settings changed."""
        key = (device, dtype)
        if self.engine is not None and self._engine_key == key:
            return self.engine
        if self.engine is not None:  # device or dtype changed: free the old models before loading anew
            old, self.engine, self._engine_key = self.engine, None, None
            try:
                old.unload_all()
            except Exception:  # noqa: BLE001 - freeing memory must never fail the job
                log.debug("unloading models failed", exc_info=True)
        if self._engine_factory is not None:
            engine = self._engine_factory()
        else:
            engine = _default_engine(device, dtype)
        hook = getattr(engine, "on_download", "absent")
        if hook is None or getattr(hook, "__func__", None) is GenerationWorker._on_download:
            engine.on_download = self._on_download  # ours (or a previous worker's): report here
        self.engine, self._engine_key = engine, key
        return engine

    def release_engine(self) -> None:
        """Drop our reference to the engine (its memory goes with it unless an engine_factory shares
        it elsewhere, which is why it is not unloaded here). Only once the thread has stopped."""
        self.engine, self._engine_key = None, None

    def _on_download(self, progress) -> None:
        """Download progress -> status, at most a few times a second; a cancel stops the download."""
        cancel = self._cancel
        if cancel is not None and cancel.is_set():
            raise Cancelled("download cancelled")
        total = progress.total or 0
        percent = int(100 * progress.done / total) if total else -1
        now = time.monotonic()
        last_time, last_percent = self._last_download
        if percent == last_percent or (now - last_time < 0.25 and percent < 100):
            return
        self._last_download = (now, percent)
        if total:
            self.status.emit(f"Downloading {progress.done / 1e9:.2f} / {total / 1e9:.2f} GB")
        else:
            self.status.emit(f"Downloading {progress.done / 1e9:.2f} GB")

    # --------------------------------------------------------------------------------------- run
    @Slot(object)
    def sweep(self, folder: Path) -> None:
        """Remove the temporary files a killed save of ours left in the output folder (off the GUI thread;
        best effort)."""
        sweep_stale_temp_files(folder)

    @Slot(object)
    def run(self, work: _Work) -> None:
        """Run one job to its end; exactly one of job_finished / job_failed / job_cancelled follows."""
        job_id, request = work.job_id, work.request
        phase = "loading"
        self._cancel = work.cancel
        self._last_download = (0.0, -1)
        try:
            if work.cancel.is_set():
                raise Cancelled("cancelled before it started")
            self.job_started.emit(job_id)
            request.validate()
            check_writable_folder(work.output_dir)  # before minutes of work whose image could not be kept
            engine = self._engine_for(work.device, work.dtype)
            if not _is_loaded(engine, request.model):
                self.status.emit(f"Loading model {model_label(request.model)}…")
            engine.load(request.model)  # a dictionary look-up when already loaded
            if work.cancel.is_set():
                raise Cancelled("cancelled while loading")
            phase = "generating"
            self.status.emit(f"Generating #{job_id}…")
            results = engine.generate(request, on_step=self._step_reporter(job_id), cancel=work.cancel)
            phase = "saving"
            for text in dict.fromkeys(w for r in results for w in r.warnings):
                self.warning.emit(job_id, text)
            for result in results:
                # Between batch images: a cancel keeps what is saved and saves nothing more.
                if work.cancel.is_set():
                    raise Cancelled("cancelled between batch images")
                path = save_result(result, work.output_dir)
                self.image_saved.emit(job_id, str(path), pil_to_qimage(result.image), result.metadata)
        except Cancelled:
            self.job_cancelled.emit(job_id)
        except Exception as exc:  # noqa: BLE001 - any failure is one job's failure; the worker goes on
            if not isinstance(exc, RequestError | GenerationError):
                log.warning("job #%d failed while %s", job_id, phase, exc_info=True)
            self.job_failed.emit(job_id, describe_failure(exc, phase, request.model), failure_kind(exc))
        else:
            self.job_finished.emit(job_id)
        finally:
            self._cancel = None

    def _step_reporter(self, job_id: int) -> Callable[[StepEvent], None]:
        rate = _StepRate()

        def on_step(event: StepEvent) -> None:
            it_per_s, eta_s = rate.update(event.step, event.total)
            preview = pil_to_qimage(event.preview)  # here, in the generation thread
            self.step.emit(job_id, event.step, event.total, preview, float(it_per_s), float(eta_s))

        return on_step


def _is_loaded(engine: Engine, model: str) -> bool:
    """Whether `model` is already loaded, so "Loading model…" is only said when it is true."""
    try:
        return any(getattr(m.source, "spec", None) == model.strip() for m in engine.loaded_models())
    except Exception:  # noqa: BLE001 - an engine without this detail just gets the message
        return False


def _default_engine(device: str, dtype: str) -> Engine:
    from studio.engine import Engine
    from studio.engine.loading import quiet_libraries

    quiet_libraries()  # the libraries' chatter would reach the terminal the app was started from
    return Engine(device=device, dtype=dtype, preview="auto")


# ------------------------------------------------------------------------------------------ service

_LINGERING: set[QThread] = set()
"""Threads still running after a shutdown timed out: kept referenced so Qt never destroys a running thread."""


class GenerationService(QObject):
    """The queue of generation jobs and the thread that runs them; used from the GUI thread only.

    All signals are emitted in the GUI thread. For one job the order is: job_started, step (one per
    denoising step), image_saved (one per batch image), then exactly one of job_finished, job_failed
    or job_cancelled (a queued job cancelled before it ran gets only job_cancelled).
    """

    job_started = Signal(int)
    step = Signal(int, int, int, QImage, float, float)  # job id, step (1-based), total, preview, it/s, eta s
    image_saved = Signal(int, str, QImage, object)  # job id, path, image, metadata dict
    job_finished = Signal(int)
    job_failed = Signal(int, str)
    job_cancelled = Signal(int)
    status = Signal(str)
    queue_changed = Signal()

    _run_requested = Signal(object)
    _sweep_requested = Signal(object)

    def __init__(
        self,
        output_dir: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        engine_factory: EngineFactory | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._output_dir = Path(output_dir)
        self._device = device
        self._dtype = dtype
        self.queue_model = JobQueueModel(self)
        self._jobs: OrderedDict[int, Job] = OrderedDict()
        self._running: Job | None = None
        self._next_id = 1
        self._closed = False
        self._stopped: bool | None = None

        self._thread = QThread(self)
        self._thread.setObjectName("studio-generation")
        self._worker = GenerationWorker(engine_factory)
        self._worker.moveToThread(self._thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._run_requested.connect(self._worker.run, queued)
        self._sweep_requested.connect(self._worker.sweep, queued)
        self._worker.job_started.connect(self._on_started, queued)
        self._worker.step.connect(self._on_step, queued)
        self._worker.image_saved.connect(self._on_saved, queued)
        self._worker.warning.connect(self._on_warning, queued)
        self._worker.job_finished.connect(self._on_finished, queued)
        self._worker.job_failed.connect(self._on_failed, queued)
        self._worker.job_cancelled.connect(self._on_cancelled, queued)
        self._worker.status.connect(self.status, queued)
        self._thread.start()
        self._sweep_requested.emit(self._output_dir)
        app = QCoreApplication.instance()
        if app is not None:  # a safety net: Qt aborts if a QThread is destroyed while it runs
            app.aboutToQuit.connect(self._on_about_to_quit)

    # ------------------------------------------------------------------------------- public API
    @property
    def output_dir(self) -> Path:
        return self._output_dir

    @property
    def device(self) -> tuple[str, str]:
        return self._device, self._dtype

    def submit(self, request: GenerationRequest) -> Job:
        """Queue a request; it runs when the worker is free. Problems arrive later as job_failed."""
        if self._closed:
            raise RuntimeError("the generation service has been shut down")
        job = Job(id=self._next_id, request=replace(request))  # a copy: later edits by the UI don't leak in
        self._next_id += 1
        self._remember(job)
        self.queue_model.append(job)
        self.queue_changed.emit()
        self._dispatch_next()
        return job

    def cancel(self, job_id: int) -> bool:
        """Cancel a job: a queued one leaves the queue now; a running one stops within one step
        (job_cancelled follows from the worker). False when there is nothing left to cancel."""
        job = self._jobs.get(job_id)
        if job is None or job.status.is_final:
            return False
        job._cancel.set()
        if job.status is JobStatus.QUEUED:
            self.queue_model.remove(job_id)
            self._set_final(job, JobStatus.CANCELLED)
            self.queue_changed.emit()
            self.job_cancelled.emit(job_id)
        else:
            self.queue_model.refresh(job_id)  # shows "cancelling"
            self.queue_changed.emit()
        return True

    def cancel_all(self) -> None:
        """Cancel every queued job (last first, so the queue never starts one of them) and the running one."""
        for job in reversed(self.queue_model.jobs()):
            if job.status is JobStatus.QUEUED:
                self.cancel(job.id)
        if self._running is not None:
            self.cancel(self._running.id)

    def move(self, job_id: int, new_index: int) -> bool:
        """Move a queued job to row `new_index` of :attr:`queue_model` (the order of :meth:`jobs`).

        The running job keeps row 0: the index is clamped to the queued rows. False when the job is
        not queued or is already there.
        """
        job = self._jobs.get(job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            return False
        first = 1 if self._running is not None else 0
        last = self.queue_model.rowCount() - 1
        moved = self.queue_model.move(job_id, min(max(int(new_index), first), last))
        if moved:
            self.queue_changed.emit()
        return moved

    def set_output_dir(self, path: str | Path) -> None:
        """Where the next job saves (a running job keeps its folder)."""
        self._output_dir = Path(path)
        self._sweep_requested.emit(self._output_dir)

    def set_device(self, device: str, dtype: str = "auto") -> None:
        """Device and dtype for the next job; the worker makes a new engine when they change."""
        self._device, self._dtype = device, dtype

    def is_busy(self) -> bool:
        return self.queue_model.rowCount() > 0

    def jobs(self) -> list[Job]:
        """The running job (if any) then the queued ones, in run order."""
        return self.queue_model.jobs()

    def pending_requests(self) -> list[GenerationRequest]:
        """What would be lost by quitting now: the running job's request (it restarts from its first
        step) and the queued ones, in run order; jobs the user cancelled are left out."""
        return [replace(job.request) for job in self.queue_model.jobs() if not job.cancel_requested]

    def job(self, job_id: int) -> Job | None:
        """Any job by id, including recent finished ones."""
        return self._jobs.get(job_id)

    def running_job(self) -> Job | None:
        return self._running

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel everything, stop the thread and wait for it; True when it stopped in time.

        The engine stops within one step; an image being saved is finished (saves are atomic), never
        left half-written. Safe to call more than once. If the thread does not stop in time (a model
        still loading from disk cannot be interrupted), it is kept referenced until it ends, so Qt
        never destroys a running thread.
        """
        if self._stopped is not None:
            return self._stopped
        self._closed = True
        self.cancel_all()
        self._thread.quit()
        stopped = bool(self._thread.wait(max(0, int(timeout_ms))))
        if stopped:
            # Deliver the worker's last reports (its job_cancelled, a last image_saved) now, in order.
            QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
            self._worker.release_engine()
        else:
            log.warning("the generation thread did not stop within %d ms", timeout_ms)
            thread = self._thread
            thread.setParent(None)
            _LINGERING.add(thread)
            thread.finished.connect(lambda: _LINGERING.discard(thread))
        if self._running is not None:  # its job never reported back (never started, or still stuck)
            job = self._running
            self._running = None
            self.queue_model.remove(job.id)
            self._set_final(job, JobStatus.CANCELLED)
            self.queue_changed.emit()
            self.job_cancelled.emit(job.id)
        self._stopped = stopped
        return stopped

    # ------------------------------------------------------------------------------- internals
    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        excess = len(self._jobs) - KEEP_FINISHED_JOBS
        if excess > 0:
            for old_id in [i for i, j in self._jobs.items() if j.status.is_final][:excess]:
                del self._jobs[old_id]

    @staticmethod
    def _set_final(job: Job, status: JobStatus) -> None:
        job.status = status
        job.finished = time.time()
        job.eta_s = None

    def _dispatch_next(self) -> None:
        if self._closed or self._running is not None:
            return
        job = next((j for j in self.queue_model.jobs() if j.status is JobStatus.QUEUED), None)
        if job is None:
            return
        job.status = JobStatus.RUNNING
        job.started = time.time()
        self._running = job
        self.queue_model.refresh(job.id)
        self.queue_changed.emit()
        self._run_requested.emit(
            _Work(job.id, job.request, job._cancel, self._output_dir, self._device, self._dtype)
        )

    def _current(self, job_id: int) -> Job | None:
        """The running job if `job_id` is it; reports about anything else are stale and ignored."""
        job = self._running
        return job if job is not None and job.id == job_id else None

    def _end(self, job_id: int, status: JobStatus, error: str | None = None) -> bool:
        job = self._current(job_id)
        if job is None:
            return False
        job.error = error
        self._running = None
        self.queue_model.remove(job_id)
        self._set_final(job, status)
        self.queue_changed.emit()
        return True

    def _after_job(self) -> None:
        self._dispatch_next()
        if self._running is None and not self._closed:
            self.status.emit("Ready")

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown()

    @Slot(int)
    def _on_started(self, job_id: int) -> None:
        if self._current(job_id) is not None:
            self.job_started.emit(job_id)

    @Slot(int, int, int, QImage, float, float)
    def _on_step(self, job_id: int, step: int, total: int, preview: QImage, it_per_s: float, eta_s: float) -> None:
        job = self._current(job_id)
        if job is None:
            return
        job.step, job.total, job.it_per_s, job.eta_s = step, total, it_per_s, eta_s
        self.queue_model.refresh(job_id)
        self.step.emit(job_id, step, total, preview, it_per_s, eta_s)

    @Slot(int, str, QImage, object)
    def _on_saved(self, job_id: int, path: str, image: QImage, metadata: Any) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.paths.append(Path(path))
        self.image_saved.emit(job_id, path, image, metadata)  # the file exists whatever happened since

    @Slot(int, str)
    def _on_warning(self, job_id: int, text: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.warnings.append(text)
        self.status.emit(f"Warning: {text}")

    @Slot(int)
    def _on_finished(self, job_id: int) -> None:
        if self._end(job_id, JobStatus.DONE):
            self.job_finished.emit(job_id)
            self._after_job()

    @Slot(int, str, str)
    def _on_failed(self, job_id: int, message: str, kind: str = "") -> None:
        job = self._current(job_id)
        if job is not None:
            job.error_kind = kind
        if self._end(job_id, JobStatus.FAILED, message):
            self.job_failed.emit(job_id, message)
            self._after_job()

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        if self._end(job_id, JobStatus.CANCELLED):
            self.job_cancelled.emit(job_id)
            self._after_job()
