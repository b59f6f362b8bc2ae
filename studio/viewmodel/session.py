"""The studio session: what the main window shows and does, without any widget.

:class:`StudioSession` owns the view-models of the studio page (:class:`GenerationSettings`,
:class:`PromptState`, :class:`AppSettings`), the generation queue (:class:`JobQueue`), the preferences
file, and the state that used to hide in the window: which job the preview follows, the last failure,
what "Auto" came to on the last image, whether the chosen catalogue model is downloaded (asked off the
GUI thread). Its actions are the studio's: generate, cancel, reuse parameters or a seed, restore
parameters from any image, keep and resume the queue.

The request travels: ``GenerationSettings.to_request`` (with the prompts and the canvas image) ->
:meth:`StudioSession.generate` (validated once, here) -> ``JobQueue.submit`` (with the device, the
dtype, the backend, its CPU threads and the output folder) -> the engine's thread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio.engine.catalog import CATALOG, FAMILY_SIZE_MULTIPLE, CatalogEntry
from studio.engine.errors import RequestError
from studio.library.display import first_line, printable
from studio.library.images import ImageLoadError, load_image
from studio.library.input_store import InputStore
from studio.library.metadata import MetadataError, read_metadata
from studio.library.metadata.ours import from_studio
from studio.viewmodel.backend import BackendChoice
from studio.viewmodel.canvas_image import CanvasImage
from studio.viewmodel.canvas_mask import SIDES, CanvasMask
from studio.viewmodel.generation_settings import PRECISIONS, GenerationSettings

if TYPE_CHECKING:
    from studio.engine.request import GenerationRequest
    from studio.viewmodel.gallery_browser import GalleryBrowser
from studio.viewmodel.job_queue import Job, JobQueue
from studio.viewmodel.network_browser import NetworkBrowser
from studio.viewmodel.preferences import AppSettings, Preferences
from studio.viewmodel.prompt_state import PromptState
from studio.viewmodel.properties import Property, ViewModel
from studio.worker.generation import FAILURE_MODEL_MISSING, SavedImage, StepReport
from studio.worker.queue_store import SavedQueue, clear_queue, load_queue, save_queue
from studio.worker.tasks import TaskPool

__all__ = ["RestoreOffer", "SavedImage", "StepReport", "StudioSession", "caption", "shown"]

RAN_ON_BACKEND = {"torch": "PyTorch", "openvino": "OpenVINO"}
"""What the status line says a backend came to (the list's "OpenVINO (CPU)" would nest parentheses)."""
BUSY_PREFIXES = ("Downloading", "Loading model", "Optimising", "Generating")
"""Status texts of a wait the busy bar names for its whole length."""


def shown(value: object, limit: int = 200) -> str:
    """Text from an image's metadata or name, fit for a label or the status bar: harmful characters
    made visible (:func:`printable`) and at most `limit` characters (a 4096-character "model name"
    would push everything else out of a message box)."""
    text = printable(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def caption(image: SavedImage) -> str:
    """The preview's caption for a saved image: its name, seed, steps, and a safety-checker flag."""
    request = image.metadata.get("request") if isinstance(image.metadata.get("request"), dict) else {}
    parts = [image.path.name]
    if image.seed is not None:
        parts.append(f"seed {image.seed}")
    if request.get("steps"):
        parts.append(f"{request['steps']} steps")
    if image.nsfw:
        parts.append("flagged by the safety checker")
    return " · ".join(parts)


@dataclass(frozen=True)
class RestoreOffer:
    """A dropped image that carries parameters: what to ask, and what restoring would apply."""

    name: str
    source: str
    summary: str
    fields: dict[str, Any]

    def question(self) -> str:
        return (
            f"{shown(self.name)} was made with {shown(self.source)}.\n"
            f"Restore its prompt and parameters ({self.summary})?"
        )


class StudioSession(ViewModel):
    """The studio page's state and actions (GUI thread). Signals carry what the widgets show."""

    message = Signal(str)  # one line for the status bar
    download_needed = Signal(object)  # CatalogEntry: offer the model manager before generating
    # The preview follows one job at a time: the last one started.
    preview_started = Signal(str, str)  # busy text, caption
    preview_step = Signal(object)  # StepReport
    preview_image = Signal(object, str)  # SavedImage, caption
    preview_ended = Signal(str, str)  # state ("Done", "Cancelled", "Failed"), caption ("" keeps it)
    preview_busy = Signal(str)  # what the wait is for (loading, downloading)
    failure = Signal(str, bool)  # the message, whether the model is the problem (offer the manager)
    result_added = Signal(object)  # SavedImage

    status_line = Property("", doc="model · device · dtype · backend, with what Auto came to on the last image")

    def __init__(
        self,
        *,
        preferences_file: Path | None = None,
        output_dir: Path | None = None,
        engine_factory=None,
        queue_file: Path | None = None,
        model_cache_dir: Path | None = None,
        inputs_dir: Path | None = None,
        token_file: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.preferences = Preferences(preferences_file, parent=self)
        self.app = AppSettings(self)
        self.settings = GenerationSettings(self)
        self.prompt = PromptState(parent=self)
        self.canvas = CanvasImage(self, fit_mode="crop")
        self.mask = CanvasMask(self.canvas, self)
        for model in (self.app, self.settings, self.prompt, self.canvas, self.mask):
            self.preferences.attach(model)
        # LoRAs and embeddings: scanned in the background from the start (the token counts need the embeddings).
        self.networks = NetworkBrowser(self.app, parent=self)
        self.preferences.attach(self.networks)
        self.networks.embedding_vectors_changed.connect(self.prompt.set_embeddings)
        # Every job's init image and mask, kept by hash: "reuse parameters" restores the canvas from them.
        self.inputs = InputStore(Path(inputs_dir) if inputs_dir is not None else _default_inputs_dir())
        # A command-line --output-dir applies to this run only: it is never written to the preferences.
        self._output_override = Path(output_dir) if output_dir is not None else None
        self.queue_file = Path(queue_file) if queue_file else self.preferences.path.with_name("queue.json")
        self.model_cache_dir = model_cache_dir
        self.queue = JobQueue(self.output_path(), engine_factory=engine_factory, parent=self)
        # Where jobs run: this computer or a server (Preferences -> Backend); the token has a file of its own.
        token_file = Path(token_file) if token_file is not None else self.preferences.path.with_name("server-token")
        self.backend = BackendChoice(self, token_file=token_file)
        self.preferences.attach(self.backend)
        self.backend.address_changed.connect(self._on_backend_changed)
        self.queue.use_server(self.backend.address())
        self._probe = TaskPool("studio-model-probe", threads=1, parent=self)
        self._shown_job: int | None = None
        self._last_failure = ""
        self._ran_on: tuple[str, str, str] | None = None  # device, dtype, backend of the last image
        self._closed = False
        self.gallery: GalleryBrowser | None = None  # made when the gallery is first opened: start-up stays light

        self.settings.message.connect(self.message)
        self.canvas.image_changed.connect(self._on_canvas_changed)
        self.mask.mask_changed.connect(lambda region: region is None and self._on_mask_changed())
        self.mask.history_changed.connect(self._on_mask_changed)  # a stroke ends
        self.mask.changed.connect(self._on_mask_changed)
        self.settings.outpaint_fill_changed.connect(self._on_mask_changed)
        self.settings.width_changed.connect(self._on_size_changed)
        self.settings.height_changed.connect(self._on_size_changed)
        self._on_size_changed()
        self.settings.model_changed.connect(self._on_model_changed)
        self.settings.device_changed.connect(self._on_device_changed)
        self.settings.dtype_changed.connect(self._on_device_changed)
        self.settings.backend_changed.connect(self._on_device_changed)
        self.queue.job_started.connect(self._on_job_started)
        self.queue.step.connect(self._on_step)
        self.queue.image_saved.connect(self._on_image_saved)
        self.queue.job_finished.connect(self._on_finished)
        self.queue.job_failed.connect(self._on_failed)
        self.queue.job_cancelled.connect(self._on_cancelled)
        self.queue.status.connect(self._on_status)
        self.prompt.warm_up()
        self._update_status_line()
        self.refresh_model_note()
        self.refresh_server_models()

    # ------------------------------------------------------------------------------------ folders
    def output_path(self) -> Path:
        """Where images go: this run's --output-dir, else the folder chosen in the preferences."""
        return self._output_override or self.app.output_path()

    def set_output_folder(self, folder: Path) -> None:
        """The user's choice: saved in the preferences (unlike a command-line --output-dir)."""
        self.app.output_dir = str(folder)
        self._output_override = None
        self.queue.set_output_dir(folder)
        if self.gallery is not None:
            self.gallery.ensure_folder(folder)
        self.message.emit(f"Images are saved in {folder}")

    def open_gallery(self, db_path: Path, thumbnail_dir: Path, **options: Any) -> GalleryBrowser:
        """The image library, made on first use; the output folder is always part of it, and each
        image this session saves is indexed at once (not when the folder watcher settles)."""
        if self.gallery is None:
            from studio.viewmodel.gallery_browser import GalleryBrowser

            self.gallery = GalleryBrowser(db_path, thumbnail_dir, parent=self, **options)
            self.preferences.attach(self.gallery)
            self.result_added.connect(lambda image: self.gallery.index_paths([str(image.path)]))
            output = self.output_path()
            try:
                output.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.message.emit(f"Cannot create {output}: {exc.strerror or exc}")
            self.gallery.ensure_folder(output)
            self.gallery.scan()
        else:
            self.gallery.check_for_changes()  # what `studio gallery scan` added meanwhile, at once
        return self.gallery

    def use_model(self, spec: str) -> None:
        """The command line's --model: a catalogue id, or a local folder or file added to the list."""
        self.settings.select_model(spec)

    # --------------------------------------------------------------------------------- generation
    def _on_canvas_changed(self) -> None:
        self.settings.has_init_image = self.canvas.has_image()
        self._on_mask_changed()

    def _on_mask_changed(self, *_args: Any) -> None:
        """The inpainting options apply while a mask is painted or the canvas is grown; the outpainting
        preview uses the settings' fill and the model's side rule."""
        self.settings.has_mask = self.mask.is_active()
        self.mask.outpaint_fill = self.settings.outpaint_fill
        self.mask.side_multiple = FAMILY_SIZE_MULTIPLE.get(self.settings.family(), 8)

    def _on_size_changed(self, *_args: Any) -> None:
        """The canvas prepares its image at the output size: what the user sees is what the model gets."""
        self.canvas.set_output_size(self.settings.width, self.settings.height)

    def generate(self) -> Job | None:
        """Queue a job from the current settings, prompts and canvas image (img2img when there is one);
        None (and a message, or the download offer) when it cannot run."""
        if self.settings.size_problem:
            self.message.emit(self.settings.size_problem)
            return None
        entry = self.settings.catalogue_entry()
        if entry is not None and _snapshot_of(entry, self.model_cache_dir) is None:  # a few file checks
            self.download_needed.emit(entry)
            return None
        prompt, negative = self.prompt.prompt, self.prompt.negative_prompt
        init_image = self.canvas.prepared_image() if self.canvas.has_image() else None
        mask_image = self.mask.mask_image() if init_image is not None else None
        expand = self.mask.expansion() if init_image is not None else None
        request = self.settings.to_request(prompt, negative, init_image, mask_image=mask_image, expand=expand)
        try:
            request.validate()
        except RequestError as exc:
            self.message.emit(str(exc))
            return None
        self.prompt.add_to_history(prompt, negative)
        self._last_failure = ""
        job = self._submit(request)
        self.message.emit(f"Queued job #{job.id}")
        return job

    def _submit(self, request: GenerationRequest) -> Job:
        """Queue `request` with today's device, dtype, backend, threads and output folder (fixed from now on)."""
        s, app = self.settings, self.app
        return self.queue.submit(
            request, device=s.device, dtype=s.dtype, backend=s.backend, threads=s.threads, output_dir=self.output_path(),
            inputs_dir=self.inputs.root, network_folders=(tuple(app.lora_folders), tuple(app.embedding_folders)),
        )

    def cancel_current(self) -> bool:
        job = self.queue.running_job()
        if job is None:
            return False
        self.queue.cancel(job.id)
        self.message.emit("Cancelling…")
        return True

    # ------------------------------------------------------------------------------------- reuse
    def reuse_parameters(self, image: SavedImage) -> str:
        """Restore what made one of this session's images: its metadata read as any image's is (the
        gallery's, a dropped file's), then :meth:`apply_image_fields`."""
        return self.apply_image_fields(from_studio(image.metadata).reuse_fields(), image.path.name)

    def use_as_init(self, path: Path) -> bool:
        """A result as the canvas's new init image, at its own size, so an artist can iterate: the mask
        stays where it was over the picture (an outpainting's grown area is now picture, unmasked)."""
        try:
            picture = load_image(path)
        except ImageLoadError as exc:
            self.message.emit(shown(exc, 500))
            return False
        old, old_size = self.mask.mask_image(), self.mask.size()
        left, top, right, bottom = self.mask.expansion() or (0, 0, 0, 0)
        with contextlib.suppress(TypeError, ValueError):  # a size the panel cannot take: fitted to today's
            self.settings.set_size(*picture.size)
        self.canvas.set_image(picture, str(path))
        kept = old is not None and old_size is not None and picture.size == (old_size[0] + left + right, old_size[1] + top + bottom)
        if kept:
            grown = Image.new("L", picture.size, 0)
            grown.paste(old, (left, top))
            self.mask.set_mask(grown)
        self.message.emit(f"{shown(path.name)} is the init image{' (the mask is kept)' if kept else ''}")
        return True

    def reuse_seed(self, seed: int | None) -> None:
        if isinstance(seed, int):
            self.settings.set_seed(seed)
            self.message.emit(f"Seed {seed} fixed")

    def apply_image_fields(self, fields: dict[str, Any], origin: str = "") -> str:
        """Restore parameters read from any image's metadata (ours, A1111, ComfyUI, InvokeAI); returns
        the message shown.

        A model that is not available here (another tool's "dreamshaper_8", a file since moved) is named
        in the message, and the current model is kept: restoring must never pretend it got everything.
        The prompts are untrusted text (see :meth:`PromptState.set_untrusted_prompts`).
        """
        fields = dict(fields)
        model = fields.get("model")
        note = ""
        if model and str(model) not in CATALOG and not _exists(str(model)):
            fields.pop("model")
            note = (
                f"; it was made with model '{shown(model)}', which is not available here: "
                f"kept {self.settings.model_label()}"
            )
        skipped = self.settings.apply(fields)
        note += self._restore_canvas(fields)
        if "prompt" in fields or "negative_prompt" in fields:
            removed = self.prompt.set_untrusted_prompts(fields.get("prompt") or "", fields.get("negative_prompt") or "")
            if removed:
                note += f"; {removed} control character{'s' if removed != 1 else ''} removed from the prompts"
        if skipped:
            note += f"; not restored (unusable values): {', '.join(skipped)}"
        missing = self._missing_loras(fields.get("prompt"))
        if missing:
            note += f"; LoRAs not found here: {', '.join(shown(name, 60) for name in missing[:10])}"
        text = f"Parameters restored{' from ' + shown(origin) if origin else ''}{note}"
        self.message.emit(text)
        return text

    def _missing_loras(self, prompt: Any) -> list[str]:
        """The LoRAs a restored prompt names that none of the LoRA folders holds (a stat per file)."""
        from studio.library.extra_networks import NetworkCatalog
        from studio.library.prompt_syntax import extra_network_tags

        if not isinstance(prompt, str):
            return []
        names = [tag.name for tag in extra_network_tags(prompt) if tag.kind in ("lora", "lyco")]
        if not names:
            return []
        loras, _embeddings = self.app.network_folders()
        catalog = NetworkCatalog(loras, [])
        return [name for name in dict.fromkeys(names) if catalog.find_lora(name) is None]

    def _restore_canvas(self, fields: dict[str, Any]) -> str:
        """The init image and mask an image was made from, back on the canvas when they are kept here
        (its hashes name them), with the size and outpainting it had; a note for the message."""
        init_hash, mask_hash = fields.get("init_image_sha256"), fields.get("mask_image_sha256")
        if not init_hash:
            return ""
        init = self.inputs.get(init_hash)
        if init is None:
            return "; its init image is not kept here: put it on the canvas yourself"
        mask = self.inputs.get(mask_hash) if mask_hash else None
        expand = fields.get("expand")
        with contextlib.suppress(TypeError, ValueError):  # the canvas's size; an outpainting grows it
            self.settings.set_size(*init.size)
        self.canvas.set_image(init, "the init image it was made from")
        if mask is not None:
            self.mask.set_mask(mask)
        if isinstance(expand, list | tuple) and len(expand) == 4:
            for side, pixels in zip(SIDES, expand, strict=True):
                if isinstance(pixels, int) and not isinstance(pixels, bool):
                    self.mask.set_expansion(side, pixels)
        if mask_hash and mask is None:
            return "; its init image is on the canvas, but its mask is not kept here"
        return "; its init image and mask are on the canvas" if mask is not None else "; its init image is on the canvas"

    def restore_offer(self, path: Path) -> RestoreOffer | None:
        """A file dropped on the window: the parameters it carries, or None (and a message) if none."""
        try:
            meta = read_metadata(path)
        except (MetadataError, OSError) as exc:
            self.message.emit(shown(exc, 500))
            return None
        if meta is None:
            self.message.emit(
                f"{shown(path.name)} carries no generation parameters (drop it on the canvas for img2img)"
            )
            return None
        fields = meta.reuse_fields()
        summary = ", ".join(f"{k} {shown(v)}" for k, v in fields.items() if k in ("seed", "steps", "model"))
        return RestoreOffer(path.name, meta.source, summary, fields)

    # ------------------------------------------------------------------------------------- models
    def refresh_model_note(self) -> None:
        """Say whether the chosen model is downloaded and name its default scheduler; the cache and the
        model's configs are read off the GUI thread."""
        spec, family = self.settings.model, self.settings.family()
        self._probe.submit(_probe_model, spec, family, self.model_cache_dir, on_result=self._show_probe)

    def _show_probe(self, probe: tuple[str, Path | None, str | None]) -> None:
        spec, snapshot, scheduler = probe
        if spec != self.settings.model:
            return  # another model was chosen meanwhile: its own probe follows
        entry = CATALOG.get(spec)
        if entry is None:
            self.settings.model_note = ""
        else:
            self.settings.model_note = entry.notes if snapshot is not None else (
                f"Not downloaded yet: download {entry.repo} in Models (File menu, Ctrl+Shift+M). " + entry.notes
            )
        self.settings.default_scheduler = scheduler or ""

    def _on_backend_changed(self) -> None:
        self.queue.use_server(self.backend.address())
        self._ran_on = None
        self._update_status_line()
        self.refresh_server_models()
        server = self.queue.server
        self.message.emit(f"Jobs now run on the server at {server.url}" if server else "Jobs now run on this computer")

    def refresh_server_models(self) -> None:
        """With a server as the backend, list its folders' models in the model list (asked off the GUI
        thread); with this computer, none."""
        if self.backend.address() is None:
            self.settings.server_models = {}
            return
        self.backend.list_models(
            on_result=self._show_server_models,
            on_error=lambda exc: self.message.emit(f"Could not list the server's models: {first_line(exc)}"),
        )

    def _show_server_models(self, listed: tuple[Any, dict[str, str | None]]) -> None:
        address, models = listed
        if address == self.backend.address():
            self.settings.server_models = models

    def _on_device_changed(self, *_args: Any) -> None:
        self._ran_on = None  # what "Auto" came to before no longer says anything
        self._update_status_line()

    def _on_model_changed(self, *_args: Any) -> None:
        self._on_mask_changed()  # the side rule of outpainting
        self._update_status_line()  # it names the model
        self.refresh_model_note()

    def _update_status_line(self) -> None:
        """"Stable Diffusion 1.4 · Auto (cpu) · Auto (bfloat16) · Auto (OpenVINO)": each choice, with what
        "Auto" came to on the last image; a backend that fell back (OpenVINO could not run the model, so
        PyTorch did) is said too, since it changes speed and pixels."""
        s = self.settings
        server = self.queue.server
        if server is not None:  # the server's own device, precision and backend decide
            ran = f" · {' · '.join(RAN_ON_BACKEND.get(v, v) for v in self._ran_on)}" if self._ran_on else ""
            self.status_line = f"{s.model_label()} · server {server.url}{ran}"
            return
        device = next((c.label for c in s.device_choices() if c.value == s.device), "Auto")
        dtype = next((label for label, value, _tip in PRECISIONS if value == s.dtype), "Auto")
        backend = next((c.label for c in s.backend_choices() if c.value == s.backend), "Auto")
        if self._ran_on is not None:  # what "Auto" came to for the last image
            ran_device, ran_dtype, ran_backend = self._ran_on
            device = _came_to(device, s.device, ran_device)
            dtype = _came_to(dtype, s.dtype, ran_dtype)
            backend = _came_to(backend, s.backend, ran_backend, RAN_ON_BACKEND.get(ran_backend, ran_backend), said=True)
        self.status_line = f"{s.model_label()} · {device} · {dtype} · {backend}"

    # ---------------------------------------------------------------------------- queue reports
    def _on_job_started(self, job_id: int) -> None:
        self._shown_job = job_id
        job = self.queue.job(job_id)
        prompt = job.short_prompt(80) if job is not None else ""
        self.preview_started.emit("Starting…", f"Job #{job_id}: {prompt}" if prompt else f"Job #{job_id}")

    def _on_step(self, report: StepReport) -> None:
        self.preview_step.emit(report)

    def _on_image_saved(self, image: SavedImage) -> None:
        if image.device and image.dtype:
            self._ran_on = (image.device, image.dtype, image.backend)
            self._update_status_line()
        if image.seed is not None:
            self.settings.remember_seed(image.seed)
        self.result_added.emit(image)
        self.preview_image.emit(image, caption(image))

    def _on_finished(self, job_id: int) -> None:
        if job_id == self._shown_job:
            self.preview_ended.emit("Done", "")

    def _on_cancelled(self, job_id: int) -> None:
        """Only the job the preview shows changes it: cancelling a queued job leaves the display alone."""
        if job_id == self._shown_job:
            self.preview_ended.emit("Cancelled", f"Job #{job_id} cancelled")

    def _on_failed(self, job_id: int, message: str) -> None:
        job = self.queue.job(job_id)
        text = f"Job #{job_id} failed: {message}"
        self.failure.emit(text, job is not None and job.error_kind == FAILURE_MODEL_MISSING)
        if job_id == self._shown_job:
            self.preview_ended.emit("Failed", f"Job #{job_id} failed")
        self._last_failure = text
        self.message.emit(text)

    def _on_status(self, text: str) -> None:
        if text == "Ready" and self._last_failure:
            return  # keep the failure readable in the status bar until it times out
        if text.startswith(BUSY_PREFIXES):
            self.preview_busy.emit(text)  # the busy bar shows what the wait is for, the whole wait
        self.message.emit(text)

    # ---------------------------------------------------------------------- keeping the queue
    def saved_queue(self) -> SavedQueue:
        """Jobs left from the last session (read as untrusted input)."""
        return load_queue(self.queue_file)

    def resume(self, saved: SavedQueue, run: bool) -> None:
        """Run the kept jobs again (with today's device, dtype, backend and threads) or forget them; the file goes."""
        clear_queue(self.queue_file)
        if run:
            for request in saved.requests:
                self._submit(request)
            count = len(saved.requests)
            self.message.emit(f"Resumed {'1 job' if count == 1 else f'{count} jobs'}")

    def discard_unreadable_queue(self) -> None:
        clear_queue(self.queue_file)
        self.message.emit("The queue kept from the last session could not be read; it was discarded")

    def save(self) -> None:
        """Keep the queue and the preferences; a failure is a message, never lost silently."""
        requests = self.queue.pending_requests()
        try:
            if requests:
                save_queue(self.queue_file, requests)
        except (OSError, ImageLoadError) as exc:
            self.message.emit(f"Could not keep the queue: {exc}")
        try:
            self.preferences.save()
        except OSError as exc:
            self.message.emit(f"Could not save preferences: {exc}")

    def shutdown(self) -> None:
        """Keep the queue and the preferences, then stop the background work. Runs once."""
        if self._closed:
            return
        self._closed = True
        self.save()
        self._probe.shutdown(timeout_ms=0)
        if self.gallery is not None:
            self.gallery.shutdown()
        self.prompt.shutdown()
        self.networks.shutdown(timeout_ms=0)
        self.backend.shutdown()
        self.canvas.shutdown()
        self.queue.shutdown()  # cancels the running job within one step; saves are atomic


def _default_inputs_dir() -> Path:
    from studio.library.paths import inputs_dir

    return inputs_dir()


def _came_to(label: str, chosen: str, ran: str, ran_label: str = "", *, said: bool = False) -> str:
    """A choice's label with what it came to on the last image: always for "auto"; for another choice
    only when `said` and it differs (a fallback). Nothing is added when the image did not say (``ran``
    empty: an engine of an older version)."""
    ran_label = ran_label or ran
    if not ran:
        return label
    if chosen == "auto":
        return f"{label} ({ran_label})"
    if said and ran != chosen:
        return f"{label} (ran on {ran_label})"
    return label


def _exists(spec: str) -> bool:
    """Whether a model path from an image's metadata is on this machine: any text may be there (a name
    too long for a path, a NUL, "~nobody/…"), and none of it may raise."""
    try:
        return Path(spec).expanduser().exists()
    except (OSError, ValueError, RuntimeError):
        return False


def _probe_model(_context, spec: str, family: str, cache_dir: Path | None) -> tuple[str, Path | None, str | None]:
    """(spec, its downloaded snapshot, its default scheduler's name), read from the disk."""
    from studio.engine.model_info import default_scheduler_name

    entry = CATALOG.get(spec)
    snapshot = _snapshot_of(entry, cache_dir) if entry else None
    try:
        scheduler = default_scheduler_name(spec, snapshot, family=family) if spec else None
    except (OSError, RequestError):
        scheduler = None
    return spec, snapshot, scheduler


def _snapshot_of(entry: CatalogEntry, cache_dir: Path | None) -> Path | None:
    """Where a catalogue model is downloaded, every file it needs there (None: not, or not completely)."""
    from studio.engine.loading import is_in_local_cache

    return is_in_local_cache(entry.repo, entry.revision, entry, cache_dir=cache_dir)
