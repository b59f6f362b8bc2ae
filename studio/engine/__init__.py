"""The generation engine: diffusers and torch, no Qt.

Names are imported lazily so that `import studio.engine` (and the app's start) never pulls in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.engine.errors import Cancelled, GenerationError, ModelNotFoundError, RequestError
from studio.engine.request import GenerationRequest, GenerationResult, StepEvent

if TYPE_CHECKING:
    from studio.engine.generate import Engine

__all__ = [
    "Cancelled",
    "Engine",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "ModelNotFoundError",
    "RequestError",
    "StepEvent",
]


def __getattr__(name: str):
    if name == "Engine":
        from studio.engine.generate import Engine

        return Engine
    raise AttributeError(f"module 'studio.engine' has no attribute {name!r}")
