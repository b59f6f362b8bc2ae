"""Run the benchmarks: `python -m bench [NAME ...]` (default: all)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "engine_overhead": "bench.engine_overhead",
    "startup": "bench.startup",
    "gui_stall": "bench.gui_stall",
    "gallery": "bench.gallery",
    "gallery_ui": "bench.gallery_ui",
    "unet_speed": "bench.unet_speed",
    "bf16_fidelity": "bench.bf16_fidelity",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name}")
        importlib.import_module(BENCHMARKS[name]).main()
    return 0


raise SystemExit(main(sys.argv[1:]))
