"""The engine's thread: one generation at a time, reported back to the GUI thread as typed values.

Threads: a 1-thread :class:`~studio.worker.tasks.TaskPool` owns the :class:`~studio.engine.Engine`
(made lazily on the first job, in that thread, so torch is neither imported when the window starts nor
ever used from two threads). The queue that decides what runs next lives in the view-model
(:class:`studio.viewmodel.job_queue.JobQueue`); it hands this worker one :class:`GenerationWork` at a
time. Everything a job needs travels with it: the request, the output folder, the device, the dtype,
the backend and its CPU threads. The only object both threads touch is the job's cancel
``threading.Event``: setting it makes the engine raise ``Cancelled`` within one step, or between the
parts of a model being optimised for the CPU (an OpenVINO conversion, which takes minutes on a model's
first use).

Reports arrive in the GUI thread, in the order they were made, as calls on a
:class:`GenerationListener`: ``started``, ``step`` (a :class:`StepReport` per denoising step),
``saved`` (a :class:`SavedImage` per batch image), ``warning``, ``status``, then exactly one
:class:`JobOutcome`. Previews and results are turned into QImages here, in the engine's thread, so
the GUI thread only paints.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtGui import QImage

from studio.engine.errors import Cancelled, GenerationError, ModelNotFoundError, RequestError
from studio.engine.request import GenerationRequest
from studio.library.display import first_line, typed_first_line
from studio.library.folders import FolderError, check_writable_folder
from studio.library.images import sweep_stale_temp_files
from studio.library.input_store import InputStore
from studio.library.saving import save_result  # shared with the CLI
from studio.worker.qimage import pil_to_qimage
from studio.worker.tasks import Task, TaskContext, TaskPool

if TYPE_CHECKING:
    from studio.engine import Engine, StepEvent

__all__ = [
    "FAILURE_MODEL_MISSING",
    "GenerationListener",
    "GenerationWork",
    "GenerationWorker",
    "JobOutcome",
    "SavedImage",
    "StepReport",
    "describe_failure",
    "failure_kind",
    "save_result",
]

log = logging.getLogger(__name__)

EngineFactory = Callable[[], "Engine"]
MAX_MESSAGE_CHARS = 400


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


# ---------------------------------------------------------------------------------- what travels


@dataclass(frozen=True)
class GenerationWork:
    """Everything the engine's thread needs for one job, fixed when the job is queued."""

    job_id: int
    request: GenerationRequest
    output_dir: Path
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"  # "auto" | "torch" | "openvino" (studio.engine.backends.BACKENDS)
    threads: int = 0  # OpenVINO's CPU threads; 0: all physical cores
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)
    inputs_dir: Path | None = None  # where the init image and mask are kept for "Reuse parameters"; None: not kept
    network_folders: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # LoRA, embedding folders the user added


@dataclass(frozen=True)
class StepReport:
    """One denoising step: its preview (a null QImage when previews are off) and the pace so far."""

    job_id: int
    step: int  # 1-based
    total: int
    preview: QImage
    it_per_s: float
    eta_s: float


@dataclass(frozen=True)
class SavedImage:
    """One batch image, saved: where, what it looks like, and what it was made with."""

    job_id: int
    path: Path
    image: QImage
    seed: int | None
    device: str  # what "auto" came to
    dtype: str
    nsfw: bool
    metadata: dict[str, Any]  # the exact JSON written into the file (for "reuse parameters")
    backend: str = ""  # what "auto" came to: "torch" | "openvino" ("" for images of older versions)


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: ``"done"``, ``"failed"`` (with a one-line message and a failure kind) or
    ``"cancelled"``."""

    job_id: int
    status: str
    message: str = ""
    kind: str = ""


class GenerationListener(Protocol):
    """What receives a job's reports, in the GUI thread."""

    def started(self, job_id: int) -> None: ...
    def step(self, report: StepReport) -> None: ...
    def saved(self, image: SavedImage) -> None: ...
    def warning(self, job_id: int, text: str) -> None: ...
    def status(self, text: str) -> None: ...
    def ended(self, outcome: JobOutcome) -> None: ...


# ------------------------------------------------------------------------------------------- worker


class StepRate:
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


class GenerationWorker:
    """Runs jobs on the engine's thread, one at a time, in the order they are given.

    Its engine is touched only from that thread (or after :meth:`shutdown` has stopped it). The
    engine is kept between jobs with the same device, dtype, backend and threads, and made anew (the old
    one's models freed first) when a job asks for others. An ``engine_factory`` (tests, tools) takes no
    arguments: it makes the engine it wants whatever the job asks.
    """

    def __init__(self, engine_factory: EngineFactory | None = None) -> None:
        self._engine_factory = engine_factory
        self._pool = TaskPool("studio-generation", threads=1)
        self.engine: Engine | None = None
        self._engine_key: tuple[str, str, str, int] | None = None

    def run(self, work: GenerationWork, listener: GenerationListener) -> Task | None:
        """Queue `work` on the engine's thread; None once shut down. Exactly one ``ended`` follows."""
        return self._pool.submit(
            self._run,
            work,
            listener,
            cancel=work.cancel,
            on_result=listener.ended,
            on_cancelled=lambda: listener.ended(JobOutcome(work.job_id, "cancelled")),
            on_error=lambda exc: listener.ended(JobOutcome(work.job_id, "failed", describe_failure(exc))),
        )

    def sweep(self, folder: Path) -> None:
        """Remove the temporary files a killed save of ours left in `folder` (off the GUI thread)."""
        self._pool.submit(lambda _context: sweep_stale_temp_files(folder))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel what runs, wait for it, deliver its last reports; True when it stopped in time.

        The engine stops within one step; an image being saved is finished (saves are atomic). A model
        still loading from disk cannot be interrupted: if it outlasts the timeout it finishes on its
        own and its reports are dropped.
        """
        stopped = self._pool.shutdown(timeout_ms)
        if stopped:
            # Ours only: an engine_factory may share the engine elsewhere, so it is not unloaded here.
            self.engine, self._engine_key = None, None
        return stopped

    # ----------------------------------------------------------------------- in the engine's thread
    def _run(self, context: TaskContext, work: GenerationWork, listener: GenerationListener) -> JobOutcome:
        job_id, request = work.job_id, work.request
        phase = "loading"
        try:
            context.check()
            context.report(listener.started, job_id)
            request.validate()
            check_writable_folder(work.output_dir)  # before minutes of work whose image could not be kept
            engine = self._engine_for(work, context, listener)
            if not _is_loaded(engine, request.model):
                context.report(listener.status, f"Loading model {model_label(request.model)}…")
            engine.load(request.model, cancel=work.cancel, request=request)  # a look-up when loaded; a conversion stops between parts
            context.check()
            phase = "generating"
            context.report(listener.status, f"Generating #{job_id}…")
            results = engine.generate(request, on_step=self._step_reporter(context, listener, job_id), cancel=work.cancel)
            phase = "saving"
            for text in dict.fromkeys(w for r in results for w in r.warnings):
                context.report(listener.warning, job_id, text)
            if work.inputs_dir is not None and results:
                keep_inputs(work.inputs_dir, results[0].inputs, lambda text: context.report(listener.warning, job_id, text))
            for result in results:
                context.check()  # between batch images: a cancel keeps what is saved and saves nothing more
                path = save_result(result, work.output_dir)
                context.report(listener.saved, _saved_image(job_id, path, result))
        except Cancelled:
            return JobOutcome(job_id, "cancelled")
        except Exception as exc:  # noqa: BLE001 - any failure is one job's failure; the worker goes on
            if not isinstance(exc, RequestError | GenerationError):
                log.warning("job #%d failed while %s", job_id, phase, exc_info=True)
            return JobOutcome(job_id, "failed", describe_failure(exc, phase, request.model), failure_kind(exc))
        return JobOutcome(job_id, "done")

    def _engine_for(self, work: GenerationWork, context: TaskContext, listener: GenerationListener) -> Engine:
        """The engine for the job's device, dtype, backend and threads, made on first use or when they
        changed (OpenVINO's threads are fixed when a model is compiled); its download and status hooks
        report to this job's listener."""
        key = (work.device, work.dtype, work.backend, work.threads)
        if self.engine is None or self._engine_key != key:
            if self.engine is not None:  # free the old models before loading anew
                old, self.engine, self._engine_key = self.engine, None, None
                try:
                    old.unload_all()
                except Exception:  # noqa: BLE001 - freeing memory must never fail the job
                    log.debug("unloading models failed", exc_info=True)
            if self._engine_factory is not None:
                self.engine = self._engine_factory()
            else:
                self.engine = _default_engine(*key)
            self._engine_key = key
        if hasattr(self.engine, "set_network_folders"):
            self.engine.set_network_folders(*work.network_folders)
        _install_hook(self.engine, "on_download", _DownloadReporter, _DownloadReporter(context, listener))
        _install_hook(self.engine, "on_status", _StatusReporter, _StatusReporter(context, listener))
        return self.engine

    @staticmethod
    def _step_reporter(context: TaskContext, listener: GenerationListener, job_id: int) -> Callable[[StepEvent], None]:
        rate = StepRate()

        def on_step(event: StepEvent) -> None:
            it_per_s, eta_s = rate.update(event.step, event.total)
            preview = pil_to_qimage(event.preview)  # here, in the engine's thread
            context.report(listener.step, StepReport(job_id, event.step, event.total, preview, float(it_per_s), float(eta_s)))

        return on_step


class _DownloadReporter:
    """Download progress -> status, at most a few times a second; a cancel stops the download."""

    def __init__(self, context: TaskContext, listener: GenerationListener) -> None:
        self._context = context
        self._listener = listener
        self._last = (0.0, -1)

    def __call__(self, progress) -> None:
        self._context.check()
        total = progress.total or 0
        percent = int(100 * progress.done / total) if total else -1
        now = time.monotonic()
        last_time, last_percent = self._last
        if percent == last_percent or (now - last_time < 0.25 and percent < 100):
            return
        self._last = (now, percent)
        if total:
            text = f"Downloading {progress.done / 1e9:.2f} / {total / 1e9:.2f} GB"
        else:
            text = f"Downloading {progress.done / 1e9:.2f} GB"
        self._context.report(self._listener.status, text)


class _StatusReporter:
    """What a long load is doing ("Optimising for this CPU: UNet 2/4…") -> the status bar.

    It does not cancel: the engine checks the job's cancel event itself between the parts of a
    conversion (it is given to ``Engine.load``), where stopping leaves no half-written part behind.
    """

    def __init__(self, context: TaskContext, listener: GenerationListener) -> None:
        self._context = context
        self._listener = listener

    def __call__(self, text: str) -> None:
        self._context.report(self._listener.status, str(text))


def _install_hook(engine: Engine, name: str, kind: type, reporter: Callable) -> None:
    """Point the engine's hook `name` at this job's `reporter`, unless an engine_factory set its own
    (a hook that is not one of ours, of type `kind`, is kept: the factory's owner wants its reports)."""
    hook = getattr(engine, name, None)
    if hook is None or isinstance(hook, kind):
        setattr(engine, name, reporter)


def keep_inputs(folder: Path, inputs: dict[str, Any], warn: Callable[[str], None]) -> None:
    """Keep the job's init image and mask by content (a batch shares them: the first result's), so that
    "Reuse parameters" on any of its images restores the canvas. A full or read-only disk costs the
    reuse, not the images: it is said once and the job goes on."""
    if not inputs:
        return
    try:
        store = InputStore(folder)
        store.keep(inputs)
        store.prune()
    except (OSError, ValueError) as exc:
        log.info("could not keep the inputs in %s", folder, exc_info=True)
        warn(f"could not keep the init image and mask for reuse: {first_line(exc)}")


def _saved_image(job_id: int, path: Path, result) -> SavedImage:
    meta = result.metadata if isinstance(result.metadata, dict) else {}
    seed = meta.get("seed")
    return SavedImage(
        job_id=job_id,
        path=Path(path),
        image=pil_to_qimage(result.image),
        seed=seed if isinstance(seed, int) else None,
        device=str(meta.get("device") or ""),
        dtype=str(meta.get("dtype") or ""),
        nsfw=bool(meta.get("nsfw")),
        metadata=meta,
        backend=str(meta.get("backend") or ""),
    )


def _is_loaded(engine: Engine, model: str) -> bool:
    """Whether `model` is already loaded, so "Loading model…" is only said when it is true."""
    try:
        return any(getattr(m.source, "spec", None) == model.strip() for m in engine.loaded_models())
    except Exception:  # noqa: BLE001 - an engine without this detail just gets the message
        return False


def _default_engine(device: str, dtype: str, backend: str = "auto", threads: int = 0) -> Engine:
    """The app's engine: made here, in the engine's thread, so torch is imported off the GUI thread.
    `threads` 0 is the engine's None: all physical cores."""
    from studio.engine import Engine
    from studio.engine.loading import quiet_libraries

    quiet_libraries()  # the libraries' chatter would reach the terminal the app was started from
    return Engine(device=device, dtype=dtype, backend=backend, threads=threads or None, preview="auto")
