"""Engine exceptions. A RequestError is the user's mistake (CLI exit 2); the others are failures (exit 1)."""

from __future__ import annotations


class RequestError(ValueError):
    """A request the engine refuses, with a message a user can act on."""


class ModelNotFoundError(RequestError):
    """The model is neither local nor downloadable right now; the message says how to get it."""


class Cancelled(Exception):  # noqa: N818 - the public API name of design.md section 2b
    """The caller's cancel event was set; raised within one step."""


class GenerationError(RuntimeError):
    """A failure inside a generation (out of memory, a broken model), with a readable message."""
