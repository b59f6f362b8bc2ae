"""OpenVINO's one Core per process, and the CPU plugin's settings for each of our precisions.

Telemetry: `import studio` has already made ``openvino_telemetry`` unimportable for the process (see
``studio/__init__.py``), so OpenVINO and NNCF use their no-op stubs: nothing is sent, nothing is written
outside ``paths.cache_dir()``.
"""

from __future__ import annotations

import threading
from typing import Any

from studio.engine.backends import openvino_precision
from studio.engine.precision import cpu_has_native_bf16

_lock = threading.Lock()
_core: Any = None

# The OpenVINO precision hint for each of our network precisions. int8's float operations (what is not
# quantized, and the int8 weights once expanded) compute in what `auto` picks: bf16 where it is native,
# else f32 ($STUDIO_AUTO_CPU_DTYPE forces either, as for `auto`).
_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def core():
    """The process's one OpenVINO Core (it owns the CPU plugin and its thread pools)."""
    global _core
    with _lock:
        if _core is None:
            import openvino

            _core = openvino.Core()
        return _core


def compile_config(precision: str, *, threads: int | None = None) -> dict[str, Any]:
    """The CPU plugin's settings for one of our precisions.

    The precision hint is always set: the plugin's own default is bf16 on a CPU that has it, which would
    silently make "float32" a bf16 run. LATENCY: one request at a time, on all the cores it is given
    (by default the physical cores, as torch does).
    """
    hint = _HINTS.get(precision) or _HINTS[openvino_precision("auto", cpu_has_native_bf16())]
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config
