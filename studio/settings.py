"""User folders (platformdirs). The desktop app's persisted preferences build on this."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "Latent Studio"
APP_SLUG = "latent-studio"


def default_output_dir() -> Path:
    """Where images go unless told otherwise: $LATENT_STUDIO_OUTPUT, else Pictures/Latent Studio."""
    env = os.environ.get("LATENT_STUDIO_OUTPUT")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_pictures_dir

    return Path(user_pictures_dir()) / APP_NAME


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_SLUG, appauthor=False))


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_SLUG, appauthor=False))
