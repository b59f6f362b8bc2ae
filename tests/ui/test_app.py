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


def test_the_smoke_test_variable_opens_the_window_says_so_and_quits(tmp_path):
    """What `make package-test` runs against the bundle (and how it times start to window)."""
    done = subprocess.run(
        [sys.executable, "-m", "studio"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_STUDIO_SMOKE_TEST": "1",
             "LATENT_STUDIO_CONFIG": str(tmp_path / "config")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("window shown at ")
