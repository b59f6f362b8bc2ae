"""OpenVINO vs torch on the CPU: conversion, cache size, UNet step, whole image, fidelity and memory.

Per family (random-weight pipelines at real widths, bench/realistic.py; every config's pipeline has the
same weights), for each config (torch-fp32, torch-auto, ov-f32, ov-bf16, ov-int8, ov-int8-f32 by default;
ov-int8-f32 is int8 as a CPU without native bf16 compiles it, a stand-in for an fp32-only CPU):

1. OpenVINO only: the first load (Engine.add_pipeline into an empty cache folder of its own: conversion,
   int8 calibration and quantization where asked, compile; wall time), the cache's size on disk after it (IR and
   compiled blobs; a footnote gives each part), and a second load by a new Engine on that cache (reuse).
   Each precision converts into its own folder so that each pays its own first load (ov-int8-f32 shares
   ov-int8's: the same IR, compiled with the f32 hint); in the app's one
   cache, float32 and bfloat16 share the float16-weight IR and int8 adds its own text encoder and UNet.
2. UNet time per step: the pipeline's UNet called directly (torch module in its own dtype, or the
   OpenVINO wrapper), batch 2 as under classifier-free guidance; a warm-up call each, then rounds with
   the configs alternated, median (every round is in the details).
3. Whole image: Engine.generate (text encoding, every step, VAE decode) with the family's default steps,
   the pipeline's own scheduler, CFG 7.5, a fixed seed, no preview; a 1-step warm-up generate each
   (before the UNet steps: every network's first call at this size), then image rounds alternated, median.
4. Fidelity: PSNR of each config's final image against torch-fp32's (bench/bf16_fidelity's rule: 35 dB).
5. Memory: the process RSS sampled by a thread during each timed generate; "peak +MB" is its peak minus
   the RSS just before (freed heap is handed back first, so earlier configs' garbage does not hide a
   config's peak). "model MB" is what the config keeps: RSS growth from its load plus what its first
   generate (the warm-up) added and kept; OpenVINO prepares its weights and buffers at that first call,
   so its load alone says little (the first generate's own peak is in the details).

Speed-ups are printed for the step and for the image ("step/image"), against torch-fp32 and against the
best torch config (the fastest of the torch configs measured). Random weights: speed and memory are the
real model's; PSNR is an estimate (see bench/bf16_fidelity's caveat).
Usage: python -m bench openvino_speed [--families deci,sd1,sd2] [--size PX] [--steps N] [--rounds N]
[--image-rounds N] [--configs torch-fp32,...] [--threads N] [--cache DIR] [--keep-cache]
The OpenVINO cache is a temporary folder, removed at the end (unless --keep-cache); a folder named with
--cache is kept, and a rerun on it reuses its conversions (the convert column then says "(cached)").
Full size is slow (sd1 at 512 px: minutes per image on a few cores); try --size 128 --steps 2 first.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bf16_fidelity import PSNR_RULE_DB, psnr
from bench.realistic import unet_step_timer

FAMILIES = ("deci", "sd1", "sd2")
DEFAULT_SIZE = {"deci": 512, "sd1": 512, "sd2": 768}
DEFAULT_STEPS = {"deci": 30, "sd1": 50, "sd2": 50}
PROMPT = "a lighthouse on a cliff at dusk, oil painting"
SEED = 1
GUIDANCE = 7.5
REFERENCE = "torch-fp32"


@dataclass(frozen=True)
class Config:
    name: str
    backend: str  # "torch" | "openvino"
    dtype: str  # the Engine's dtype argument
    auto_cpu_dtype: str | None = None  # $STUDIO_AUTO_CPU_DTYPE while it loads: int8's float part (f32 hint)

    @property
    def is_torch(self) -> bool:
        return self.backend == "torch"


CONFIGS = {
    c.name: c
    for c in (
        Config("torch-fp32", "torch", "float32"),
        Config("torch-bf16", "torch", "bfloat16"),
        Config("torch-auto", "torch", "auto"),
        Config("ov-f32", "openvino", "float32"),
        Config("ov-bf16", "openvino", "bfloat16"),
        Config("ov-int8", "openvino", "int8"),
        # int8 as it compiles on a CPU without native bf16 (its float operations in f32): the fp32-only stand-in.
        Config("ov-int8-f32", "openvino", "int8", auto_cpu_dtype="float32"),
        Config("ov-auto", "openvino", "auto"),
    )
}
DEFAULT_CONFIGS = "torch-fp32,torch-auto,ov-f32,ov-bf16,ov-int8,ov-int8-f32"


@dataclass
class Loading:
    """An OpenVINO config's loads and its cache."""

    first_s: float  # first add_pipeline: conversion (unless the cache had it) and compile
    reuse_s: float  # a new Engine on the same cache
    cache_bytes: int
    part_bytes: dict[str, int]  # "unet-int8-ov2026.4.1" / "compiled" -> bytes
    converted: bool  # False: the folder given with --cache already held this model


@dataclass
class Added:
    """One add_pipeline."""

    loaded: Any  # LoadedModel
    seconds: float  # add_pipeline's wall time
    resident_mb: float  # RSS growth from before the copy to after the load (garbage handed back)


@dataclass
class Run:
    """One config of one family: its engine and what was measured."""

    config: Config
    engine: Any
    runs: str  # what the networks run: "torch float32", "ov bf16", "ov int8/f32" ...
    load_mb: float  # RSS the loaded engine keeps (weights; OpenVINO may prepare its own at the first call)
    loading: Loading | None = None
    first_kept_mb: float = 0.0  # RSS the first generate added and kept (OpenVINO's weights and buffers)
    first_peak_mb: float = 0.0  # the first generate's peak over the RSS before it
    step_s: list[float] = field(default_factory=list)
    image_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)  # each timed generate's peak over the RSS before it
    image: Any = None
    psnr_db: float | None = None

    @property
    def model_mb(self) -> float:
        """What the config holds once it has made an image."""
        return self.load_mb + self.first_kept_mb

    @property
    def pipe(self):
        (loaded,) = self.engine.loaded_models()
        return loaded.txt2img


@dataclass(frozen=True)
class Settings:
    families: list[str]
    size: int | None
    steps: int | None
    rounds: int
    image_rounds: int
    configs: list[Config]
    threads: int | None
    cache: Path | None  # None: a temporary folder
    keep_cache: bool


# ------------------------------------------------------------------------------------------- options
def _parse(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench openvino_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="deci,sd1", help="comma-separated: deci, sd1, sd2 (default deci,sd1)")
    parser.add_argument("--size", type=int, help="image side in px (default 512; 768 for sd2)")
    parser.add_argument("--steps", type=int, help="steps per image (default 30 for deci, 50 for sd1/sd2)")
    parser.add_argument("--rounds", type=int, default=3, help="UNet-step rounds (default 3)")
    parser.add_argument("--image-rounds", type=int, default=1, help="whole-image rounds (default 1)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated of {', '.join(CONFIGS)}")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads and OpenVINO's threads (default: theirs)")
    parser.add_argument("--cache", type=Path, help="OpenVINO cache folder, kept; a rerun reuses it (default: a temporary one)")
    parser.add_argument("--keep-cache", action="store_true", help="keep the temporary cache folder")
    args = parser.parse_args(list(argv))
    families = _split(args.families)
    configs = _split(args.configs)
    for name, unknown in (("family", [f for f in families if f not in FAMILIES]), ("config", [c for c in configs if c not in CONFIGS])):
        if unknown:
            parser.error(f"unknown {name}(s): {', '.join(unknown)}")
    if min(args.rounds, args.image_rounds) < 1:
        parser.error("--rounds and --image-rounds must be at least 1")
    return Settings(
        families=families, size=args.size, steps=args.steps, rounds=args.rounds, image_rounds=args.image_rounds,
        configs=[CONFIGS[c] for c in configs], threads=args.threads, cache=args.cache, keep_cache=args.keep_cache,
    )


def _split(text: str) -> list[str]:
    return [part for part in text.replace(" ", "").split(",") if part]


# ------------------------------------------------------------------------------------------ machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def _rss_reader() -> Callable[[], int]:
    """The process's resident set size in bytes: psutil where installed, else /proc/self/status."""
    try:
        import psutil

        process = psutil.Process()
        return lambda: process.memory_info().rss
    except ImportError:
        pass

    def from_proc() -> int:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    return from_proc


_rss = _rss_reader()


class PeakRss:
    """Samples RSS on a thread while the block runs: `growth_mb` is the peak minus the RSS before, and
    `kept_mb` what is still resident after (garbage collected and free heap handed back first)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.before = self.peak = self.after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> PeakRss:
        _release_free_memory()
        self.before = self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        _release_free_memory()
        self.after = _rss()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / 2**20

    @property
    def kept_mb(self) -> float:
        return (self.after - self.before) / 2**20


def _release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap back, so the next RSS baseline is what is live."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ loading
def _model_name(family: str) -> str:
    return f"random-{family}"


def _engine(config: Config, settings: Settings, cache: Path | None):
    from studio.engine import Engine

    return Engine(
        device="cpu", dtype=config.dtype, backend=config.backend, preview="none",
        openvino_cache=cache, threads=settings.threads,
    )


def _add(engine, reference, family: str) -> Added:
    """A copy of the reference pipeline added to `engine` (add_pipeline changes what it is given)."""
    _release_free_memory()
    before = _rss()
    pipe = copy.deepcopy(reference)
    start = time.perf_counter()
    loaded = engine.add_pipeline(_model_name(family), pipe, family, identity=f"bench-openvino-speed:{family}:seed0")
    seconds = time.perf_counter() - start
    del pipe  # on OpenVINO its torch networks were replaced: they go now
    _release_free_memory()
    return Added(loaded, seconds, (_rss() - before) / 2**20)


def _runs_label(config: Config, loaded) -> str:
    placement = loaded.placement
    if placement.backend == "torch":
        suffix = " (fallback)" if not config.is_torch else ""
        return f"torch {placement.dtype_name}{suffix}"
    computes = _short_precision(str(getattr(loaded.txt2img.unet, "precision", "?")))
    return f"ov int8/{computes}" if placement.dtype_name == "int8" else f"ov {computes}"


def _short_precision(text: str) -> str:
    """What OpenVINO computes in, short: its hint reads "bf16" or "<Type: 'bfloat16'>" by version."""
    text = text.lower()
    for short, spellings in (("bf16", ("bf16", "bfloat16")), ("f16", ("'f16", "float16")), ("f32", ("f32", "float32"))):
        if any(spelling in text for spelling in spellings):
            return short
    return text


def _cache_parts(folder: Path) -> tuple[int, dict[str, int]]:
    from studio.library.openvino_cache import COMPILED, OpenVinoCache

    total, parts = 0, {}
    for entry in OpenVinoCache(folder).entries():
        total += entry.size
        for name in (*entry.parts, COMPILED):
            if (entry.folder / name).is_dir():
                parts[name] = parts.get(name, 0) + _folder_bytes(entry.folder / name)
    return total, parts


def _prepare(config: Config, family: str, reference, settings: Settings, cache: Path) -> Run:
    if config.auto_cpu_dtype is None:
        return _prepare_run(config, family, reference, settings, cache)
    from studio.engine.precision import AUTO_CPU_DTYPE_ENV

    before = os.environ.get(AUTO_CPU_DTYPE_ENV)
    os.environ[AUTO_CPU_DTYPE_ENV] = config.auto_cpu_dtype  # read when the networks compile, at load
    try:
        return _prepare_run(config, family, reference, settings, cache)
    finally:
        if before is None:
            os.environ.pop(AUTO_CPU_DTYPE_ENV, None)
        else:
            os.environ[AUTO_CPU_DTYPE_ENV] = before


def _prepare_run(config: Config, family: str, reference, settings: Settings, cache: Path) -> Run:
    if config.is_torch:
        engine = _engine(config, settings, None)
        added = _add(engine, reference, family)
        return Run(config, engine, _runs_label(config, added.loaded), load_mb=added.resident_mb)
    from studio.library.openvino_cache import OpenVinoCache

    folder = cache / f"{family}-{config.dtype}"  # ov-int8-f32 reuses ov-int8's conversion: the same IR
    converted = not OpenVinoCache(folder).entries()
    first_s = _add(_engine(config, settings, folder), reference, family).seconds  # that engine then goes
    total, parts = _cache_parts(folder)
    engine = _engine(config, settings, folder)
    added = _add(engine, reference, family)
    loading = Loading(first_s, added.seconds, total, parts, converted)
    return Run(config, engine, _runs_label(config, added.loaded), load_mb=added.resident_mb, loading=loading)


# -------------------------------------------------------------------------------------------- timing
def _unet_step(pipe, size: int, text_width: int) -> Callable[[], float]:
    """One batch-2 UNet call on the pipeline's UNet (torch module or OpenVINO wrapper), timed."""
    import torch

    unet = pipe.unet
    dtype = getattr(unet, "dtype", torch.float32)
    g = torch.Generator().manual_seed(size)
    sample = torch.randn(2, 4, size // 8, size // 8, generator=g).to(dtype)
    context = torch.randn(2, 77, text_width, generator=g).to(dtype)
    return unet_step_timer(unet, sample, context=context, timestep=torch.tensor(500))


def _request(family: str, size: int, steps: int):
    from studio.engine import GenerationRequest

    return GenerationRequest(
        model=_model_name(family), prompt=PROMPT, steps=steps, seed=SEED, width=size, height=size, guidance=GUIDANCE,
    )


def _measure_steps(runs: list[Run], size: int, text_width: int, rounds: int) -> None:
    steps = {run.config.name: _unet_step(run.pipe, size, text_width) for run in runs}
    for step in steps.values():
        step()  # warm-up: first-call allocations, kernel choice, OpenVINO's shape-specific compile
    for _ in range(rounds):
        for run in runs:
            run.step_s.append(steps[run.config.name]())


def _warm_up_images(runs: list[Run], family: str, size: int) -> None:
    """A 1-step generate each, before anything else runs at this size: every network's first call here
    (OpenVINO allocates its buffers for a shape then, and keeps them), so its memory peak counts."""
    request = _request(family, size, steps=1)
    for run in runs:
        with PeakRss() as memory:
            run.engine.generate(request)
        run.first_peak_mb, run.first_kept_mb = memory.growth_mb, memory.kept_mb


def _measure_images(runs: list[Run], family: str, size: int, steps: int, rounds: int) -> None:
    request = _request(family, size, steps)
    for _ in range(rounds):
        for run in runs:
            with PeakRss() as memory:
                start = time.perf_counter()
                (result,) = run.engine.generate(request)
                run.image_s.append(time.perf_counter() - start)
            run.peak_mb.append(memory.growth_mb)
            if run.image is None:
                run.image = result.image


def _score(runs: list[Run]) -> None:
    reference = next((run for run in runs if run.config.name == REFERENCE), None)
    if reference is None:
        return
    for run in runs:
        if run is not reference:
            run.psnr_db = psnr(run.image, reference.image)


# ------------------------------------------------------------------------------------------- report
def _ratio(base: float | None, value: float) -> str:
    return "-" if base is None else f"{base / value:.2f}"


def _table(runs: list[Run]) -> list[str]:
    step = {run.config.name: statistics.median(run.step_s) for run in runs}
    image = {run.config.name: statistics.median(run.image_s) for run in runs}
    torch_runs = [run.config.name for run in runs if run.config.is_torch]
    fp32 = (step.get(REFERENCE), image.get(REFERENCE))
    best = (min(step[n] for n in torch_runs), min(image[n] for n in torch_runs)) if torch_runs else (None, None)
    header = (
        f"{'config':<11} {'runs':<18} {'convert s':>9} {'reload s':>8} {'cache MB':>8} {'UNet s/step':>11} "
        f"{'image s':>8} {'x fp32 step/img':>15} {'x best torch':>12} {'PSNR dB':>7} {'model MB':>8} {'peak +MB':>8}"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        name, loading = run.config.name, run.loading
        if loading is None:
            convert, reload, cache = f"{'-':>9}", f"{'-':>8}", f"{'-':>8}"
        else:
            convert = f"{loading.first_s:9.1f}" if loading.converted else f"{'(cached)':>9}"
            reload, cache = f"{loading.reuse_s:8.1f}", f"{loading.cache_bytes / 2**20:8.0f}"
        lines.append(
            f"{name:<11} {run.runs:<18} {convert} {reload} {cache} {step[name]:11.3f} {image[name]:8.1f} "
            f"{_ratio(fp32[0], step[name]) + '/' + _ratio(fp32[1], image[name]):>15} "
            f"{_ratio(best[0], step[name]) + '/' + _ratio(best[1], image[name]):>12} "
            f"{_psnr_text(run):>7} {run.model_mb:8.0f} {max(run.peak_mb):8.0f}"
        )
    return lines


def _psnr_text(run: Run) -> str:
    if run.config.name == REFERENCE:
        return "ref"
    if run.psnr_db is None:
        return "-"
    return "inf" if run.psnr_db == float("inf") else f"{run.psnr_db:.1f}"


def _details(runs: list[Run]) -> list[str]:
    """Every round's figures, and each OpenVINO cache's parts."""
    lines = []
    for run in runs:
        steps = ", ".join(f"{v:.3f}" for v in run.step_s)
        images = ", ".join(f"{v:.1f}" for v in run.image_s)
        lines.append(f"  {run.config.name:<11} step s [{steps}]  image s [{images}]  memory MB: load {run.load_mb:.0f}, "
                     f"first image +{run.first_kept_mb:.0f} kept (peak +{run.first_peak_mb:.0f})")
    for run in runs:
        if run.loading is not None:
            parts = ", ".join(f"{name} {size / 2**20:.0f}" for name, size in sorted(run.loading.part_bytes.items()))
            lines.append(f"  {run.config.name:<11} cache MB: {parts}")
    return lines


def _openvino_threads(runs: list[Run]) -> str | None:
    for run in runs:
        compiled = getattr(run.pipe.unet, "compiled", None)
        if compiled is not None:
            try:
                return str(compiled.get_property("INFERENCE_NUM_THREADS"))
            except Exception:  # noqa: BLE001 - a plugin that cannot say
                return None
    return None


# --------------------------------------------------------------------------------------------- main
def _bench_family(family: str, settings: Settings, cache: Path) -> None:
    import numpy as np

    from bench.realistic import build_random_pipeline

    size = settings.size or DEFAULT_SIZE[family]
    steps = settings.steps or DEFAULT_STEPS[family]
    print(f"\n{family}: {size} px, {steps} steps (its own scheduler), CFG {GUIDANCE}, seed {SEED}; "
          f"UNet batch 2, {settings.rounds} rounds; image {settings.image_rounds} round(s); {_load()}", flush=True)
    reference = build_random_pipeline(family, seed=0)
    text_width = int(reference.text_encoder.config.hidden_size)
    # OpenVINO first: conversion needs memory while fewer engines are held.
    order = sorted(settings.configs, key=lambda c: c.is_torch)
    prepared = {}
    for config in order:
        run = _prepare(config, family, reference, settings, cache)
        prepared[config.name] = run
        loading = run.loading
        said = "" if loading is None else f", first load {loading.first_s:.1f} s, reload {loading.reuse_s:.1f} s"
        print(f"  loaded {config.name} ({run.runs}): resident {run.load_mb:.0f} MB{said}", flush=True)
    del reference
    runs = [prepared[c.name] for c in settings.configs]
    _warm_up_images(runs, family, size)
    _measure_steps(runs, size, text_width, settings.rounds)
    print("  UNet steps measured", flush=True)
    _measure_images(runs, family, size, steps, settings.image_rounds)
    _score(runs)
    print("\n".join(_table(runs)))
    print("\n".join(_details(runs)))
    reference_run = prepared.get(REFERENCE)
    if reference_run is not None:
        spread = float(np.asarray(reference_run.image, dtype=np.float64).std())
        print(f"  scale: torch-fp32 image pixel std {spread:.1f}; PSNR rule {PSNR_RULE_DB:.0f} dB")
    threads = _openvino_threads(runs)
    if threads is not None:
        print(f"  OpenVINO UNet threads: {threads}")
    print(f"  {_load()}", flush=True)


def main(argv: Sequence[str] = ()) -> None:
    import diffusers
    import torch

    from studio.engine.precision import cpu_has_native_bf16

    settings = _parse(argv)
    diffusers.utils.logging.set_verbosity_error()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    native = "yes" if cpu_has_native_bf16() else "no"
    ov_threads = settings.threads or "default (physical cores)"
    print(f"CPU: {_cpu_model()} ({os.cpu_count()} logical CPUs), native bf16: {native} "
          f"({torch.backends.cpu.get_cpu_capability()})")
    if settings.cache is not None:
        settings.cache.mkdir(parents=True, exist_ok=True)
    cache = settings.cache or Path(tempfile.mkdtemp(prefix="openvino_speed-"))
    print(f"threads: torch {torch.get_num_threads()}, OpenVINO {ov_threads}; OpenVINO cache {cache}")
    print("random weights at real widths; speed-ups are step/image; 'best torch' is the fastest torch config")
    try:
        for family in settings.families:
            _bench_family(family, settings, cache)
            _release_free_memory()
    finally:
        if settings.cache is None and not settings.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)
        else:
            print(f"OpenVINO cache kept: {cache}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
