"""UI test hygiene."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clear_clipboard_after(qapp):
    """A QMimeData handed to the clipboard by a test must die while QApplication lives: left for
    interpreter shutdown, it is destroyed after the application and the process segfaults (exit 139)."""
    yield
    qapp.clipboard().clear()
    qapp.processEvents()


@pytest.fixture
def make_window(qtbot, tmp_path, tiny_sd1):
    from PySide6.QtCore import QSettings

    from studio.engine import Engine
    from studio.ui.main_window import MainWindow

    made = []

    def make(model=None, **kw):
        window = MainWindow(
            model=str(model or tiny_sd1),
            output_dir=tmp_path / "out",
            preferences_file=tmp_path / "prefs.json",
            engine_factory=lambda: Engine(device="cpu", preview="linear"),
            qsettings=QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat),
            **kw,
        )
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        made.append(window)
        return window

    yield make
    for window in made:
        window.shutdown()  # stops the worker even with jobs left (close() would ask first)
        window.close()
