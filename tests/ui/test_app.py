"""The desktop app starts: a main window titled "Latent Studio", Qt's event loop, and no torch."""

from __future__ import annotations

import os
import subprocess
import sys

from studio.ui.main_window import MainWindow


def test_main_window_title(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == "Latent Studio"


def test_app_runs_its_event_loop_and_quits_without_importing_torch():
    code = (
        "import sys; from studio.app import run; rc = run(quit_after_ms=300); "
        "print('torch' in sys.modules, rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0"]
