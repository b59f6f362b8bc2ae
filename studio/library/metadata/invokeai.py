"""InvokeAI's ``invokeai_metadata`` (and the legacy ``sd-metadata``) read into our fields."""

from __future__ import annotations

from typing import Any

from studio.library.metadata.record import ImageMetadata
from studio.library.metadata.values import as_float, as_int, as_str, scalar_extras

_INVOKE_SCHEDULERS = {
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "deis": "DEIS",
    "lms": "LMS",
    "pndm": "PNDM",
    "heun": "Heun",
    "euler": "Euler",
    "euler_a": "Euler a",
    "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a",
    "dpmpp_2s": "DPM++ 2S",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_3m": "DPM++ 3M",
    "unipc": "UniPC",
    "lcm": "LCM",
    "tcd": "TCD",
    "k_lms": "LMS",
    "k_euler": "Euler",
    "k_euler_a": "Euler a",
    "k_heun": "Heun",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "k_dpmpp_2": "DPM++ 2M",
    "plms": "PLMS",
}


def _invoke_scheduler(name: str | None) -> str | None:
    if not name:
        return None
    if name in _INVOKE_SCHEDULERS:
        return _INVOKE_SCHEDULERS[name]
    if name.endswith("_k") and name[:-2] in _INVOKE_SCHEDULERS:
        return f"{_INVOKE_SCHEDULERS[name[:-2]]} Karras"
    return name


def from_invokeai(data: dict[str, Any]) -> ImageMetadata:
    model = data.get("model")
    model_name = None
    if isinstance(model, dict):
        model_name = as_str(model.get("name")) or as_str(model.get("model_name"))
    elif isinstance(model, str):
        model_name = model
    prompt = data.get("positive_prompt", data.get("prompt"))
    if isinstance(prompt, list):  # old style: [{"prompt": ..., "weight": ...}]
        parts = [p["prompt"] for p in prompt if isinstance(p, dict) and isinstance(p.get("prompt"), str)]
        prompt = " ".join(parts) if parts else None  # a list of anything else holds no prompt
    mode = as_str(data.get("generation_mode")) or ""
    strength = None
    if "txt2img" not in mode:
        strength = as_float(data.get("strength"))
        if strength is None:
            strength = as_float(data.get("denoising_strength"))
    extra = scalar_extras(
        data,
        skip=(
            "positive_prompt",
            "negative_prompt",
            "prompt",
            "seed",
            "steps",
            "cfg_scale",
            "width",
            "height",
            "scheduler",
            "model",
            "strength",
            "denoising_strength",
        ),
    )
    if isinstance(model, dict):
        base = as_str(model.get("base")) or as_str(model.get("base_model"))
        if base:
            extra["model base"] = base
    return ImageMetadata(
        source="invokeai",
        prompt=as_str(prompt),
        negative_prompt=as_str(data.get("negative_prompt")),
        steps=as_int(data.get("steps")),
        guidance=as_float(data.get("cfg_scale")),
        seed=as_int(data.get("seed")),
        width=as_int(data.get("width")),
        height=as_int(data.get("height")),
        scheduler=_invoke_scheduler(as_str(data.get("scheduler"))),
        model=model_name,
        strength=strength,
        extra=extra,
    )


def from_invokeai_legacy(data: dict[str, Any]) -> ImageMetadata | None:
    """InvokeAI 2.x ``sd-metadata``: ``{"model_weights": ..., "image": {"prompt": [...], ...}}``."""
    image = data.get("image")
    if not isinstance(image, dict):
        return None
    flattened = dict(image)
    flattened["model"] = data.get("model_weights") or data.get("model")
    flattened.setdefault("generation_mode", image.get("type") or "")
    result = from_invokeai(flattened)
    sampler = as_str(image.get("sampler"))
    if sampler:
        result.scheduler = _invoke_scheduler(sampler)
    return result
