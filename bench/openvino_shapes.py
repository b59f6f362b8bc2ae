"""Dynamic or static shapes for the OpenVINO UNet and VAE decoder: step time and compile time, side by side.

The engine converts each network once with dynamic batch and spatial sizes. The alternative is to
reshape the IR to each request's size and compile again (a static model). This measures both on the
project's own conversion (studio.engine.openvino_convert) of random weights at real widths: a
network's time per call (alternated rounds, median) and what a new size costs (compile seconds), in
each precision hint. The engine's choice, dynamic, rests on these figures (see the module's output in
the issue 13 note): a static model must be worth its recompiling on every new size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench openvino_shapes", description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="deci", choices=["deci", "sd1", "sd2"])
    parser.add_argument("--size", type=int, default=512, help="image side in px (default 512)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hints", default="f32,bf16", help="OpenVINO precision hints, comma-separated")
    return parser.parse_args(argv)


def _feeds(component: str, pipe, size: int):
    import numpy as np

    latent = size // 8
    rng = np.random.default_rng(0)
    if component == "unet":
        width = int(pipe.text_encoder.config.hidden_size)
        return [rng.standard_normal((2, 4, latent, latent), dtype=np.float32), np.array([500.0, 500.0], np.float32),
                rng.standard_normal((2, 77, width), dtype=np.float32)]
    return [rng.standard_normal((1, 4, latent, latent), dtype=np.float32)]


def _timed_compile(model, config: dict):
    from studio.engine.openvino_runtime import core

    started = time.perf_counter()
    compiled = core().compile_model(model, "CPU", config)
    return compiled, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    from bench.realistic import build_random_pipeline
    from studio.engine.openvino_convert import convert, save
    from studio.engine.openvino_runtime import core

    args = _parse(argv or [])
    pipe = build_random_pipeline(args.family)
    print(f"{args.family} at {args.size} px; UNet batch 2 (CFG), VAE decoder batch 1; {args.rounds} rounds, medians")
    print(f"{'network':<12}{'hint':<6}{'dynamic s':>11}{'static s':>10}{'static/dyn':>12}{'compile dyn s':>15}{'compile static s':>18}")
    with tempfile.TemporaryDirectory() as folder:
        for component in ("unet", "vae_decoder"):
            model, _config = convert(pipe, component)
            part = Path(folder) / component
            part.mkdir()
            save(model, part)
            xml = str(part / "openvino_model.xml")
            feeds = _feeds(component, pipe, args.size)
            for hint in args.hints.split(","):
                config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
                dynamic, dynamic_compile = _timed_compile(xml, config)
                static_model = core().read_model(xml)
                static_model.reshape({i: list(f.shape) for i, f in enumerate(feeds)})
                static, static_compile = _timed_compile(static_model, config)
                times: dict[str, list[float]] = {"dynamic": [], "static": []}
                for network in (dynamic, static):
                    network(feeds)  # warm-up: first-inference preparation is not a step
                for _ in range(args.rounds):
                    for name, network in (("dynamic", dynamic), ("static", static)):
                        started = time.perf_counter()
                        network(feeds)
                        times[name].append(time.perf_counter() - started)
                dyn, sta = statistics.median(times["dynamic"]), statistics.median(times["static"])
                print(f"{component:<12}{hint:<6}{dyn:>11.3f}{sta:>10.3f}{sta / dyn:>12.2f}"
                      f"{dynamic_compile:>15.1f}{static_compile:>18.1f}", flush=True)
                del dynamic, static


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
