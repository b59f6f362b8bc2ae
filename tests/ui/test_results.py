"""The results strip: newest first, typed results, copy, and the reuse signals."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from studio.ui.results import ResultsStrip
from studio.viewmodel.session import SavedImage


def saved(path: Path, seed: int | None) -> SavedImage:
    picture = QImage(16, 16, QImage.Format.Format_RGB32)
    picture.fill(0xFF884422)
    return SavedImage(1, path, picture, seed, "cpu", "float32", False, {"seed": seed})


@pytest.fixture
def strip(qtbot):
    widget = ResultsStrip()
    qtbot.addWidget(widget)
    return widget


def test_newest_first_and_the_newest_is_current(strip, tmp_path):
    first, second = saved(tmp_path / "a.png", 1), saved(tmp_path / "b.png", 2)
    strip.add_result(first)
    strip.add_result(second)
    assert strip.results() == [second, first] and strip.current() is second
    assert strip.item(0).text() == "2" and "b.png" in strip.item(0).toolTip()


def test_copy_reads_the_file_and_says_when_it_is_gone(strip, tmp_path, qapp):
    path = tmp_path / "c.png"
    result = saved(path, 3)
    result.image.save(str(path))
    strip.add_result(result)
    messages: list[str] = []
    strip.message.connect(messages.append)
    assert strip.copy_current() and messages[-1] == "Copied c.png"
    assert not qapp.clipboard().image().isNull()
    path.unlink()
    assert not strip.copy_current() and "Cannot read c.png" in messages[-1]


def test_selecting_a_result_emits_it(strip, tmp_path, qtbot):
    first, second = saved(tmp_path / "a.png", 1), saved(tmp_path / "b.png", 2)
    strip.add_result(first)
    strip.add_result(second)
    with qtbot.waitSignal(strip.selected, timeout=1000) as blocker:
        strip.setCurrentRow(1)
    assert blocker.args == [first]
