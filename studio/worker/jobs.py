"""Jobs and the visible queue model.

A :class:`Job` is owned by the GUI thread: only :class:`~studio.worker.generation.GenerationService`
changes it, in slots that run in the GUI thread. The worker thread never touches a Job; it gets the
request, the id and the job's cancel ``threading.Event`` (the one object shared between threads, and
thread-safe by construction), and reports back through queued signals.

:class:`JobQueueModel` is the list a queue widget shows: the running job first, then the queued ones
in the order they will run. Finished, failed and cancelled jobs leave the model (the window reports
them through the service's signals); :meth:`GenerationService.job` still finds them by id.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from studio.engine.request import GenerationRequest

__all__ = ["JOB_ID_ROLE", "JOB_ROLE", "STATUS_ROLE", "Job", "JobQueueModel", "JobStatus"]

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
