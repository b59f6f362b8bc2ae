"""The preview pane: every step's preview as it arrives, then the finished image, with progress.

Previews are QImages made in the worker thread; the QPixmap is made here, in the GUI thread, and
scaled smoothly at paint time so resizing the window never re-requests anything.

Captions and tooltips show text that may come from files (prompts, file names): it is always plain
text (never interpreted as HTML, see :mod:`studio.ui.plain_text`) with control characters made visible.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QTextOption
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from studio.library.display import printable
from studio.ui.plain_text import one_line, plain_label, plain_tooltip
from studio.viewmodel.session import StudioSession


class ImageView(QWidget):
    """Paints one image fitted to the widget, aspect kept, smooth scaling, high-DPI aware."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self.update()

    def pixmap(self) -> QPixmap | None:
        return self._pixmap

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(512, 512)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        if self._pixmap is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        size = self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF((self.width() - size.width()) / 2, (self.height() - size.height()) / 2, size.width(), size.height())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))


class FailurePanel(QFrame):
    """A failed job's message, wrapped (long paths and repo ids break anywhere, never clipped), with the
    actions that fix the usual causes. Stays until the next job starts: a failure must not flash by."""

    open_models = Signal()
    add_model = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Failure")
        self.text = QPlainTextEdit(readOnly=True, accessibleName="Failure message")
        self.text.setFrameShape(QFrame.Shape.NoFrame)
        self.text.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.text.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.text.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.text.setMaximumHeight(self.fontMetrics().lineSpacing() * 6)
        self.text.viewport().setAutoFillBackground(False)
        self.models_button = QPushButton("Models…", toolTip="Download or remove catalogue models")
        self.add_button = QPushButton("Add local model…", toolTip="Use a diffusers folder or .safetensors file")
        self.models_button.clicked.connect(self.open_models)
        self.add_button.clicked.connect(self.add_model)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.models_button)
        buttons.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        self.setVisible(False)

    def show_failure(self, text: str, *, model_problem: bool = False) -> None:
        self.text.setPlainText(printable(text, keep_newlines=True))
        self.models_button.setVisible(model_problem)
        self.add_button.setVisible(model_problem)
        self.setVisible(True)

    def message(self) -> str:
        return self.text.toPlainText() if self.isVisible() else ""


class PreviewPane(QWidget):
    """Live previews + progress bar showing step/total, it/s and time left.

    The caption always says what the view shows: the job being generated while previews stream in,
    the file's name once a result is shown, the failure (in its own panel) when a job failed.
    ``open_models`` and ``add_model`` are the failure panel's buttons.
    """

    open_models = Signal()
    add_model = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = ImageView("Your images appear here.\nType a prompt and press Ctrl+Return.")
        self.view.setAccessibleName("Preview")
        self.progress = QProgressBar(accessibleName="Progress")
        self.progress.setTextVisible(True)
        self.progress.setFormat("Idle")
        self.progress.setValue(0)
        self.caption = plain_label(accessibleName="Image caption")  # prompts and file names are not HTML
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.failure = FailurePanel()
        self.failure.open_models.connect(self.open_models)
        self.failure.add_model.connect(self.add_model)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.failure)
        layout.addWidget(self.progress)
        self.steps_shown = 0
        self._started = 0.0

    def follow(self, session: StudioSession) -> None:
        """Show what the session's preview follows: the running job's steps, its images, its end."""
        session.preview_started.connect(self.start)
        session.preview_step.connect(
            lambda r: self.show_step(r.step, r.total, r.preview, r.it_per_s, r.eta_s)
        )
        session.preview_image.connect(lambda saved, caption: self.show_result(saved.image, caption))
        session.preview_busy.connect(self.set_busy_text)
        session.preview_ended.connect(self._ended)
        session.failure.connect(lambda text, model_problem: self.show_failure(text, model_problem=model_problem))

    def _ended(self, state: str, caption: str) -> None:
        self.finish(state)
        if caption:
            self.caption.setText(one_line(caption))

    def start(self, label: str = "Starting…", caption: str = "") -> None:
        """A job starts: busy bar with `label` until its first step; the caption names the job."""
        self.steps_shown = 0
        self._started = time.monotonic()
        self.failure.setVisible(False)
        self.caption.setText(one_line(caption))
        self.progress.setRange(0, 0)  # busy until the first step (model loading)
        self.progress.setFormat(label)

    def set_busy_text(self, text: str) -> None:
        """What the wait before the first step is for ("Loading model…", "Downloading 1.2 / 4.3 GB")."""
        if self.progress.maximum() == 0:
            self.progress.setFormat(text)

    def show_failure(self, text: str, *, model_problem: bool = False) -> None:
        self.finish("Failed")
        self.failure.show_failure(text, model_problem=model_problem)

    def show_step(self, step: int, total: int, image: QImage, it_per_s: float, eta_s: float) -> None:
        self.steps_shown += 1
        self.view.set_image(image)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        rate = f"{it_per_s:.2f} it/s" if it_per_s >= 1 else (f"{1 / it_per_s:.1f} s/it" if it_per_s > 0 else "")
        self.progress.setFormat(f"Step {step}/{total} · {rate} · {format_eta(eta_s)} left")

    def show_result(self, image: QImage, caption: str = "") -> None:
        self.view.set_image(image)
        self.caption.setText(one_line(caption))
        self.caption.setToolTip(plain_tooltip(caption))

    def finish(self, text: str = "Done") -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text == "Done" else 0)
        elapsed = time.monotonic() - self._started if self._started else 0
        self.progress.setFormat(f"{text} · {elapsed:.1f} s" if elapsed else text)


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
