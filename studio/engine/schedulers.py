"""Scheduler names (as users know them from A1111) <-> diffusers scheduler classes.

A scheduler is always derived from the model's own scheduler config, so that the model's prediction
type (epsilon / v), timestep spacing, steps offset and zero-terminal-SNR rescaling carry over: swapping
the sampler must never silently change what the model was trained for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.engine.errors import RequestError


@dataclass(frozen=True)
class SchedulerSpec:
    class_name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    supports_zero_snr: bool = True


SCHEDULERS: dict[str, SchedulerSpec] = {
    "DDIM": SchedulerSpec("DDIMScheduler"),
    "Euler": SchedulerSpec("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "Euler a": SchedulerSpec("EulerAncestralDiscreteScheduler"),
    "DPM++ 2M": SchedulerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "DPM++ 2M Karras": SchedulerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "UniPC": SchedulerSpec("UniPCMultistepScheduler", {"use_karras_sigmas": False}),
    # PNDM (A1111's "PLMS") has no zero-terminal-SNR support in diffusers.
    "PNDM": SchedulerSpec("PNDMScheduler", {"skip_prk_steps": True}, supports_zero_snr=False),
}

# What a scheduler class is called when the model ships it (for naming the default in metadata).
_CLASS_TO_NAME = {
    "DDIMScheduler": "DDIM",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "PNDMScheduler": "PNDM",
    "UniPCMultistepScheduler": "UniPC",
}

# Fields of the model's config that must survive a scheduler swap (and that tests check).
PRESERVED_KEYS = ("prediction_type", "timestep_spacing", "rescale_betas_zero_snr", "steps_offset")


def names() -> list[str]:
    return list(SCHEDULERS)


def resolve_name(name: str) -> str:
    """Case-insensitive lookup that accepts a few common spellings ("euler_a", "dpm++ 2m karras")."""
    wanted = " ".join(name.replace("_", " ").split()).lower()
    for known in SCHEDULERS:
        if known.lower() == wanted:
            return known
    raise RequestError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")


def name_of(scheduler) -> str:
    """A readable name for a scheduler instance (the model's own one included)."""
    cls = type(scheduler).__name__
    if cls == "DPMSolverMultistepScheduler":
        return "DPM++ 2M Karras" if scheduler.config.get("use_karras_sigmas") else "DPM++ 2M"
    return _CLASS_TO_NAME.get(cls, cls)


def make_scheduler(name: str, base_config: dict):
    """A new scheduler `name` built from the model's scheduler config `base_config`."""
    import diffusers

    spec = SCHEDULERS[resolve_name(name)]
    if base_config.get("rescale_betas_zero_snr") and not spec.supports_zero_snr:
        raise RequestError(
            f"scheduler {name!r} cannot keep this model's zero-terminal-SNR schedule; "
            f"choose one of {', '.join(n for n, s in SCHEDULERS.items() if s.supports_zero_snr)}"
        )
    cls = getattr(diffusers, spec.class_name)
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    return cls.from_config({**config, **spec.overrides})
