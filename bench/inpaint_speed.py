"""Inpainting's cost: its overhead over img2img of the same size, and "only masked" against the whole picture.

A random-weight pipeline at real widths (bench/realistic.py) added to one Engine; every job goes through
Engine.generate as the app's do (text encoding, the steps, the VAE, the paste-back), seed fixed, no preview:

1. img2img vs inpainting (whole picture, a centred square mask of a quarter of the area, blur 4) at the
   same size, strength and steps: the inpaint pipeline's extra work is the mask's preparation, the
   masked latent blending at every step and the paste-back.
2. A small mask (--mask px square) on a large picture (--large px): the whole picture generated at its
   size vs "only masked" (the mask's box plus 32 px padding, generated at --size and pasted back).

Rounds alternate the configs; medians. Random weights: speed is the real model's, the images are noise.
Usage: python -m bench inpaint_speed [--family sd1|sd2|deci] [--size 512] [--large 1024] [--mask 96]
[--steps 10] [--strength 0.75] [--rounds 1] [--backend auto|torch|openvino]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench inpaint_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sd1", choices=["sd1", "sd2", "deci"])
    parser.add_argument("--size", type=int, default=512, help="img2img / inpaint size, and the only-masked size")
    parser.add_argument("--large", type=int, default=1024, help="the large picture's side for only-masked")
    parser.add_argument("--mask", type=int, default=96, help="the small mask's side in px")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--strength", type=float, default=0.75)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino"])
    return parser.parse_args(list(argv))


def _picture(side: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(side)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def _square_mask(side: int, square: int):
    from PIL import Image, ImageDraw

    mask = Image.new("L", (side, side), 0)
    start = (side - square) // 2
    ImageDraw.Draw(mask).rectangle((start, start, start + square - 1, start + square - 1), fill=255)
    return mask


def _timed(engine, request) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        engine.generate(request)
        return time.perf_counter() - start

    return run


def _compare(title: str, configs: dict[str, Callable[[], float]], rounds: int) -> None:
    for run in configs.values():
        run()  # warm-up: first-call allocations at this size
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, run in configs.items():
            times[name].append(run())
    medians = {name: statistics.median(values) for name, values in times.items()}
    first = next(iter(medians.values()))
    print(f"\n{title}")
    for name, seconds in medians.items():
        rounds_text = ", ".join(f"{v:.1f}" for v in times[name])
        print(f"  {name:<34} {seconds:8.1f} s   x{seconds / first:5.2f}   [{rounds_text}]")


def main(argv: Sequence[str] = ()) -> None:
    import diffusers

    from bench.realistic import build_random_pipeline
    from studio.engine import Engine, GenerationRequest

    args = _parse(argv)
    diffusers.utils.logging.set_verbosity_error()
    engine = Engine(device="cpu", dtype="auto", backend=args.backend, preview="none")
    loaded = engine.add_pipeline("random", build_random_pipeline(args.family, seed=0), args.family)
    print(f"{args.family}, random weights at real widths; {loaded.placement.label}; {args.steps} steps, "
          f"strength {args.strength}, {args.rounds} round(s) after a warm-up")

    def request(**fields) -> GenerationRequest:
        return GenerationRequest(model="random", prompt="a lighthouse at dusk", steps=args.steps, seed=1,
                                 strength=args.strength, **fields)

    size = args.size
    picture = _picture(size)
    _compare(f"{size}x{size}: img2img vs inpainting the whole picture (centred mask, a quarter of the area)", {
        "img2img": _timed(engine, request(init_image=picture, width=size, height=size)),
        "inpaint, whole picture": _timed(engine, request(init_image=picture, mask_image=_square_mask(size, size // 2))),
    }, args.rounds)
    large, mask = _picture(args.large), _square_mask(args.large, args.mask)
    _compare(f"{args.large}x{args.large} picture, {args.mask} px mask: whole picture vs only masked at {size}", {
        f"inpaint, whole picture ({args.large})": _timed(engine, request(init_image=large, mask_image=mask)),
        f"inpaint, only masked ({size})": _timed(
            engine, request(init_image=large, mask_image=mask, inpaint_area="masked", width=size, height=size)
        ),
    }, args.rounds)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
