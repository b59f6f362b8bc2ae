"""Which devices this machine can run on, found without importing torch.

The window lists devices before any model is touched, and importing torch costs seconds, so this reads
the installed torch's ``version.py`` (which build it is: CPU-only, CUDA, ROCm) and looks for the driver
the build needs. It can be wrong only in the direction of offering a device that then fails with a clear
message from :func:`studio.engine.precision.choose_placement`; it never hides one that works.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import platform
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class DeviceChoice:
    value: str  # what GenerationService / Engine take: "auto" | "cpu" | "cuda" | "mps"
    label: str
    available: bool
    reason: str = ""  # why it is not available (shown as the entry's tooltip)


@dataclass(frozen=True)
class TorchBuild:
    version: str | None  # None: torch is not installed
    cuda: str | None
    hip: str | None


_FIELD = re.compile(r"^(?P<name>__version__|cuda|hip)\s*(?::[^=]*)?=\s*(?P<value>None|'[^']*'|\"[^\"]*\")", re.M)


def parse_torch_version_file(text: str) -> TorchBuild:
    """torch/version.py's `__version__`, `cuda` and `hip` (a generated file of plain assignments)."""
    values: dict[str, str | None] = {}
    for match in _FIELD.finditer(text):
        raw = match["value"]
        values[match["name"]] = None if raw == "None" else raw[1:-1]
    return TorchBuild(values.get("__version__"), values.get("cuda"), values.get("hip"))


@cache
def torch_build() -> TorchBuild:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return TorchBuild(None, None, None)
    for folder in spec.submodule_search_locations:
        try:
            return parse_torch_version_file((Path(folder) / "version.py").read_text(encoding="utf-8"))
        except OSError:
            continue
    return TorchBuild(None, None, None)


def _gpu_driver_present(build: TorchBuild) -> bool:
    if build.hip:
        return Path("/dev/kfd").exists()
    if sys.platform.startswith("linux") and Path("/proc/driver/nvidia/version").exists():
        return True
    return ctypes.util.find_library("cuda") is not None or ctypes.util.find_library("nvcuda") is not None


def device_choices(build: TorchBuild | None = None, *, system: str | None = None, machine: str | None = None) -> list[DeviceChoice]:
    """Auto and CPU always; CUDA and MPS marked unavailable, with the reason, where they cannot run."""
    build = build or torch_build()
    system = system or platform.system()
    machine = machine or platform.machine()
    gpu_name = "ROCm GPU" if build.hip else "CUDA GPU"
    if build.version is None:
        cuda = DeviceChoice("cuda", gpu_name, False, "torch is not installed")
    elif not (build.cuda or build.hip):
        cuda = DeviceChoice("cuda", gpu_name, False, f"torch {build.version} is a CPU-only build")
    elif not _gpu_driver_present(build):
        cuda = DeviceChoice("cuda", gpu_name, False, "no GPU driver found on this machine")
    else:
        cuda = DeviceChoice("cuda", gpu_name, True)
    if system == "Darwin" and machine == "arm64":
        mps = DeviceChoice("mps", "Apple GPU (MPS)", True)
    else:
        mps = DeviceChoice("mps", "Apple GPU (MPS)", False, "only on Apple silicon Macs")
    return [DeviceChoice("auto", "Auto", True), DeviceChoice("cpu", "CPU", True), cuda, mps]
