"""OpenVINO, imported our way: no telemetry, no files outside our cache, one Core per process.

OpenVINO's model converter (and NNCF) send usage telemetry by default and keep a client id and counters
in ``~/intel``: both only when the ``openvino_telemetry`` package imports, and both fall back to a no-op
stub when it does not. So this module makes that import fail for the process before OpenVINO is
imported; nothing is sent and nothing is written outside ``paths.cache_dir()``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_lock = threading.Lock()
_core: Any = None

# The OpenVINO precision hint for each of our network precisions (int8 weights compute in the CPU's best
# float format: bf16 where it is native, else f32).
_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def block_telemetry() -> None:
    """Make ``import openvino_telemetry`` fail in this process (OpenVINO and NNCF then use their stubs)."""
    if "openvino_telemetry" not in sys.modules or sys.modules["openvino_telemetry"] is not None:
        for name in [n for n in sys.modules if n == "openvino_telemetry" or n.startswith("openvino_telemetry.")]:
            del sys.modules[name]
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]


def openvino():
    """The `openvino` module, telemetry blocked first."""
    block_telemetry()
    import openvino as ov

    return ov


def core():
    """The process's one OpenVINO Core (it owns the CPU plugin and its thread pools)."""
    global _core
    with _lock:
        if _core is None:
            _core = openvino().Core()
        return _core


def cpu_has_native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512-BF16 or AMX)."""
    try:
        return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - a plugin that cannot say is a CPU without it
        return False


def compile_config(precision: str, *, threads: int | None = None, cache_dir: str | None = None) -> dict[str, Any]:
    """The CPU plugin's settings for one of our precisions.

    The precision hint is always set: the plugin's own default is bf16 on a CPU that has it, which would
    silently make "float32" a bf16 run. LATENCY: one request at a time, on all the cores it is given
    (by default the physical cores, as torch does).
    """
    hint = _HINTS.get(precision) or ("bf16" if cpu_has_native_bf16() else "f32")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir:
        config["CACHE_DIR"] = str(cache_dir)
    return config
