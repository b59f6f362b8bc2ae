"""Preferences through a real file: attach restores, save writes, bad values fall back, old keys stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine.devices import device_choices
from studio.library.token_counter import TokenCounter
from studio.viewmodel.generation_settings import GenerationSettings
from studio.viewmodel.preferences import THEME_KEYS, AppSettings, Preferences
from studio.viewmodel.prompt_state import PromptState
from studio.viewmodel.properties import persisted_values, properties

COUNTER = TokenCounter()  # never loaded here


def attached(path: Path) -> tuple[Preferences, AppSettings, GenerationSettings, PromptState, list[str]]:
    """A window's worth of view-models attached to the file at `path`, as the session does."""
    prefs = Preferences(path)
    app, settings, prompt = AppSettings(), GenerationSettings(), PromptState(counter=COUNTER)
    refused = [name for model in (app, settings, prompt) for name in prefs.attach(model)]
    return prefs, app, settings, prompt, refused


def test_app_settings_properties(qapp, tmp_path, monkeypatch):
    app = AppSettings()
    assert {name: p.persist for name, p in properties(AppSettings).items()} == {
        "theme": True, "output_dir": True, "lora_folders": True, "embedding_folders": True,
    }
    assert (app.theme, app.output_dir) == ("system", None)
    seen = []
    app.theme_changed.connect(seen.append)
    for key in THEME_KEYS[1:]:
        app.theme = key
    app.theme = THEME_KEYS[-1]
    assert seen == list(THEME_KEYS[1:])
    for bad, error in (("Dark", ValueError), ("", ValueError), (None, TypeError), (1, TypeError)):
        with pytest.raises(error):
            app.theme = bad
    with pytest.raises(TypeError):
        app.output_dir = tmp_path  # a Path is stored as text
    monkeypatch.setenv("LATENT_STUDIO_OUTPUT", str(tmp_path / "pictures"))
    assert app.output_path() == tmp_path / "pictures"  # None: the platform's folder
    monkeypatch.setenv("HOME", str(tmp_path))
    app.output_dir = "~/images"
    assert app.output_path() == tmp_path / "images"
    app.output_dir = ""
    assert app.output_path() == tmp_path / "pictures"


def test_values_round_trip_through_the_file(qapp, tmp_path):
    path = tmp_path / "config" / "preferences.json"
    prefs, app, settings, prompt, refused = attached(path)
    assert refused == [] and not path.exists()  # nothing read, nothing written yet
    app.theme, app.output_dir = "dark", str(tmp_path / "out")
    settings.select_model("/models/my-model")
    settings.model = "sd-2.1"
    settings.scheduler, settings.steps, settings.guidance, settings.guidance_rescale = "Euler a", 33, 6.5, 0.2
    settings.set_size(640, 832)
    settings.set_seed(2**32 - 1)
    settings.batch, settings.strength, settings.device, settings.dtype = 4, 0.3, "cpu", "float32"
    settings.safety_checker = False
    prompt.set_prompts("a fox, 雪", "blurry")
    prompt.add_to_history("a fox, 雪", "blurry")
    prefs.save()

    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["local_models"] == ["/models/my-model"] and "user_models" not in stored
    assert stored["model"] == "sd-2.1" and stored["history"] == [["a fox, 雪", "blurry"]]
    assert "model_note" not in stored and "size_problem" not in stored  # shown, not kept

    _, app2, settings2, prompt2, refused = attached(path)
    assert refused == []
    for before, after in ((app, app2), (settings, settings2), (prompt, prompt2)):
        assert persisted_values(after) == persisted_values(before)
    assert (settings2.width, settings2.height, settings2.steps) == (640, 832, 33)  # not the model's 768 x 768 / 50


def test_the_restored_model_applies_its_defaults_before_the_restored_values(qapp, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"model": "deci-diffusion-1.0", "steps": 12}))
    _, _, settings, _, refused = attached(path)
    assert refused == []
    assert settings.steps == 12  # restored over the model's default
    assert settings.guidance_rescale == 0.7 and settings.width == 512  # DeciDiffusion's own defaults
    path.write_text(json.dumps({"steps": 12, "model": "sd-2.1"}))  # file order does not matter
    _, _, settings, _, _ = attached(path)
    assert (settings.model, settings.steps, settings.width) == ("sd-2.1", 12, 768)


def test_hand_edited_values_fall_back_to_defaults(qapp, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "theme": "purple",
                "output_dir": 5,
                "model": "",
                "scheduler": "no such sampler",
                "steps": "20",
                "guidance": 1e9,
                "guidance_rescale": True,
                "seed_mode": "sometimes",
                "seed": -1,
                "width": 100_000,
                "height": 12.5,
                "batch": 0,
                "strength": None,
                "device": "tpu",
                "dtype": "int4",
                "safety_checker": "no",
                "local_models": "not a list",
                "prompt": ["a"],
                "negative_prompt": 3,
                "history": {"a": "b"},
            }
        )
    )
    prefs, app, settings, prompt, refused = attached(path)
    names = ["user_models" if key == "local_models" else key for key in prefs.values]  # names, not keys
    assert sorted(refused) == sorted(names)  # every one refused, each named
    fresh_app, fresh_settings, fresh_prompt = AppSettings(), GenerationSettings(), PromptState(counter=COUNTER)
    for model, fresh in ((app, fresh_app), (settings, fresh_settings), (prompt, fresh_prompt)):
        assert persisted_values(model) == persisted_values(fresh)
    prefs.save()  # the file is then made good again
    assert json.loads(path.read_text())["theme"] == "system"


def test_preferences_from_a_gpu_machine_fall_back_to_auto(qapp, tmp_path):
    unavailable = [c.value for c in device_choices() if not c.available]
    if not unavailable:
        pytest.skip("every device is available on this machine")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"device": unavailable[0], "dtype": "float16", "steps": 20}))
    _, _, settings, _, refused = attached(path)
    assert refused == ["device"] and settings.device == "auto"
    assert settings.dtype == "float16" and settings.steps == 20  # the rest is kept


def test_unknown_keys_are_kept_when_saving(qapp, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"fit_mode": "pad", "gallery_icon_size": 200, "future": {"x": [1, 2]}, "steps": 20}))
    prefs, _, settings, _, _ = attached(path)
    settings.steps = 25
    prefs.save()
    stored = json.loads(path.read_text())
    assert stored["fit_mode"] == "pad" and stored["gallery_icon_size"] == 200 and stored["future"] == {"x": [1, 2]}
    assert stored["steps"] == 25


@pytest.mark.parametrize(
    "content", [b"[1, 2]", b"\x00\x01garbage", b"{" * 50_000, b'"text"'], ids=["list", "garbage", "deep", "string"]
)
def test_a_file_that_is_not_an_object_gives_the_defaults(qapp, tmp_path, content):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    prefs, app, settings, prompt, refused = attached(path)
    assert refused == [] and prefs.values == {}
    assert (app.theme, settings.model, settings.steps, prompt.history) == ("system", "sd-1.4", 50, [])
    prefs.save()  # replaced by a good file
    assert json.loads(path.read_text())["model"] == "sd-1.4"


def test_a_huge_file_gives_the_defaults(qapp, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"steps": 20, "pad": "x" * (5 * 1024 * 1024)}))
    _, _, settings, _, _ = attached(path)
    assert settings.steps == 50


def test_saving_where_the_file_cannot_be_written_raises_oserror(qapp, tmp_path):
    (tmp_path / "p.json").mkdir()
    prefs, *_ = attached(tmp_path / "p.json")
    with pytest.raises(OSError):
        prefs.save()
