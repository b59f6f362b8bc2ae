"""Which backend runs the networks (PyTorch or OpenVINO), and in which precision, decided without torch.

Only the three networks (text encoder, UNet, VAE) change backend: tokenizer, schedulers, the safety
checker, previews and the random numbers stay diffusers/torch, so seeds mean the same on both. Images are
reproducible per device + backend + precision (design note in :mod:`studio.engine.openvino_pipeline`).

`auto` on the CPU is OpenVINO wherever it is installed (a regular dependency): it measured faster than
torch in every precision (bench/openvino_speed, 512 px whole images on a 2-core AVX512-BF16 EPYC: 1.19x
(DeciDiffusion) and 1.37x (SD 1.5) over torch's best, bf16; 1.19x and 1.21x in float32); on CUDA and
MPS it stays torch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from functools import cache

from studio.engine.errors import RequestError

BACKENDS = ("auto", "torch", "openvino")
BACKEND_LABELS = {"auto": "Auto", "torch": "PyTorch", "openvino": "OpenVINO (CPU)"}
AUTO_BACKEND_ENV = "STUDIO_AUTO_BACKEND"  # "torch" / "openvino": what `auto` means on the CPU (tests, CI)

# The network precisions of the OpenVINO backend. float32 and bfloat16 are inference-precision hints over
# one IR with float16 weights; int8 is its own IR: a UNet NNCF quantized (weights and activations, calibrated
# on the model's own denoising) and a text encoder with int8 weights; the VAE is float32's.
OPENVINO_PRECISIONS = ("float32", "bfloat16", "int8")

# bench/openvino_speed (the rule bf16 follows on torch: `auto` may pick a precision only at PSNR >= 35 dB
# against torch fp32): final 512 px images of random-weight pipelines at real widths, 30 DeciDiffusion /
# 50 SD 1.5 steps, seed 1; the worse of the two families (deci 59.3 / 47.0 / 41.2, sd1 61.7 / 50.5 / 43.1 dB;
# int8 with its UNet quantized, weights and activations). `auto` still never picks int8: its first use
# costs minutes of calibration and it needs NNCF, an optional extra; it is the user's choice.
OPENVINO_MIN_PSNR_DB = 35.0
OPENVINO_MEASURED_PSNR_DB = {"float32": 59.3, "bfloat16": 47.0, "int8": 41.2}


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


@cache
def openvino_version() -> str | None:
    """The installed OpenVINO's version, read from its package metadata (no import: it costs seconds)."""
    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def nncf_installed() -> bool:
    return importlib.util.find_spec("nncf") is not None


def check_backend(backend: str) -> str:
    name = (backend or "auto").strip().lower()
    if name not in BACKENDS:
        raise RequestError(f"unknown backend {backend!r}: choose {', '.join(BACKENDS)}")
    return name


def choose_backend(backend: str, device: str) -> str:
    """`torch` or `openvino` for the resolved `device` ("cpu", "cuda", "mps").

    `auto`: OpenVINO on the CPU where it is installed (or what $STUDIO_AUTO_BACKEND says), else torch.
    Asking for OpenVINO off the CPU, or where it is not installed, is the user's error, said in one line.
    """
    name = check_backend(backend)
    if name == "auto":
        if device != "cpu":
            return "torch"
        override = os.environ.get(AUTO_BACKEND_ENV, "").strip().lower()
        if override in {"torch", "openvino"}:
            return override if override == "torch" or openvino_installed() else "torch"
        return "openvino" if openvino_installed() else "torch"
    if name == "openvino":
        if device != "cpu":
            raise RequestError(f"the OpenVINO backend runs on the CPU, not on {device!r}: choose device cpu or backend torch")
        if not openvino_installed():
            raise RequestError("the OpenVINO backend is not installed: pip install openvino (or choose backend torch)")
    return name


def openvino_precision(dtype: str, native_bf16: bool) -> str:
    """The network precision for the OpenVINO backend from the user's dtype choice.

    `auto`: bfloat16 where the CPU runs it natively and it keeps the image (measured PSNR over the rule),
    else float32; $STUDIO_AUTO_CPU_DTYPE forces either, as it does for torch. int8 needs NNCF.
    """
    from studio.engine.precision import AUTO_CPU_DTYPE_ENV, DTYPE_ALIASES

    name = (dtype or "auto").strip().lower()
    if name == "auto":
        override = os.environ.get(AUTO_CPU_DTYPE_ENV, "").strip().lower()
        if override in {"float32", "bfloat16"}:
            return override
        good = OPENVINO_MEASURED_PSNR_DB["bfloat16"] >= OPENVINO_MIN_PSNR_DB
        return "bfloat16" if native_bf16 and good else "float32"
    if name == "int8":
        if not nncf_installed():
            raise RequestError("int8 needs NNCF: pip install 'latent-studio[int8]' (or choose float32 or bfloat16)")
        return "int8"
    resolved = DTYPE_ALIASES.get(name)
    if resolved not in OPENVINO_PRECISIONS:
        raise RequestError(f"the OpenVINO backend runs float32, bfloat16 or int8, not {dtype!r}")
    return resolved
