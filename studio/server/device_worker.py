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

    from studio.engine import Engine, StepEvent

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256
"""Previews travel as JPEG of at most this many pixels a side: a few kB per step."""
MAX_MESSAGE_CHARS = 400

EngineFactory = Callable[[str], "Engine"]


class DeviceWorker(threading.Thread):
    def __init__(self, board: JobBoard, device: str, make_engine: EngineFactory) -> None:
        super().__init__(name=f"studio-engine-{device}", daemon=True)
        self.board = board
        self.device = device
        self._make_engine = make_engine
        self._engine: Engine | None = None

    def run(self) -> None:
        while (job := self.board.take()) is not None:
            try:
                self._run_job(job)
            except BaseException as exc:  # noqa: BLE001 - the thread outlives any job
                log.exception("job %s failed unexpectedly", job.id)
                self.board.report(job, "failed", {"message": _message(exc)})

    def _run_job(self, job: Job) -> None:
        report = self.board.report
        if job.cancel.is_set():
            report(job, "cancelled", {})
            return
        report(job, "started", {"device": self.device})
        try:
            if self._engine is None:
                self._engine = self._make_engine(self.device)
            self._engine.on_status = lambda text: report(job, "status", {"message": text})  # this job's
            results = self._engine.generate(job.request, on_step=lambda ev: self._step(job, ev), cancel=job.cancel)
        except Cancelled:
            report(job, "cancelled", {})
            return
        except RequestError as exc:
            report(job, "failed", {"message": _message(exc), "field": exc.field, "kind": _kind(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - one readable line for the client
            report(job, "failed", {"message": _message(exc), "kind": "generation"})
            return
        from studio.library.images import encode_image

        warnings: list[str] = []
        for index, result in enumerate(results):
            warnings.extend(w for w in result.warnings if w not in warnings)
            png = encode_image(result.image, "PNG", result.metadata)
            image = JobImage(png, result.seed, result.nsfw)
            report(job, "image", {"index": index, "seed": result.seed, "nsfw": result.nsfw,
                                  "url": f"/v1/jobs/{job.id}/images/{index}"}, image)
        for warning in warnings:
            report(job, "warning", {"message": warning})
        report(job, "done", {"images": len(results)})

    def _step(self, job: Job, event: StepEvent) -> None:
        data: dict[str, Any] = {"step": event.step, "total": event.total}
        if event.preview is not None:
            data["preview"] = preview_jpeg(event.preview)
        self.board.report(job, "step", data)


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
