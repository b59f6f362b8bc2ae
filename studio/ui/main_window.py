"""The main window. The full studio (prompt editor, parameters, canvas, previews) lands with issue 3."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QMainWindow

from studio.settings import APP_NAME


class MainWindow(QMainWindow):
    def __init__(self, model: str | None = None, output_dir: Path | None = None):
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.model = model
        self.output_dir = output_dir
        placeholder = QLabel("Latent Studio — the studio window is being built; use `studio generate` meanwhile.")
        placeholder.setMargin(24)
        self.setCentralWidget(placeholder)
        self.resize(1100, 720)
