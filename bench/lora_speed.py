"""LoRA switching on a loaded model: apply and remove times, the generation cost of an active LoRA, its memory.

SD 1.5 at real widths with random weights (bench/realistic.py) added to one Engine on the PyTorch backend,
and two random-weight kohya LoRAs of rank 32 (studio.engine.tiny.make_tiny_lora: every attention linear of
the UNet and the text encoder, as kohya trains by default) in a LoRA folder of their own. Everything goes
through what a job does (studio.engine.extra_networks: `prepare` resolves the prompt's `<lora:name:w>` tags,
loads a LoRA once under an adapter of its own, then `set_adapters` with the job's weights, or
`disable_lora` for a job without LoRAs). Per precision (float32, and bfloat16 where the CPU has it natively):

1. First apply of each LoRA (its first job: A1111 hash, `load_lora_weights`, `set_adapters`): seconds,
   and the RSS it keeps (peft's lora_A/lora_B layers) and its peak while loading.
2. Switches between loaded LoRAs (`set_adapters`), to none (`disable_lora`), back, a weight change and a
   pair: milliseconds, median over --switches cycles (each cycle does every switch once).
3. Whole images (Engine.generate at --size px, --steps steps, DDIM, CFG 7.5, fixed seed, no preview):
   plain before any LoRA was loaded, plain with the LoRAs loaded but disabled, LoRA A active as in the
   last job, and the first image right after a switch (none -> A, A -> B, B -> none); a plain warm-up
   first, then the configs in order each round, medians. The ratio LoRA/plain is peft's extra matmuls
   (the LoRA layers run beside the base layers, unmerged). Pixels are compared too: a plain image after
   LoRAs must be the one before them, bit for bit, and an image after a switch the one without it.

OpenVINO (--backends ...,openvino; float32 and bfloat16, int8 does not apply LoRAs): the same pipeline added to
an Engine on the OpenVINO backend with a temporary cache folder, so its first load is the conversion (the text
encoder and UNet traced with LoRA inputs: each targetable layer computes Wx + B(Ax), A and B model inputs, the
matrices set once per change of LoRA set, rank-1 zeros for none; studio.engine.openvino_convert), timed; a
second precision in the same run reuses the cache's IR and only compiles. Then the same three parts: first
apply of each LoRA (its matrices read from the file with diffusers' lora_state_dict, then `set_lora` on the
compiled networks' input tensors), the switches (a new set of input tensors: no reconversion), whole images
(plain before any LoRA on the same engine, as OpenVINO's plain state is zeros, not a second model; the first
image at a new LoRA rank may pay OpenVINO's shape-dependent preparation). Pixels: plain after LoRAs against
plain before, and OpenVINO-with-LoRA against torch-with-LoRA (mean abs difference of 0-255 pixels, plain
against plain beside it: the IR keeps float16 weights). When the torch half was not run, two torch images
(plain, A) are made for that comparison. With both backends, a table sets the image times side by side.
Random weights: speed and memory are the real model's; the images are noise.
Usage: python -m bench lora_speed [--size 512] [--steps 4] [--rounds 1] [--switches 5] [--rank 32]
[--dtypes float32,bfloat16] [--backends torch,openvino] [--quick]   (--quick: 128 px, 2 steps, 3 switch cycles: a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.openvino_speed import PeakRss, _load

PROMPT = "a lighthouse on a cliff at dusk, oil painting"
SEED = 1
LORAS = ("style_a", "style_b")
BACKENDS = ("torch", "openvino")
OPENVINO_DTYPES = ("float32", "bfloat16")  # int8 does not apply LoRAs (its calibration would quantize them away)
# The image configs both halves time, side by side: (row, torch's name, OpenVINO's name).
PLAIN_BEFORE = {"torch": "plain, no LoRA ever loaded", "openvino": "plain, before any LoRA"}
PLAIN_AFTER = {"torch": "plain, LoRAs loaded, disabled", "openvino": "plain, LoRAs read, zeros set"}
LORA_A = "A, as in the last job"
SIDE_BY_SIDE = (
    ("plain before any LoRA", PLAIN_BEFORE["torch"], PLAIN_BEFORE["openvino"]),
    ("A, the first image with a LoRA", "A, the first image with a LoRA", "A, the first image with a LoRA"),
    ("A, right after none -> A", "A, right after none -> A", "A, right after none -> A"),
    (LORA_A, LORA_A, LORA_A),
    ("B, right after A -> B", "B, right after A -> B", "B, right after A -> B"),
    ("plain, right after B -> none", "plain, right after B -> none", "plain, right after B -> none"),
    ("plain, LoRAs loaded (disabled/zeros)", PLAIN_AFTER["torch"], PLAIN_AFTER["openvino"]),
)


@dataclass
class _Result:
    """What one half measured for one precision: image medians (s) and the last image of each config."""

    label: str
    medians: dict[str, float]
    images: dict[str, Any]  # config -> uint8 array


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench lora_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="image rounds after the warm-up")
    parser.add_argument("--switches", type=int, default=5, help="cycles of switches timed")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--dtypes", default=None, help="comma list (default: float32, and bfloat16 where native)")
    parser.add_argument("--backends", default="torch,openvino", help="comma list of torch, openvino")
    parser.add_argument("--quick", action="store_true", help="128 px, 2 steps, 3 switch cycles")
    args = parser.parse_args(list(argv))
    if args.quick:
        args.size, args.steps, args.switches = 128, 2, 3
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        parser.error(f"--backends: choose among {', '.join(BACKENDS)} (got {', '.join(unknown) or 'none'})")
    return args


def _dtypes(text: str | None) -> list[str]:
    if text:
        return [d.strip() for d in text.split(",") if d.strip()]
    from studio.engine.precision import cpu_has_native_bf16

    return ["float32", "bfloat16"] if cpu_has_native_bf16() else ["float32"]


def _write_loras(folder: Path, rank: int) -> list[Path]:
    from studio.engine.tiny import make_tiny_lora
    from studio.library.resources import component_configs_dir

    configs = component_configs_dir("sd1")  # a folder of SD 1.5's component configs: all the writer reads
    return [make_tiny_lora(configs, folder / f"{name}.safetensors", rank=rank, seed=i) for i, name in enumerate(LORAS)]


def _prompt(*loras: str) -> str:
    return PROMPT + "".join(f" <lora:{lora}>" for lora in loras)


def _timed_ms(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def _lora_dtype(pipe) -> str:
    for module in pipe.unet.modules():
        lora_a = getattr(module, "lora_A", None)
        if lora_a:
            return str(next(iter(lora_a.values())).weight.dtype).removeprefix("torch.")
    return "?"


def _bench_dtype(dtype: str, args: argparse.Namespace, catalog) -> _Result:
    import numpy as np

    from bench.realistic import build_random_pipeline
    from studio.engine import Engine, GenerationRequest
    from studio.engine.extra_networks import ExtraNetworks

    engine = Engine(device="cpu", dtype=dtype, backend="torch", preview="none", networks=catalog)
    loaded = engine.add_pipeline("random", build_random_pipeline("sd1", seed=0), "sd1")
    # The same weights in a second engine that never sees a LoRA: "plain before any LoRA", alternated.
    untouched = Engine(device="cpu", dtype=dtype, backend="torch", preview="none", networks=catalog)
    untouched.add_pipeline("random", build_random_pipeline("sd1", seed=0), "sd1")
    networks = ExtraNetworks(catalog)  # what the engine's jobs call; its state lives on the loaded model
    print(f"\n== torch {loaded.placement.label}  ({_load()})")

    def generate(prompt: str, on=engine) -> tuple[float, np.ndarray]:
        request = GenerationRequest(model="random", prompt=prompt, steps=args.steps, seed=SEED, scheduler="DDIM",
                                    width=args.size, height=args.size, guidance=7.5)
        start = time.perf_counter()
        (result,) = on.generate(request)
        return time.perf_counter() - start, np.asarray(result.image)

    generate(_prompt())  # warm-up: every network's first call at this size
    generate(_prompt(), untouched)
    times: dict[str, list[float]] = {}
    images: dict[str, np.ndarray] = {}

    def record(name: str, prompt: str, on=engine) -> None:
        seconds, image = generate(prompt, on)
        times.setdefault(name, []).append(seconds)
        images[name] = image

    pristine = "plain, no LoRA ever loaded"

    # 1. First apply of each LoRA, as its first job's prepare does it.
    print(f"1. first apply of a rank-{args.rank} LoRA (hash, load_lora_weights, set_adapters)")
    _first_applies(networks, loaded)
    print(f"  LoRA layers held in {_lora_dtype(loaded.txt2img)}")

    # 2. Switches among loaded LoRAs: each cycle does every switch once, from the state the last left.
    a, b = LORAS
    switches = {
        "A -> B (set_adapters)": _prompt(b),
        "B -> A (set_adapters)": _prompt(a),
        "A -> none (disable_lora)": _prompt(),
        "none -> none": _prompt(),
        "none -> A (enable, set_adapters)": _prompt(a),
        "A:1 -> A:0.5 (weights)": f"{PROMPT} <lora:{a}:0.5>",
        "A -> A+B (two adapters)": _prompt(a, b),
        "A+B -> A": _prompt(a),
    }
    switch_ms: dict[str, list[float]] = {name: [] for name in switches}
    for _ in range(args.switches):
        for name, prompt in switches.items():
            switch_ms[name].append(_timed_ms(lambda prompt=prompt: networks.prepare(loaded, prompt, "")))
    pipe = loaded.txt2img  # the diffusers calls alone, without the prepare around them (catalog refresh, lookups)
    adapters = list(loaded.networks.adapters.values())
    raw = {
        "diffusers set_adapters([A]) alone": lambda: pipe.set_adapters(adapters[:1], adapter_weights=[1.0]),
        "diffusers disable_lora() alone": pipe.disable_lora,
        "diffusers enable_lora() alone": pipe.enable_lora,
    }
    for _ in range(args.switches):
        for name, call in raw.items():
            switch_ms.setdefault(name, []).append(_timed_ms(call))
    _report_switches("2. switch between loaded LoRAs (a job's prepare)", switch_ms, args.switches)

    # 3. Whole images: the first with a LoRA (peft's layers' first call at this size) apart, then rounds,
    # each starting with the LoRAs disabled (as the last config leaves them).
    record("A, the first image with a LoRA", _prompt(a))
    networks.prepare(loaded, _prompt(), "")
    configs = (
        ("A, right after none -> A", _prompt(a)),
        ("A, as in the last job", _prompt(a)),
        ("B, right after A -> B", _prompt(b)),
        ("plain, right after B -> none", _prompt()),
        ("plain, LoRAs loaded, disabled", _prompt()),
    )
    for _ in range(args.rounds):
        record(pristine, _prompt(), untouched)
        for name, prompt in configs:
            record(name, prompt)
    medians = _report_images(
        args, times, images, pristine, plain_after="plain, LoRAs loaded, disabled", lora="A, as in the last job",
        heading=f"after a warm-up; x: against plain with the LoRAs disabled ({_load()})",
    )
    return _Result(loaded.placement.label, medians, images)


def _first_applies(networks, loaded) -> None:
    """Each LoRA's first apply, as its first job's prepare does it: time, memory kept and at peak, layers."""
    for name in LORAS:
        with PeakRss() as memory:
            start = time.perf_counter()
            prepared = networks.prepare(loaded, _prompt(name), "")
            seconds = time.perf_counter() - start
        (applied,) = prepared.loras
        print(f"  {name:<10} {seconds:7.2f} s   RSS kept +{memory.kept_mb:6.0f} MB   peak +{memory.growth_mb:6.0f} MB"
              f"   {applied.layers} of {applied.of} layers   {'; '.join(prepared.notes) or ''}")


def _report_switches(heading: str, switch_ms: dict[str, list[float]], switches: int) -> None:
    """Section 2 of a half: each switch's median time, with its spread."""
    print(f"{heading}, ms: median [min-max] over {switches}")
    for name, values in switch_ms.items():
        print(f"  {name:<34} {statistics.median(values):8.1f}   [{min(values):.1f}-{max(values):.1f}]")


def _report_images(args, times, images, pristine: str, *, plain_after: str, lora: str, heading: str) -> dict:
    """Section 3 of a half: each image's median time against plain, the LoRA's cost, and whether the
    pixels came back (plain after LoRAs as before any, A after a switch as A again)."""
    import numpy as np

    medians = {name: statistics.median(values) for name, values in times.items()}
    plain = medians[plain_after]
    print(f"3. one image, {args.size} px, {args.steps} steps DDIM, CFG 7.5; median of {args.rounds} round(s) {heading}")
    for name, seconds in medians.items():
        rounds_text = ", ".join(f"{v:.2f}" for v in times[name])
        print(f"  {name:<34} {seconds:8.2f} s   x{seconds / plain:5.2f}   [{rounds_text}]")
    print(f"  ratio LoRA/plain {medians[lora] / plain:.2f} (vs plain before any LoRA: {medians[lora] / medians[pristine]:.2f})")

    def same(x: str, y: str) -> str:
        diff = np.abs(images[x].astype(np.int16) - images[y].astype(np.int16)).max()
        return "identical" if diff == 0 else f"DIFFER (max {diff}, mean {_mean_abs(images[x], images[y]):.3f})"

    print(f"  pixels: plain after LoRAs vs before any: {same(plain_after, pristine)}; "
          f"plain right after B -> none vs before any: {same('plain, right after B -> none', pristine)}; "
          f"A after a switch vs A again: {same('A, right after none -> A', lora)}; "
          f"A vs plain: {same(lora, pristine)}")
    return medians


def _generator(engine, args: argparse.Namespace):
    """generate(prompt) -> (seconds, uint8 pixels) of one image of the bench's request on `engine`."""
    import numpy as np

    from studio.engine import GenerationRequest

    def generate(prompt: str) -> tuple[float, np.ndarray]:
        request = GenerationRequest(model="random", prompt=prompt, steps=args.steps, seed=SEED, scheduler="DDIM",
                                    width=args.size, height=args.size, guidance=7.5)
        start = time.perf_counter()
        (result,) = engine.generate(request)
        return time.perf_counter() - start, np.asarray(result.image)

    return generate


def _mean_abs(x, y) -> float:
    import numpy as np

    return float(np.abs(x.astype(np.float32) - y.astype(np.float32)).mean())


def _bench_openvino(dtype: str, args: argparse.Namespace, catalog, cache: Path) -> _Result:
    import numpy as np

    from bench.realistic import build_random_pipeline
    from studio.engine import Engine
    from studio.engine.extra_networks import ExtraNetworks, file_key
    from studio.library.openvino_cache import OpenVinoCache

    engine = Engine(device="cpu", dtype=dtype, backend="openvino", preview="none", networks=catalog,
                    openvino_cache=cache)
    converting = not OpenVinoCache(cache).entries()
    with PeakRss() as memory:  # kept: the compiled networks (the torch pipeline built for them goes with the load)
        pipeline = build_random_pipeline("sd1", seed=0)  # the torch half's weights
        start = time.perf_counter()
        loaded = engine.add_pipeline("random", pipeline, "sd1", identity="bench-lora-speed:sd1:seed0")
        load_s = time.perf_counter() - start
        del pipeline
    pipe = loaded.txt2img
    unet, encoder = pipe.unet, pipe.text_encoder
    computes = getattr(unet, "precision", "?")
    print(f"\n== openvino {loaded.placement.label}, computes {computes}  ({_load()})")
    if loaded.placement.backend != "openvino":
        print(f"  not on OpenVINO ({'; '.join(loaded.notes)}): no figures")
        raise SystemExit(1)
    cache_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2**20
    what = ("conversion with LoRA inputs into an empty cache (trace, convert, save fp16 IR) + compile" if converting
            else "the cache's IR (converted by an earlier precision in this run) + compile")
    print(f"0. first load: {load_s:7.1f} s   {what}; RSS kept +{memory.kept_mb:.0f} MB, peak +{memory.growth_mb:.0f} MB "
          f"(with building the torch pipeline); cache {cache_mb:.0f} MB")
    print(f"  LoRA inputs: UNet {len(unet.lora_layers)} layers, text encoder {len(encoder.lora_layers)} layers "
          f"(an (A, B) pair each); notes: {'; '.join(loaded.notes) or '-'}")
    networks = ExtraNetworks(catalog)
    generate = _generator(engine, args)
    times: dict[str, list[float]] = {}
    images: dict[str, np.ndarray] = {}

    def record(name: str, prompt: str) -> None:
        seconds, image = generate(prompt)
        times.setdefault(name, []).append(seconds)
        images[name] = image

    warm_s, _image = generate(_prompt())  # every network's first call at this size
    print(f"  first image after the load (plain, OpenVINO's first inference at this size): {warm_s:.2f} s")
    pristine = PLAIN_BEFORE["openvino"]
    record(pristine, _prompt())  # the networks' plain state (rank-1 zeros), before any LoRA was read

    # 1. First apply of each LoRA: its matrices read once, then set on the compiled networks.
    print(f"1. first apply of a rank-{args.rank} LoRA (lora_state_dict, matrices to the layers' inputs, set_lora)")
    _first_applies(networks, loaded)

    # 2. Switches: new input tensors for the text encoder and UNet, nothing reconverted.
    a, b = LORAS
    switches = {
        "A -> B (set_lora)": _prompt(b),
        "B -> A (set_lora)": _prompt(a),
        "A -> none (zeros)": _prompt(),
        "none -> none (unchanged: no call)": _prompt(),
        "none -> A (set_lora)": _prompt(a),
        "A:1 -> A:0.5 (weights)": f"{PROMPT} <lora:{a}:0.5>",
        "A -> A+B (rank 64)": _prompt(a, b),
        "A+B -> A": _prompt(a),
    }
    switch_ms: dict[str, list[float]] = {name: [] for name in switches}
    networks.prepare(loaded, _prompt(a), "")  # the state the last switch of a cycle leaves: A -> B switches at once
    for _ in range(args.switches):
        for name, prompt in switches.items():
            switch_ms[name].append(_timed_ms(lambda prompt=prompt: networks.prepare(loaded, prompt, "")))
    read_a = loaded.networks.read[file_key(catalog.find_lora(a))].pairs

    def set_both(pairs: dict, key: str) -> None:
        unet.set_lora(pairs.get("unet", {}), key=key)
        encoder.set_lora(pairs.get("text_encoder", {}), key=key)

    raw = {  # the networks' calls alone, without the prepare around them (catalog refresh, lookups, concatenation)
        "set_lora(A) UNet + TE alone": lambda: set_both(read_a, "raw-a"),
        "set_lora(none) UNet + TE alone": lambda: set_both({}, "raw-none"),
    }
    for _ in range(args.switches):
        for name, call in raw.items():
            switch_ms.setdefault(name, []).append(_timed_ms(call))
    networks.prepare(loaded, _prompt(), "")  # back to what the prepare knows (zeros)
    _report_switches("2. switch between read LoRAs (a job's prepare)", switch_ms, args.switches)

    # 3. Whole images, as the torch half: the first with a LoRA apart, then rounds starting from zeros.
    record("A, the first image with a LoRA", _prompt(a))
    networks.prepare(loaded, _prompt(), "")
    configs = (
        ("A, right after none -> A", _prompt(a)),
        (LORA_A, _prompt(a)),
        ("B, right after A -> B", _prompt(b)),
        ("plain, right after B -> none", _prompt()),
        (PLAIN_AFTER["openvino"], _prompt()),
    )
    for _ in range(args.rounds):
        for name, prompt in configs:
            record(name, prompt)
    medians = _report_images(
        args, times, images, pristine, plain_after=PLAIN_AFTER["openvino"], lora=LORA_A,
        heading=f"('{pristine}': the one image before any LoRA); x: against plain with zeros set ({_load()})",
    )
    return _Result(f"{loaded.placement.label}, computes {computes}", medians, images)


def _torch_reference(dtype: str, args: argparse.Namespace, catalog) -> _Result:
    """Only the torch images the pixel comparison needs (plain, and A), when the torch half did not run."""
    from bench.realistic import build_random_pipeline
    from studio.engine import Engine

    engine = Engine(device="cpu", dtype=dtype, backend="torch", preview="none", networks=catalog)
    loaded = engine.add_pipeline("random", build_random_pipeline("sd1", seed=0), "sd1")
    generate = _generator(engine, args)
    images = {PLAIN_BEFORE["torch"]: generate(_prompt())[1], LORA_A: generate(_prompt(LORAS[0]))[1]}
    return _Result(loaded.placement.label, {}, images)


def _compare(dtype: str, torch_result: _Result, ov: _Result) -> None:
    """OpenVINO against torch in one precision: pixels, and the image times side by side."""
    ti, oi = torch_result.images, ov.images
    print(f"\n== torch vs OpenVINO, {dtype}: torch {torch_result.label}; OpenVINO {ov.label}")
    print(f"  pixels, mean abs difference (0-255): A with the LoRA {_mean_abs(ti[LORA_A], oi[LORA_A]):.3f}; "
          f"plain {_mean_abs(ti[PLAIN_BEFORE['torch']], oi[PLAIN_BEFORE['openvino']]):.3f} "
          f"(the LoRA's own change of the image: torch {_mean_abs(ti[LORA_A], ti[PLAIN_BEFORE['torch']]):.3f}, "
          f"OpenVINO {_mean_abs(oi[LORA_A], oi[PLAIN_BEFORE['openvino']]):.3f})")
    if not torch_result.medians:
        return
    tm, om = torch_result.medians, ov.medians
    print(f"  one image, s: {'':<28} {'torch':>8} {'OpenVINO':>9}   torch/OV")
    for row, torch_name, ov_name in SIDE_BY_SIDE:
        print(f"  {row:<42} {tm[torch_name]:8.2f} {om[ov_name]:9.2f}   x{tm[torch_name] / om[ov_name]:5.2f}")
    torch_ratio = tm[LORA_A] / tm[PLAIN_AFTER["torch"]]
    ov_ratio = om[LORA_A] / om[PLAIN_AFTER["openvino"]]
    print(f"  ratio LoRA/plain: torch {torch_ratio:.2f}, OpenVINO {ov_ratio:.2f}; right after a switch "
          f"(none -> A / A as in the last job): torch {tm['A, right after none -> A'] / tm[LORA_A]:.2f}, "
          f"OpenVINO {om['A, right after none -> A'] / om[LORA_A]:.2f}")

def main(argv: Sequence[str] = ()) -> None:
    import diffusers
    import transformers

    from studio.library.extra_networks import NetworkCatalog

    args = _parse(argv)
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # its text-encoder LoRA load draws one on stderr
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        lora_folder, embedding_folder = Path(tmp) / "loras", Path(tmp) / "embeddings"
        embedding_folder.mkdir()
        files = _write_loras(lora_folder, args.rank)
        sizes = ", ".join(f"{f.stat().st_size / 2**20:.0f} MB" for f in files)
        print(f"sd1, random weights at real widths, on {' and '.join(args.backends)}; LoRAs {', '.join(LORAS)}: "
              f"random kohya rank {args.rank}, UNet + text encoder attention linears, fp16 files ({sizes})")
        catalog = NetworkCatalog([lora_folder], [embedding_folder])
        cache = Path(tmp) / "openvino_cache"  # empty: the first OpenVINO load converts
        for dtype in _dtypes(args.dtypes):
            torch_result = _bench_dtype(dtype, args, catalog) if "torch" in args.backends else None
            if "openvino" not in args.backends:
                continue
            if dtype not in OPENVINO_DTYPES:
                print(f"\n== openvino {dtype}: LoRAs are applied in float32 and bfloat16 only (a job naming one "
                      "runs on PyTorch under backend auto); no figures.")
                continue
            ov_result = _bench_openvino(dtype, args, catalog, cache)
            _compare(dtype, torch_result or _torch_reference(dtype, args, catalog), ov_result)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
