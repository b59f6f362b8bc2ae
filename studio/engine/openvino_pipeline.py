"""Move a loaded diffusers pipeline's networks onto OpenVINO: convert once (cached), compile, swap in.

On first use of a model the text encoder, UNet and both halves of the VAE are converted from the torch
modules we loaded (progress said, cancellable between parts), saved to the cache
(:mod:`studio.library.openvino_cache`) and compiled; later loads, in any process, read the cached IR and
OpenVINO's compiled-model cache, and a folder or Hub model whose parts are all cached never reads its
torch weights (:func:`cached_networks`). int8 also records calibration samples from the pipeline first
(:mod:`studio.engine.openvino_calibration`). Nothing in the pipeline changes until every part has compiled, so a
failure leaves a whole torch pipeline behind and the engine falls back to torch with one message.

Reproducibility: an image is reproduced by the same device + backend + precision (for bfloat16 and
int8, on a CPU of the same kind: without native bf16 OpenVINO computes their float parts in f32, and
$STUDIO_AUTO_CPU_DTYPE=float32 forces that for int8). The backend changes
the networks' arithmetic (OpenVINO fuses and orders operations its own way, float16-stored weights), never
the random numbers: seeds, schedulers and noise are torch's on both backends, so the same seed gives
the same composition, and on one backend and precision the same pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from studio.engine.backends import openvino_version
from studio.engine.errors import Cancelled
from studio.engine.openvino_convert import (
    COMPONENTS,
    LORA_FORMAT,
    compress_int8,
    convert,
    float_weights,
    needs_calibration,
    quantize_w8a8,
    save,
    weights_format,
)
from studio.engine.openvino_networks import OpenVinoNetwork, OpenVinoTextEncoder, OpenVinoUNet, OpenVinoVae
from studio.engine.openvino_runtime import compile_config, core
from studio.library.display import first_line
from studio.library.openvino_cache import OpenVinoCache

log = logging.getLogger(__name__)
StatusCallback = Callable[[str], None]
COMPONENT_LABELS = {"text_encoder": "text encoder", "unet": "UNet", "vae_decoder": "VAE decoder", "vae_encoder": "VAE encoder"}
# Where a folder's weights are: its fingerprint covers these (sizes and modification times, not contents:
# hashing gigabytes at every load would cost more than the conversion it protects).
_NETWORK_FOLDERS = ("unet", "flexible_unet", "text_encoder", "vae")


class OpenVinoFailed(RuntimeError):
    """A part could not be converted or compiled; the message names it and says why, in one line."""


@dataclass
class Prepared:
    converted: list[str] = field(default_factory=list)  # parts converted now (empty: all from the cache)
    seconds: float = 0.0
    precisions: dict[str, str] = field(default_factory=dict)  # part -> what OpenVINO runs ("bf16", "f32")
    notes: list[str] = field(default_factory=list)


def folder_identity(folder: Path) -> str:
    """A local folder's identity: its path and its network files' sizes and modification times."""
    folder = Path(folder).resolve()
    digest = hashlib.sha256(str(folder).encode("utf-8"))
    for name in _NETWORK_FOLDERS:
        part = folder / name
        if not part.is_dir():
            continue
        for path in sorted(p for p in part.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return f"folder:{folder}:{digest.hexdigest()[:16]}"


def weights_fingerprint(pipe) -> str:
    """A cheap identity for a pipeline built in memory: every network tensor's name, shape and a few of
    its values (hashing all of a UNet's gigabytes would cost seconds; random or trained weights that
    agree on all of these are not met in practice)."""
    import torch

    digest = hashlib.sha256()
    for name in ("text_encoder", "unet", "vae"):
        module = getattr(pipe, name, None)
        if not isinstance(module, torch.nn.Module):
            continue
        for key, tensor in module.state_dict().items():
            flat = tensor.detach().reshape(-1)
            sample = torch.cat([flat[:16], flat[-16:], flat[:: max(1, flat.numel() // 16)][:16]]).float()
            digest.update(f"{name}.{key}{tuple(tensor.shape)}".encode())
            digest.update(sample.cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Networks:
    """The compiled stand-ins for a pipeline's text encoder, UNet and VAE."""

    text_encoder: OpenVinoTextEncoder
    unet: OpenVinoUNet
    vae: OpenVinoVae

    def as_components(self) -> dict[str, object]:
        return {"text_encoder": self.text_encoder, "unet": self.unet, "vae": self.vae}


def move_to_openvino(
    pipe, *, identity: str, label: str, precision: str, cache: OpenVinoCache,
    threads: int | None = None, on_status: StatusCallback | None = None, cancel: threading.Event | None = None,
) -> Prepared:
    """Replace `pipe`'s networks by compiled OpenVINO ones. Raises Cancelled, or OpenVinoFailed with
    `pipe`'s networks untouched (int8's calibration has run the pipeline: its scheduler has stepped)."""
    started = time.perf_counter()
    prepared = Prepared()
    sources = _converted_parts(pipe, identity, label, precision, cache, prepared, on_status, cancel)
    networks = _compile_all(sources, identity, label, precision, cache, threads, prepared, cancel)
    pipe.text_encoder, pipe.unet, pipe.vae = networks.text_encoder, networks.unet, networks.vae  # all compiled: now swap
    prepared.seconds = time.perf_counter() - started
    return prepared


def cached_networks(
    *, identity: str, label: str, precision: str, cache: OpenVinoCache,
    threads: int | None = None, cancel: threading.Event | None = None,
) -> tuple[Networks, Prepared] | None:
    """The compiled networks straight from the cache when it holds every part: the model's torch weights
    need not be read at all (seconds and gigabytes of memory for a full-size model). None when a part is
    missing; OpenVinoFailed when one does not compile."""
    parts = _cached_parts(cache, identity, precision)
    if any(xml is None for xml in parts.values()):
        return None
    sources: dict[str, tuple[object, dict]] = {c: (xml, _read_config(xml)) for c, xml in parts.items()}
    if not all(config for _xml, config in sources.values()):
        return None  # a part without its config: the pipeline could not be built around it; convert again
    started = time.perf_counter()
    prepared = Prepared()
    networks = _compile_all(sources, identity, label, precision, cache, threads, prepared, cancel)
    prepared.seconds = time.perf_counter() - started
    return networks, prepared


def _compile_all(
    sources: dict[str, tuple[object, dict]], identity: str, label: str, precision: str, cache: OpenVinoCache,
    threads: int | None, prepared: Prepared, cancel: threading.Event | None,
) -> Networks:
    settings = compile_config(precision, threads=threads)
    cached_settings = _with_compiled_cache(settings, cache, identity, label)

    def compiled(component: str, kind):
        # OpenVINO's compiled-model cache for float16-weight parts only: their blob leaves the weights in
        # the IR (a few MB); an int8 part's blob holds all its weights again (2.2 GB for SD 1.5's UNet with
        # int8 weights, measured) to save 6 s of compiling per load: the cache's size wins.
        fp16 = float_weights(weights_format(component, precision))
        network = _compile(component, kind, sources[component], cached_settings if fp16 else settings, cancel)
        prepared.precisions[component] = network.precision
        return network

    text_encoder = compiled("text_encoder", OpenVinoTextEncoder)
    unet = compiled("unet", OpenVinoUNet)
    vae = OpenVinoVae(compiled("vae_decoder", OpenVinoNetwork), compiled("vae_encoder", OpenVinoNetwork))
    return Networks(text_encoder, unet, vae)


def _cached_parts(cache: OpenVinoCache, identity: str, precision: str) -> dict[str, Path | None]:
    """Each part's cached IR for this precision and OpenVINO version (None: not converted yet)."""
    version = openvino_version() or "unknown"
    return {c: cache.part(identity, c, weights_format(c, precision), version) for c in COMPONENTS}


def _converted_parts(
    pipe, identity: str, label: str, precision: str, cache: OpenVinoCache, prepared: Prepared,
    on_status: StatusCallback | None, cancel: threading.Event | None,
) -> dict[str, tuple[object, dict]]:
    """Each part's IR file (from the cache, or converted now and cached) and its config. A part that
    cannot be cached (a full or read-only disk) runs from memory this time and is converted again next."""
    version = openvino_version() or "unknown"
    sources: dict[str, tuple[object, dict]] = {}
    cached = _cached_parts(cache, identity, precision)
    missing = [c for c, xml in cached.items() if xml is None]
    for component, xml in cached.items():
        weights = weights_format(component, precision)
        if xml is not None:
            sources[component] = (xml, _read_config(xml))
            continue
        _check(cancel)
        said = f"Optimising for this CPU: {COMPONENT_LABELS[component]} {len(prepared.converted) + 1}/{len(missing)}"
        model, config = _convert(pipe, component, weights, partial(_say, on_status, said), cancel)
        _check(cancel)
        try:
            xml = cache.publish(identity, label, component, weights, version, partial(save, model), config)
            sources[component] = (xml, config)
        except OSError as exc:
            log.warning("cannot cache the OpenVINO %s", component, exc_info=True)
            prepared.notes.append(f"the OpenVINO cache could not be written ({first_line(exc)[:300]}): it converts again next time")
            sources[component] = (model, config)
        prepared.converted.append(component)
    return sources


def _convert(pipe, component: str, weights: str, say: Callable[[str], None], cancel: threading.Event | None):
    """One part as an OpenVINO model in its weights format. w8a8 first records its calibration samples
    from the pipeline's own torch networks (cancellable at each step), then quantizes (NNCF: not)."""
    samples = None
    if needs_calibration(weights):
        from studio.engine.openvino_calibration import plan_for, unet_inputs

        plan = plan_for(pipe)
        say(f" (int8: calibrating on {plan.steps_total} steps)…")
        try:
            samples = unet_inputs(pipe, plan, cancel)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - a pipeline that cannot run here cannot be calibrated
            raise OpenVinoFailed(f"calibrating the {COMPONENT_LABELS[component]} for int8 failed: {first_line(exc)[:300]}") from exc
        _check(cancel)
        say(" (int8: quantizing)…")
    else:
        say("…")
    try:
        model, config = convert(pipe, component, lora=weights == LORA_FORMAT)
        if samples is not None:
            return quantize_w8a8(model, samples, partial(_check, cancel)), config
        return (compress_int8(model) if weights == "int8" else model), config
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any converter failure is this part's failure
        raise OpenVinoFailed(f"converting the {COMPONENT_LABELS[component]} failed: {first_line(exc)[:300]}") from exc


def _say(on_status: StatusCallback | None, prefix: str, rest: str) -> None:
    if on_status is not None:
        on_status(prefix + rest)


def _compile(component: str, kind, source: tuple[object, dict], settings: dict, cancel: threading.Event | None):
    _check(cancel)
    model, config = source
    try:
        compiled = core().compile_model(str(model) if isinstance(model, Path) else model, "CPU", settings)
    except Exception as exc:  # noqa: BLE001 - a damaged IR, an unsupported operation, memory
        raise OpenVinoFailed(f"compiling the {COMPONENT_LABELS[component]} failed: {first_line(exc)[:300]}") from exc
    return kind(compiled, config, name=component, precision=_runs_in(compiled))


def _with_compiled_cache(settings: dict, cache: OpenVinoCache, identity: str, label: str) -> dict:
    """`settings` plus the model's compiled-model cache folder (none when it cannot be made)."""
    try:
        folder = cache.compiled_dir(identity, label)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return settings
    # OPTIMIZE_SIZE: the blob without the weights, which are read from the IR (3.5 MB for a UNet).
    return {**settings, "CACHE_DIR": str(folder), "CACHE_MODE": "OPTIMIZE_SIZE"}


def _runs_in(compiled) -> str:
    """"bf16" or "f32": what the plugin settled on (the hint is an element type, not a string)."""
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # noqa: BLE001 - a plugin that cannot say
        return "unknown"
    name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(name, name)


def _read_config(xml: Path) -> dict:
    try:
        value = json.loads((xml.parent / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled while optimising the model for this CPU")
