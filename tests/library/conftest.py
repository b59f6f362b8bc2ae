"""Fixtures shared by the library's tests."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture
def deadline():
    """Fail instead of hanging: opening a FIFO blocks until a writer appears, and nothing here may."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expired(*_args):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
