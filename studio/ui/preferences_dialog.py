"""Preferences -> Backend: run jobs on this computer or on a `studio serve` server (URL and token), with a
Test button that asks the server (off the GUI thread) and says in one line what it found.

Changes apply when OK is pressed; the job running then finishes where it started, queued jobs go to the new
place. The token field shows dots; the token is kept in an owner-only file, not in the preferences.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.plain_text import plain_label
from studio.viewmodel.backend import BackendChoice


class PreferencesDialog(QDialog):
    def __init__(self, backend: BackendChoice, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setMinimumWidth(520)  # the test's answer names the URL: room for it on one or two lines
        self.backend = backend
        self.local = QRadioButton("&This computer")
        self.server = QRadioButton("A &server (studio serve)")
        self.modes = QButtonGroup(self)
        self.modes.addButton(self.local)
        self.modes.addButton(self.server)
        self.url = QLineEdit(placeholderText="http://192.168.1.20:7861", accessibleName="Server URL")
        self.token = QLineEdit(placeholderText="none (a server on this computer needs none)", accessibleName="Token")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.test_button = QPushButton("T&est", toolTip="Ask the server whether it answers and takes the token")
        self.result = plain_label(accessibleName="Test result")
        self.result.setWordWrap(True)

        group = QGroupBox("Backend: where jobs run")
        form = QFormLayout(group)
        form.addRow(self.local)
        form.addRow(self.server)
        form.addRow("URL", self.url)
        row = QHBoxLayout()
        row.addWidget(self.token, 1)
        row.addWidget(self.test_button)
        form.addRow("Token", row)
        form.addRow(self.result)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(group)
        layout.addWidget(buttons)

        self.server.toggled.connect(self._enable)
        self.test_button.clicked.connect(self.test)
        backend.test_finished.connect(self._tested)
        self.load()

    def load(self) -> None:
        """Show the kept choice (opening the dialog again forgets edits that were cancelled)."""
        (self.server if self.backend.mode == "server" else self.local).setChecked(True)
        self.url.setText(self.backend.url)
        self.token.setText(self.backend.token or "")
        self.result.setText("")
        self._enable()

    def _enable(self, *_args) -> None:
        for widget in (self.url, self.token, self.test_button):
            widget.setEnabled(self.server.isChecked())

    def test(self) -> None:
        self.result.setText("Asking the server…")
        self.test_button.setEnabled(False)
        self.backend.test(self.url.text().strip(), self.token.text())

    def _tested(self, text: str, ok: bool) -> None:
        self.test_button.setEnabled(self.server.isChecked())
        self.result.setText(("✓ " if ok else "✗ ") + text)

    def accept(self) -> None:
        mode = "server" if self.server.isChecked() else "local"
        problem = self.backend.configure(mode, self.url.text(), self.token.text())
        if problem:
            self.result.setText("✗ " + problem)
            return
        super().accept()
