"""Engine exceptions, and how the CLI maps them (design.md section 2): bad input is exit 2, a failure exit 1.

A RequestError is the user's mistake (exit 2). ModelNotFoundError is a RequestError only so that every
front end shows its message as it is (it is written for users); it is a failure (exit 1): the model was
named correctly but cannot be had right now. UnknownModelError, a spelling that names no model at all, is
bad input again (exit 2), and so is InvalidModelError: a model file or folder that is broken or absurd.
"""

from __future__ import annotations

from studio.library.display import first_line

__all__ = [
    "Cancelled",
    "GenerationError",
    "InvalidModelError",
    "ModelNotFoundError",
    "RequestError",
    "UnknownModelError",
    "first_line",  # defined with the other message helpers in studio.library.display
]


class RequestError(ValueError):
    """A request the engine refuses, with a message a user can act on (CLI exit 2).

    `field` names the request field at fault where there is one ("steps", "input_data.parameters.seed"),
    so that the server's JSON errors can point at it; the message names it in words too."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidModelError(RequestError):
    """A model file or folder that is malformed or describes an impossible model: a crafted or corrupt
    safetensors header, a config with absurd or zero sizes, an emptied tokenizer. Bad input (CLI exit 2),
    raised before anything is built, as one line naming the file (and the component and field), so that a
    crafted file is refused in milliseconds instead of failing minutes later inside a library."""


class ModelNotFoundError(RequestError):
    """The model is neither local nor downloadable right now (not downloaded and offline, the hub out of
    reach, the repo gone or gated); the message names the repo and revision and says how to get it.
    A failure, not bad input: CLI exit 1."""


class UnknownModelError(ModelNotFoundError):
    """The model string is no catalogue id, existing folder or file, or hub repo id: the user's typo (exit 2)."""


class Cancelled(Exception):  # noqa: N818 - the public API name of design.md section 2b
    """The caller's cancel event was set; raised within one step (or one downloaded chunk)."""


class GenerationError(RuntimeError):
    """A failure inside a generation (out of memory, a broken model), with a readable message."""
