"""A job and the queue's item model (checked by Qt's own model tester), headless: no engine runs."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPersistentModelIndex, QtMsgType, qInstallMessageHandler
from PySide6.QtTest import QAbstractItemModelTester

from studio.engine import GenerationRequest
from studio.viewmodel.job_queue import Job, JobQueueModel, JobStatus


def job(job_id: int, prompt: str = "a red fox in the snow", **fields) -> Job:
    return Job(id=job_id, request=GenerationRequest(model="sd-1.4", prompt=prompt, **fields))


# -------------------------------------------------------------------------------------------- Job


def test_job_defaults_and_identity():
    a, b = job(1), job(1)
    assert a.status is JobStatus.QUEUED and a.step == 0 and a.paths == [] and a.error is None
    assert a.started is None and a.finished is None and a.created > 0
    assert a != b  # two submissions are two jobs even with equal fields
    assert not a.cancel_requested and a._cancel is not b._cancel
    assert "_cancel" not in repr(a)
    assert [s.is_final for s in JobStatus] == [False, False, True, True, True]


def test_display_text_for_each_state():
    item = job(3, "a red fox in the snow")
    assert item.display_text() == "#3 · queued · a red fox in the snow"
    item.status = JobStatus.RUNNING
    assert item.display_text() == "#3 · starting · a red fox in the snow"
    item.step, item.total = 12, 30
    assert item.display_text() == "#3 · running 12/30 · a red fox in the snow"
    item._cancel.set()
    assert item.display_text() == "#3 · cancelling · a red fox in the snow"
    item.status = JobStatus.FAILED
    assert item.display_text() == "#3 · failed · a red fox in the snow"
    assert job(4, "").display_text() == "#4 · queued"


def test_long_and_multiline_prompts_are_shortened_on_one_line():
    item = job(1, "line one\n\nline   two " + "word " * 40)
    text = item.short_prompt()
    assert len(text) == 40 and text.endswith("…") and "\n" not in text and text.startswith("line one line two")
    tip = job(2, "fox", negative_prompt="blur", width=64, height=64, steps=5, seed=9).tooltip()
    assert tip.splitlines() == ["fox", "Negative: blur", "model sd-1.4, 64x64, steps 5, batch 1, seed 9"]


# ------------------------------------------------------------------------------------ queue model


@pytest.fixture
def model(qtbot):
    """A queue model watched by Qt's model tester: a broken model invariant is a Qt warning, caught here."""
    warnings: list[str] = []

    def handler(mode, _context, message):
        if mode != QtMsgType.QtDebugMsg and mode != QtMsgType.QtInfoMsg:
            warnings.append(message)

    previous = qInstallMessageHandler(handler)
    try:
        queue = JobQueueModel()
        tester = QAbstractItemModelTester(queue, QAbstractItemModelTester.FailureReportingMode.Warning)
        yield queue
        del tester
    finally:
        qInstallMessageHandler(previous)
    assert warnings == []


def ids(queue: JobQueueModel) -> list[int]:
    return [queue.index(row).data(JobQueueModel.JobIdRole) for row in range(queue.rowCount())]


def test_queue_model_append_move_remove(qtbot, model):
    jobs = [job(n, f"prompt {n}") for n in (1, 2, 3, 4)]
    for item in jobs:
        model.append(item)
    assert ids(model) == [1, 2, 3, 4] and model.jobs() == jobs
    with qtbot.waitSignal(model.rowsMoved, timeout=1000):
        assert model.move(4, 1)
    assert ids(model) == [1, 4, 2, 3]
    tracked = QPersistentModelIndex(model.index(1))  # views keep selections through persistent indexes
    assert model.move(4, 3) and ids(model) == [1, 2, 3, 4]  # downwards
    assert tracked.row() == 3 and tracked.data(JobQueueModel.JobIdRole) == 4
    assert model.move(4, 0) and tracked.row() == 0 and ids(model) == [4, 1, 2, 3]
    assert model.move(4, 3) and tracked.row() == 3
    assert not model.move(4, 3) and not model.move(4, 9) and not model.move(99, 0)
    assert model.remove(2) is jobs[1] and ids(model) == [1, 3, 4]
    assert model.remove(2) is None
    assert model.row_of(4) == 2 and model.row_of(2) == -1 and model.job_at(0) is jobs[0] and model.job_at(7) is None


def test_queue_model_roles_and_refresh(qtbot, model):
    item = job(7, "fox")
    model.append(item)
    index = model.index(0)
    assert index.data() == "#7 · queued · fox"
    assert index.data(JobQueueModel.StatusRole) == "queued" and index.data(JobQueueModel.JobRole) is item
    assert "fox" in index.data(0x03)  # ToolTipRole
    assert model.index(5).data() is None
    assert {b"jobId", b"status", b"job"} <= set(model.roleNames().values())
    item.status, item.step, item.total = JobStatus.RUNNING, 1, 4
    with qtbot.waitSignal(model.dataChanged, timeout=1000):
        model.refresh(7)
    assert index.data() == "#7 · running 1/4 · fox"


