"""What a form needs to know about a model before any load: is it a model at all, which scheduler it
ships with. Configs and safetensors headers only: no weights, no torch, milliseconds.
"""

from __future__ import annotations

from pathlib import Path

from studio.engine.catalog import CATALOG
from studio.engine.errors import RequestError
from studio.library.resources import component_configs_dir

__all__ = ["check_local_model", "default_scheduler_name"]


def check_local_model(spec: str) -> str:
    """The family of a local diffusers folder or .safetensors file; RequestError (one line) when it is
    not a Stable-Diffusion-shaped model we can load, so a wrong choice is refused when it is added, not
    when the first generation fails. A crafted or broken file or folder (a malformed safetensors header,
    absurd config sizes, an emptied tokenizer) is an `InvalidModelError`, a RequestError too: configs,
    tokenizer files and headers are read, never weights."""
    from studio.engine.loading import check_folder_layout, detect_folder_family
    from studio.engine.model_checks import check_model_folder
    from studio.engine.single_file import family_from_shapes, read_safetensors_header

    path = Path(spec).expanduser()
    if path.is_dir():
        family = detect_folder_family(path)
        check_folder_layout(path, family)
        check_model_folder(path, family)
        return family
    if not path.is_file():
        raise RequestError(f"{path}: no such file or folder")
    if path.suffix.lower() != ".safetensors":
        raise RequestError(f"{path.name}: not a .safetensors checkpoint (pickle .ckpt files need the command line's --allow-ckpt)")
    try:
        shapes, _metadata = read_safetensors_header(path)
    except OSError as exc:
        raise RequestError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    return family_from_shapes(shapes, path)


def _read_config(path: Path) -> dict:
    """A config, or {} when it is absent or unusable: what it names is a hint, and a crafted one (nested
    100,000 deep, say) must not break the form that asks."""
    from studio.engine.model_checks import read_config

    try:
        return read_config(path)
    except (OSError, RequestError):
        return {}


def _shipped_scheduler_config(family: str) -> dict:
    """The family's scheduler as single files get it (the configs shipped in resources/)."""
    return _read_config(component_configs_dir("sd2" if family == "sd2" else "sd1") / "scheduler" / "scheduler_config.json")


def default_scheduler_name(spec: str, cached_snapshot: Path | None = None, family: str | None = None) -> str | None:
    """The name of the scheduler a model runs with when the user picks none ("Model default (PNDM)").

    Catalogue entries with a default of their own name it; otherwise the downloaded snapshot's (or a
    local folder's) scheduler config decides, then the family's shipped config. None when unknown.
    `family`: a single file's, when the caller has read it already (it costs a header read).
    """
    from studio.engine.schedulers import name_for_config

    entry = CATALOG.get(spec)
    if entry is not None:
        if entry.defaults.scheduler:
            return entry.defaults.scheduler
        config = _read_config(cached_snapshot / "scheduler" / "scheduler_config.json") if cached_snapshot else {}
        return name_for_config(config or _shipped_scheduler_config(entry.family))
    path = Path(spec).expanduser()
    if path.is_dir():
        config = _read_config(path / "scheduler" / "scheduler_config.json")
        return name_for_config(config) if config else None
    if path.is_file():
        from studio.engine.loading import local_model_kind

        return name_for_config(_shipped_scheduler_config(family or local_model_kind(spec)[0]))
    return None
