"""Latent Studio: a desktop image studio for local diffusion models.

Importing this package must stay instant: no torch, no Qt here.
"""

import sys as _sys

__version__ = "0.1.0"

# OpenVINO starts its usage telemetry (events sent, a client id and counters written to ~/intel) at its
# first import, unless `openvino_telemetry` cannot be imported. Refused here, before anything of ours or
# of a library's can import OpenVINO; studio.engine.openvino_runtime does the same for a process that
# imported it first. Nothing of ours uses that package.
_sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
