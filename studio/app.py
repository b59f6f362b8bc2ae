"""The desktop app: QApplication, the main window, Qt's event loop.

Background work runs on :class:`~studio.worker.tasks.TaskPool` threads and reports through Qt's own
event loop; there is no asyncio loop. torch is not imported here: the window shows before any model is
touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from studio.library.paths import APP_NAME


def run(model: str | None = None, output_dir: Path | None = None, *, quit_after_ms: int | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Latent Studio")
    window = MainWindow(model=model, output_dir=output_dir)
    window.show()
    if quit_after_ms is not None:
        QTimer.singleShot(quit_after_ms, app.quit)
    return app.exec()
