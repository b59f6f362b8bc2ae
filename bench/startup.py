"""Process start -> main window shown, in a fresh process each run. Target < 1.5 s, torch not imported.

The child prints the wall-clock time when the window has been shown and the event loop turned once;
the parent subtracts the time just before it spawned the child (interpreter start included).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time
from PySide6.QtCore import QTimer, QSettings
from PySide6.QtWidgets import QApplication
from studio.ui.main_window import MainWindow
app = QApplication(sys.argv[:1])
window = MainWindow(preferences_file=sys.argv[1], qsettings=QSettings(sys.argv[2], QSettings.Format.IniFormat))
window.show()
def shown():
    print(time.time(), 'torch' in sys.modules, flush=True)
    window.close()
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def main() -> None:
    runs = int(os.environ.get("BENCH_ROUNDS", 5))
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    times, torch_loaded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            start = time.time()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, f"{tmp}/prefs.json", f"{tmp}/window.ini"],
                capture_output=True, text=True, env=env, check=True,
            ).stdout.split()
            times.append(float(out[0]) - start)
            torch_loaded.append(out[1] == "True")
    print(f"start -> window shown: median {statistics.median(times):.3f} s, runs {[round(t, 3) for t in times]}")
    print(f"target < 1.5 s; torch imported at that point: {any(torch_loaded)}")


if __name__ == "__main__":
    main()
