"""One engine thread per device: it owns that device's :class:`~studio.engine.Engine` (made in the thread,
so torch and the pipelines are used from one thread only) and runs the board's jobs one at a time.

Nothing a job does can stop the thread: every failure becomes the job's `failed` event, with the field at
fault when the request was wrong, and the thread takes the next job.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from studio.engine.errors import Cancelled, GenerationError, RequestError
from studio.library.display import first_line, typed_first_line
from studio.server.jobs import Job, JobBoard, JobImage

if TYPE_CHECKING:
    from PIL import Image

    from studio.engine import Engine, GenerationRequest, StepEvent

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256
"""Previews travel as JPEG of at most this many pixels a side: a few kB per step."""
MAX_MESSAGE_CHARS = 400

EngineFactory = Callable[[str], "Engine"]
Emit = Callable[..., None]
"""emit(kind, data, image=None): one event of a job (see studio.server.jobs)."""


class JobWorker(threading.Thread):
    """A thread that runs the board's jobs one at a time, each announced as started on `label`; a subclass
    says how one job runs (:meth:`run_job`). Nothing a job does can stop the thread."""

    def __init__(self, board: JobBoard, label: str) -> None:
        super().__init__(name=f"studio-{label}", daemon=True)
        self.board = board
        self.label = label

    def run(self) -> None:
        while (job := self.board.take()) is not None:
            emit = job_reporter(self.board, job)
            try:
                if job.cancel.is_set():
                    emit("cancelled", {})
                    continue
                emit("started", {"device": self.label})
                self.run_job(job, emit)
            except BaseException as exc:  # noqa: BLE001 - the thread outlives any job
                log.exception("job %s failed unexpectedly", job.id)
                emit("failed", failure(exc))

    def run_job(self, job: Job, emit: Emit) -> None:
        raise NotImplementedError


class DeviceWorker(JobWorker):
    """The engine thread of one device: its Engine is made here, on first use, and used from here only."""

    def __init__(self, board: JobBoard, device: str, make_engine: EngineFactory) -> None:
        super().__init__(board, device)
        self.device = device
        self._make_engine = make_engine
        self._engine: Engine | None = None

    def run_job(self, job: Job, emit: Emit) -> None:
        try:
            if self._engine is None:
                self._engine = self._make_engine(self.device)
        except Exception as exc:  # noqa: BLE001 - the next job tries again
            emit("failed", failure(exc))
            return
        run_request(self._engine, job.request, job.cancel, emit)




def job_reporter(board: JobBoard, job: Job) -> Emit:
    """What :func:`run_request` reports with, for a job of `board`: images get the URL they are fetched at."""

    def emit(kind: str, data: dict[str, Any], image: JobImage | None = None) -> None:
        if kind == "image":
            data = {**data, "url": f"/v1/jobs/{job.id}/images/{data['index']}"}
        board.report(job, kind, data, image)

    return emit


def run_request(engine: Engine, request: GenerationRequest, cancel, emit: Emit) -> None:
    """Run one request on `engine`, reporting status, steps (with previews), images (PNG with metadata),
    warnings, then exactly one of done, failed or cancelled. Shared by the engine threads and the Ray Serve
    replicas, so both speak the same events."""
    engine.on_status = lambda text: emit("status", {"message": text})  # this job's, not the first one's
    try:
        results = engine.generate(request, on_step=lambda ev: emit("step", _step_data(ev)), cancel=cancel)
    except Cancelled:
        emit("cancelled", {})
        return
    except Exception as exc:  # noqa: BLE001 - one readable line for the client
        emit("failed", failure(exc))
        return
    from studio.library.images import encode_image

    warnings: list[str] = []
    for index, result in enumerate(results):
        warnings.extend(w for w in result.warnings if w not in warnings)
        png = encode_image(result.image, "PNG", result.metadata)
        emit("image", {"index": index, "seed": result.seed, "nsfw": result.nsfw}, JobImage(png, result.seed, result.nsfw))
    for warning in warnings:
        emit("warning", {"message": warning})
    emit("done", {"images": len(results)})


def failure(exc: BaseException) -> dict[str, Any]:
    """A failed event's data: the message, the field at fault for a request error, and its kind."""
    if isinstance(exc, RequestError):
        return {"message": _message(exc), "field": exc.field, "kind": _kind(exc)}
    return {"message": _message(exc), "kind": "generation"}


def _step_data(event: StepEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"step": event.step, "total": event.total}
    if event.preview is not None:
        data["preview"] = preview_jpeg(event.preview)
    return data


def preview_jpeg(image: Image.Image) -> str:
    """A step's preview as base64 JPEG, at most PREVIEW_SIDE px a side."""
    import base64

    small = image.convert("RGB")
    if max(small.size) > PREVIEW_SIDE:
        small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _kind(exc: RequestError) -> str:
    from studio.engine.errors import ModelNotFoundError

    return "model-missing" if isinstance(exc, ModelNotFoundError) else "request"


def _message(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        text = "out of memory: try a smaller size or batch"
    elif isinstance(exc, RequestError | GenerationError):
        text = first_line(exc)
    else:
        text = f"generation failed: {typed_first_line(exc)}"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
