"""The queue widget drives the real service: jobs queued behind a running one on a tiny model."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from studio.engine import Engine, GenerationRequest
from studio.ui.queue_view import QueueView
from studio.worker import GenerationService, JobStatus

WAIT_MS = 30_000


def request(model, prompt: str, steps: int) -> GenerationRequest:
    return GenerationRequest(
        model=str(model), prompt=prompt, steps=steps, seed=1, width=64, height=64, scheduler="DDIM"
    )


@pytest.fixture
def queue(qtbot, tmp_path, tiny_sd1):
    """A shown QueueView over a service running a long job, with three short jobs queued behind it."""
    service = GenerationService(tmp_path / "out", engine_factory=lambda: Engine(device="cpu", preview="none"))
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


def order(service: GenerationService) -> list[str]:
    return [job.request.prompt for job in service.jobs()]


def test_buttons_reorder_and_cancel_through_the_service(qtbot, queue):
    view, service, running, (b, c, d) = queue
    assert view.list_view.model() is service.queue_model
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
