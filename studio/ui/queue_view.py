"""The visible job queue: the running job, then the queued ones, with cancel and reorder controls.

Uses only the public API of :class:`~studio.viewmodel.job_queue.JobQueue` (its ``queue_model``, ``cancel``,
``cancel_all``, ``move``): the queue's rules (the running job stays first, a cancelled running job
leaves when the worker has stopped) live in the queue's view-model, not here.

Prompts come from the user and from files (an image's restored metadata, the queue kept from the last
session), so the list shows the service's model through :class:`PlainJobs`: a row's tooltip is a plain
tooltip (a prompt "<img src=...>" is shown, never rendered as HTML) and its text shows control
characters as escapes.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QIdentityProxyModel, QItemSelectionModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QListView, QPushButton, QVBoxLayout, QWidget

from studio.library.display import printable
from studio.ui.plain_text import plain_tooltip
from studio.viewmodel.job_queue import JOB_ID_ROLE, STATUS_ROLE, JobQueue, JobStatus

__all__ = ["PlainJobs", "QueueView"]


class PlainJobs(QIdentityProxyModel):
    """The job queue model, row for row, with its texts fit to show: the tooltip (the whole prompt,
    the negative prompt, the model) through :func:`plain_tooltip`, the row's text through
    :func:`printable`. Every other role is the service model's own."""

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        value = super().data(index, role)
        if isinstance(value, str):
            if role == Qt.ItemDataRole.ToolTipRole:
                return plain_tooltip(value)
            if role == Qt.ItemDataRole.DisplayRole:
                return printable(value)
        return value


class QueueView(QWidget):
    """A list of jobs with "Cancel", "Cancel all", "Up", "Down"; Delete cancels, Ctrl+Up/Down moves."""

    def __init__(self, queue: JobQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.list_view = QListView(self)
        self.list_view.setObjectName("queueList")
        # Connected before the view's own handlers: the view moves the selection to a neighbour before
        # later slots see the removal.
        self._selected_leaving = False
        queue.queue_model.rowsAboutToBeRemoved.connect(self._on_rows_leaving)
        queue.queue_model.rowsRemoved.connect(self._on_rows_left)
        self.jobs_model = PlainJobs(self)  # connected to the service's model after the slots above
        self.jobs_model.setSourceModel(queue.queue_model)
        self.list_view.setModel(self.jobs_model)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list_view.setUniformItemSizes(True)
        self.list_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list_view.setAccessibleName("Generation queue")

        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Cancel the selected job (Delete)")
        self.cancel_all_button = QPushButton("Cancel all", self)
        self.cancel_all_button.setToolTip("Cancel the running job and empty the queue")
        self.up_button = QPushButton("▲", self, accessibleName="Up")  # arrows: the queue fits a narrow panel
        self.up_button.setToolTip("Run the selected job earlier (Ctrl+Up)")
        self.down_button = QPushButton("▼", self, accessibleName="Down")
        self.down_button.setToolTip("Run the selected job later (Ctrl+Down)")
        for button in (self.up_button, self.down_button):
            button.setMaximumWidth(button.fontMetrics().horizontalAdvance("▲") * 4)

        buttons = QHBoxLayout()
        for button in (self.cancel_button, self.cancel_all_button, self.up_button, self.down_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list_view, 1)
        layout.addLayout(buttons)

        # Shortcuts as actions on this widget: they fire while focus is anywhere inside it, and are
        # matched before the list view's own key handling (which uses Ctrl+Up/Down to move its cursor).
        self.cancel_action = self._action("Cancel job", QKeySequence(Qt.Key.Key_Delete), self.cancel_selected)
        self.up_action = self._action("Move up", QKeySequence("Ctrl+Up"), lambda: self.move_selected(-1))
        self.down_action = self._action("Move down", QKeySequence("Ctrl+Down"), lambda: self.move_selected(1))

        self.cancel_button.clicked.connect(self.cancel_selected)
        self.cancel_all_button.clicked.connect(self.queue.cancel_all)
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        self.list_view.selectionModel().selectionChanged.connect(self._update_buttons)
        queue.queue_changed.connect(self._update_buttons)
        self._update_buttons()

    def _action(self, text: str, shortcut: QKeySequence, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut)
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    # ----------------------------------------------------------------------------------- selection
    def selected_row(self) -> int:
        rows = self.list_view.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def selected_job_id(self) -> int | None:
        row = self.selected_row()
        if row < 0:
            return None
        return self.queue.queue_model.index(row).data(JOB_ID_ROLE)

    def select_job(self, job_id: int) -> bool:
        model = self.jobs_model  # the view's indexes
        for row in range(model.rowCount()):
            index = model.index(row, 0)
            if index.data(JOB_ID_ROLE) == job_id:
                self.list_view.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                )
                return True
        return False

    def _on_rows_leaving(self, _parent, first: int, last: int) -> None:
        """A selected job leaving the queue (cancelled, finished) takes the selection with it: Qt would
        otherwise move it to a neighbour, and the next Cancel would hit a job nobody chose."""
        self._selected_leaving = first <= self.selected_row() <= last

    def _on_rows_left(self, *_args) -> None:
        if self._selected_leaving:
            self._selected_leaving = False
            self.list_view.selectionModel().clear()
            self._update_buttons()

    # ------------------------------------------------------------------------------------- actions
    def cancel_selected(self) -> None:
        """Cancel exactly the selected job (nothing when none is selected)."""
        job_id = self.selected_job_id()
        if job_id is not None:
            self.queue.cancel(job_id)

    def move_selected(self, delta: int) -> None:
        """Move the selected queued job `delta` rows (the service keeps the running job first)."""
        row = self.selected_row()
        job_id = self.selected_job_id()
        if job_id is None:
            return
        self.queue.move(job_id, row + delta)
        self._update_buttons()

    def _update_buttons(self, *_args) -> None:
        model = self.queue.queue_model
        row = self.selected_row()
        status = model.index(row).data(STATUS_ROLE) if row >= 0 else None
        queued = status == JobStatus.QUEUED.value
        above = model.index(row - 1).data(STATUS_ROLE) if row > 0 else None
        self.cancel_button.setEnabled(row >= 0)
        self.cancel_all_button.setEnabled(model.rowCount() > 0)
        self.up_button.setEnabled(queued and above == JobStatus.QUEUED.value)
        self.down_button.setEnabled(queued and row < model.rowCount() - 1)
