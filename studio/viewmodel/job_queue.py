"""The generation queue: jobs, the order they run in, and the item model a queue widget shows.

:class:`JobQueue` is the studio's queue of generation jobs. It owns the jobs (GUI thread only) and
hands them, one at a time, to the engine's thread (:class:`~studio.worker.generation.GenerationWorker`)
as a :class:`~studio.worker.generation.GenerationWork` that carries everything the job needs: the
request, the output folder, the device, the dtype, the backend and its CPU threads, all fixed when the
job is queued (changing the device in the panel never changes a job already waiting). The worker reports
back as typed values (:class:`~studio.worker.generation.StepReport`,
:class:`~studio.worker.generation.SavedImage`, :class:`~studio.worker.generation.JobOutcome`); the queue
updates the job and re-emits them.

:class:`JobQueue.queue_model` (a :class:`JobQueueModel`) is the list a queue widget shows: the running
job first, then the queued ones in the order they will run. Finished, failed and cancelled jobs leave the list
(the window reports them through the signals); :meth:`JobQueue.job` still finds them by id.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from studio.engine.request import GenerationRequest
from studio.worker.generation import (
    EngineFactory,
    GenerationWork,
    GenerationWorker,
    JobOutcome,
    SavedImage,
    StepReport,
)
from studio.worker.remote_generation import RemoteGenerationWorker, ServerAddress

__all__ = ["JOB_ID_ROLE", "JOB_ROLE", "STATUS_ROLE", "Job", "JobQueue", "JobStatus"]

KEEP_FINISHED_JOBS = 200
"""Finished jobs remembered for :meth:`JobQueue.job` (each holds its request, maybe an init image)."""

PROMPT_CHARS = 40
"""How much of a prompt a queue row shows; the tooltip has all of it."""


class JobStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(eq=False)  # identity equality: two jobs with the same fields are still two jobs
class Job:
    """One generation request in the queue, with what happened to it so far.

    Timestamps are ``time.time()`` seconds (None until the event happens). ``paths`` grows by one per
    batch image saved, so a job cancelled or failed half-way still lists what it did write.
    """

    id: int
    request: GenerationRequest
    status: JobStatus = JobStatus.QUEUED
    step: int = 0
    total: int = 0
    paths: list[Path] = field(default_factory=list)
    error: str | None = None
    error_kind: str = ""  # generation.failure_kind: which actions help (e.g. the model manager)
    output_dir: Path = Path()  # where its images go, fixed when it is queued
    device: str = "auto"  # the device, dtype, backend and threads it runs with, fixed when it is queued
    dtype: str = "auto"
    backend: str = "auto"
    threads: int = 0  # OpenVINO's CPU threads; 0: all physical cores
    inputs_dir: Path | None = None  # where its init image and mask are kept for reuse (None: not kept)
    network_folders: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # LoRA, embedding folders added
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    it_per_s: float = 0.0
    eta_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def short_prompt(self, limit: int = PROMPT_CHARS) -> str:
        text = " ".join(str(self.request.prompt).split())  # newlines and runs of spaces -> one space
        return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"

    def display_text(self) -> str:
        """The queue row: "#3 · queued · a red fox…", "#2 · running 12/30 · a red fox…"."""
        if self.status is JobStatus.RUNNING:
            if self.cancel_requested:
                state = "cancelling"
            elif self.total:
                state = f"running {self.step}/{self.total}"
            else:
                state = "starting"
        else:
            state = self.status.value
        prompt = self.short_prompt()
        return f"#{self.id} · {state} · {prompt}" if prompt else f"#{self.id} · {state}"

    def tooltip(self) -> str:
        req = self.request
        lines = [req.prompt or "(empty prompt)"]
        if req.negative_prompt:
            lines.append(f"Negative: {req.negative_prompt}")
        size = f"{req.width}x{req.height}" if req.width and req.height else "default size"
        details = [f"model {req.model}", size, f"steps {req.steps or 'default'}", f"batch {req.batch}"]
        if req.seed is not None:
            details.append(f"seed {req.seed}")
        lines.append(", ".join(details))
        if self.status is JobStatus.RUNNING and self.eta_s is not None:
            lines.append(f"{self.it_per_s:.2f} it/s, {self.eta_s:.0f} s left")
        return "\n".join(lines)


JOB_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
STATUS_ROLE = int(Qt.ItemDataRole.UserRole) + 2  # the JobStatus value string ("queued", "running")
JOB_ROLE = int(Qt.ItemDataRole.UserRole) + 3  # the Job object itself (read it, do not change it)


class JobQueueModel(QAbstractListModel):
    """Running job first, then queued jobs in run order. Changed only by the service (GUI thread)."""

    JobIdRole = JOB_ID_ROLE
    StatusRole = STATUS_ROLE
    JobRole = JOB_ROLE

    def __init__(self, parent=None):
        super().__init__(parent)
        self._jobs: list[Job] = []

    # --------------------------------------------------------------------------------- Qt interface
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._jobs)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._jobs):
            return None
        job = self._jobs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return job.display_text()
        if role == Qt.ItemDataRole.ToolTipRole:
            return job.tooltip()
        if role == JOB_ID_ROLE:
            return job.id
        if role == STATUS_ROLE:
            return job.status.value
        if role == JOB_ROLE:
            return job
        return None

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names.update({JOB_ID_ROLE: b"jobId", STATUS_ROLE: b"status", JOB_ROLE: b"job"})
        return names

    # ---------------------------------------------------------------------------- service interface
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def row_of(self, job_id: int) -> int:
        """The row of job `job_id`, or -1."""
        for row, job in enumerate(self._jobs):
            if job.id == job_id:
                return row
        return -1

    def job_at(self, row: int) -> Job | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def append(self, job: Job) -> None:
        row = len(self._jobs)
        self.beginInsertRows(QModelIndex(), row, row)
        self._jobs.append(job)
        self.endInsertRows()

    def remove(self, job_id: int) -> Job | None:
        row = self.row_of(job_id)
        if row < 0:
            return None
        self.beginRemoveRows(QModelIndex(), row, row)
        job = self._jobs.pop(row)
        self.endRemoveRows()
        return job

    def move(self, job_id: int, new_row: int) -> bool:
        """Move a job to `new_row` (already clamped by the caller). Uses beginMoveRows so that views
        keep the selection on the moved job."""
        row = self.row_of(job_id)
        if row < 0 or not 0 <= new_row < len(self._jobs) or new_row == row:
            return False
        # Qt's destination is the row *before which* the item lands, counted before the removal.
        destination = new_row + 1 if new_row > row else new_row
        if not self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), destination):
            return False
        self._jobs.insert(new_row, self._jobs.pop(row))
        self.endMoveRows()
        return True

    def refresh(self, job_id: int) -> None:
        """The job's text changed (status, progress): repaint its row."""
        row = self.row_of(job_id)
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, STATUS_ROLE])


class JobQueue(QObject):
    """The queue of generation jobs; used from the GUI thread only.

    All signals are emitted in the GUI thread. For one job the order is: job_started, step (one per
    denoising step), image_saved (one per batch image), then exactly one of job_finished, job_failed
    or job_cancelled (a queued job cancelled before it ran gets only job_cancelled).
    """

    job_started = Signal(int)
    step = Signal(object)  # StepReport
    image_saved = Signal(object)  # SavedImage
    job_finished = Signal(int)
    job_failed = Signal(int, str)
    job_cancelled = Signal(int)
    status = Signal(str)
    queue_changed = Signal()

    def __init__(
        self,
        output_dir: str | Path,
        *,
        engine_factory: EngineFactory | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._output_dir = Path(output_dir)
        self.queue_model = JobQueueModel(self)
        self._jobs: OrderedDict[int, Job] = OrderedDict()
        self._running: Job | None = None
        self._next_id = 1
        self._closed = False
        self._stopped: bool | None = None
        self._local = GenerationWorker(engine_factory)
        self._worker: GenerationWorker | RemoteGenerationWorker = self._local
        self._retired: list[RemoteGenerationWorker] = []  # servers used before: stopped at shutdown
        self._worker.sweep(self._output_dir)
        app = QCoreApplication.instance()
        if app is not None:  # quitting without a shutdown still cancels and stops the engine's thread
            app.aboutToQuit.connect(self.shutdown)

    # ------------------------------------------------------------------------------- public API
    @property
    def output_dir(self) -> Path:
        """Where jobs queued from now on save their images."""
        return self._output_dir

    def submit(
        self,
        request: GenerationRequest,
        *,
        device: str = "auto",
        dtype: str = "auto",
        backend: str = "auto",
        threads: int = 0,
        output_dir: Path | None = None,
        inputs_dir: Path | None = None,
        network_folders: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    ) -> Job:
        """Queue a request to run on `device` in `dtype` with `backend` (on OpenVINO with `threads` CPU
        threads, 0: all physical cores); it runs when the engine is free. Problems (an unknown backend
        included) arrive later as job_failed. With `inputs_dir` its init image and mask are kept there
        by content (:class:`~studio.library.input_store.InputStore`) for "Reuse parameters". Its LoRAs and
        embeddings are looked for in the app's folders and `network_folders` (LoRA folders, embedding
        folders)."""
        if self._closed:
            raise RuntimeError("the generation queue has been shut down")
        job = Job(
            id=self._next_id, request=replace(request),  # a copy: later edits by the UI don't leak in
            output_dir=Path(output_dir) if output_dir is not None else self._output_dir,
            device=device, dtype=dtype, backend=backend, threads=threads,
            inputs_dir=Path(inputs_dir) if inputs_dir is not None else None,
            network_folders=(tuple(map(str, network_folders[0])), tuple(map(str, network_folders[1]))),
        )
        self._next_id += 1
        self._remember(job)
        self.queue_model.append(job)
        self.queue_changed.emit()
        self._dispatch_next()
        return job

    @property
    def server(self) -> ServerAddress | None:
        """The server jobs go to (None: this computer)."""
        return self._worker.address if isinstance(self._worker, RemoteGenerationWorker) else None

    def use_server(self, address: ServerAddress | None) -> None:
        """Run the jobs started from now on on `address` (None: this computer). A running job finishes
        where it started; the queued ones wait and go to the new place."""
        if address == self.server or self._closed:
            return
        if isinstance(self._worker, RemoteGenerationWorker):
            self._retired.append(self._worker)
        self._worker = self._local if address is None else RemoteGenerationWorker(address)

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
        """Where jobs queued from now on save (queued and running jobs keep their folder)."""
        self._output_dir = Path(path)
        self._worker.sweep(self._output_dir)

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
        """Cancel everything, stop the engine's thread and wait for it; True when it stopped in time.

        The engine stops within one step; an image being saved is finished (saves are atomic), never
        left half-written. Safe to call more than once.
        """
        if self._stopped is not None:
            return self._stopped
        self._closed = True
        self.cancel_all()
        stopped = True
        for worker in dict.fromkeys([*self._retired, self._worker, self._local]):  # each delivers its last reports
            stopped = worker.shutdown(max(0, int(timeout_ms))) and stopped
        if self._running is not None:  # its job never reported back (still stuck in a load)
            job = self._running
            self._running = None
            self.queue_model.remove(job.id)
            self._set_final(job, JobStatus.CANCELLED)
            self.queue_changed.emit()
            self.job_cancelled.emit(job.id)
        self._stopped = stopped
        return stopped

    # ---------------------------------------------------------------------- the worker's reports
    def started(self, job_id: int) -> None:
        if self._current(job_id) is not None:
            self.job_started.emit(job_id)

    def step_done(self, report: StepReport) -> None:
        job = self._current(report.job_id)
        if job is None:
            return
        job.step, job.total, job.it_per_s, job.eta_s = report.step, report.total, report.it_per_s, report.eta_s
        self.queue_model.refresh(job.id)
        self.step.emit(report)

    def saved(self, image: SavedImage) -> None:
        job = self._jobs.get(image.job_id)
        if job is not None:
            job.paths.append(image.path)
        self.image_saved.emit(image)  # the file exists whatever happened since

    def warning(self, job_id: int, text: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.warnings.append(text)
        self.status.emit(f"Warning: {text}")

    def status_text(self, text: str) -> None:
        self.status.emit(text)

    def ended(self, outcome: JobOutcome) -> None:
        job = self._current(outcome.job_id)
        if job is None:
            return
        status = {"done": JobStatus.DONE, "failed": JobStatus.FAILED}.get(outcome.status, JobStatus.CANCELLED)
        job.error = (outcome.message or None) if status is JobStatus.FAILED else None
        job.error_kind = outcome.kind
        self._running = None
        self.queue_model.remove(job.id)
        self._set_final(job, status)
        self.queue_changed.emit()
        if status is JobStatus.DONE:
            self.job_finished.emit(job.id)
        elif status is JobStatus.FAILED:
            self.job_failed.emit(job.id, outcome.message)
        else:
            self.job_cancelled.emit(job.id)
        self._dispatch_next()
        if self._running is None and not self._closed:
            self.status.emit("Ready")

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
        work = GenerationWork(
            job.id, job.request, job.output_dir, device=job.device, dtype=job.dtype, backend=job.backend,
            threads=job.threads, cancel=job._cancel, inputs_dir=job.inputs_dir, network_folders=job.network_folders,
        )
        self._worker.run(work, _Listener(self))

    def _current(self, job_id: int) -> Job | None:
        """The running job if `job_id` is it; reports about anything else are stale and ignored."""
        job = self._running
        return job if job is not None and job.id == job_id else None


class _Listener:
    """The worker's reports, routed to the queue (a GenerationListener)."""

    def __init__(self, queue: JobQueue) -> None:
        self.started = queue.started
        self.step = queue.step_done
        self.saved = queue.saved
        self.warning = queue.warning
        self.status = queue.status_text
        self.ended = queue.ended
