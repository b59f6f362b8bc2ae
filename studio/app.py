"""The desktop app: QApplication, the main window, Qt's event loop.

Background work runs on :class:`~studio.worker.tasks.TaskPool` threads and reports through Qt's own
event loop; there is no asyncio loop. torch is not imported here: the window shows before any model is
touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from studio.library.paths import APP_NAME

SMOKE_TEST = "LATENT_STUDIO_SMOKE_TEST"
"""Set (to anything): the window opens, says on stdout when it is shown ("window shown at <unix time>") and
quits. The packaged app's test (packaging/test_package.py) and its start-time measurement use it."""


def run(
    model: str | None = None, output_dir: Path | None = None, *, quit_after_ms: int | None = None,
    open_image: Path | None = None,
) -> int:
    """The window; `open_image` (the file "Open with" passed) is offered for restoring its parameters."""
    import os

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Latent Studio")
    app.setDesktopFileName("org.latentstudio.LatentStudio")  # the taskbar finds the icon of the .desktop entry
    window = MainWindow(model=model, output_dir=output_dir)
    window.show()
    if open_image is not None:
        QTimer.singleShot(0, lambda: window.offer_restore(open_image) or window.show_message(
            f"{open_image.name} carries no generation parameters"))
    if os.environ.get(SMOKE_TEST):
        QTimer.singleShot(0, lambda: _smoke_quit(app, window))
    if quit_after_ms is not None:
        QTimer.singleShot(quit_after_ms, app.quit)
    return app.exec()


def _smoke_quit(app, window) -> None:
    import time

    print(f"window shown at {time.time():.3f}", flush=True)
    window.shutdown()
    window.close()
    app.quit()
