"""The application icon in every size the platforms want, from its one SVG source (packaging/icons/).

PNG 16-512 px (Linux hicolor theme, AppStream), a Windows .ico (16-256) and a macOS .icns, written to
build/packaging/icons/. Qt renders the SVG (QtSvg), Pillow writes .ico and .icns.
Usage: python packaging/make_icons.py [OUT_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
NAME = "latent-studio"
ROOT = Path(__file__).resolve().parent.parent


def render(svg: Path, out: Path) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - fonts and painting need one
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = out / f"{NAME}-{size}.png"
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"cannot write {path}")
        pngs.append(path)
    return pngs


def containers(out: Path) -> None:
    from PIL import Image

    biggest = Image.open(out / f"{NAME}-512.png")
    biggest.save(out / f"{NAME}.ico", sizes=[(s, s) for s in SIZES if s <= 256])
    biggest.save(out / f"{NAME}.icns")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "packaging" / "icons"
    render(ROOT / "packaging" / "icons" / f"{NAME}.svg", out)
    containers(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
