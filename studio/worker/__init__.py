"""The Qt bridge between the window and the engine: a generation thread, a job queue, QImage signals.

Importing this package imports Qt but not torch: the engine is imported and created lazily inside the
generation thread when the first job runs, so the window starts fast.
"""

from __future__ import annotations

from studio.worker.generation import GenerationService, GenerationWorker, describe_failure, save_result
from studio.worker.jobs import JOB_ID_ROLE, JOB_ROLE, STATUS_ROLE, Job, JobQueueModel, JobStatus
from studio.worker.qimage import pil_to_qimage, qimage_to_pil

__all__ = [
    "JOB_ID_ROLE",
    "JOB_ROLE",
    "STATUS_ROLE",
    "GenerationService",
    "GenerationWorker",
    "Job",
    "JobQueueModel",
    "JobStatus",
    "describe_failure",
    "pil_to_qimage",
    "qimage_to_pil",
    "save_result",
]
