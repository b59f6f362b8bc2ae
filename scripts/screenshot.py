"""Screenshot of the real window for the README: run under Xvfb (`xvfb-run -a python scripts/screenshot.py`).

Builds a tiny model, generates one image through the real window and worker thread, puts an init image
on the canvas, then grabs the screen. The tiny model's images are noise: the screenshot shows the UI.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.engine import Engine  # noqa: E402
from studio.engine.tiny import make_tiny_model  # noqa: E402
from studio.ui.main_window import MainWindow  # noqa: E402


def main(out: Path) -> None:
    tmp = Path(tempfile.mkdtemp())
    model = make_tiny_model(tmp / "tiny-sd1", "sd1")
    app = QApplication(sys.argv[:1])
    window = MainWindow(
        model=str(model), output_dir=tmp / "out", preferences_file=tmp / "prefs.json",
        engine_factory=lambda: Engine(device="cpu", preview="linear"),
        qsettings=QSettings(str(tmp / "w.ini"), QSettings.Format.IniFormat),
    )
    window.resize(1400, 860)
    window.show()
    p = window.parameters
    p.steps.setValue(12)
    p.width.setValue(64)
    p.height.setValue(64)
    p.scheduler.setCurrentText("DPM++ 2M Karras")
    window.prompt_editor.set_prompts(
        "a lighthouse on a cliff at dusk, (volumetric light:1.2), oil painting, highly detailed",
        "blurry, lowres, watermark",
    )
    init = Image.new("RGB", (640, 480), (40, 70, 120))
    draw = ImageDraw.Draw(init)
    draw.rectangle((0, 330, 640, 480), fill=(60, 110, 60))
    draw.ellipse((430, 60, 530, 160), fill=(250, 210, 90))
    window.canvas.set_image(init, "sketch.png")

    def grab() -> None:
        window.results.setCurrentRow(0)
        app.processEvents()
        window.screen().grabWindow(0).copy(window.frameGeometry()).save(str(out))
        print(out)
        window.close()
        app.quit()

    window.service.job_finished.connect(lambda _job: QTimer.singleShot(300, grab))
    QTimer.singleShot(300, window.act_generate.trigger)
    app.exec()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png")
