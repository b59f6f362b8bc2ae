"""Scheduler names (as users know them from A1111) <-> diffusers scheduler classes.

A scheduler is always derived from the model's own scheduler config, so that the model's prediction
type (epsilon / v), timestep spacing, steps offset and zero-terminal-SNR rescaling carry over: swapping
the sampler must never silently change what the model was trained for.

Names: the offered ones (:data:`SCHEDULERS`) are what the app lists and writes in metadata. Requests may
spell them the A1111 way ("Euler a", "euler_a", "k_euler_a", "PLMS"), the diffusers way
("EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler karras") or the ComfyUI way
("euler_ancestral", "dpmpp_2m"); :func:`resolve_name` turns each into the one canonical name, so metadata
and the A1111 text never carry a spelling other tools cannot read. A model may also ship a scheduler we
do not offer (LMS, Euler with Karras sigmas, ...): :func:`name_for_config` names it for display ("Model
default (LMS)") and for metadata, and :func:`canonical_name` accepts that name back, so an image made with
a model's own scheduler can be regenerated from its metadata alone.

No torch or diffusers at import time: the UI lists names and names a model's default from its
scheduler_config.json without loading the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from studio.engine.errors import RequestError


@dataclass(frozen=True)
class SchedulerSpec:
    class_name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    supports_zero_snr: bool = True
    aliases: tuple[str, ...] = ()  # other spellings: A1111's k_* names, diffusers class names, ComfyUI's


SCHEDULERS: dict[str, SchedulerSpec] = {
    "DDIM": SchedulerSpec("DDIMScheduler", aliases=("DDIMScheduler",)),
    "Euler": SchedulerSpec(
        "EulerDiscreteScheduler", {"use_karras_sigmas": False}, aliases=("k_euler", "EulerDiscreteScheduler")
    ),
    "Euler a": SchedulerSpec(
        "EulerAncestralDiscreteScheduler",
        aliases=("k_euler_a", "k_euler_ancestral", "euler_ancestral", "EulerAncestralDiscreteScheduler"),
    ),
    "DPM++ 2M": SchedulerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
        aliases=("k_dpmpp_2m", "dpmpp_2m", "DPMSolverMultistepScheduler"),
    ),
    "DPM++ 2M Karras": SchedulerSpec(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        aliases=("k_dpmpp_2m_ka",),
    ),
    "UniPC": SchedulerSpec(
        "UniPCMultistepScheduler", {"use_karras_sigmas": False}, aliases=("uni_pc", "UniPCMultistepScheduler")
    ),
    # PNDM is A1111's "PLMS" (PNDM without its Runge-Kutta warm-up); no zero-terminal-SNR support in diffusers.
    "PNDM": SchedulerSpec(
        "PNDMScheduler", {"skip_prk_steps": True}, supports_zero_snr=False, aliases=("PLMS", "PNDMScheduler")
    ),
}

# Schedulers a model may ship that we do not offer: named for display and metadata only.
_OTHER_CLASS_NAMES = {
    "LMSDiscreteScheduler": "LMS",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DDPMScheduler": "DDPM",
    "DEISMultistepScheduler": "DEIS",
    "LCMScheduler": "LCM",
}
# What a scheduler class is called when the model ships it (for naming the default in metadata).
_CLASS_TO_NAME = {
    **{spec.class_name: name for name, spec in SCHEDULERS.items() if name != "DPM++ 2M Karras"},
    **_OTHER_CLASS_NAMES,
}
# Sigma-spacing flags of diffusers' schedulers -> A1111's "Schedule type" label, appended to the name.
_SCHEDULE_FLAGS = (("use_karras_sigmas", "Karras"), ("use_exponential_sigmas", "Exponential"), ("use_beta_sigmas", "Beta"))
_SCHEDULE_LABELS = tuple(label for _, label in _SCHEDULE_FLAGS)
_DPM_ALGORITHMS = {"dpmsolver++": "", "sde-dpmsolver++": " SDE"}
_DPM_NAME = re.compile(r"DPM\+\+ ([1-3])M( SDE)?", re.IGNORECASE)
_CLASS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,80}Scheduler")

# Fields of the model's config that must survive a scheduler swap (and that tests check).
PRESERVED_KEYS = ("prediction_type", "timestep_spacing", "rescale_betas_zero_snr", "steps_offset")


def names() -> list[str]:
    """The offered scheduler names, in the order the app lists them."""
    return list(SCHEDULERS)


def _key(name: str) -> str:
    """Spelling-insensitive key: case, spaces, underscores and hyphens do not matter ("euler_a" == "Euler a")."""
    return re.sub(r"[\s_\-]+", "", name).lower()


_SPELLINGS: dict[str, str] = {}
for _name, _spec in SCHEDULERS.items():
    for _spelling in (_name, *_spec.aliases):
        _SPELLINGS.setdefault(_key(_spelling), _name)


def _unknown(name: object) -> RequestError:
    return RequestError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")


def resolve_name(name: str) -> str:
    """The offered scheduler a spelling means, or RequestError.

    Accepts any case and spacing of our names ("euler_a", "dpm++ 2m  karras"), A1111's aliases
    ("k_euler_a", "PLMS"), diffusers class names ("PNDMScheduler"), ComfyUI's ("euler_ancestral"), and a
    trailing " karras" on any of them ("DPMSolverMultistepScheduler karras" -> "DPM++ 2M Karras").
    """
    if not isinstance(name, str):
        raise _unknown(name)
    found = _SPELLINGS.get(_key(name))
    if found is not None:
        return found
    words = name.split()
    if len(words) > 1 and words[-1].lower() == "karras":
        base = _SPELLINGS.get(_key(" ".join(words[:-1])))
        if base is not None and f"{base} Karras" in SCHEDULERS:
            return f"{base} Karras"
    raise _unknown(name)


def canonical_name(name: str) -> str:
    """Like :func:`resolve_name`, but also accepts names only a model's own scheduler can have.

    Those are what :func:`name_for_config` gives for schedulers we do not offer ("LMS", "Euler Karras",
    "DPM++ 2M SDE Karras", a diffusers class name); metadata records them when the model's default was
    used, and the engine runs such a name only on a model whose own scheduler it names.
    """
    try:
        return resolve_name(name)
    except RequestError:
        pass
    text = " ".join(name.split()) if isinstance(name, str) else ""
    base, suffix = text, ""
    for label in _SCHEDULE_LABELS:
        if text.lower().endswith(" " + label.lower()):
            base, suffix = text[: -len(label) - 1].strip(), " " + label
            break
    base_key = _key(base)
    for known in (*SCHEDULERS, *_OTHER_CLASS_NAMES.values()):
        if _key(known) == base_key and known != "DPM++ 2M Karras":
            return known + suffix
    dpm = _DPM_NAME.fullmatch(base)
    if dpm:
        return f"DPM++ {dpm.group(1)}M{' SDE' if dpm.group(2) else ''}{suffix}"
    if _CLASS_NAME.fullmatch(base):
        return base + suffix
    raise _unknown(name)


def name_for_config(config: Mapping[str, Any]) -> str:
    """A readable name for a scheduler config dict (``_class_name`` plus its settings). No torch needed.

    Offered schedulers get their offered name ("DPM++ 2M Karras"); others get A1111-style names
    ("LMS", "Euler Karras", "DPM++ 2M SDE") or, failing that, their class name.
    """
    cls = str(config.get("_class_name") or "")
    suffix = "".join(f" {label}" for flag, label in _SCHEDULE_FLAGS if config.get(flag))
    if cls == "DPMSolverMultistepScheduler":
        algorithm = _DPM_ALGORITHMS.get(str(config.get("algorithm_type", "dpmsolver++")))
        order = config.get("solver_order", 2)
        if algorithm is None or order not in (1, 2, 3):
            return cls + suffix
        return f"DPM++ {order}M{algorithm}{suffix}"
    base = _CLASS_TO_NAME.get(cls, cls or "unknown scheduler")
    return base + suffix


def name_of(scheduler) -> str:
    """A readable name for a scheduler instance (the model's own one included)."""
    return name_for_config({**scheduler.config, "_class_name": type(scheduler).__name__})


def make_scheduler(name: str, base_config: dict):
    """A new scheduler `name` built from the model's scheduler config `base_config`."""
    import diffusers

    known = resolve_name(name)
    spec = SCHEDULERS[known]
    if base_config.get("rescale_betas_zero_snr") and not spec.supports_zero_snr:
        raise RequestError(
            f"scheduler {known!r} cannot keep this model's zero-terminal-SNR schedule; "
            f"choose one of {', '.join(n for n, s in SCHEDULERS.items() if s.supports_zero_snr)}"
        )
    cls = getattr(diffusers, spec.class_name)
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    return cls.from_config({**config, **spec.overrides})
