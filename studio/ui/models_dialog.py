"""The model manager: what is downloaded, how big it is, download (progress, cancel, resume), remove to
the trash, reveal the folder; and the local folders and files the user added.

A download is a deliberate step here rather than a surprise inside the first generation. The dialog
shows a :class:`~studio.viewmodel.model_manager.ModelManager` (which runs downloads and removals in the
background and keeps their progress); it can be closed meanwhile (the download goes on, and the busy row
says so when it is opened again). The local models are the window's list, given as any object with a
``model_changed(str)`` signal, ``local_models()``, ``remove_local_model(spec)`` and
``try_add_local_model(spec)`` (:class:`LocalModels`). A third section lists the models optimised for this
CPU (the OpenVINO cache), which can take gigabytes of their own: each can be removed (it is made again on
the model's next use on OpenVINO).

Local models are paths the user picked, and their folders' names may hold anything (a name like
"<img src=...>"); error messages quote them. The note is plain text and tooltips are plain tooltips
(:mod:`studio.ui.plain_text`), so none of it is ever rendered as HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PySide6.QtCore import Qt, QUrl, Signal, SignalInstance
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.library.display import printable
from studio.library.openvino_cache import CachedModel
from studio.ui.plain_text import plain_label, plain_tooltip
from studio.ui.questions import ask
from studio.viewmodel.model_manager import ModelManager

ID_ROLE = int(Qt.ItemDataRole.UserRole)
KIND_ROLE = int(Qt.ItemDataRole.UserRole) + 1  # "catalog" | "local" | "openvino"
COLUMNS = ("Model", "Status", "On disk", "Where")
OPENVINO_SECTION = "Optimised for this CPU (OpenVINO)"


class LocalModels(Protocol):
    """The window's list of added local models (the parameters panel, or its view-model)."""

    model_changed: SignalInstance  # (spec) a model was added, removed or chosen

    def local_models(self) -> list[str]: ...

    def remove_local_model(self, spec: str) -> bool: ...

    def try_add_local_model(self, spec: str) -> bool: ...


def format_bytes(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} TB"


class ModelsDialog(QDialog):
    """Non-modal; `use_model(spec)` when the user picks a model to work with."""

    use_model = Signal(str)

    def __init__(self, manager: ModelManager, models: LocalModels, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelsDialog")
        self.manager = manager
        self.models = models

        self.tree = QTreeWidget(accessibleName="Models")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self._catalog_root = QTreeWidgetItem(self.tree, ["Catalogue (Hugging Face hub)"])
        self._local_root = QTreeWidgetItem(self.tree, ["Added local folders and files"])
        self._openvino_root = QTreeWidgetItem(self.tree, [OPENVINO_SECTION])
        self._roots = (self._catalog_root, self._local_root, self._openvino_root)
        self._optimised: dict[str, CachedModel] = {}  # the OpenVINO cache as last read, by folder
        for root in self._roots:
            root.setFlags(root.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            root.setFirstColumnSpanned(True)
            root.setExpanded(True)

        self.progress = QProgressBar(accessibleName="Download progress", textVisible=True)
        self.progress.setVisible(False)
        self.note = plain_label(wordWrap=True, accessibleName="Model details")  # paths, errors: never HTML
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.download_button = QPushButton("&Download")
        self.cancel_button = QPushButton("&Cancel download")
        self.remove_button = QPushButton("&Remove…")
        self.reveal_button = QPushButton("Re&veal")
        self.use_button = QPushButton("&Use")
        self.add_file_button = QPushButton("Add &file…")
        self.add_folder_button = QPushButton("Add f&older…")
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        self.download_button.clicked.connect(self.download_selected)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.reveal_button.clicked.connect(self.reveal_selected)
        self.use_button.clicked.connect(self.use_selected)
        self.add_file_button.clicked.connect(self._add_file)
        self.add_folder_button.clicked.connect(self._add_folder)

        actions = QHBoxLayout()
        for button in (self.download_button, self.cancel_button, self.remove_button, self.reveal_button, self.use_button):
            actions.addWidget(button)
        actions.addStretch(1)
        local = QHBoxLayout()
        for button in (self.add_file_button, self.add_folder_button):
            local.addWidget(button)
        local.addStretch(1)
        local.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.note)
        layout.addWidget(self.progress)
        layout.addLayout(actions)
        layout.addLayout(local)
        self.resize(760, 420)

        self.tree.currentItemChanged.connect(lambda *_: self._update())
        self.tree.itemDoubleClicked.connect(lambda *_: self.use_selected())
        manager.progress.connect(self._on_progress)
        manager.finished.connect(self._on_finished)
        manager.failed.connect(self._on_failed)
        manager.cancelled.connect(self._on_cancelled)
        manager.removed.connect(self._on_removed)
        manager.size_known.connect(self._on_size)
        manager.openvino_changed.connect(self.refresh)
        manager.openvino_removed.connect(self._on_openvino_removed)
        manager.openvino_failed.connect(lambda text: self.note.setText(printable(text)))
        models.model_changed.connect(self._on_model_changed)

    def _on_model_changed(self, _spec: str) -> None:
        """A local model added or removed in the window: shown at once if open (opening refreshes anyway,
        so a hidden dialog does not walk the cache folders on every model change)."""
        if self.isVisible():
            self.refresh()

    # ---------------------------------------------------------------------------------------- rows
    def refresh(self) -> None:
        """Read what is on disk again (after a download, a removal, or changes made elsewhere)."""
        selected = self.selected()
        self._catalog_root.takeChildren()
        for status in self.manager.statuses():
            item = QTreeWidgetItem(self._catalog_root)
            item.setData(0, ID_ROLE, status.id)
            item.setData(0, KIND_ROLE, "catalog")
            self._fill_catalog_row(item)
            if not status.downloaded:
                self.manager.query_size(status.id)  # once: the answer refreshes the row
        self._local_root.takeChildren()
        for spec in self.models.local_models():
            path = Path(spec)
            exists = path.exists()
            texts = [printable(path.name), "available" if exists else "missing", _local_size(path), printable(spec)]
            item = QTreeWidgetItem(self._local_root, texts)
            item.setData(0, ID_ROLE, spec)
            item.setData(0, KIND_ROLE, "local")
            item.setToolTip(3, plain_tooltip(spec))
        self._fill_openvino()
        if selected:
            self.select(selected)
        self._update()

    def _fill_openvino(self) -> None:
        """The models optimised for this CPU: label, parts, size; the section's title says the total."""
        self._openvino_root.takeChildren()
        entries = self.manager.openvino_models()
        self._optimised = {str(entry.folder): entry for entry in entries}
        total = self.manager.openvino_total_size() if entries else 0
        self._openvino_root.setText(0, f"{OPENVINO_SECTION} · {format_bytes(total)}" if entries else OPENVINO_SECTION)
        for key, entry in self._optimised.items():
            count = len(entry.parts)
            parts = f"{count} part{'' if count == 1 else 's'} optimised"
            item = QTreeWidgetItem(self._openvino_root, [printable(entry.label), parts, format_bytes(entry.size), printable(key)])
            item.setData(0, ID_ROLE, key)
            item.setData(0, KIND_ROLE, "openvino")
            item.setToolTip(0, plain_tooltip(entry.identity or entry.label))
            item.setToolTip(3, plain_tooltip(key))

    def _fill_catalog_row(self, item: QTreeWidgetItem) -> None:
        model_id = item.data(0, ID_ROLE)
        status = self.manager.status(model_id)
        progress = self.manager.progress_of(model_id)
        if progress is not None:
            done, total = progress
            state = f"downloading {format_bytes(done)}" + (f" of {format_bytes(total)}" if total else "")
        elif self.manager.is_downloading(model_id):
            state = "waiting to download"
        elif status.downloaded:
            state = "downloaded"
        elif status.partial:
            state = "partly downloaded (resumes)"
        else:
            size = self.manager.known_size(model_id)
            state = "not downloaded" + (f" ({format_bytes(size)} to fetch)" if size else "")
        where = str(status.path) if status.path else f"{status.repo}@{status.revision[:7]}"
        for column, text in enumerate((status.name, state, format_bytes(status.size_on_disk) if status.size_on_disk else "–", where)):
            item.setText(column, text)
        item.setToolTip(3, plain_tooltip(f"{status.repo} @ {status.revision}"))

    def rows(self) -> dict[str, tuple[str, ...]]:
        """Each row's texts by model id or path (what the user reads)."""
        out = {}
        for root in self._roots:
            for i in range(root.childCount()):
                item = root.child(i)
                out[item.data(0, ID_ROLE)] = tuple(item.text(c) for c in range(len(COLUMNS)))
        return out

    def _item(self, key: str) -> QTreeWidgetItem | None:
        for root in self._roots:
            for i in range(root.childCount()):
                if root.child(i).data(0, ID_ROLE) == key:
                    return root.child(i)
        return None

    def select(self, key: str) -> bool:
        item = self._item(key)
        if item is not None:
            self.tree.setCurrentItem(item)
        return item is not None

    def selected(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, ID_ROLE) if item is not None and item.data(0, ID_ROLE) else None

    def _selected_kind(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, KIND_ROLE) if item is not None else None

    def _update(self) -> None:
        key, kind = self.selected(), self._selected_kind()
        status = self.manager.status(key) if kind == "catalog" and key else None
        optimised = self._optimised.get(key) if kind == "openvino" and key else None
        busy = kind == "catalog" and bool(key) and self.manager.is_downloading(key)
        removable = (status is not None and (status.downloaded or status.partial) and not busy) or kind == "local"
        on_disk = (kind == "local" and Path(key).exists()) or optimised is not None
        self.download_button.setEnabled(status is not None and not status.downloaded and not busy)
        self.download_button.setText("&Resume download" if status is not None and status.partial else "&Download")
        self.cancel_button.setEnabled(busy)
        self.remove_button.setEnabled(removable or optimised is not None)
        self.remove_button.setText("&Remove from list" if kind == "local" else "&Remove…")
        self.reveal_button.setEnabled((status is not None and status.path is not None) or on_disk)
        self.use_button.setEnabled((status is not None and status.downloaded) or (kind == "local" and Path(key).exists()))
        if status is not None:
            self.note.setText(f"{status.name}: {status.notes}" if status.notes else status.name)
        elif kind == "local":
            self.note.setText(printable(key))
        elif optimised is not None:
            self.note.setText(_optimised_note(optimised))
        else:
            self.note.setText("")
        self._show_progress(key)

    def _show_progress(self, key: str | None) -> None:
        progress = self.manager.progress_of(key) if key else None
        if progress is not None:
            done, total = progress
            self.progress.setVisible(True)
            if total:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(1000 * done / total))
                self.progress.setFormat(f"Downloading {format_bytes(done)} of {format_bytes(total)}")
            else:
                self.progress.setRange(0, 0)
                self.progress.setFormat(f"Downloading {format_bytes(done)}")
        else:
            self.progress.setVisible(False)

    # ---------------------------------------------------------------------------------------- actions
    def download_selected(self) -> bool:
        key = self.selected()
        if self._selected_kind() != "catalog" or not key:
            return False
        started = self.manager.download(key)
        if started:
            self._refresh_row(key)
        return started

    def cancel_selected(self) -> bool:
        key = self.selected()
        return bool(key) and self.manager.cancel(key)

    def remove_selected(self) -> QMessageBox | None:
        key, kind = self.selected(), self._selected_kind()
        if not key:
            return None
        if kind == "local":
            self.models.remove_local_model(key)
            self.refresh()
            return None
        if kind == "openvino":
            return self._ask_remove_optimised(key)
        status = self.manager.status(key)
        if status is None:
            return None
        return ask(
            self, "Remove the download?",
            f"Move {status.name} ({format_bytes(status.size_on_disk)}) to the trash? It can be downloaded again.",
            name="removeModelBox",
            choices=[("Move to trash", QMessageBox.ButtonRole.DestructiveRole, lambda: self.manager.remove(key))],
        )

    def _ask_remove_optimised(self, key: str) -> QMessageBox | None:
        """Ask before deleting a model's optimised copy: it is not in the trash afterwards, and making it
        again costs minutes on the model's next use."""
        entry = self._optimised.get(key)
        if entry is None:
            return None
        return ask(
            self, "Remove the optimised model?",
            f"Delete the copy of {printable(entry.label)} optimised for this CPU ({format_bytes(entry.size)})? "
            "It is made again the next time the model runs on OpenVINO, which takes a few minutes.",
            name="removeOpenVinoBox",
            choices=[("Delete", QMessageBox.ButtonRole.DestructiveRole, lambda: self.manager.remove_openvino(key))],
        )

    def reveal_selected(self) -> bool:
        key, kind = self.selected(), self._selected_kind()
        if not key:
            return False
        if kind == "catalog":
            status = self.manager.status(key)
            path = status.path if status is not None else None
        elif kind == "openvino":
            path = Path(key)
        else:
            path = Path(key) if Path(key).is_dir() else Path(key).parent
        if path is None:
            return False
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            return True
        self.note.setText(f"No file manager could open {printable(path)}")
        return False

    def use_selected(self) -> None:
        key = self.selected()
        if key and self.use_button.isEnabled():
            self.use_model.emit(key)

    def _add_file(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Add a checkpoint", "", "Safetensors (*.safetensors)")
        if path and self.models.try_add_local_model(path):
            self.refresh()

    def _add_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Add a diffusers model folder")
        if folder and self.models.try_add_local_model(folder):
            self.refresh()

    # ---------------------------------------------------------------------------------------- manager
    def _refresh_row(self, key: str) -> None:
        item = self._item(key)
        if item is not None and self.manager.status(key) is not None:
            self._fill_catalog_row(item)
        self._update()

    def _on_progress(self, key: str, _done, _total) -> None:
        self._refresh_row(key)

    def _on_finished(self, key: str, _path: str) -> None:
        self.refresh()
        status = self.manager.status(key)
        self.note.setText(f"{status.name if status is not None else key} is downloaded.")

    def _on_failed(self, key: str, message: str) -> None:
        self.refresh()
        self.note.setText(printable(f"{key}: {message}", keep_newlines=True))

    def _on_cancelled(self, key: str) -> None:
        self.refresh()
        self.note.setText(f"Download of {key} cancelled; what was fetched is kept and the next download resumes it.")

    def _on_removed(self, key: str, freed) -> None:
        self.refresh()
        self.note.setText(f"Moved {key} to the trash ({format_bytes(freed)} freed).")

    def _on_size(self, key: str, _size) -> None:
        self._refresh_row(key)

    def _on_openvino_removed(self, label: str, freed) -> None:
        """After the refresh that ``openvino_changed`` made: say what went, and what it freed."""
        self.note.setText(f"Removed the optimised copy of {printable(label)} ({format_bytes(freed)} freed).")


def _optimised_note(entry: CachedModel) -> str:
    """What a model of the OpenVINO cache is: when it was made, and its parts (network, weights, version)."""
    made = f", made {entry.created[:10]}" if entry.created else ""
    parts = ", ".join(entry.parts) if entry.parts else "no complete part"
    return f"{printable(entry.label)}: optimised for this CPU with OpenVINO{made}. Parts: {parts}."


def _local_size(path: Path) -> str:
    try:
        if path.is_file():
            return format_bytes(path.stat().st_size)
        if path.is_dir():
            return format_bytes(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()))
    except OSError:
        pass
    return "–"
