"""Run the benchmarks: `python -m bench [NAME ...]` (default: all), or `python -m bench NAME --option ...`
(options go to that one benchmark; `python -m bench NAME --help` lists them)."""

from __future__ import annotations

import importlib
import inspect
import sys

BENCHMARKS = {
    "engine_overhead": "bench.engine_overhead",
    "startup": "bench.startup",
    "gui_stall": "bench.gui_stall",
    "gallery": "bench.gallery",
    "gallery_ui": "bench.gallery_ui",
    "unet_speed": "bench.unet_speed",
    "bf16_fidelity": "bench.bf16_fidelity",
    "openvino_speed": "bench.openvino_speed",
    "openvino_shapes": "bench.openvino_shapes",
    "inpaint_speed": "bench.inpaint_speed",
    "lora_speed": "bench.lora_speed",
    "server_load": "bench.server_load",
    "ray_batch": "bench.ray_batch",
}


def main(argv: list[str]) -> int:
    count = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:count] or list(BENCHMARKS), argv[count:]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    modules = {name: importlib.import_module(BENCHMARKS[name]) for name in names}
    if options and (len(names) != 1 or not inspect.signature(modules[names[0]].main).parameters):
        print("options go to one benchmark that takes them: python -m bench NAME --option ...", file=sys.stderr)
        return 2
    for name, module in modules.items():
        print(f"== {name}")
        module.main(options) if options else module.main()
    return 0


raise SystemExit(main(sys.argv[1:]))
