"""The main window: two pages. Studio: the prompt on the left, over the parameters and the LoRA and embedding
browser (two tabs), previews and results in the
middle, the img2img canvas and the job queue on the right (both side panels collapse, so it fits a
1024x640 screen). Gallery: the image library, using the window's whole width. Every action has a
keyboard shortcut, listed under Help.

The window is layout and actions: its state and what the actions do live in the session's view-models
(:class:`~studio.viewmodel.session.StudioSession`), which the panels bind to. It never touches torch:
generation runs in the engine's thread, and the window only sees signals carrying QImages.
"""

from __future__ import annotations

import html
from importlib import metadata as importlib_metadata
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGroupBox,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio import __version__
from studio.library.display import printable
from studio.library.paths import APP_NAME
from studio.ui.canvas import PASTE_KEYS, ImageCanvas
from studio.ui.icons import icon
from studio.ui.network_browser import NetworkBrowserPanel
from studio.ui.parameters import ParametersPanel
from studio.ui.plain_text import one_line, plain_label
from studio.ui.preview import PreviewPane
from studio.ui.prompt_editor import PromptEditor
from studio.ui.questions import ask
from studio.ui.queue_view import QueueView
from studio.ui.results import ResultsStrip
from studio.ui.theme import THEMES, apply_theme
from studio.viewmodel.session import SavedImage, StudioSession, caption

STATUS_MS = 6000
DEFAULT_SIZE = QSize(1280, 800)
STUDIO_PAGE, GALLERY_PAGE = 0, 1
PARAMETERS_TAB, NETWORKS_TAB = 0, 1


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
        queue_file: Path | None = None,
        model_cache_dir: Path | None = None,
    ):
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.session = StudioSession(
            preferences_file=preferences_file, output_dir=output_dir, engine_factory=engine_factory,
            queue_file=queue_file, model_cache_dir=model_cache_dir, parent=self,
        )
        self._qsettings = qsettings or QSettings()
        self._closing = False
        self._quit_confirmed = False
        self._gallery_paths = (gallery_db, thumbnail_dir)
        self.gallery_view = None
        self.models_dialog = None
        self.preferences_dialog = None
        self.model_manager = None
        self._shown_once = False

        self.prompt_editor = PromptEditor(self.session.prompt)
        self.network_browser = self.session.networks  # LoRAs and embeddings, scanned in the background
        self.network_panel = NetworkBrowserPanel(self.network_browser, self.prompt_editor)
        self.parameters = ParametersPanel(self.session.settings)
        self.canvas = ImageCanvas(self.session.canvas, mask=self.session.mask)
        self.preview = PreviewPane()
        self.preview.follow(self.session)
        self.results = ResultsStrip()
        self.queue_view = QueueView(self.session.queue)
        self._build_layout()
        self._build_actions()
        self._connect()
        self._restore(model)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)  # quitting without closing must still stop the thread
        QTimer.singleShot(0, self._offer_saved_queue)

    # ------------------------------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        params_scroll = QScrollArea(widgetResizable=True)
        params_scroll.setWidget(self.parameters)
        params_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        params_scroll.setMinimumWidth(self.parameters.minimumSizeHint().width() + 24)
        self.left_panel = QSplitter(Qt.Orientation.Vertical, objectName="leftSplitter")
        self.left_panel.addWidget(_group("Prompt", self.prompt_editor))
        # Under the prompt, so a click in the browser inserts where the prompt stays in view.
        self.left_tabs = QTabWidget(objectName="leftTabs")
        self.left_tabs.addTab(params_scroll, "Parameters")
        self.left_tabs.addTab(self.network_panel, "LoRAs && embeddings")
        self.left_tabs.setTabToolTip(NETWORKS_TAB, "Click one to insert it at the prompt's cursor (Ctrl+Shift+L)")
        self.left_panel.addWidget(self.left_tabs)
        self.left_panel.setStretchFactor(0, 2)
        self.left_panel.setStretchFactor(1, 3)

        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(0, 0, 0, 0)
        center_layout.addWidget(self.preview, 1)
        center_layout.addWidget(self.results)

        self.right_panel = QSplitter(Qt.Orientation.Vertical, objectName="rightSplitter")
        self.right_panel.addWidget(_group("Canvas: img2img, inpainting, outpainting", self.canvas))
        self.right_panel.addWidget(_group("Queue", self.queue_view))

        self.splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        for widget in (self.left_panel, center, self.right_panel):
            self.splitter.addWidget(widget)
        self.splitter.setCollapsible(1, False)  # the side panels fold away; the preview never does
        self.splitter.setStretchFactor(1, 1)
        self._splitters = [self.splitter, self.left_panel, self.right_panel]

        # The gallery is a page of its own, with the whole width of the window.
        self.tabs = QTabWidget(documentMode=True)
        self.tabs.addTab(self.splitter, "Studio")
        self._gallery_holder = QWidget()
        QVBoxLayout(self._gallery_holder).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self._gallery_holder, "Gallery")
        self.tabs.currentChanged.connect(lambda index: index == GALLERY_PAGE and self.open_gallery())
        self.setCentralWidget(self.tabs)

        self.status_model = plain_label(accessibleName="Model and device")  # a local model's name: not HTML
        self.statusBar().addPermanentWidget(self.status_model)

    def _build_actions(self) -> None:
        def action(text, slot, shortcut=None, icon_name=None, tip=None, *, checkable=False) -> QAction:
            act = QAction(text, self, checkable=checkable)
            if shortcut:
                keys = shortcut if isinstance(shortcut, list) else [shortcut]
                act.setShortcuts([QKeySequence(k) for k in keys])
                act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if icon_name:
                act.setIcon(icon(icon_name))
            if tip:
                act.setToolTip(tip)
            (act.toggled if checkable else act.triggered).connect(slot)
            self.addAction(act)
            return act

        self.act_generate = action(
            "&Generate", self.generate, [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")], "generate",
            "Generate (Ctrl+Return)",
        )
        self.act_cancel = action(
            "&Cancel", self.escape_pressed, "Escape", "cancel",
            "Cancel the running job (Esc; in the gallery, Esc clears the search first)",
        )
        self.act_cancel_all = action("Cancel &all", self.session.queue.cancel_all, "Shift+Escape")
        self.act_open_image = action("&Open image for img2img…", self.canvas.open_file_dialog, "Ctrl+O", "open")
        self.act_paste_image = action("&Paste image to canvas", self._paste_image, PASTE_KEYS)
        self.act_clear_canvas = action("C&lear canvas", self.canvas.clear)
        self.act_models = action("&Models…", self.open_models, "Ctrl+Shift+M", tip="Download and remove models")
        self.act_preferences = action(
            "&Preferences…", self.open_preferences, "Ctrl+,", tip="Where jobs run: this computer or a server"
        )
        self.act_choose_folder = action("Choose output fol&der…", self.choose_output_folder)
        self.act_open_folder = action("Open output &folder", self.open_output_folder, "Ctrl+Shift+O", "folder")
        self.act_copy = action("&Copy image", self.results.copy_current, "Ctrl+Shift+C", "copy")
        self.act_reuse = action("&Reuse parameters", lambda: self._with_current(self.reuse_parameters), "Ctrl+R")
        self.act_reuse_seed = action("Reuse &seed", lambda: self._with_current(self.reuse_seed), "Ctrl+Shift+R")
        self.act_to_canvas = action(
            "Send to &canvas (use as new init)", lambda: self._with_current(self.send_to_canvas), "Ctrl+Shift+I"
        )
        self.act_focus_prompt = action("Focus prompt", self.prompt_editor.focus_prompt, "Ctrl+L")
        self.act_networks = action(
            "&LoRAs and embeddings", self.show_networks, "Ctrl+Shift+L",
            tip="Browse the LoRAs and embeddings and insert them into the prompt (Ctrl+Shift+L)",
        )
        self.act_studio = action("&Studio", lambda: self.tabs.setCurrentIndex(STUDIO_PAGE), "Ctrl+1")
        self.act_gallery = action("&Gallery", lambda: self.tabs.setCurrentIndex(GALLERY_PAGE), ["Ctrl+2", "Ctrl+G"])
        self.act_left_panel = action("&Prompt and parameters panel", self._show_left, "F8", checkable=True)
        self.act_right_panel = action("Canvas and &queue panel", self._show_right, "F9", checkable=True)
        self.act_quit = action("&Quit", self.close, "Ctrl+Q")
        self.act_shortcuts = action("&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = action("&About Latent Studio", self.show_about)
        self.act_left_panel.setChecked(True)
        self.act_right_panel.setChecked(True)

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for act in (self.act_open_image, self.act_paste_image, self.act_clear_canvas):
            file_menu.addAction(act)
        file_menu.addSeparator()
        for act in (self.act_models, self.act_choose_folder, self.act_open_folder, self.act_preferences):
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
        for act in (self.act_studio, self.act_gallery):
            view_menu.addAction(act)
        view_menu.addAction(self.act_networks)
        view_menu.addSeparator()
        view_menu.addAction(self.act_left_panel)
        view_menu.addAction(self.act_right_panel)
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_actions = QActionGroup(self)
        for key, label in THEMES.items():
            act = QAction(label, self, checkable=True)
            act.setData(key)
            act.triggered.connect(lambda _on=False, k=key: self.set_theme(k))
            self.theme_actions.addAction(act)
            theme_menu.addAction(act)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_about)
        self.menus = {"File": file_menu, "Generate": gen_menu, "Image": image_menu, "View": view_menu, "Help": help_menu}

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.act_generate, self.act_cancel, self.act_open_image, self.act_open_folder):
            toolbar.addAction(act)

    def _connect(self) -> None:
        session = self.session
        self.prompt_editor.generate_requested.connect(self.generate)
        session.message.connect(self.show_message)
        session.download_needed.connect(self._offer_download_first)
        session.result_added.connect(self.results.add_result)
        session.status_line_changed.connect(self.status_model.setText)
        self.status_model.setText(session.status_line)
        self.canvas.message.connect(self.show_message)
        self.network_panel.message.connect(self.show_message)
        self.results.message.connect(self.show_message)
        self.results.selected.connect(self._show_result)
        self.results.reuse_parameters.connect(self.reuse_parameters)
        self.results.reuse_seed.connect(self.reuse_seed)
        self.results.send_to_canvas.connect(self.send_to_canvas)
        self.preview.open_models.connect(self.open_models)
        self.preview.add_model.connect(self.parameters.show_add_menu)
        self.splitter.splitterMoved.connect(lambda *_: self._sync_panel_actions())

    # ---------------------------------------------------------------------------------------- restore
    def _restore(self, model: str | None) -> None:
        if model:
            self.session.use_model(model)
        self.set_theme(self.session.app.theme, save=False)
        geometry = self._qsettings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(DEFAULT_SIZE)
        state = self._qsettings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.fit_to_screen()
        self.prompt_editor.focus_prompt()

    def fit_to_screen(self, available: QRect | None = None) -> None:
        """Keep the window inside the screen's available area (a small laptop screen, a geometry saved
        on a bigger monitor): never larger, never off its edges."""
        if available is None:
            screen = self.screen() or QApplication.primaryScreen()
            if screen is None:
                return
            available = screen.availableGeometry()
        if self.isMaximized() or self.isFullScreen():
            return
        frame_extra = self.frameGeometry().size() - self.geometry().size()
        width = min(self.width(), available.width() - max(frame_extra.width(), 0))
        height = min(self.height(), available.height() - max(frame_extra.height(), 0))
        width = max(width, min(self.minimumSizeHint().width(), available.width()))
        height = max(height, min(self.minimumSizeHint().height(), available.height()))
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        frame = self.frameGeometry()
        x = min(max(frame.x(), available.left()), available.right() + 1 - frame.width())
        y = min(max(frame.y(), available.top()), available.bottom() + 1 - frame.height())
        if (x, y) != (frame.x(), frame.y()):
            self.move(max(x, available.left()), max(y, available.top()))

    def save_state(self) -> None:
        """The view-models' preferences (the session), then the window's geometry (QSettings)."""
        self.session.save()
        self._save_window_state()

    def _save_window_state(self) -> None:
        """Geometry, toolbars, splitters and panels: Qt's business, kept in QSettings."""
        self._qsettings.setValue("window/geometry", self.saveGeometry())
        self._qsettings.setValue("window/state", self.saveState())
        for splitter in self._splitters:
            self._qsettings.setValue(f"splitters/{splitter.objectName()}", splitter.saveState())
        self._qsettings.setValue("panels/left", self.act_left_panel.isChecked())
        self._qsettings.setValue("panels/right", self.act_right_panel.isChecked())
        self._qsettings.sync()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self._restore_splitters()
            self.fit_to_screen()
        self.prompt_editor.focus_prompt()

    def _restore_splitters(self) -> None:
        """After the first show: restored before, sizes are scaled to a splitter not yet laid out."""
        self.centralWidget().layout() and self.centralWidget().layout().activate()
        for splitter in self._splitters:
            state = self._qsettings.value(f"splitters/{splitter.objectName()}")
            if state is not None:
                splitter.restoreState(state)
            elif splitter is self.splitter:
                self._default_panel_sizes()
        for act, key in ((self.act_left_panel, "panels/left"), (self.act_right_panel, "panels/right")):
            act.setChecked(str(self._qsettings.value(key, "true")).lower() != "false")
        self._sync_panel_actions()

    # ------------------------------------------------------------------------------------ side panels
    def _default_panel_sizes(self) -> None:
        """First start: side panels at their comfortable share of this window, the preview gets the rest
        (a fixed 360/640/300 would squeeze the preview to nothing on a 1024 px screen)."""
        total = sum(self.splitter.sizes()) or self.width()
        left = max(self.left_panel.minimumSizeHint().width(), int(total * 0.30))
        right = max(self.right_panel.minimumSizeHint().width(), int(total * 0.26))
        self.splitter.setSizes([left, max(total - left - right, 160), right])

    def show_networks(self) -> None:
        """The LoRA and embedding browser, its search box focused (the left panel shown if it was hidden)."""
        self.tabs.setCurrentIndex(STUDIO_PAGE)
        if not self.act_left_panel.isChecked():
            self.act_left_panel.setChecked(True)
        self.left_tabs.setCurrentIndex(NETWORKS_TAB)
        self.network_panel.focus_search()

    def _show_left(self, shown: bool) -> None:
        self._show_panel(self.left_panel, shown)

    def _show_right(self, shown: bool) -> None:
        self._show_panel(self.right_panel, shown)

    def _show_panel(self, panel: QWidget, shown: bool) -> None:
        """Hidden, not just dragged to zero: a hidden panel no longer counts in the window's minimum
        width, so a small screen gets the room."""
        panel.setVisible(shown)
        self.splitter.updateGeometry()  # the cached minimum sizes up to the window are recomputed

    def _sync_panel_actions(self) -> None:
        """A panel dragged shut counts as hidden: the menu's check marks say what is on screen."""
        sizes = self.splitter.sizes()
        for act, panel, size in ((self.act_left_panel, self.left_panel, sizes[0]), (self.act_right_panel, self.right_panel, sizes[2])):
            blocked = act.blockSignals(True)
            act.setChecked(panel.isVisibleTo(self) and size > 0)
            act.blockSignals(blocked)

    # ------------------------------------------------------------------------------------------- quit
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        pending = len(self.session.queue.pending_requests())
        if pending and not self._quit_confirmed and not self._closing:
            event.ignore()
            self._ask_to_quit(pending)
            return
        self.shutdown()
        super().closeEvent(event)

    def _ask_to_quit(self, pending: int) -> QMessageBox:
        jobs = "1 job is" if pending == 1 else f"{pending} jobs are"
        return ask(
            self, "Quit Latent Studio?",
            f"{jobs} running or waiting. Quit now?\n\nThe queue is kept: the next start offers to resume it "
            "(a running job starts again from its first step).",
            name="quitBox", choices=[("Quit and keep the queue", QMessageBox.ButtonRole.AcceptRole, self._confirm_quit)],
        )

    def _confirm_quit(self) -> None:
        self._quit_confirmed = True
        self.close()

    def shutdown(self) -> None:
        """Keep the queue, save state and stop the workers. Runs once, on close or when the app quits."""
        if self._closing:
            return
        self._closing = True
        self._save_window_state()
        if self.gallery_view is not None:
            self.gallery_view.close()  # finishes a pending (undoable) delete
        if self.model_manager is not None:
            self.model_manager.shutdown()
        self.session.shutdown()  # keeps the queue and the preferences; cancels the running job within one step

    def _offer_saved_queue(self) -> QMessageBox | None:
        """Jobs left from the last session: offer to run them again (or forget them)."""
        saved = self.session.saved_queue()
        if not saved.requests:
            if saved.skipped:
                self.session.discard_unreadable_queue()
            return None
        count = len(saved.requests)
        jobs = "1 job" if count == 1 else f"{count} jobs"
        were = "was" if count == 1 else "were"
        skipped = f" ({saved.skipped} could not be read)" if saved.skipped else ""
        return ask(
            self, "Resume the queue?", f"{jobs} {were} waiting when Latent Studio last quit{skipped}. Run them now?",
            name="resumeBox", cancel=False,
            choices=[
                ("Resume", QMessageBox.ButtonRole.AcceptRole, lambda: self.session.resume(saved, True)),
                ("Discard", QMessageBox.ButtonRole.DestructiveRole, lambda: self.session.resume(saved, False)),
            ],
        )

    # ------------------------------------------------------------------------------------- generation
    def generate(self) -> None:
        self.session.generate()

    def _offer_download_first(self, entry) -> QMessageBox:
        """A catalogue model that is not downloaded: the download is a deliberate step (size, progress,
        cancel) in the model manager, not a surprise inside the first generation."""
        return ask(
            self, "Download the model first",
            f"{entry.name} is not downloaded yet ({entry.repo}).\n\nDownload it in Models (it needs a network "
            "connection; you can follow the progress and cancel), or add a local model file or folder.",
            name="downloadFirstBox", icon=QMessageBox.Icon.Information,
            choices=[("Open Models…", QMessageBox.ButtonRole.AcceptRole, lambda: self.open_models(select=entry.id))],
        )

    def escape_pressed(self) -> None:
        """Escape acts on what has focus first: in the gallery it clears the search or the selection and
        never cancels a generation; elsewhere it cancels the running job."""
        if self.tabs.currentIndex() == GALLERY_PAGE:
            if self.gallery_view is not None:
                self.gallery_view.handle_escape()
            return
        self.cancel_current()

    def cancel_current(self) -> None:
        self.session.cancel_current()

    # ---------------------------------------------------------------------------------------- results
    def _with_current(self, fn) -> None:
        current = self.results.current()
        if current is None:
            self.show_message("No result selected")
            return
        fn(current)

    def _show_result(self, result: SavedImage | None) -> None:
        if result is None:
            return
        image = QImage(str(result.path))
        if not image.isNull():
            self.preview.show_result(image, caption(result))

    def reuse_parameters(self, result: SavedImage) -> str:
        return self.session.reuse_parameters(result)

    def reuse_seed(self, result: SavedImage) -> None:
        self.session.reuse_seed(result.seed)

    def send_to_canvas(self, result: SavedImage) -> None:
        """The result as the new init image, at its size, the mask kept: an artist iterates on it."""
        self.session.use_as_init(result.path)

    def apply_image_fields(self, fields: dict, origin: str = "") -> str:
        """Restore parameters read from any image's metadata; returns the message shown."""
        return self.session.apply_image_fields(fields, origin)

    # ---------------------------------------------------------------------------------------- gallery
    def open_gallery(self) -> None:
        """The library browser, made on first use; the output folder is always part of the library."""
        from studio.library.paths import cache_dir, data_dir

        db, thumbs = self._gallery_paths
        browser = self.session.open_gallery(db or data_dir() / "gallery.sqlite3", thumbs or cache_dir() / "thumbnails")
        if self.gallery_view is None:
            from studio.ui.gallery_view import GalleryView

            self.gallery_view = GalleryView(browser)
            self._gallery_holder.layout().addWidget(self.gallery_view)
            self.gallery_view.reuse_parameters.connect(lambda fields: self.apply_image_fields(fields, "the gallery"))
            self.gallery_view.reuse_seed.connect(self.session.reuse_seed)
            self.gallery_view.send_to_canvas.connect(lambda path: self.canvas.load_file(Path(path)))
            self.gallery_view.message.connect(self.show_message)  # forwards the browser's messages too
            browser.catalogue_rebuilt.connect(self._tell_catalogue_rebuilt)
        if self.tabs.currentIndex() != GALLERY_PAGE:
            self.tabs.setCurrentIndex(GALLERY_PAGE)

    def _tell_catalogue_rebuilt(self, report) -> QMessageBox:
        """A damaged catalogue was moved aside and rebuilt: said in a box, not only the status bar (the
        scan that follows would replace that line at once), since ratings stay in the old file."""
        return ask(
            self, "Gallery catalogue rebuilt", printable(report.describe()), name="catalogue-rebuilt",
            choices=[("OK", QMessageBox.ButtonRole.AcceptRole, lambda: None)], cancel=False,
            icon=QMessageBox.Icon.Information,
        )

    # ----------------------------------------------------------------------------------------- models
    def open_preferences(self) -> None:
        """Preferences -> Backend: this computer or a server."""
        from studio.ui.preferences_dialog import PreferencesDialog

        if self.preferences_dialog is None:
            self.preferences_dialog = PreferencesDialog(self.session.backend, parent=self)
        self.preferences_dialog.load()
        self.preferences_dialog.open()

    def open_models(self, select: str | None = None) -> None:
        """The model manager: catalogue downloads (progress, cancel, resume), removal, local models."""
        from studio.ui.models_dialog import ModelsDialog
        from studio.viewmodel.model_manager import ModelManager

        if self.model_manager is None:
            self.model_manager = ModelManager(cache_dir=self.session.model_cache_dir, parent=self)
            self.model_manager.finished.connect(lambda _id, _path: self.session.refresh_model_note())
            self.model_manager.removed.connect(lambda _id, _freed: self.session.refresh_model_note())
        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self.model_manager, self.session.settings, parent=self)
            self.models_dialog.use_model.connect(self._use_model)
        self.models_dialog.refresh()
        if isinstance(select, str):
            self.models_dialog.select(select)
        self.models_dialog.show()
        self.models_dialog.raise_()
        self.models_dialog.activateWindow()

    def _use_model(self, spec: str) -> None:
        self.session.settings.select_model(spec)
        self.tabs.setCurrentIndex(STUDIO_PAGE)

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
        """An image dropped on the window: if it carries generation parameters, offer to restore them.

        Everything the box shows comes from the file (its name too): plain text (a model named
        "<img src=...>" must not be rendered as HTML), made printable and cut by the session.
        """
        offer = self.session.restore_offer(path)
        if offer is None:
            return None
        box = QMessageBox(
            QMessageBox.Icon.Question, "Restore parameters?", "",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self,
        )
        box.setTextFormat(Qt.TextFormat.PlainText)  # before the text: it is never parsed as HTML
        box.setText(offer.question())
        box.button(QMessageBox.StandardButton.Yes).clicked.connect(
            lambda: self.session.apply_image_fields(offer.fields, offer.name)
        )
        box.open()  # not modal-blocking: the window keeps running (and tests can answer it)
        return box

    # ------------------------------------------------------------------------------------------ misc
    def _paste_image(self) -> None:
        if not self.canvas.paste_from_clipboard():
            self.show_message("The clipboard holds no image")

    def output_path(self) -> Path:
        """Where images go: this run's --output-dir, else the folder chosen in the preferences."""
        return self.session.output_path()

    def choose_output_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save images in", str(self.output_path()))
        if folder:
            self.set_output_folder(Path(folder))

    def set_output_folder(self, folder: Path) -> None:
        """The user's choice: saved in the preferences (unlike a command-line --output-dir)."""
        self.session.set_output_folder(folder)

    def open_output_folder(self) -> bool:
        folder = self.output_path()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.show_message(f"Cannot create {folder}: {exc.strerror or exc}")
            return False
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            return True
        QApplication.clipboard().setText(str(folder))
        self.show_message(f"No file manager could open {folder} (its path is copied to the clipboard)")
        return False

    def set_theme(self, key: str, *, save: bool = True) -> None:
        apply_theme(key)
        for act in self.theme_actions.actions():
            act.setChecked(act.data() == key)
        if save:
            self.session.app.theme = key

    def show_message(self, text: str) -> None:
        """One line in the status bar (which paints plain text); messages name files, models and
        errors, so their control characters are made visible and line breaks become spaces."""
        self.statusBar().showMessage(one_line(text), STATUS_MS)

    def show_shortcuts(self) -> None:
        from studio.ui.shortcuts import ShortcutsDialog

        dialog = ShortcutsDialog(self.shortcut_groups(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def shortcut_groups(self) -> dict[str, list[tuple[str, str]]]:
        """Every keyboard shortcut, by where it works: read from the actions themselves, so the list is
        never out of date, plus the keys fields handle on their own."""
        from studio.ui.shortcuts import FIELD_KEYS, action_rows

        groups = {title: action_rows(menu.actions()) for title, menu in self.menus.items()}
        groups["Window"] = action_rows([self.act_focus_prompt])
        if self.gallery_view is not None:
            groups["Gallery"] = action_rows(self.gallery_view.actions() + self.gallery_view.grid_actions())
        groups["Queue"] = action_rows(self.queue_view.actions())
        groups.update(FIELD_KEYS)
        return {k: v for k, v in groups.items() if v}

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", about_text())


def about_text() -> str:
    """Versions without importing torch (package metadata only)."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    def version(name: str) -> str:  # the box is rich text: every value put in it is escaped
        try:
            return html.escape(importlib_metadata.version(name))
        except importlib_metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"<b>{html.escape(APP_NAME)}</b> {html.escape(__version__)}<br>"
        "Local text-to-image and image-to-image.<br><br>"
        f"torch {version('torch')}<br>diffusers {version('diffusers')}<br>transformers {version('transformers')}<br>"
        f"Qt {html.escape(qVersion())} (PySide6 {html.escape(pyside_version)})"
    )


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.addWidget(widget)
    return box
