"""The server's jobs: a bounded queue the device workers take from, and each job's events for its clients.

Two kinds of thread touch a job. The event loop's (HTTP handlers) submits, lists, cancels and streams; each
device worker's takes the next job and reports on it. Reports cross with `loop.call_soon_threadsafe`, so a
job's state, history and subscribers change on the loop's thread only. The queue itself (which job runs
next) is shared and guarded by one condition, held only for a few list operations.

A job's history keeps every event, so a client that reconnects (SSE `Last-Event-ID`) misses nothing; only the
newest step keeps its preview image, so the history of a 500-step job stays small.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from studio.engine.request import GenerationRequest

log = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "cancelled"})
KEEP_SECONDS = 120.0
"""A finished job is kept at least this long, whatever `keep_bytes` says: its client fetches its images now."""
SHUTDOWN = "shutdown"
"""A cancelled event's `reason` when the server stopped the job (a client resubmits it), not its user."""


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_STATE_AFTER = {"started": JobState.RUNNING, "done": JobState.DONE, "failed": JobState.FAILED,
                "cancelled": JobState.CANCELLED}


class QueueFull(Exception):  # noqa: N818 - what it is, not an error in the server
    """No room for another job; `retry_after` is a guess in whole seconds of when there will be."""

    def __init__(self, retry_after: int, limit: int) -> None:
        super().__init__(f"the queue is full ({limit} waiting); try again in about {retry_after} s")
        self.retry_after = retry_after


class ServerClosing(Exception):  # noqa: N818
    """The server is shutting down (or has no worker left): HTTP 503."""


@dataclass(frozen=True)
class JobEvent:
    id: int  # 1, 2, ... within the job: the SSE id a reconnecting client sends back
    kind: str  # queued | started | status | warning | step | image | done | failed | cancelled
    data: dict[str, Any]


@dataclass(frozen=True)
class JobImage:
    png: bytes  # the file as saved, our metadata embedded
    seed: int
    nsfw: bool | None


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    model_name: str = ""  # as the client named it (the request holds what the engine loads)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)
    state: JobState = JobState.QUEUED
    step: int = 0
    total: int = 0
    images: list[JobImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    events: list[JobEvent] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float | None = None
    finished: float | None = None
    _subscribers: set[asyncio.Queue] = field(default_factory=set)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    @property
    def image_bytes(self) -> int:
        return sum(len(image.png) for image in self.images)

    def summary(self) -> dict[str, Any]:
        """What GET /v1/jobs/{id} answers."""
        return {
            "id": self.id,
            "state": self.state.value,
            "model": self.model_name or self.request.model,
            "prompt": self.request.prompt,
            "step": self.step,
            "total": self.total,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "images": [
                {"index": n, "seed": image.seed, "nsfw": image.nsfw, "url": f"/v1/jobs/{self.id}/images/{n}"}
                for n, image in enumerate(self.images)
            ],
            "warnings": list(self.warnings),
            "error": self.error,
            "events": f"/v1/jobs/{self.id}/events",
        }

    async def wait(self) -> None:
        await self._done.wait()

    # -------------------------------------------------------------------- on the loop's thread only
    def publish(self, kind: str, data: dict[str, Any], image: JobImage | None = None) -> None:
        if self.is_finished:
            return  # a late report after a cancel was answered: the job's story is over
        if image is not None:
            self.images.append(image)
        self._apply(kind, data)
        if kind == "step" and self.events and self.events[-1].kind == "step":
            last = self.events[-1]
            self.events[-1] = JobEvent(last.id, last.kind, {k: v for k, v in last.data.items() if k != "preview"})
        event = JobEvent(len(self.events) + 1, kind, data)
        self.events.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        if kind in TERMINAL:
            # the decoded init image and mask (up to 64 Mpx each) are not kept with a finished job
            self.request = replace(self.request, init_image=None, mask_image=None)
            self._done.set()

    def _apply(self, kind: str, data: dict[str, Any]) -> None:
        self.state = _STATE_AFTER.get(kind, self.state)
        if kind == "started":
            self.started = time.time()
        elif kind == "step":
            self.step, self.total = data.get("step", self.step), data.get("total", self.total)
        elif kind == "warning":
            self.warnings.append(data.get("message", ""))
        elif kind in ("failed", "cancelled"):
            self.error = data if kind == "failed" else None
        if kind in TERMINAL:
            self.finished = time.time()

    def subscribe(self, after: int = 0) -> tuple[list[JobEvent], asyncio.Queue]:
        """The events after id `after` so far, and a queue that receives every later one."""
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribers.add(queue)
        return [event for event in self.events if event.id > after], queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)


class JobBoard:
    """The queue (bounded: `queue_limit` jobs waiting) and every job still kept, by id."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, queue_limit: int = 32, keep_jobs: int = 200,
        keep_bytes: int = 1 << 30, workers: int = 1,
    ) -> None:
        self.loop = loop
        self.queue_limit = queue_limit
        self.keep_jobs = keep_jobs
        self.keep_bytes = keep_bytes
        self.workers = max(1, workers)
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: set[Job] = set()
        self._condition = threading.Condition()
        self._closed = False
        self._seconds_per_job = 10.0  # a running average of finished jobs, for Retry-After

    # ---------------------------------------------------------------------------------- loop side
    def submit(self, request: GenerationRequest, model_name: str = "") -> Job:
        with self._condition:
            if self._closed:
                raise ServerClosing("the server is shutting down")
            if len(self._waiting) >= self.queue_limit:
                raise QueueFull(self.retry_after(), self.queue_limit)
            job = Job(request, model_name)
            self._jobs[job.id] = job
            self._waiting.append(job)
            position = len(self._waiting)
            self._condition.notify()
        job.publish("queued", {"position": position})
        return job

    def room(self) -> int:
        """How many more jobs the queue takes now (ServerClosing once it is shutting down)."""
        with self._condition:
            if self._closed:
                raise ServerClosing("the server is shutting down")
            return self.queue_limit - len(self._waiting)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def counts(self) -> dict[str, int]:
        with self._condition:
            return {"waiting": len(self._waiting), "running": len(self._running), "limit": self.queue_limit}

    def cancel(self, job: Job) -> None:
        """A waiting job is cancelled at once; a running one within a step (the engine checks its event)."""
        with self._condition:
            waiting = job in self._waiting
            if waiting:
                self._waiting.remove(job)
        job.cancel.set()
        if waiting:
            job.publish("cancelled", {})
            self._prune()

    def retry_after(self) -> int:
        """Seconds until the queue likely has room: the running average job time times the jobs ahead."""
        return max(1, math.ceil(self._seconds_per_job * (len(self._waiting) + 1) / self.workers))

    def _finished(self, job: Job) -> None:
        if job.started is not None and job.finished is not None:
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (job.finished - job.started)
        self._prune()

    def _prune(self) -> None:
        """Forget the oldest finished jobs beyond `keep_jobs` or `keep_bytes` of images (never one finished
        in the last KEEP_SECONDS: its client is fetching its images)."""
        recent = time.time() - KEEP_SECONDS
        finished = sorted(
            (j for j in self._jobs.values() if j.is_finished and (j.finished or 0) < recent), key=lambda j: j.finished or 0
        )
        total = sum(job.image_bytes for job in finished)
        while finished and (len(finished) > self.keep_jobs or total > self.keep_bytes):
            old = finished.pop(0)
            total -= old.image_bytes
            del self._jobs[old.id]

    # -------------------------------------------------------------------------------- worker side
    def take(self, timeout: float | None = None) -> Job | None:
        """The next waiting job (now running), or None once the board is closed (or after `timeout`)."""
        with self._condition:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._waiting and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._condition.wait(left)
            if self._closed:
                return None
            job = self._waiting.popleft()
            self._running.add(job)
            return job

    def report(self, job: Job, kind: str, data: dict[str, Any] | None = None, image: JobImage | None = None) -> None:
        """From a worker: an event of `job`, delivered on the loop's thread (dropped once the loop is gone:
        a report that outlived the server's shutdown)."""
        data = data or {}
        if kind in TERMINAL:
            with self._condition:
                self._running.discard(job)
                if kind == "cancelled" and self._closed and not data:
                    data = {"reason": SHUTDOWN}
        try:
            self.loop.call_soon_threadsafe(self._deliver, job, kind, data, image)
        except RuntimeError:  # the loop is closed
            log.debug("a late report of job %s dropped", job.id)

    def _deliver(self, job: Job, kind: str, data: dict[str, Any], image: JobImage | None) -> None:
        job.publish(kind, data, image)
        if kind in TERMINAL:
            self._finished(job)

    def close(self) -> None:
        """Stop taking jobs: waiting ones are cancelled, running ones told to stop."""
        with self._condition:
            self._closed = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            running = list(self._running)
            self._condition.notify_all()
        for job in [*waiting, *running]:
            job.cancel.set()
        for job in waiting:
            job.publish("cancelled", {"reason": SHUTDOWN})
