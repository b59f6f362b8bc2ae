"""The app's names and user folders (platformdirs, overridable by environment variables): the bottom
layer, so the library's catalogue and thumbnail cache, the CLI and the window all find the same places."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "APP_NAME",
    "APP_SLUG",
    "cache_dir",
    "config_dir",
    "data_dir",
    "default_output_dir",
    "embeddings_dir",
    "inputs_dir",
    "loras_dir",
    "preferences_path",
]

APP_NAME = "Latent Studio"
APP_SLUG = "latent-studio"


def default_output_dir() -> Path:
    """Where images go unless told otherwise: $LATENT_STUDIO_OUTPUT, else Pictures/Latent Studio."""
    env = os.environ.get("LATENT_STUDIO_OUTPUT")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_pictures_dir

    return Path(user_pictures_dir()) / APP_NAME


def config_dir() -> Path:
    env = os.environ.get("LATENT_STUDIO_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_SLUG, appauthor=False))


def data_dir() -> Path:
    """$LATENT_STUDIO_DATA, else the user's data folder: the gallery's catalogue and the kept job inputs
    (tests and portable installs point it elsewhere, so nothing reaches the user's own folder)."""
    env = os.environ.get("LATENT_STUDIO_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_SLUG, appauthor=False))


def inputs_dir() -> Path:
    """Where the init images and masks of jobs are kept by content (see
    :class:`studio.library.input_store.InputStore`): "Reuse parameters" restores a canvas from them."""
    return data_dir() / "inputs"


def loras_dir() -> Path:
    """The app's own LoRA folder (A1111's ``models/Lora``): scanned with subfolders, beside any folders the
    user adds, so that ``<lora:name>`` tags find files without configuration."""
    return data_dir() / "loras"


def embeddings_dir() -> Path:
    """The app's own textual-inversion folder (A1111's ``embeddings``): a file's stem is the word that a
    prompt uses to call it in."""
    return data_dir() / "embeddings"


def cache_dir() -> Path:
    """$LATENT_STUDIO_CACHE, else the user's cache folder: thumbnails and converted OpenVINO models."""
    env = os.environ.get("LATENT_STUDIO_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_SLUG, appauthor=False))


def preferences_path() -> Path:
    return config_dir() / "preferences.json"
