"""Shared fixtures: tiny random-weight models, built once per test session (about a second each)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# `auto` on the CPU is bf16 on CPUs with native bf16: tests pin fp32 so that they mean the same everywhere
# (tests/engine/test_precision.py checks the rule itself).
os.environ.setdefault("STUDIO_AUTO_CPU_DTYPE", "float32")
# `auto` on the CPU is OpenVINO where installed: most tests exercise the torch path they were written for;
# tests/engine/test_openvino*.py ask for the OpenVINO backend by name (and check `auto` itself).
os.environ.setdefault("STUDIO_AUTO_BACKEND", "torch")
# Converted OpenVINO models and thumbnails go to a folder of this run, never to the user's cache; the
# gallery's catalogue and kept job inputs likewise, never to the user's data folder; the preferences the
# command line reads (local models, LoRA folders) never the user's.
# The command line reads the window's preferences (local models, LoRA folders): never the user's own.
for _variable, _prefix in (
    ("LATENT_STUDIO_CACHE", "studio-test-cache-"),
    ("LATENT_STUDIO_DATA", "studio-test-data-"),
    ("LATENT_STUDIO_CONFIG", "studio-test-config-"),
):
    if _variable not in os.environ:
        import atexit
        import shutil
        import tempfile

        os.environ[_variable] = tempfile.mkdtemp(prefix=_prefix)
        atexit.register(shutil.rmtree, os.environ[_variable], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_sd1(tmp_path_factory):
    from studio.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd1", "sd1", seed=0)


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory):
    from studio.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd2", "sd2", seed=0)


@pytest.fixture(scope="session")
def tiny_sd1_flagging(tmp_path_factory):
    """sd1 with safety thresholds at -1: the real checker flags every image."""
    from studio.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd1-flag", "sd1", seed=0, safety_threshold=-1.0)


@pytest.fixture(scope="session")
def engine():
    """One CPU engine for the session, keeping several tiny models loaded."""
    from studio.engine import Engine

    return Engine(device="cpu", max_models=6, preview="linear")


@pytest.fixture
def trash(tmp_path, monkeypatch):
    """send2trash's freedesktop trash pointed into tmp_path: tests never touch the real one."""
    return use_test_trash(tmp_path, monkeypatch)


def use_test_trash(tmp_path, monkeypatch):
    import send2trash.plat_other as plat

    home, data = tmp_path / "home", tmp_path / "xdg-data"
    home.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    # Read at import time by send2trash: set them as it would have from these variables.
    monkeypatch.setattr(plat, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(plat, "HOMETRASH_B", os.fsencode(data / "Trash"))
    monkeypatch.setattr(plat, "HOMETRASH", str(data / "Trash"))
    return data / "Trash" / "files"
