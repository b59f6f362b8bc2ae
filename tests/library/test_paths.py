"""The app's folders: environment overrides first (tests, portable installs), platform folders else."""

from __future__ import annotations

from studio.library import paths


def test_environment_overrides_the_output_and_config_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_STUDIO_OUTPUT", str(tmp_path / "pictures"))
    monkeypatch.setenv("LATENT_STUDIO_CONFIG", str(tmp_path / "config"))
    assert paths.default_output_dir() == tmp_path / "pictures"
    assert paths.preferences_path() == tmp_path / "config" / "preferences.json"


def test_platform_folders_name_the_app(monkeypatch):
    monkeypatch.delenv("LATENT_STUDIO_OUTPUT", raising=False)
    monkeypatch.delenv("LATENT_STUDIO_CONFIG", raising=False)
    monkeypatch.delenv("LATENT_STUDIO_CACHE", raising=False)
    monkeypatch.delenv("LATENT_STUDIO_DATA", raising=False)
    assert paths.default_output_dir().name == paths.APP_NAME
    for folder in (paths.config_dir(), paths.data_dir(), paths.cache_dir()):
        assert paths.APP_SLUG in folder.parts


def test_the_cache_folder_can_be_moved_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path / "cache"))
    assert paths.cache_dir() == tmp_path / "cache"


def test_the_data_folder_and_its_kept_inputs_can_be_moved_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path / "data"))
    assert paths.data_dir() == tmp_path / "data"
    assert paths.inputs_dir() == tmp_path / "data" / "inputs"
    assert paths.loras_dir() == tmp_path / "data" / "loras"
    assert paths.embeddings_dir() == tmp_path / "data" / "embeddings"


def test_tests_never_use_the_users_data_folder():
    """conftest points the data folder elsewhere (a temporary folder of the run) for every test."""
    from pathlib import Path

    from platformdirs import user_data_dir

    assert paths.data_dir() != Path(user_data_dir(paths.APP_SLUG, appauthor=False))
