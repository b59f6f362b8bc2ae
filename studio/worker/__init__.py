"""The threads under the view-models: the engine's thread, the gallery's, downloads.

Importing this package imports Qt but not torch: the engine is imported and created lazily inside the
engine's thread when the first job runs, so the window starts fast. Every thread here is a
:class:`~studio.worker.tasks.TaskPool`.
"""

from __future__ import annotations

from studio.worker.generation import (
    GenerationWork,
    GenerationWorker,
    JobOutcome,
    SavedImage,
    StepReport,
    describe_failure,
    save_result,
)
from studio.worker.qimage import pil_to_qimage, qimage_to_pil
from studio.worker.tasks import Task, TaskContext, TaskPool

__all__ = [
    "GenerationWork",
    "GenerationWorker",
    "JobOutcome",
    "SavedImage",
    "StepReport",
    "Task",
    "TaskContext",
    "TaskPool",
    "describe_failure",
    "pil_to_qimage",
    "qimage_to_pil",
    "save_result",
]
