"""Jobs run on a `studio serve` server instead of this computer, reported exactly as the local engine's.

:class:`RemoteGenerationWorker` has :class:`~studio.worker.generation.GenerationWorker`'s interface (`run`,
`sweep`, `shutdown`) and makes the same reports (started, step with a preview, saved, warning, status, one
outcome), so the queue, the preview, the gallery and the status bar do not know where a job runs.

Each job runs on the worker's own thread inside a short-lived asyncio loop with the async HTTP client
(:mod:`studio.remote`): the GUI thread never waits on the network. Results are fetched as the server's PNGs
(its metadata inside) and saved here, under the app's naming, in the job's output folder; the init image and
mask are kept here too, so "Reuse parameters" works as for local images. A cancel is sent to the server at
once (it stops within a step). A connection that drops is resumed where the event stream left off; while the
server cannot be reached the status bar says so and the job waits for it (Esc cancels), and the queue behind
it waits too: nothing queued is lost to a network outage.

The app has no asyncio loop of its own (app.py): running the client on this thread, bridged to the GUI
thread like the engine's thread, keeps one background-work abstraction for both backends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from studio.engine.catalog import lookup
from studio.engine.errors import Cancelled, RequestError
from studio.engine.request import MAX_SEED, GenerationRequest
from studio.library.display import first_line
from studio.library.folders import check_writable_folder
from studio.library.images import sweep_stale_temp_files
from studio.library.saving import save_png_bytes
from studio.remote import ConnectionLost, QueueFull, RemoteClient, RemoteError, Unauthorized
from studio.worker.generation import (
    FAILURE_MODEL_MISSING,
    GenerationListener,
    GenerationWork,
    JobOutcome,
    SavedImage,
    StepRate,
    StepReport,
    describe_failure,
    keep_inputs,
)
from studio.worker.tasks import Task, TaskContext, TaskPool

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.05
CANCEL_GRACE_SECONDS = 5.0  # after telling the server, how long a cancelled job may take to say so
MAX_BUSY_WAIT_SECONDS = 30
RECONNECT_SECONDS = 10.0  # a dropped event stream is resumed for this long before the job waits for the server
FIRST_RETRY_SECONDS = 2.0
MAX_RESENDS = 3  # a job the server forgot is sent again at most this many times
MAX_RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class ServerAddress:
    """Where the server is and the token it wants (None: a loopback server without one)."""

    url: str
    token: str | None = None


def server_model_name(spec: str) -> str:
    """The name a server knows a model by: a catalogue id as it is; a local folder or file by its name (the
    server offers the models of its --model-dir folders by name, never paths)."""
    text = spec.strip()
    if text.startswith("server:"):  # a model the server listed (GenerationSettings.SERVER_PREFIX)
        return text.removeprefix("server:")
    if lookup(text) is not None:
        return text
    path = Path(text).expanduser()
    if "/" in text or "\\" in text:
        try:
            if path.exists() or text.startswith((".", "/", "~")):
                return path.name or text
        except OSError:
            pass
    return text


class RemoteGenerationWorker:
    """Runs the queue's jobs on a server, one at a time, in the order they are given."""

    def __init__(self, address: ServerAddress) -> None:
        self.address = address
        self._pool = TaskPool("studio-remote", threads=1)

    def run(self, work: GenerationWork, listener: GenerationListener) -> Task | None:
        """Send `work` to the server; None once shut down. Exactly one ``ended`` follows."""
        return self._pool.submit(
            self._run, work, listener, cancel=work.cancel, on_result=listener.ended,
            on_cancelled=lambda: listener.ended(JobOutcome(work.job_id, "cancelled")),
            on_error=lambda exc: listener.ended(JobOutcome(work.job_id, "failed", describe_failure(exc))),
        )

    def sweep(self, folder: Path) -> None:
        self._pool.submit(lambda _context: sweep_stale_temp_files(folder))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel what runs (the server is told), wait for it, deliver its last reports."""
        return self._pool.shutdown(timeout_ms)

    # ------------------------------------------------------------------------- in the worker's thread
    def _run(self, context: TaskContext, work: GenerationWork, listener: GenerationListener) -> JobOutcome:
        job_id = work.job_id
        try:
            context.check()
            context.report(listener.started, job_id)
            work.request.validate()
            check_writable_folder(work.output_dir)
            return asyncio.run(_RemoteJob(self.address, context, work, listener).run())
        except Cancelled:
            return JobOutcome(job_id, "cancelled")
        except ConnectionLost as exc:
            return JobOutcome(job_id, "failed", f"lost the connection to the server: {first_line(exc)}")
        except RemoteError as exc:
            return JobOutcome(job_id, "failed", f"server: {first_line(exc)}")
        except Exception as exc:  # noqa: BLE001 - one job's failure; the worker goes on
            if not isinstance(exc, RequestError):
                log.warning("remote job #%d failed", job_id, exc_info=True)
            return JobOutcome(job_id, "failed", describe_failure(exc, "generating", work.request.model))


class _RemoteJob:
    """One job's conversation with the server: submit, follow its events, fetch and save its images.

    Connection trouble never loses the job: an unreachable or stopping server is asked again every few
    seconds (the status bar says so, Esc cancels), a dropped event stream resumes after the last event
    handled, and a server that restarted and forgot the job gets it again (same request, with its seed fixed
    before the first send: same pixels; the images already saved are not saved twice)."""

    def __init__(self, address: ServerAddress, context: TaskContext, work: GenerationWork, listener: GenerationListener):
        self.address = address
        self.context = context
        self.work = work
        self.listener = listener
        self.rate = StepRate()
        self.remote_id: str | None = None
        self.last_event = 0  # the last event fully handled (an image saved, not just announced)
        self.saved = 0

    def report(self, callback, *args: Any) -> None:
        self.context.report(callback, *args)

    async def run(self) -> JobOutcome:
        request = replace(self.work.request, model=server_model_name(self.work.request.model))
        if request.seed is None:  # fixed here, so that a job sent again makes the same pixels
            request = replace(request, seed=secrets.randbelow(MAX_SEED + 1))
        async with RemoteClient(self.address.url, self.address.token, reconnect_seconds=RECONNECT_SECONDS) as client:
            watcher = asyncio.ensure_future(self._cancel_when_asked(client, asyncio.current_task()))
            try:
                return await self._until_done(client, request)
            except asyncio.CancelledError:
                raise Cancelled("cancelled while the server could not be reached") from None
            finally:
                watcher.cancel()

    async def _until_done(self, client: RemoteClient, request: GenerationRequest) -> JobOutcome:
        pause, resent = FIRST_RETRY_SECONDS, 0
        while True:
            try:
                if self.remote_id is None:
                    self.report(self.listener.status, f"Sending #{self.work.job_id} to {self.address.url}…")
                    self.remote_id = (await self._submit(client, request)).id
                    self.last_event = 0
                    if self.work.cancel.is_set():  # cancelled while it was being sent: the watcher knew no id
                        with contextlib.suppress(RemoteError):
                            await client.cancel(self.remote_id)
                return await self._follow(client)
            except Unauthorized:
                raise RemoteError("the server refused the token: check Preferences → Backend") from None
            except (ConnectionLost, RemoteError) as exc:
                if isinstance(exc, RemoteError) and not isinstance(exc, ConnectionLost) and exc.status not in (404, 503):
                    raise
                if isinstance(exc, RemoteError) and exc.status == 404 and self.remote_id is not None:
                    resent += 1  # the server restarted and forgot the job: it is sent again, same seed, same pixels
                    if resent > MAX_RESENDS:
                        raise RemoteError(f"the server lost job #{self.work.job_id} {resent} times; giving up") from None
                    self.report(self.listener.warning, self.work.job_id,
                                f"the server at {self.address.url} restarted and forgot job #{self.work.job_id}: it runs again")
                    self.remote_id = None
                await self._wait(f"Cannot reach the server ({first_line(exc)}); trying again in {{}} s — Esc cancels", pause)
                pause = min(pause * 2, MAX_RETRY_SECONDS)

    async def _wait(self, message: str, seconds: float) -> None:
        self.report(self.listener.status, message.format(f"{seconds:g}"))
        for _ in range(max(1, int(seconds / CANCEL_POLL_SECONDS))):
            self.context.check()
            await asyncio.sleep(CANCEL_POLL_SECONDS)

    async def _submit(self, client: RemoteClient, request: GenerationRequest):
        """Submit; a busy server (429) is asked again after its Retry-After, until the user cancels."""
        while True:
            self.context.check()
            try:
                return await client.submit(request)
            except QueueFull as exc:
                wait = max(1, min(int(exc.retry_after or 1), MAX_BUSY_WAIT_SECONDS))
                await self._wait("The server is busy; asking again in {} s…", wait)

    async def _cancel_when_asked(self, client: RemoteClient, main: asyncio.Task | None) -> None:
        """Tell the server as soon as the user cancels; if the job has not ended a little later (the
        server cannot be reached), stop waiting for it."""
        while not self.work.cancel.is_set():
            await asyncio.sleep(CANCEL_POLL_SECONDS)
        grace = CANCEL_GRACE_SECONDS
        if self.remote_id is not None:
            try:
                await client.cancel(self.remote_id)
            except RemoteError:
                log.info("could not tell the server to cancel %s", self.remote_id, exc_info=True)
                grace = 0.0
        await asyncio.sleep(grace)
        if main is not None:
            main.cancel()

    async def _follow(self, client: RemoteClient) -> JobOutcome:
        job_id, listener = self.work.job_id, self.listener
        async for event in client.events(self.remote_id, after=self.last_event):
            kind, data = event.kind, event.data
            if kind == "started":
                self.report(listener.status, f"Generating #{job_id} on {self.address.url}…")
            elif kind == "status":
                self.report(listener.status, str(data.get("message", "")))
            elif kind == "warning":
                self.report(listener.warning, job_id, str(data.get("message", "")))
            elif kind == "step":
                self._step(data)
            elif kind == "image" and not self.work.cancel.is_set():  # a cancel keeps what is saved, saves no more
                index = int(data.get("index", 0))
                if index >= self.saved:  # a job sent again makes the images already saved once more
                    self._save(await client.image(self.remote_id, index), data)
            elif kind == "done":
                return JobOutcome(job_id, "cancelled" if self.work.cancel.is_set() else "done")
            elif kind == "cancelled":
                if data.get("reason") == "shutdown" and not self.work.cancel.is_set():
                    self.remote_id = None  # the server stopped, not the user: send it again when it is back
                    raise ConnectionLost(f"{self.address.url} is shutting down")
                return JobOutcome(job_id, "cancelled")
            elif kind == "failed":
                kind_of = FAILURE_MODEL_MISSING if data.get("kind") == "model-missing" else ""
                return JobOutcome(job_id, "failed", str(data.get("message", "failed on the server")), kind_of)
            self.last_event = event.id
        raise ConnectionLost(f"{self.address.url} ended the job's events before it finished")

    def _step(self, data: dict[str, Any]) -> None:
        step, total = int(data.get("step", 0)), int(data.get("total", 0))
        it_per_s, eta_s = self.rate.update(step, total)
        preview = QImage()
        encoded = data.get("preview")
        if isinstance(encoded, str):
            try:
                preview.loadFromData(base64.b64decode(encoded), "JPEG")
            except ValueError:
                preview = QImage()
        self.report(self.listener.step, StepReport(self.work.job_id, step, total, preview, float(it_per_s), float(eta_s)))

    def _save(self, png: bytes, data: dict[str, Any]) -> None:
        from studio.library.metadata.containers import file_texts
        from studio.library.metadata.ours import valid_studio

        meta = valid_studio(file_texts(png).get("latent-studio")) or {}
        if self.saved == 0 and self.work.inputs_dir is not None and self.work.request.init_image is not None:
            _keep_local_inputs(self.work, lambda text: self.report(self.listener.warning, self.work.job_id, text))
        path = save_png_bytes(png, meta, self.work.output_dir)
        self.saved += 1
        image = QImage()
        image.loadFromData(png, "PNG")
        seed = data.get("seed") if isinstance(data.get("seed"), int) else meta.get("seed")
        self.report(self.listener.saved, SavedImage(
            job_id=self.work.job_id, path=Path(path), image=image, seed=seed if isinstance(seed, int) else None,
            device=str(meta.get("device") or ""), dtype=str(meta.get("dtype") or ""), nsfw=bool(data.get("nsfw")),
            metadata=meta, backend=str(meta.get("backend") or ""),
        ))


def _keep_local_inputs(work: GenerationWork, warn) -> None:
    """Keep the job's init image and mask here, hashed as the engine hashes them (the mask at the init
    image's size), so "Reuse parameters" on a server's image restores the canvas as for a local one."""
    from studio.engine.init_image import read_init_image
    from studio.library.images import sha256_image
    from studio.library.masks import MaskError, load_mask

    try:
        init, digest = read_init_image(work.request.init_image)
        inputs = {digest: init}
        if work.request.mask_image is not None:
            mask, _notes = load_mask(work.request.mask_image, init.size)
            inputs[sha256_image(mask)] = mask
    except (RequestError, MaskError) as exc:
        warn(f"could not keep the init image and mask for reuse: {first_line(exc)}")
        return
    keep_inputs(work.inputs_dir, inputs, warn)
