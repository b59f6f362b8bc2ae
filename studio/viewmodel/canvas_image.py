"""The img2img canvas's view-model: the init image, fitted to the output size, and its loading.

What reaches the engine is :meth:`CanvasImage.prepared_image`: the source image at exactly the output
size, made by :func:`studio.library.image_fit.prepare_image` in the :attr:`CanvasImage.fit_mode`.  The
canvas widget paints :meth:`CanvasImage.display_image` (that prepared image as a QImage), so what the
user sees is what the model gets.

Loading off the GUI thread
    Decoding a 64-megapixel JPEG takes about a second, so decoding (and the first fit to the output size)
    runs on the canvas's own 1-thread :class:`~studio.worker.tasks.TaskPool`: two huge images are never
    decoded at once (memory).  A newer request (another drop, :meth:`CanvasImage.set_image`,
    :meth:`CanvasImage.clear`) cancels the load in flight: still queued, it never starts; running, it
    stops before its next candidate; finished, its result carries a stale ticket and is dropped.  A
    failure emits ``message`` and changes nothing: the previous image stays.  Tests wait on the signals.

Where the images come from (files, drops, the clipboard) and how each is decoded:
:mod:`studio.viewmodel.image_sources`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import shiboken6
from PIL import Image
from PySide6.QtCore import QMimeData, QObject, Signal
from PySide6.QtGui import QImage

from studio.library.display import printable
from studio.library.image_fit import FIT_MODES, prepare_image
from studio.library.images import MAX_PIXELS, ImageLoadError, to_rgb
from studio.library.masks import transparency
from studio.viewmodel.image_sources import (
    NOTHING_USABLE,
    ImageRequest,
    decode_with_transparency,
    file_request,
    is_dir,
    request_from_mime,
)
from studio.viewmodel.properties import Property, ViewModel, one_of
from studio.worker.qimage import pil_to_qimage
from studio.worker.tasks import TaskContext, TaskPool

__all__ = ["FIT_MODES", "CanvasImage"]


def _output_size(value: tuple) -> tuple[int, int]:
    """A check: two whole numbers, each at least 1."""
    if len(value) != 2 or not all(isinstance(side, int) and not isinstance(side, bool) for side in value):
        raise TypeError(f"an output size is (width, height) in pixels, not {value!r}")
    width, height = value
    if width < 1 or height < 1:
        raise ValueError(f"invalid output size {width}x{height}")
    return int(width), int(height)


@dataclass(frozen=True)
class _Loaded:
    """What a background load hands back."""

    image: Image.Image
    label: str
    holes: Image.Image | None  # where the picture was see-through (a mask), or None
    prepared: Image.Image | None  # None when it was not made (cancelled, or preparing failed)
    display: QImage | None
    key: tuple[int, int, str]  # the output size and mode `prepared` was made for


def _load(context: TaskContext, request: ImageRequest, max_pixels: int, key: tuple[int, int, str]) -> _Loaded:
    """In the canvas's thread: the first candidate that decodes, prepared; ImageLoadError otherwise."""
    errors: list[str] = []
    for candidate in request.candidates:
        context.check()  # superseded while trying candidates: don't spend a second on the next
        try:
            image, holes = decode_with_transparency(candidate, max_pixels)
        except ImageLoadError as exc:
            errors.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - an exotic Pillow/Qt failure: reported, never lost
            errors.append(f"{candidate.label}: could not be loaded ({type(exc).__name__}: {exc})")
            continue
        prepared = display = None
        if not context.cancelled:
            try:
                prepared = prepare_image(image, (key[0], key[1]), key[2])
                display = pil_to_qimage(prepared)  # QImage may be made in any thread
            except Exception:  # noqa: BLE001 - the GUI thread prepares again, and reports
                prepared = display = None
        return _Loaded(image, candidate.label, holes, prepared, display, key)
    first = errors[0] if errors else "nothing could be loaded"
    more = len(errors) - 1
    suffix = f" (and {more} other item{'s' if more > 1 else ''} failed too)" if more > 0 else ""
    raise ImageLoadError(first + suffix)


class CanvasImage(ViewModel):
    """The init image for img2img, at the output size per the fit mode.

    Signals: ``image_changed()`` when the image is set, replaced or cleared (not when only the output
    size or fit mode changes: :meth:`prepared_image` always follows them); ``display_changed()`` whenever
    the prepared image changes, for any of those reasons; ``message(str)`` a one-line, user-facing
    refusal or error; ``loading_changed(bool)`` when a background load starts or ends; and the
    properties' ``fit_mode_changed(mode)``, ``output_size_changed((width, height))``.
    """

    fit_mode = Property("fit", persist=True, check=one_of(FIT_MODES), doc="fit, crop or stretch (FIT_MODES)")
    output_size = Property((512, 512), check=_output_size, doc="(width, height) of the prepared image")

    image_changed = Signal()
    display_changed = Signal()
    message = Signal(str)
    loading_changed = Signal(bool)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        output_size: tuple[int, int] = (512, 512),
        fit_mode: str = "fit",
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        super().__init__(parent)
        self.output_size = tuple(output_size)
        self.fit_mode = fit_mode
        self.max_pixels = max_pixels
        self._source: Image.Image | None = None
        self._source_label = ""
        self._holes: Image.Image | None = None
        self._prepared: Image.Image | None = None
        self._display: QImage | None = None
        self._tickets = itertools.count(1)
        self._pending: int | None = None  # the ticket of the load in flight
        self._pending_task = None
        self._pending_request: ImageRequest | None = None
        self._pool = TaskPool("canvas-decode", threads=1, parent=self)
        self.fit_mode_changed.connect(self._settings_changed)
        self.output_size_changed.connect(self._settings_changed)

    # ----------------------------------------------------------------------------------------- state

    def has_image(self) -> bool:
        return self._source is not None

    def source_image(self) -> Image.Image | None:
        """The loaded image (upright RGB, full size).  Shared, not copied (it may be 64 Mpx): don't
        modify it."""
        return self._source

    def source_transparency(self) -> Image.Image | None:
        """Where the loaded picture was see-through, at its full size (255: transparent), or None: a PNG
        with holes erased in GIMP or Krita, whose holes the mask layer takes as the area to inpaint."""
        return self._holes

    def source_label(self) -> str:
        """Where the image came from: a path, "clipboard image", or what :meth:`set_image` was told."""
        return self._source_label

    def prepared_image(self) -> Image.Image | None:
        """The image at exactly the output size, per the fit mode: what goes to the engine.  A copy."""
        if self._source is None:
            return None
        if self._prepared is None or self._prepared.size != self.output_size:
            self._reprepare()
        return self._prepared.copy() if self._prepared is not None else None

    def display_image(self) -> QImage | None:
        """The prepared image as a QImage, to paint (None without an image)."""
        return self._display

    def is_loading(self) -> bool:
        return self._pending is not None

    def summary(self) -> str:
        """One line: the image's name and size and the output size, or the output size alone."""
        width, height = self.output_size
        if self._source is None:
            return f"Output {width}×{height}" + (" — loading…" if self.is_loading() else "")
        name = printable(Path(self._source_label).name or self._source_label)
        src_w, src_h = self._source.size
        return f"{name} — {src_w}×{src_h} → {width}×{height}"

    # ------------------------------------------------------------------------------------- settings

    def set_output_size(self, width: int, height: int) -> None:
        """Change the output size; the prepared image follows (no ``image_changed``).  ValueError for a
        side under 1."""
        self.output_size = (int(width), int(height))

    def set_fit_mode(self, mode: str) -> None:
        """"fit", "crop" or "stretch" (:data:`FIT_MODES`); ValueError for anything else."""
        self.fit_mode = mode

    def _settings_changed(self, _value: object) -> None:
        if self._source is not None:
            self._reprepare()
        else:
            self.display_changed.emit()  # the empty frame's shape, the summary

    # ------------------------------------------------------------------------------- set and clear

    def set_image(self, image: Image.Image, source: str = "") -> None:
        """Use ``image`` (e.g. a generated result sent to the canvas) now, synchronously.

        It is converted to RGB and copied, so the caller may keep using its own image.  Cancels any load
        in flight (the newer action wins).
        """
        if not isinstance(image, Image.Image):
            raise TypeError(f"set_image() needs a PIL image, not {type(image).__name__}")
        rgb = to_rgb(image)
        rgb = rgb.copy() if rgb is image else rgb
        self._supersede_pending()
        self._install(rgb, source or "image", transparency(image), None, None)

    def clear(self) -> None:
        """Remove the image (and cancel a load in flight).  Emits ``image_changed`` if there was one."""
        self._supersede_pending()
        if self._source is None:
            return
        self._source, self._source_label, self._holes = None, "", None
        self._prepared, self._display = None, None
        self.display_changed.emit()
        self.image_changed.emit()

    def _install(
        self, image: Image.Image, label: str, holes: Image.Image | None, prepared: Image.Image | None,
        display: QImage | None,
    ) -> None:
        self._source, self._source_label, self._holes = image, label, holes
        if prepared is None or display is None:
            self._reprepare()
        else:
            self._prepared, self._display = prepared, display
            self.display_changed.emit()
        self.image_changed.emit()

    def _reprepare(self) -> None:
        if self._source is None:
            self._prepared, self._display = None, None
        else:
            self._prepared = prepare_image(self._source, self.output_size, self.fit_mode)
            self._display = pil_to_qimage(self._prepared)
        self.display_changed.emit()

    # ------------------------------------------------------------------------------------- loading

    def load_file(self, path: str | Path) -> bool:
        """Start loading the image file at ``path`` in the background; True if a load was started.

        The outcome arrives as ``image_changed`` or as ``message``.
        """
        text = str(path)
        if is_dir(text):
            self.message.emit(f"{text} is a folder, not an image file")
            return False
        return self.load(file_request(text))

    def load_mime(self, mime: QMimeData | None, origin: str = "dropped") -> bool:
        """Load what a drop (`origin` "dropped") or the clipboard ("clipboard") holds; True if a load
        started, else ``message`` says why not (nothing is guessed from plain text)."""
        request = request_from_mime(mime, origin)
        if isinstance(request, str):
            if origin == "clipboard" and request == NOTHING_USABLE:
                request = "The clipboard holds no image"
            self.message.emit(request)
            return False
        return self.load(request)

    def load(self, request: ImageRequest) -> bool:
        """Decode the request's first usable candidate in the background; True if a load was started."""
        was_loading = self.is_loading()
        self._cancel_task()
        ticket = next(self._tickets)
        key = (*self.output_size, self.fit_mode)
        task = self._pool.submit(
            _load,
            request,
            self.max_pixels,
            key,
            on_result=partial(self._loaded, ticket),
            on_error=partial(self._failed, ticket),
        )
        if task is None:  # shut down (the application is quitting)
            self._forget_pending(was_loading)
            return False
        self._pending, self._pending_task, self._pending_request = ticket, task, request
        self.display_changed.emit()
        if not was_loading:
            self.loading_changed.emit(True)
        return True

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop the loading thread (a decode in progress is waited for); True when it stopped."""
        self._supersede_pending()
        return self._pool.shutdown(timeout_ms)

    def _cancel_task(self) -> None:
        if self._pending_task is not None:
            self._pending_task.cancel()

    def _supersede_pending(self) -> None:
        """Cancel any load in flight (a result that still arrives is ignored)."""
        self._cancel_task()
        self._forget_pending(self.is_loading())

    def _forget_pending(self, was_loading: bool) -> None:
        self._pending, self._pending_task, self._pending_request = None, None, None
        if was_loading:
            self.display_changed.emit()
            self.loading_changed.emit(False)

    def _finish(self, ticket: int) -> ImageRequest | None | bool:
        """The request of the load in flight if `ticket` is still it (then it is over); False if stale."""
        if ticket != self._pending or not shiboken6.isValid(self):
            return False  # superseded by a newer drop, paste, set_image or clear; or the canvas is gone
        request = self._pending_request
        self._pending, self._pending_task, self._pending_request = None, None, None
        self.loading_changed.emit(False)
        return request

    def _loaded(self, ticket: int, loaded: _Loaded) -> None:
        request = self._finish(ticket)
        if request is False:
            return
        current = (*self.output_size, self.fit_mode)
        usable = loaded.key == current
        self._install(loaded.image, loaded.label, loaded.holes, loaded.prepared if usable else None, loaded.display if usable else None)
        if isinstance(request, ImageRequest) and request.dropped_files > 1 and Path(loaded.label).is_absolute():
            self.message.emit(f"{request.dropped_files} items dropped: using only the first image, {Path(loaded.label).name}")

    def _failed(self, ticket: int, error: BaseException) -> None:
        if self._finish(ticket) is False:
            return
        kept = " (the current image is kept)" if self._source is not None else ""
        self.display_changed.emit()
        self.message.emit(f"Image not loaded: {error}{kept}")
