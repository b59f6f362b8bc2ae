"""UI test hygiene."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clear_clipboard_after(qapp):
    """A QMimeData handed to the clipboard by a test must die while QApplication lives: left for
    interpreter shutdown, it is destroyed after the application and the process segfaults (exit 139)."""
    yield
    qapp.clipboard().clear()
    qapp.processEvents()
