"""GenerationSettings without a widget: every property's type and range, model defaults, sizes, seeds,
local models, the request it makes (masks and outpaint expansions included) and the image fields it restores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from studio.engine.backends import BACKENDS, openvino_installed
from studio.engine.catalog import CATALOG, FAMILY_DEFAULTS
from studio.engine.devices import DeviceChoice, device_choices
from studio.engine.request import request_fields
from studio.library.masks import (
    DEFAULT_MASK_BLUR,
    DEFAULT_PADDING,
    INPAINT_AREAS,
    MASKED_CONTENT,
    OUTPAINT_FILLS,
)
from studio.viewmodel.generation_settings import (
    INPAINT_AREA_CHOICES,
    MASK_MODES,
    MASKED_CONTENT_CHOICES,
    MAX_PANEL_BATCH,
    MAX_PANEL_MASK_BLUR,
    MAX_PANEL_PADDING,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MAX_THREADS,
    OUTPAINT_FILL_CHOICES,
    PRECISIONS,
    GenerationSettings,
)
from studio.viewmodel.preferences import Preferences
from studio.viewmodel.properties import persisted_values, properties, restore_values

UNAVAILABLE = [c.value for c in device_choices() if not c.available]


@pytest.fixture
def settings(qapp) -> GenerationSettings:
    return GenerationSettings()


class Messages(list):
    def __init__(self, settings: GenerationSettings) -> None:
        super().__init__()
        settings.message.connect(self.append)


# name: (values it takes -> what it stores, values it refuses with the error)
PROPERTIES = {
    "user_models": ([(["/a", "/b"], ["/a", "/b"])], [("a", TypeError), (None, TypeError)]),
    "model": ([("sd-2.1", "sd-2.1")], [("", ValueError), ("  ", ValueError), (3, TypeError), (None, TypeError)]),
    "scheduler": (
        [("euler_a", "Euler a"), ("DDIM", "DDIM"), (None, None)],
        [("no such sampler", ValueError), (3, TypeError)],
    ),
    "steps": ([(1, 1), (MAX_STEPS, MAX_STEPS)], [(0, ValueError), (MAX_STEPS + 1, ValueError), (2.5, TypeError)]),
    "guidance": ([(0.0, 0.0), (50, 50.0)], [(-0.5, ValueError), (50.5, ValueError), ("7", TypeError)]),
    "guidance_rescale": ([(0.0, 0.0), (1, 1.0)], [(1.1, ValueError), (-0.1, ValueError), (True, TypeError)]),
    "seed_mode": ([("fixed", "fixed"), ("reuse", "reuse")], [("sometimes", ValueError), (1, TypeError)]),
    "seed": ([(0, 0), (MAX_SEED, MAX_SEED)], [(-1, ValueError), (MAX_SEED + 1, ValueError), ("1", TypeError)]),
    "width": ([(64, 64), (MAX_SIDE, MAX_SIDE)], [(63, ValueError), (MAX_SIDE + 1, ValueError), (512.0, TypeError)]),
    "height": ([(64, 64), (MAX_SIDE, MAX_SIDE)], [(0, ValueError), (MAX_SIDE + 1, ValueError), (None, TypeError)]),
    "batch": ([(1, 1), (MAX_PANEL_BATCH, MAX_PANEL_BATCH)], [(0, ValueError), (MAX_PANEL_BATCH + 1, ValueError)]),
    "strength": ([(0.01, 0.01), (1, 1.0)], [(0.0, ValueError), (1.5, ValueError), ("0.5", TypeError)]),
    "device": ([("cpu", "cpu"), ("auto", "auto")], [("tpu", ValueError), (None, TypeError)])
    if not UNAVAILABLE
    else ([("cpu", "cpu")], [(UNAVAILABLE[0], ValueError), ("tpu", ValueError)]),
    "dtype": ([("float32", "float32"), ("bfloat16", "bfloat16"), ("int8", "int8")], [("int4", ValueError), (16, TypeError)]),
    "backend": (
        [("openvino", "openvino"), ("torch", "torch"), ("auto", "auto")],
        [("tensorrt", ValueError), ("OpenVINO", ValueError), (None, TypeError), (1, TypeError)],
    ),
    "threads": (
        [(1, 1), (MAX_THREADS, MAX_THREADS), (0, 0)],
        [(-1, ValueError), (MAX_THREADS + 1, ValueError), (2.0, TypeError), ("4", TypeError), (None, TypeError)],
    ),
    "safety_checker": ([(False, False)], [("yes", TypeError), (0, TypeError)]),
    "mask_blur": (
        [(0, 0), (MAX_PANEL_MASK_BLUR, MAX_PANEL_MASK_BLUR)],
        [(-1, ValueError), (MAX_PANEL_MASK_BLUR + 1, ValueError), (4.0, TypeError), (None, TypeError)],
    ),
    "masked_content": ([(value, value) for value in MASKED_CONTENT], [("latent noise", ValueError), (None, TypeError)]),
    "inpaint_area": ([("masked", "masked"), ("whole", "whole")], [("only masked", ValueError), (1, TypeError)]),
    "padding": (
        [(0, 0), (MAX_PANEL_PADDING, MAX_PANEL_PADDING)],
        [(-1, ValueError), (MAX_PANEL_PADDING + 1, ValueError), ("32", TypeError), (True, TypeError)],
    ),
    "invert_mask": ([(True, True), (False, False)], [(1, TypeError), ("yes", TypeError), (None, TypeError)]),
    "outpaint_fill": ([("noise", "noise"), ("edge", "edge")], [("mirror", ValueError), (None, TypeError)]),
    "model_note": ([("a note", "a note")], [(None, TypeError)]),
    "default_scheduler": ([("DDIM", "DDIM")], [(None, TypeError)]),
    "size_problem": ([("too wide", "too wide")], [(1, TypeError)]),
    "has_init_image": ([(True, True)], [(1, TypeError)]),
    "has_mask": ([(True, True)], [(1, TypeError), (None, TypeError)]),
    "server_models": ([({"tiny": "sd1"}, {"tiny": "sd1"}), ({}, {})], [(None, TypeError), (["tiny"], TypeError)]),
}
SHOWN_ONLY = {"model_note", "default_scheduler", "size_problem", "has_init_image", "has_mask", "server_models"}


def test_every_declared_property_is_covered():
    assert set(PROPERTIES) == set(properties(GenerationSettings))
    persisted = {name for name, prop in properties(GenerationSettings).items() if prop.persist}
    assert persisted == set(PROPERTIES) - SHOWN_ONLY


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_each_property_takes_its_values_and_refuses_others(settings, name):
    takes, refuses = PROPERTIES[name]
    for value, stored in takes:
        seen, names = [], []
        getattr(settings, f"{name}_changed").connect(seen.append)
        settings.changed.connect(names.append)
        was = getattr(settings, name)
        setattr(settings, name, value)
        assert getattr(settings, name) == stored
        assert seen == ([] if was == stored else [stored])
        assert names.count(name) == (0 if was == stored else 1)
        setattr(settings, name, value)  # again: no signal
        assert len(seen) == (0 if was == stored else 1)
        getattr(settings, f"{name}_changed").disconnect(seen.append)
        settings.changed.disconnect(names.append)
    for value, error in refuses:
        before = getattr(settings, name)
        with pytest.raises(error):
            setattr(settings, name, value)
        assert getattr(settings, name) == before


def test_choosing_a_model_applies_its_defaults(settings):
    assert (settings.model, settings.steps, settings.width, settings.height) == ("sd-1.4", 50, 512, 512)
    settings.steps, settings.guidance, settings.scheduler = 12, 3.0, "Euler"
    settings.model = "deci-diffusion-1.0"
    deci = CATALOG["deci-diffusion-1.0"].defaults
    assert (settings.steps, settings.guidance, settings.guidance_rescale) == (deci.steps, deci.guidance, 0.7)
    assert settings.scheduler is None and settings.default_scheduler == ""
    settings.model = "sd-2.1"
    assert (settings.width, settings.height, settings.guidance_rescale) == (768, 768, 0.0)
    assert settings.family() == "sd2" and settings.size_presets()[0] == (768, 768)
    assert settings.user_models == []  # catalogue models are not added to the local list


def test_restored_values_override_the_restored_models_defaults(settings):
    seen = []
    settings.model_changed.connect(seen.append)
    refused = restore_values(
        settings,
        {"steps": 21, "width": 640, "model": "sd-2.1", "scheduler": "k_euler_a", "guidance_rescale": 0.25},
    )
    assert refused == [] and seen == ["sd-2.1"]
    # The model's defaults came first (height 768), then the values the user had set over them.
    assert (settings.steps, settings.width, settings.height) == (21, 640, 768)
    assert settings.scheduler == "Euler a" and settings.guidance_rescale == 0.25


def test_size_problem_names_the_sides_that_do_not_fit_the_family(settings):
    settings.width = 516
    assert settings.size_problem == "width 516 px: this model needs multiples of 8 px"
    settings.width = 520
    assert settings.size_problem == ""  # SD 1.x: multiples of 8
    settings.model = "deci-diffusion-1.0"  # defaults: 512 x 512
    assert settings.size_problem == ""
    settings.width = 520
    assert settings.size_problem == "width 520 px: this model needs multiples of 64 px"
    settings.height = 600
    assert settings.size_problem == "width 520 and height 600 px: this model needs multiples of 64 px"
    settings.set_size(576, 640)
    assert settings.size_problem == ""
    settings.swap_size()
    assert (settings.width, settings.height) == (640, 576)
    settings.height = 520
    settings.model = "sd-1.4"  # the model's defaults clear it
    assert settings.size_problem == ""


def test_seed_modes_decide_the_requests_seed(settings):
    assert settings.seed_mode == "random" and settings.to_request("p", "").seed is None
    settings.set_seed(42, fixed=False)
    assert settings.seed_mode == "random" and settings.to_request("p", "").seed is None
    settings.set_seed(42)
    assert settings.seed_mode == "fixed" and settings.to_request("p", "").seed == 42
    settings.seed_mode = "reuse"
    assert settings.to_request("p", "").seed is None  # nothing generated yet: random
    settings.remember_seed(7)
    assert settings.to_request("p", "").seed == 7
    seed = settings.new_seed()
    assert settings.seed_mode == "fixed" and 0 <= seed <= MAX_SEED and settings.to_request("p", "").seed == seed


def test_the_request_carries_every_setting(settings):
    settings.model = "deci-diffusion-1.0"
    settings.scheduler, settings.steps, settings.guidance, settings.guidance_rescale = "Euler", 20, 6.0, 0.5
    settings.set_size(576, 640)
    settings.batch, settings.strength = 3, 0.4
    request = settings.to_request("a fox", "blurry")
    assert (request.model, request.prompt, request.negative_prompt) == ("deci-diffusion-1.0", "a fox", "blurry")
    assert (request.steps, request.guidance, request.guidance_rescale, request.scheduler) == (20, 6.0, 0.5, "Euler")
    assert (request.width, request.height, request.batch) == (576, 640, 3)
    request.validate("deci")


def test_strength_only_with_an_init_image(settings):
    settings.strength = 0.4
    assert settings.to_request("p", "").strength is None and not settings.to_request("p", "").is_img2img
    image = Image.new("RGB", (64, 64))
    request = settings.to_request("p", "", image)
    assert request.init_image is image and request.strength == 0.4


def test_the_safety_switch_only_for_the_catalogue_model_that_has_a_checker(settings, tiny_sd1):
    assert settings.model == "sd-1.4" and settings.safety_available()
    assert settings.to_request("p", "").safety_checker is True
    settings.safety_checker = False
    assert settings.to_request("p", "").safety_checker is False
    for spec in ("deci-diffusion-1.0", "sd-2.1", str(tiny_sd1)):
        settings.select_model(spec)
        assert not settings.safety_available() and settings.to_request("p", "").safety_checker is None


def test_local_models_are_added_checked_and_removed(settings, tiny_sd1, tiny_sd2, tmp_path):
    messages = Messages(settings)
    (tmp_path / "photos").mkdir()
    assert not settings.try_add_local_model(str(tmp_path / "photos"))
    assert "not a Stable Diffusion folder" in messages[-1] and settings.local_models() == []
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": np.zeros((4, 4), dtype=np.float32)}, str(lora))
    assert not settings.try_add_local_model(str(lora))
    assert "LoRA" in messages[-1] and settings.model == "sd-1.4"

    assert settings.try_add_local_model(str(tiny_sd2))
    assert messages[-1] == "Added tiny-sd2" and settings.model == str(tiny_sd2)
    assert settings.family() == "sd2" and settings.width == FAMILY_DEFAULTS["sd2"].size
    assert settings.steps == FAMILY_DEFAULTS["sd2"].steps
    assert settings.try_add_local_model(str(tiny_sd1))
    assert settings.local_models() == [str(tiny_sd2), str(tiny_sd1)] and settings.family() == "sd1"
    choices = settings.model_choices()
    assert [c.spec for c in choices] == [*CATALOG, str(tiny_sd2), str(tiny_sd1)]
    assert choices[-1].local and choices[-1].label == "tiny-sd1  (local)" and settings.model_label() == choices[-1].label

    assert settings.remove_current_local_model()
    assert "Removed tiny-sd1" in messages[-1] and settings.model == next(iter(CATALOG))
    assert settings.local_models() == [str(tiny_sd2)]
    assert not settings.remove_current_local_model() and "catalogue" in messages[-1]
    assert not settings.remove_local_model("/not/listed")
    assert settings.remove_local_model(str(tiny_sd2)) and settings.local_models() == []


def test_a_512_base_sd2_model_gets_sd1_sizes(settings, tiny_sd2, tmp_path):
    base = tmp_path / "sd2-base"
    shutil.copytree(tiny_sd2, base)
    config = base / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prediction_type": "epsilon"}))
    settings.select_model(str(base))
    assert settings.kind() == ("sd2", "epsilon") and settings.width == 512
    assert settings.size_presets()[0] == (512, 512)


def test_unchecked_models_are_added_by_choosing_them(settings, tmp_path):
    missing = str(tmp_path / "gone.safetensors")
    settings.select_model(missing)  # the command line's --model, a restored preference
    assert settings.local_models() == [missing] and settings.model == missing
    assert settings.family() == "sd1"  # unreadable: a guess, the load says what is wrong
    settings.model = str(tmp_path / "other")  # set directly (a restore): listed too
    assert settings.local_models() == [missing, str(tmp_path / "other")]
    for spec in ("~no_such_user_here/model", "x" * 600, "a\x00b"):  # not even paths: still a guess
        settings.select_model(spec)
        assert settings.model == spec and settings.family() == "sd1" and settings.steps == FAMILY_DEFAULTS["sd1"].steps


def test_hand_edited_local_model_lists_keep_only_paths(settings, tmp_path):
    refused = restore_values(
        settings, {"local_models": [1, None, ["x"], "", "/a", "/a", "sd-1.4", {"p": 1}, "/b"], "model": "/b"}
    )
    assert refused == [] and settings.local_models() == ["/a", "/b"] and settings.model == "/b"
    assert [c.spec for c in settings.model_choices() if c.local] == ["/a", "/b"]  # every entry can be listed
    assert persisted_values(settings)["local_models"] == ["/a", "/b"]


def test_apply_restores_image_fields_model_first(settings):
    skipped = settings.apply(
        {
            "prompt": "not a setting",
            "model": "deci-diffusion-1.0",
            "width": 576,
            "height": 640,
            "steps": 12,
            "guidance": 5,
            "guidance_rescale": 0.3,
            "scheduler": "k_euler_a",
            "strength": 0.5,
            "seed": 42,
        }
    )
    assert skipped == []
    assert (settings.model, settings.width, settings.height, settings.steps) == ("deci-diffusion-1.0", 576, 640, 12)
    assert (settings.guidance, settings.guidance_rescale, settings.scheduler) == (5.0, 0.3, "Euler a")
    assert (settings.strength, settings.seed, settings.seed_mode) == (0.5, 42, "fixed")


def test_apply_skips_unusable_values_and_never_half_applies_a_size(settings):
    skipped = settings.apply(
        {
            "width": 576,
            "height": 63,  # out of range: the width is not applied alone
            "steps": "12",
            "guidance": True,
            "guidance_rescale": 2.0,
            "scheduler": "no such sampler",
            "strength": float("nan"),
            "seed": -5,
        }
    )
    assert sorted(skipped) == sorted(
        ["width", "height", "steps", "guidance", "guidance_rescale", "scheduler", "strength", "seed"]
    )
    assert (settings.width, settings.height, settings.steps, settings.guidance) == (512, 512, 50, 7.5)
    assert settings.scheduler is None and settings.seed_mode == "random"
    assert settings.apply({"width": 640}) == [] and (settings.width, settings.height) == (640, 512)
    assert settings.apply({"height": 7}) == ["height"] and settings.height == 512
    assert settings.apply({}) == []


# ------------------------------------------------------------------------------------- the backend
def test_the_backend_is_kept_in_the_preferences_file_and_read_back(qapp, tmp_path):
    path = tmp_path / "prefs.json"
    first, preferences = GenerationSettings(), Preferences(path)
    assert preferences.attach(first) == [] and first.backend == "auto"
    first.backend, first.dtype = "openvino", "int8"
    preferences.save()
    assert json.loads(path.read_text())["backend"] == "openvino"
    second = GenerationSettings()
    assert Preferences(path).attach(second) == []
    assert (second.backend, second.dtype) == ("openvino", "int8")
    path.write_text(json.dumps({"backend": "tensorrt", "dtype": "float32"}))  # hand-edited, or a future version
    third = GenerationSettings()
    assert Preferences(path).attach(third) == ["backend"]
    assert (third.backend, third.dtype) == ("auto", "float32")


def test_backend_choices_say_what_is_installed_and_why_not():
    choices = GenerationSettings.backend_choices()
    assert [c.value for c in choices] == list(BACKENDS)
    assert [c.label for c in choices] == ["Auto", "PyTorch", "OpenVINO (CPU)"]
    value, label, available, reason = choices[2]  # a tuple too, as the panel reads it
    assert (value, label) == ("openvino", "OpenVINO (CPU)") and available == openvino_installed()
    assert reason and ("not installed" in reason) != available
    assert choices[0].available and choices[1].available


def test_backend_choices_grey_openvino_where_it_is_not_installed(monkeypatch):
    import studio.viewmodel.generation_settings as module

    monkeypatch.setattr(module, "openvino_installed", lambda: False)
    openvino = GenerationSettings.backend_choices()[2]
    assert not openvino.available and openvino.reason.startswith("OpenVINO is not installed: pip install openvino")


def test_the_cpu_threads_are_kept_in_the_preferences_file_and_checked_when_read(qapp, tmp_path):
    path = tmp_path / "prefs.json"
    first, preferences = GenerationSettings(), Preferences(path)
    assert preferences.attach(first) == [] and first.threads == 0  # Auto: all physical cores
    first.threads = 2
    preferences.save()
    assert json.loads(path.read_text())["threads"] == 2
    second = GenerationSettings()
    assert Preferences(path).attach(second) == [] and second.threads == 2
    for refused in (-1, MAX_THREADS + 1, "2", 2.5, True):  # hand-edited
        path.write_text(json.dumps({"threads": refused, "steps": 20}))
        third = GenerationSettings()
        assert Preferences(path).attach(third) == ["threads"]
        assert (third.threads, third.steps) == (0, 20)


def test_the_threads_matter_only_where_the_job_may_run_on_openvino(settings, monkeypatch):
    import studio.viewmodel.generation_settings as module

    gpu = [DeviceChoice("auto", "Auto", True), DeviceChoice("cpu", "CPU", True), DeviceChoice("cuda", "CUDA GPU", True)]
    monkeypatch.setattr(module, "device_choices", lambda: gpu)  # as on a machine with a GPU
    expected = {
        ("auto", "auto"): True, ("auto", "cpu"): True, ("auto", "cuda"): False,  # Auto runs PyTorch on a GPU
        ("openvino", "auto"): True, ("openvino", "cpu"): True, ("openvino", "cuda"): True,  # the engine refuses it
        ("torch", "auto"): False, ("torch", "cpu"): False, ("torch", "cuda"): False,
    }
    for (backend, device), may in expected.items():
        settings.backend, settings.device = backend, device
        assert settings.may_run_openvino() is may, (backend, device)


def test_int8_is_a_precision_that_names_what_it_needs():
    label, value, tip = next(entry for entry in PRECISIONS if entry[1] == "int8")
    assert label == "int8 (OpenVINO)" and "OpenVINO backend" in tip and "NNCF" in tip


# ------------------------------------------------------------------------------------- inpainting (issue 14)
INPAINTING = {"mask_blur": 8, "masked_content": "noise", "inpaint_area": "masked", "padding": 16, "invert_mask": True}


def test_the_inpainting_options_start_at_a1111s_defaults(settings):
    assert (settings.mask_blur, settings.masked_content, settings.inpaint_area) == (DEFAULT_MASK_BLUR, "original", "whole")
    assert (settings.padding, settings.invert_mask, settings.outpaint_fill) == (DEFAULT_PADDING, False, "edge")
    assert (DEFAULT_MASK_BLUR, DEFAULT_PADDING) == (4, 32) and settings.has_mask is False


def test_the_choices_name_every_value_the_engine_takes_in_a1111s_words():
    assert [value for _label, value, _tip in MASKED_CONTENT_CHOICES] == list(MASKED_CONTENT)
    assert [label for label, _value, _tip in MASKED_CONTENT_CHOICES] == ["Original", "Fill", "Latent noise", "Latent nothing"]
    assert all(tip and "\n" not in tip for _label, _value, tip in MASKED_CONTENT_CHOICES)
    assert "strength near 1" in dict((v, t) for _l, v, t in MASKED_CONTENT_CHOICES)["noise"]
    assert INPAINT_AREA_CHOICES == (("Whole picture", "whole"), ("Only masked", "masked"))
    assert [value for _label, value in INPAINT_AREA_CHOICES] == list(INPAINT_AREAS)
    assert MASK_MODES == (("Inpaint masked", False), ("Inpaint not masked", True))
    assert [value for _label, value in OUTPAINT_FILL_CHOICES] == list(OUTPAINT_FILLS)
    assert OUTPAINT_FILL_CHOICES[0] == ("Stretch edges", "edge")


def test_the_inpainting_options_are_kept_in_the_preferences_file_and_checked_when_read(qapp, tmp_path):
    path = tmp_path / "prefs.json"
    first, preferences = GenerationSettings(), Preferences(path)
    assert preferences.attach(first) == []
    for name, value in {**INPAINTING, "outpaint_fill": "noise"}.items():
        setattr(first, name, value)
    first.has_mask = True
    preferences.save()
    saved = json.loads(path.read_text())
    assert {name: saved[name] for name in [*INPAINTING, "outpaint_fill"]} == {**INPAINTING, "outpaint_fill": "noise"}
    assert "has_mask" not in saved  # what the canvas holds now, not a preference
    second = GenerationSettings()
    assert Preferences(path).attach(second) == [] and second.has_mask is False
    assert {name: getattr(second, name) for name in INPAINTING} == INPAINTING and second.outpaint_fill == "noise"
    path.write_text(json.dumps({"mask_blur": 65, "masked_content": "zzz", "padding": -1, "invert_mask": 1, "steps": 20}))
    third = GenerationSettings()  # hand-edited: each bad value is refused alone
    assert sorted(Preferences(path).attach(third)) == ["invert_mask", "mask_blur", "masked_content", "padding"]
    assert (third.mask_blur, third.masked_content, third.padding, third.invert_mask, third.steps) == (4, "original", 32, False, 20)


def test_apply_restores_the_inpainting_options_of_an_image(settings):
    assert settings.apply({**INPAINTING, "outpaint_fill": "noise"}) == []
    assert {name: getattr(settings, name) for name in INPAINTING} == INPAINTING and settings.outpaint_fill == "noise"


def test_apply_skips_bad_inpainting_values_and_leaves_the_canvas_fields_to_the_session(settings):
    skipped = settings.apply(
        {"masked_content": "zzz", "mask_blur": -1, "padding": 16, "expand": [64, 0, 64, 0], "mask_image": "m.png"}
    )
    assert sorted(skipped) == ["mask_blur", "masked_content"]
    assert (settings.masked_content, settings.mask_blur, settings.padding) == ("original", 4, 16)
    assert "expand" not in settings.request_names() and "mask_image" not in settings.request_names()
    assert not hasattr(settings, "expand")


def test_an_unmasked_images_fields_leave_the_inpainting_options_as_they_are(settings):
    """A txt2img image's metadata holds None for the options (the engine clears them): nothing changes."""
    settings.masked_content, settings.padding = "fill", 64
    fields = request_fields(settings.to_request("p", "").with_defaults(FAMILY_DEFAULTS["sd1"], "sd1"))
    assert fields["masked_content"] is None and fields["invert_mask"] is False
    settings.apply({**fields, "masked_content": None})
    assert (settings.masked_content, settings.padding) == ("fill", 64)


def test_the_request_carries_the_mask_and_the_inpainting_options(settings):
    for name, value in INPAINTING.items():
        setattr(settings, name, value)
    image, mask = Image.new("RGB", (512, 512)), Image.new("L", (512, 512), 255)
    request = settings.to_request("p", "", image, mask)
    assert request.mask_image is mask and request.expand is None and request.is_masked
    assert (request.width, request.height) == (512, 512)
    assert {name: getattr(request, name) for name in INPAINTING} == INPAINTING
    request.validate("sd1")
    filled = request.with_defaults(FAMILY_DEFAULTS["sd1"], "sd1")
    assert (filled.mask_blur, filled.masked_content, filled.padding, filled.invert_mask) == (8, "noise", 16, True)


def test_an_outpaint_expansion_grows_the_requests_size(settings):
    settings.set_size(512, 768)
    image = Image.new("RGB", (512, 768))
    request = settings.to_request("p", "", image, expand=(64, 0, 128, 8))
    assert request.expand == (64, 0, 128, 8) and request.mask_image is None and request.is_masked
    assert (request.width, request.height) == (512 + 64 + 128, 768 + 8)
    assert (settings.width, settings.height) == (512, 768)  # the picture's size, unchanged
    mask = Image.new("L", (512, 768))
    both = settings.to_request("p", "", image, mask, [0, 64, 0, 64])  # a list, as JSON gives it
    assert both.expand == (0, 64, 0, 64) and both.mask_image is mask and (both.width, both.height) == (512, 896)
    both.validate("sd1")


def test_without_a_mask_the_engine_clears_the_inpainting_options(settings):
    settings.masked_content, settings.outpaint_fill = "noise", "noise"
    request = settings.to_request("p", "", Image.new("RGB", (64, 64)))
    assert not request.is_masked and request.mask_image is None and request.expand is None
    filled = request.with_defaults(FAMILY_DEFAULTS["sd1"], "sd1")
    assert (filled.masked_content, filled.mask_blur, filled.outpaint_fill) == (None, None, None)
