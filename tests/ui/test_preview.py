"""The preview pane follows a session's preview signals: steps, images, the end of a job, a failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from studio.ui.preview import PreviewPane, format_eta
from studio.viewmodel.session import SavedImage, StepReport


class Source(QObject):
    """The preview signals of a StudioSession, emitted by hand (the pane only subscribes)."""

    preview_started = Signal(str, str)
    preview_step = Signal(object)
    preview_image = Signal(object, str)
    preview_ended = Signal(str, str)
    preview_busy = Signal(str)
    failure = Signal(str, bool)


@pytest.fixture
def pane(qtbot):
    widget = PreviewPane()
    qtbot.addWidget(widget)
    source = Source()
    widget.follow(source)
    widget.source = source
    widget.show()
    return widget


def image(color: int = 0xFF336699) -> QImage:
    picture = QImage(8, 8, QImage.Format.Format_ARGB32)
    picture.fill(color)
    return picture


def test_a_job_streams_steps_then_shows_its_image_and_ends(pane):
    src = pane.source
    src.preview_started.emit("Starting…", "Job #1: a fox")
    assert pane.progress.format() == "Starting…" and pane.caption.text() == "Job #1: a fox"
    src.preview_busy.emit("Loading model tiny…")
    assert pane.progress.format() == "Loading model tiny…"  # busy: the wait says what it is for
    src.preview_step.emit(StepReport(1, 1, 4, image(), 2.5, 1.2))
    assert pane.steps_shown == 1 and pane.progress.value() == 1 and pane.progress.maximum() == 4
    assert pane.progress.format() == "Step 1/4 · 2.50 it/s · 1 s left"
    src.preview_busy.emit("Downloading")  # after the first step the bar shows steps, not the wait
    assert pane.progress.format().startswith("Step 1/4")
    saved = SavedImage(1, Path("out/fox.png"), image(), 7, "cpu", "float32", False, {})
    src.preview_image.emit(saved, "fox.png · seed 7")
    assert pane.caption.text() == "fox.png · seed 7" and pane.view.pixmap() is not None
    src.preview_ended.emit("Done", "")
    assert pane.progress.format().startswith("Done") and pane.caption.text() == "fox.png · seed 7"


def test_a_cancel_names_the_job_and_a_failure_offers_the_model_manager(pane, qtbot):
    src = pane.source
    src.preview_started.emit("Starting…", "Job #2: x")
    src.preview_ended.emit("Cancelled", "Job #2 cancelled")
    assert pane.progress.format().startswith("Cancelled") and pane.caption.text() == "Job #2 cancelled"
    src.failure.emit("Job #3 failed: model not found", True)
    assert pane.failure.message() == "Job #3 failed: model not found"
    with qtbot.waitSignal(pane.open_models, timeout=1000):
        pane.failure.models_button.click()
    with qtbot.waitSignal(pane.add_model, timeout=1000):
        pane.failure.add_button.click()
    src.preview_started.emit("Starting…", "Job #4")
    assert pane.failure.message() == ""  # the next job clears it


def test_eta_formats():
    assert [format_eta(s) for s in (0, 59.4, 61, 3600 + 62)] == ["0 s", "59 s", "1:01", "1:01:02"]
