"""The desktop app: QApplication, a qasync event loop, the main window.

torch is not imported here: the window shows before any model is touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from studio.library.paths import APP_NAME


def run(model: str | None = None, output_dir: Path | None = None, *, quit_after_ms: int | None = None) -> int:
    import asyncio

    import qasync
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
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    app_close = asyncio.Event()
    app.aboutToQuit.connect(app_close.set)
    with loop:
        loop.run_until_complete(app_close.wait())
    return 0
