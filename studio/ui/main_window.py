"""The main window: prompt and parameters on the left, previews and results in the middle, the
img2img canvas and the job queue on the right. Every action has a keyboard shortcut.

The window never touches torch: generation runs in the worker's thread, and the window only sees
signals carrying QImages.
"""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QGroupBox,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio import __version__
from studio.engine.catalog import CATALOG
from studio.engine.errors import RequestError
from studio.library.images import ImageLoadError, load_image
from studio.settings import APP_NAME, Preferences, preferences_path
from studio.ui.canvas import FIT_MODES, ImageCanvas
from studio.ui.icons import icon
from studio.ui.parameters import ParametersPanel
from studio.ui.preview import PreviewPane
from studio.ui.prompt_editor import PromptEditor
from studio.ui.queue_view import QueueView
from studio.ui.results import ResultItem, ResultsStrip
from studio.worker import GenerationService

STATUS_MS = 6000


class MainWindow(QMainWindow):
    def __init__(
        self,
        model: str | None = None,
        output_dir: Path | None = None,
        *,
        preferences_file: Path | None = None,
        engine_factory=None,
        qsettings: QSettings | None = None,
        gallery_db: Path | None = None,
        thumbnail_dir: Path | None = None,
    ):
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self._prefs_file = Path(preferences_file) if preferences_file else preferences_path()
        self.prefs = Preferences.load(self._prefs_file)
        if output_dir is not None:
            self.prefs.output_dir = str(output_dir)
        self._qsettings = qsettings or QSettings()
        self._closing = False
        self._gallery_paths = (gallery_db, thumbnail_dir)
        self.gallery_service = None  # made when the gallery is first opened: start-up stays light
        self.gallery_view = None
        self._last_failure = ""
        self._shown_once = False

        self.prompt_editor = PromptEditor()
        self.parameters = ParametersPanel()
        self.canvas = ImageCanvas()
        self.preview = PreviewPane()
        self.results = ResultsStrip()
        self.service = GenerationService(
            self.prefs.output_path(), device=self.prefs.device, dtype=self.prefs.dtype,
            engine_factory=engine_factory, parent=self,
        )
        self.queue_view = QueueView(self.service)
        self._build_layout()
        self._build_actions()
        self._connect()
        self._restore(model)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)  # quitting without closing must still stop the thread
        QTimer.singleShot(0, self._refresh_model_note)  # after the window shows: looks at the HF cache

    # ------------------------------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        params_scroll = QScrollArea(widgetResizable=True)
        params_scroll.setWidget(self.parameters)
        left = QSplitter(Qt.Orientation.Vertical, objectName="leftSplitter")
        left.addWidget(_group("Prompt", self.prompt_editor))
        left.addWidget(_group("Parameters", params_scroll))
        left.setStretchFactor(0, 2)
        left.setStretchFactor(1, 3)

        studio = QWidget()
        center_layout = QVBoxLayout(studio)
        center_layout.setContentsMargins(0, 0, 0, 0)
        center_layout.addWidget(self.preview, 1)
        center_layout.addWidget(self.results)
        self.tabs = QTabWidget(documentMode=True)
        self.tabs.addTab(studio, "Studio")
        self._gallery_holder = QWidget()
        QVBoxLayout(self._gallery_holder).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self._gallery_holder, "Gallery")
        self.tabs.currentChanged.connect(lambda index: index == 1 and self.open_gallery())
        center = self.tabs

        right = QSplitter(Qt.Orientation.Vertical, objectName="rightSplitter")
        right.addWidget(_group("img2img canvas", self.canvas))
        right.addWidget(_group("Queue", self.queue_view))

        self.splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        for widget in (left, center, right):
            self.splitter.addWidget(widget)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([360, 640, 300])
        self._splitters = [self.splitter, left, right]
        self.setCentralWidget(self.splitter)

        self.status_model = QLabel(accessibleName="Model and device")
        self._ran_on: tuple[str, str] | None = None  # (device, dtype) of the last image made
        self.statusBar().addPermanentWidget(self.status_model)
        self.resize(1280, 800)

    def _build_actions(self) -> None:
        def action(text, slot, shortcut=None, icon_name=None, tip=None) -> QAction:
            act = QAction(text, self)
            if shortcut:
                keys = shortcut if isinstance(shortcut, list) else [shortcut]
                act.setShortcuts([QKeySequence(k) for k in keys])
                act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if icon_name:
                act.setIcon(icon(icon_name))
            if tip:
                act.setToolTip(tip)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.act_generate = action(
            "&Generate", self.generate, [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")], "generate",
            "Generate (Ctrl+Return)",
        )
        self.act_cancel = action("&Cancel", self.cancel_current, "Escape", "cancel", "Cancel the running job (Esc)")
        self.act_cancel_all = action("Cancel &all", self.service.cancel_all, "Shift+Escape")
        self.act_open_image = action("&Open image for img2img…", self.canvas.open_file_dialog, "Ctrl+O", "open")
        self.act_paste_image = action("&Paste image to canvas", self._paste_image, "Ctrl+Shift+V")
        self.act_clear_canvas = action("C&lear canvas", self.canvas.clear)
        self.act_open_folder = action("Open output &folder", self.open_output_folder, "Ctrl+Shift+O", "folder")
        self.act_copy = action("&Copy image", self.results.copy_current, "Ctrl+Shift+C", "copy")
        self.act_reuse = action("&Reuse parameters", lambda: self._with_current(self.reuse_parameters), "Ctrl+R")
        self.act_reuse_seed = action("Reuse &seed", lambda: self._with_current(self.reuse_seed), "Ctrl+Shift+R")
        self.act_to_canvas = action("Send to &canvas", lambda: self._with_current(self.send_to_canvas), "Ctrl+Shift+I")
        self.act_focus_prompt = action("Focus prompt", self.prompt_editor.focus_prompt, "Ctrl+L")
        self.act_studio = action("&Studio", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1")
        self.act_gallery = action("&Gallery", lambda: self.tabs.setCurrentIndex(1), ["Ctrl+2", "Ctrl+G"])
        self.act_quit = action("&Quit", self.close, "Ctrl+Q")
        self.act_about = action("&About Latent Studio", self.show_about)

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for act in (self.act_open_image, self.act_paste_image, self.act_clear_canvas, self.act_open_folder):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        gen_menu = bar.addMenu("&Generate")
        for act in (self.act_generate, self.act_cancel, self.act_cancel_all):
            gen_menu.addAction(act)
        image_menu = bar.addMenu("&Image")
        for act in (self.act_copy, self.act_reuse, self.act_reuse_seed, self.act_to_canvas):
            image_menu.addAction(act)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.act_studio)
        view_menu.addAction(self.act_gallery)
        bar.addMenu("&Help").addAction(self.act_about)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.act_generate, self.act_cancel, self.act_open_image, self.act_open_folder):
            toolbar.addAction(act)

    def _connect(self) -> None:
        self.prompt_editor.generate_requested.connect(self.generate)
        self.parameters.model_changed.connect(lambda _spec: self._refresh_model_note())
        self.parameters.device.currentIndexChanged.connect(self._device_changed)
        self.parameters.dtype.currentIndexChanged.connect(self._device_changed)
        self.canvas.message.connect(self.show_message)
        self.canvas.image_changed.connect(self._canvas_changed)
        self.results.message.connect(self.show_message)
        self.results.selected.connect(self._show_result)
        self.results.reuse_parameters.connect(self.reuse_parameters)
        self.results.reuse_seed.connect(self.reuse_seed)
        self.results.send_to_canvas.connect(self.send_to_canvas)
        self.service.job_started.connect(lambda _job: self.preview.start("Loading model…"))
        self.service.step.connect(self._on_step)
        self.service.image_saved.connect(self._on_image_saved)
        self.service.job_finished.connect(lambda _job: self.preview.finish("Done"))
        self.service.job_failed.connect(self._on_failed)
        self.service.job_cancelled.connect(lambda _job: self.preview.finish("Cancelled"))
        self.service.status.connect(self._on_status)

    # ---------------------------------------------------------------------------------------- restore
    def _restore(self, model: str | None) -> None:
        self.parameters.load_preferences(self.prefs)
        if model:
            if model in CATALOG:
                self.parameters._select_model(model)
            else:
                self.parameters.add_local_model(model)
        self.prompt_editor.set_history([tuple(h) for h in self.prefs.history if len(h) == 2])
        self.prompt_editor.set_prompts(self.prefs.prompt, self.prefs.negative_prompt)
        if self.prefs.fit_mode in FIT_MODES:
            self.canvas.set_fit_mode(self.prefs.fit_mode)
        self._sync_canvas_size()
        self.parameters.width.valueChanged.connect(self._sync_canvas_size)
        self.parameters.height.valueChanged.connect(self._sync_canvas_size)
        geometry = self._qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self._qsettings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._update_status_model()
        self.prompt_editor.focus_prompt()

    def save_state(self) -> None:
        self.parameters.store_preferences(self.prefs)
        self.prefs.prompt = self.prompt_editor.prompt()
        self.prefs.negative_prompt = self.prompt_editor.negative_prompt()
        self.prefs.history = [list(h) for h in self.prompt_editor.history()]
        self.prefs.fit_mode = self.canvas.fit_mode()
        try:
            self.prefs.save(self._prefs_file)
        except OSError as exc:
            self.show_message(f"Could not save preferences: {exc}")
        self._qsettings.setValue("window/geometry", self.saveGeometry())
        self._qsettings.setValue("window/state", self.saveState())
        for splitter in self._splitters:
            self._qsettings.setValue(f"splitters/{splitter.objectName()}", splitter.saveState())
        self._qsettings.sync()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self._restore_splitters()
        self.prompt_editor.focus_prompt()

    def _restore_splitters(self) -> None:
        """After the first show: restored before, sizes are scaled to a splitter not yet laid out."""
        self.centralWidget().layout() and self.centralWidget().layout().activate()
        for splitter in self._splitters:
            state = self._qsettings.value(f"splitters/{splitter.objectName()}")
            if state is not None:
                splitter.restoreState(state)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save state and stop the worker. Runs once, on close or when the application quits."""
        if self._closing:
            return
        self._closing = True
        self.save_state()
        if self.gallery_view is not None:
            self.gallery_view.close()  # finishes a pending (undoable) delete
        if self.gallery_service is not None:
            self.gallery_service.shutdown()
        self.service.shutdown()  # cancels the running job within one step; saves are atomic

    # ------------------------------------------------------------------------------------- generation
    def generate(self) -> None:
        problem = self.parameters.size_problem()
        if problem:
            self.show_message(problem)
            return
        init = self.canvas.prepared_image() if self.canvas.has_image() else None
        prompt, negative = self.prompt_editor.prompt(), self.prompt_editor.negative_prompt()
        request = self.parameters.build_request(prompt, negative, init)
        try:
            request.validate()
        except RequestError as exc:
            self.show_message(str(exc))
            return
        self.prompt_editor.add_to_history(prompt, negative)
        self._last_failure = ""
        job = self.service.submit(request)
        self.show_message(f"Queued job #{job.id}")

    def cancel_current(self) -> None:
        job = self.service.running_job()
        if job is not None:
            self.service.cancel(job.id)
            self.show_message("Cancelling…")

    def _on_step(self, job_id: int, step: int, total: int, image: QImage, it_per_s: float, eta_s: float) -> None:
        self.preview.show_step(step, total, image, it_per_s, eta_s)

    def _on_image_saved(self, job_id: int, path: str, image: QImage, meta) -> None:
        meta = meta if isinstance(meta, dict) else {}
        if self.gallery_service is not None:
            self.gallery_service.index_paths([path])  # at once, not when the file watcher settles
        seed = meta.get("seed")
        self.results.add_result(Path(path), image, seed, meta)
        if isinstance(meta.get("device"), str) and isinstance(meta.get("dtype"), str):
            self._ran_on = (meta["device"], meta["dtype"])
            self._update_status_model()
        if isinstance(seed, int):
            self.parameters.remember_seed(seed)
        self.preview.show_result(image, _caption(Path(path), meta))

    def _on_failed(self, job_id: int, message: str) -> None:
        self.preview.finish("Failed")
        text = f"Job #{job_id} failed: {message}"
        self.preview.caption.setText(text)  # stays until the next result: a failure must not flash by
        self._last_failure = text
        self.show_message(text)

    def _on_status(self, text: str) -> None:
        if text == "Ready" and self._last_failure:
            return  # keep the failure readable in the status bar until it times out
        if text.startswith(("Downloading", "Loading model")):
            self.preview.progress.setFormat(text)  # the busy bar shows what the wait is for
        self.show_message(text)

    # ---------------------------------------------------------------------------------------- results
    def _with_current(self, fn) -> None:
        current = self.results.current()
        if current is None:
            self.show_message("No result selected")
            return
        fn(current)

    def _show_result(self, result: ResultItem | None) -> None:
        if result is None:
            return
        image = QImage(str(result.path))
        if not image.isNull():
            self.preview.show_result(image, _caption(result.path, result.metadata))

    def reuse_parameters(self, result: ResultItem) -> None:
        request = dict(result.metadata.get("request") or {})
        model = result.metadata.get("model") or {}
        fields = {**request, "seed": result.metadata.get("seed", request.get("seed")), "model": model.get("path") or model.get("id")}
        self.parameters.apply_fields(fields)
        self.prompt_editor.set_prompts(request.get("prompt", ""), request.get("negative_prompt", ""))
        self.show_message(f"Parameters of {result.path.name} restored")

    def reuse_seed(self, result: ResultItem) -> None:
        if result.seed is not None:
            self.parameters.set_seed(result.seed)
            self.show_message(f"Seed {result.seed} fixed")

    def send_to_canvas(self, result: ResultItem) -> None:
        try:
            self.canvas.set_image(load_image(result.path), str(result.path))
        except ImageLoadError as exc:
            self.show_message(str(exc))

    def apply_image_fields(self, fields: dict, origin: str = "") -> None:
        """Restore parameters read from any image's metadata (ours, A1111, ComfyUI, InvokeAI).

        Another tool's model name ("dreamshaper_8") is not a model we can load: it is reported, not
        added to the model list.
        """
        fields = dict(fields)
        model = fields.get("model")
        note = ""
        if model and model not in CATALOG and not Path(str(model)).exists():
            fields.pop("model")
            note = f" (model {model!r} is not available here: kept the current one)"
        self.parameters.apply_fields(fields)
        if "prompt" in fields or "negative_prompt" in fields:
            self.prompt_editor.set_prompts(fields.get("prompt") or "", fields.get("negative_prompt") or "")
        self.show_message(f"Parameters restored{' from ' + origin if origin else ''}{note}")

    # ---------------------------------------------------------------------------------------- gallery
    def open_gallery(self) -> None:
        """The library browser, made on first use; the output folder is always part of the library."""
        if self.gallery_view is None:
            from studio.settings import cache_dir, data_dir
            from studio.ui.gallery_view import GalleryView
            from studio.worker.gallery import GalleryService

            db, thumbs = self._gallery_paths
            self.gallery_service = GalleryService(
                db or data_dir() / "gallery.sqlite3", thumbs or cache_dir() / "thumbnails", parent=self
            )
            self.gallery_view = GalleryView(self.gallery_service)
            self._gallery_holder.layout().addWidget(self.gallery_view)
            self.gallery_view.reuse_parameters.connect(lambda fields: self.apply_image_fields(fields, "the gallery"))
            self.gallery_view.reuse_seed.connect(self.parameters.set_seed)
            self.gallery_view.send_to_canvas.connect(lambda path: self.canvas.load_file(Path(path)))
            self.gallery_view.message.connect(self.show_message)  # forwards the service's messages too
            output = self.prefs.output_path()
            output.mkdir(parents=True, exist_ok=True)
            self.gallery_service.ensure_folder(output)
            self.gallery_service.scan()
        if self.tabs.currentIndex() != 1:
            self.tabs.setCurrentIndex(1)

    # ----------------------------------------------------------------------------------- drag & drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.offer_restore(paths[0])

    def offer_restore(self, path: Path) -> QMessageBox | None:
        """An image dropped on the window: if it carries generation parameters, offer to restore them."""
        from studio.library.metadata import MetadataError, read_metadata

        try:
            meta = read_metadata(path)
        except (MetadataError, OSError) as exc:
            self.show_message(str(exc))
            return None
        if meta is None:
            self.show_message(f"{path.name} carries no generation parameters (drop it on the canvas for img2img)")
            return None
        fields = meta.to_request_fields()
        summary = ", ".join(f"{k} {v}" for k, v in fields.items() if k in ("seed", "steps", "model"))
        box = QMessageBox(
            QMessageBox.Icon.Question, "Restore parameters?",
            f"{path.name} was made with {meta.source}.\nRestore its prompt and parameters ({summary})?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self,
        )
        box.button(QMessageBox.StandardButton.Yes).clicked.connect(lambda: self.apply_image_fields(fields, path.name))
        box.open()  # not modal-blocking: the window keeps running (and tests can answer it)
        return box

    # ------------------------------------------------------------------------------------------ misc
    def _paste_image(self) -> None:
        if not self.canvas.paste_from_clipboard():
            self.show_message("The clipboard holds no image")

    def _canvas_changed(self) -> None:
        self.parameters.strength.setEnabled(self.canvas.has_image())

    def _sync_canvas_size(self) -> None:
        self.canvas.set_output_size(self.parameters.width.value(), self.parameters.height.value())

    def _device_changed(self) -> None:
        self._ran_on = None
        self.service.set_device(str(self.parameters.device.currentData()), str(self.parameters.dtype.currentData()))
        self._update_status_model()

    def _update_status_model(self) -> None:
        device = self.parameters.device.currentText()
        dtype = self.parameters.dtype.currentText()
        if self._ran_on is not None:  # what "Auto" came to for the last image
            ran_device, ran_dtype = self._ran_on
            if self.parameters.device.currentData() == "auto":
                device = f"Auto ({ran_device})"
            if self.parameters.dtype.currentData() == "auto":
                dtype = f"Auto ({ran_dtype})"
        self.status_model.setText(f"{self.parameters.model.currentText()} · {device} · {dtype}")

    def _refresh_model_note(self) -> None:
        self._update_status_model()
        entry = CATALOG.get(self.parameters.model_spec())
        if entry is None:
            self.parameters.set_model_note("")
            return
        from studio.engine.loading import is_in_local_cache

        if is_in_local_cache(entry.repo, entry.revision, entry):
            self.parameters.set_model_note(entry.notes)
        else:
            self.parameters.set_model_note(
                f"Not downloaded yet: {entry.repo} is fetched into the Hugging Face cache on the first "
                "generation (needs network). " + entry.notes
            )

    def open_output_folder(self) -> None:
        folder = self.prefs.output_path()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MS)

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", about_text())


def about_text() -> str:
    """Versions without importing torch (package metadata only)."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    def version(name: str) -> str:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"<b>{APP_NAME}</b> {__version__}<br>Local text-to-image and image-to-image.<br><br>"
        f"torch {version('torch')}<br>diffusers {version('diffusers')}<br>transformers {version('transformers')}<br>"
        f"Qt {qVersion()} (PySide6 {pyside_version})"
    )


def _caption(path: Path, meta: dict) -> str:
    request = meta.get("request") or {}
    parts = [path.name]
    if "seed" in meta:
        parts.append(f"seed {meta['seed']}")
    if request.get("steps"):
        parts.append(f"{request['steps']} steps")
    if meta.get("nsfw"):
        parts.append("flagged by the safety checker")
    return " · ".join(parts)


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.addWidget(widget)
    return box

