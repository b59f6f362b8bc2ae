"""Where the package's shipped data lives (tokenizer, offline component configs)."""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def clip_tokenizer_dir() -> Path:
    """CLIP's 49,408-token vocabulary: single files carry no tokenizer, tiny models reuse it."""
    return RESOURCES / "clip_tokenizer"


def component_configs_dir(family: str) -> Path:
    """Diffusers-layout config folder (no weights) for loading a single-file checkpoint offline."""
    return RESOURCES / "configs" / family
