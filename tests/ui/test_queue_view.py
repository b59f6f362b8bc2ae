"""The queue widget drives the real service: jobs queued behind a running one on a tiny model."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from studio.engine import Engine, GenerationRequest
from studio.ui.queue_view import QueueView
from studio.viewmodel.job_queue import JOB_ID_ROLE, JobQueue, JobStatus

WAIT_MS = 30_000


def request(model, prompt: str, steps: int) -> GenerationRequest:
    return GenerationRequest(
        model=str(model), prompt=prompt, steps=steps, seed=1, width=64, height=64, scheduler="DDIM"
    )


@pytest.fixture
def queue(qtbot, tmp_path, tiny_sd1):
    """A shown QueueView over a service running a long job, with three short jobs queued behind it."""
    service = JobQueue(tmp_path / "out", engine_factory=lambda: Engine(device="cpu", preview="none"))
    view = QueueView(service)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    running = service.submit(request(tiny_sd1, "long", 400))
    queued = [service.submit(request(tiny_sd1, name, 2)) for name in ("b", "c", "d")]
    with qtbot.waitSignal(service.step, timeout=WAIT_MS):
        pass  # the long job is really generating
    yield view, service, running, queued
    assert service.shutdown(timeout_ms=WAIT_MS)


def order(service: JobQueue) -> list[str]:
    return [job.request.prompt for job in service.jobs()]


def test_buttons_reorder_and_cancel_through_the_service(qtbot, queue):
    view, service, running, (b, c, d) = queue
    assert view.list_view.model().sourceModel() is service.queue_model  # shown through PlainJobs
    assert order(service) == ["long", "b", "c", "d"]

    assert view.select_job(d.id)
    assert view.up_button.isEnabled() and not view.down_button.isEnabled()
    qtbot.mouseClick(view.up_button, Qt.MouseButton.LeftButton)
    assert order(service) == ["long", "b", "d", "c"]
    assert view.selected_job_id() == d.id  # the selection follows the moved job
    qtbot.mouseClick(view.up_button, Qt.MouseButton.LeftButton)
    assert order(service) == ["long", "d", "b", "c"]
    assert not view.up_button.isEnabled()  # cannot pass the running job
    qtbot.mouseClick(view.down_button, Qt.MouseButton.LeftButton)
    assert order(service) == ["long", "b", "d", "c"]

    view.select_job(b.id)
    with qtbot.waitSignal(service.job_cancelled, timeout=1000) as blocker:
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [b.id] and b.status is JobStatus.CANCELLED
    assert order(service) == ["long", "d", "c"]

    view.select_job(running.id)
    assert view.cancel_button.isEnabled() and not view.up_button.isEnabled() and not view.down_button.isEnabled()
    with qtbot.waitSignal(service.job_cancelled, timeout=WAIT_MS, check_params_cb=lambda jid: jid == running.id):
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(service.job_finished, timeout=WAIT_MS, check_params_cb=lambda jid: jid == c.id):
        pass
    assert d.status is JobStatus.DONE and c.status is JobStatus.DONE and d.finished <= c.finished
    qtbot.waitUntil(lambda: not view.cancel_all_button.isEnabled(), timeout=1000)


def test_keyboard_delete_cancels_and_ctrl_arrows_move(qtbot, queue):
    view, service, running, (b, c, d) = queue
    view.list_view.setFocus()
    view.activateWindow()
    qtbot.waitUntil(view.list_view.hasFocus, timeout=2000)

    view.select_job(c.id)
    qtbot.keyClick(view.list_view, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert order(service) == ["long", "c", "b", "d"]
    qtbot.keyClick(view.list_view, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert order(service) == ["long", "c", "b", "d"]  # the running job stays first
    qtbot.keyClick(view.list_view, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view.list_view, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert order(service) == ["long", "b", "d", "c"]
    assert view.selected_job_id() == c.id

    with qtbot.waitSignal(service.job_cancelled, timeout=1000) as blocker:
        qtbot.keyClick(view.list_view, Qt.Key.Key_Delete)
    assert blocker.args == [c.id] and order(service) == ["long", "b", "d"]


def test_cancel_all_button(qtbot, queue):
    view, service, running, queued = queue
    assert view.cancel_all_button.isEnabled()
    with qtbot.waitSignal(service.job_cancelled, timeout=WAIT_MS, check_params_cb=lambda jid: jid == running.id):
        qtbot.mouseClick(view.cancel_all_button, Qt.MouseButton.LeftButton)
    assert [job.status for job in queued] == [JobStatus.CANCELLED] * 3
    assert running.status is JobStatus.CANCELLED and service.queue_model.rowCount() == 0
    assert not view.cancel_all_button.isEnabled() and not view.cancel_button.isEnabled()


HTML_PROMPT = '<img src="/dev/null"><b>bold</b>\x1b[2J'
"""A prompt restored from a crafted image (or the kept queue): rendered as HTML, Qt would read
/dev/zero and abort. Only the texts the view hands Qt are checked; nothing is hovered or rendered."""


def test_a_prompt_that_spells_html_is_shown_literally(qtbot, tmp_path, tiny_sd1):
    import html

    from PySide6.QtGui import Qt as QtGui

    service = JobQueue(tmp_path / "out", engine_factory=lambda: Engine(device="cpu", preview="none"))
    view = QueueView(service)
    qtbot.addWidget(view)
    try:
        first = service.submit(request(tiny_sd1, "long", 400))
        job = service.submit(request(tiny_sd1, HTML_PROMPT, 2))
        assert view.select_job(job.id) and view.selected_job_id() == job.id
        index = view.list_view.model().index(view.selected_row(), 0)  # the row as the list shows it
        row_text = index.data(Qt.ItemDataRole.DisplayRole)
        assert row_text.startswith(f"#{job.id} · queued · <img src=") and "\x1b" not in row_text  # plain
        tooltip = index.data(Qt.ItemDataRole.ToolTipRole)  # what hovering the row would show
        assert QtGui.mightBeRichText(tooltip) and tooltip.startswith("<p style='white-space:pre-wrap'>")
        assert "<img" not in tooltip and "<b>" not in tooltip and "\x1b" not in tooltip
        assert html.escape('<img src="/dev/null"><b>bold</b>\\x1b[2J') in tooltip  # the prompt, escaped
        assert index.data(JOB_ID_ROLE) == job.id  # every other role is the service model's own
        other = view.list_view.model().index(0, 0)
        tip = Qt.ItemDataRole.ToolTipRole
        assert other.data(tip) == service.queue_model.index(0).data(tip)  # plain text: left as it is
        assert other.data(JOB_ID_ROLE) == first.id
    finally:
        assert service.shutdown(timeout_ms=WAIT_MS)
