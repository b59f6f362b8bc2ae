"""Which devices the window offers, decided without importing torch."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from studio.engine.devices import TorchBuild, device_choices, parse_torch_version_file

CPU_BUILD = """from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip']
__version__ = '2.13.0+cpu'
debug = False
cuda: Optional[str] = None
git_version = 'cf30153c'
hip: Optional[str] = None
"""


def test_reads_the_build_from_torchs_version_file():
    assert parse_torch_version_file(CPU_BUILD) == TorchBuild("2.13.0+cpu", None, None)
    cuda = CPU_BUILD.replace("cuda: Optional[str] = None", "cuda: Optional[str] = '12.8'")
    assert parse_torch_version_file(cuda).cuda == "12.8"


def test_a_cpu_only_build_offers_no_gpu_and_says_why():
    choices = {c.value: c for c in device_choices(TorchBuild("2.13.0+cpu", None, None), system="Linux", machine="x86_64")}
    assert choices["auto"].available and choices["cpu"].available
    assert not choices["cuda"].available and choices["cuda"].reason == "torch 2.13.0+cpu is a CPU-only build"
    assert not choices["mps"].available and "Apple silicon" in choices["mps"].reason


def test_apple_silicon_offers_mps_and_no_torch_offers_no_gpu():
    mac = {c.value: c for c in device_choices(TorchBuild("2.13.0", None, None), system="Darwin", machine="arm64")}
    assert mac["mps"].available
    none = {c.value: c for c in device_choices(TorchBuild(None, None, None), system="Linux", machine="x86_64")}
    assert none["cuda"].reason == "torch is not installed"


def test_the_installed_torch_is_read_without_importing_it():
    code = (
        "import sys; from studio.engine.devices import torch_build; b = torch_build(); "
        "print(b.version, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [metadata.version("torch"), "False"]
