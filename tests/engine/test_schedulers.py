"""Every offered scheduler keeps the model's prediction type, spacing and zero-SNR, and generates."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image, PngImagePlugin

from studio.engine import GenerationRequest, RequestError
from studio.engine.schedulers import (
    PRESERVED_KEYS,
    canonical_name,
    make_scheduler,
    name_for_config,
    name_of,
    names,
    resolve_name,
)
from studio.engine.tiny import DECI_SCHEDULER, SD1_SCHEDULER, SD2_SCHEDULER

CONFIGS = {"sd1": SD1_SCHEDULER, "sd2": SD2_SCHEDULER, "deci": DECI_SCHEDULER}


def test_the_required_names_are_offered():
    assert {"DDIM", "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "UniPC", "PNDM"} <= set(names())


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("family", ["sd1", "sd2", "deci"])
def test_scheduler_keeps_the_models_training_settings(name, family):
    base = {k: v for k, v in CONFIGS[family].items() if k != "_class_name"}
    if family == "deci" and name == "PNDM":
        with pytest.raises(RequestError, match="zero-terminal-SNR"):
            make_scheduler(name, base)
        return
    scheduler = make_scheduler(name, base)
    for key in PRESERVED_KEYS:
        if key in base and key in scheduler.config:
            assert scheduler.config[key] == base[key], (name, key)
    assert scheduler.config["prediction_type"] == base["prediction_type"]
    assert name_of(scheduler) == name


@pytest.mark.parametrize("name", names())
def test_each_scheduler_generates_on_the_v_prediction_model(engine, tiny_sd2, name):
    result = engine.generate(
        GenerationRequest(
            model=str(tiny_sd2), prompt="x", steps=3, width=64, height=64, seed=3, scheduler=name
        )
    )[0]
    assert result.image.size == (64, 64)
    assert result.metadata["scheduler_config"]["prediction_type"] == "v_prediction"
    assert result.metadata["request"]["scheduler"] == name


def test_scheduler_names_are_forgiving_but_unknown_ones_are_refused():
    assert resolve_name("euler_a") == "Euler a"
    assert resolve_name("dpm++ 2m  karras") == "DPM++ 2M Karras"
    with pytest.raises(RequestError, match="unknown scheduler 'LCM'"):
        resolve_name("LCM")


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        # A1111: its labels and aliases
        ("Euler a", "Euler a"),
        ("k_euler_a", "Euler a"),
        ("k_euler_ancestral", "Euler a"),
        ("k_euler", "Euler"),
        ("k_dpmpp_2m", "DPM++ 2M"),
        ("k_dpmpp_2m_ka", "DPM++ 2M Karras"),
        ("PLMS", "PNDM"),
        ("plms", "PNDM"),
        ("ddim", "DDIM"),
        # diffusers class names, with " karras" for Karras sigmas
        ("EulerAncestralDiscreteScheduler", "Euler a"),
        ("EulerDiscreteScheduler", "Euler"),
        ("DPMSolverMultistepScheduler", "DPM++ 2M"),
        ("DPMSolverMultistepScheduler karras", "DPM++ 2M Karras"),
        ("PNDMScheduler", "PNDM"),
        ("UniPCMultistepScheduler", "UniPC"),
        ("DDIMScheduler", "DDIM"),
        # ComfyUI's
        ("euler_ancestral", "Euler a"),
        ("dpmpp_2m", "DPM++ 2M"),
        ("dpmpp_2m karras", "DPM++ 2M Karras"),
        ("uni_pc", "UniPC"),
        # any case and spacing
        ("EULER-A", "Euler a"),
        ("dpm++2m", "DPM++ 2M"),
    ],
)
def test_a1111_diffusers_and_comfyui_spellings(spelling, name):
    assert resolve_name(spelling) == name


@pytest.mark.parametrize("bad", ["", "Euler b", "karras", "DDIM karras", "LCM", "rm -rf /", None])
def test_unknown_spellings_are_refused(bad):
    with pytest.raises(RequestError, match="unknown scheduler"):
        resolve_name(bad)


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (SD1_SCHEDULER, "PNDM"),
        (SD2_SCHEDULER, "DDIM"),
        (DECI_SCHEDULER, "DDIM"),
        ({"_class_name": "EulerDiscreteScheduler"}, "Euler"),
        ({"_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": True}, "Euler Karras"),
        ({"_class_name": "EulerAncestralDiscreteScheduler"}, "Euler a"),
        ({"_class_name": "DPMSolverMultistepScheduler"}, "DPM++ 2M"),
        ({"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": True}, "DPM++ 2M Karras"),
        ({"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}, "DPM++ 2M SDE"),
        ({"_class_name": "DPMSolverMultistepScheduler", "solver_order": 3, "use_exponential_sigmas": True},
         "DPM++ 3M Exponential"),
        ({"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver"}, "DPMSolverMultistepScheduler"),
        ({"_class_name": "LMSDiscreteScheduler"}, "LMS"),
        ({"_class_name": "UniPCMultistepScheduler"}, "UniPC"),
        ({"_class_name": "FancyNewScheduler"}, "FancyNewScheduler"),
        ({}, "unknown scheduler"),
    ],
)
def test_name_for_config(config, name):
    """The UI names "Model default (PNDM)" from a scheduler_config.json with this, torch-free."""
    assert name_for_config(config) == name


@pytest.mark.parametrize("name", ["LMS", "Euler Karras", "DPM++ 2M SDE Exponential", "DPM2 a", "FancyNewScheduler"])
def test_a_models_own_scheduler_names_are_accepted_back(name):
    """Metadata names a model's own scheduler even when we do not offer it; that name must read back."""
    assert canonical_name(name) == name
    if not name.endswith("Scheduler"):  # a class name is taken as spelled
        assert canonical_name(name.lower()) == name


def test_importing_the_scheduler_names_does_not_import_torch():
    code = (
        "import sys, studio.engine.schedulers as s, studio.engine.request; "
        "s.name_for_config({'_class_name': 'PNDMScheduler'}); "
        "print(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_spelling_is_canonical_in_the_request_metadata_and_a1111_text(engine, tiny_sd1):
    from studio.library.metadata import format_parameters

    for spelling, name, a1111 in (("euler_a", "Euler a", "Sampler: Euler a,"), ("PLMS", "PNDM", "Sampler: PLMS,"),
                                  ("k_dpmpp_2m", "DPM++ 2M", "Sampler: DPM++ 2M, Schedule type: Uniform,")):
        result = engine.generate(
            GenerationRequest(model=str(tiny_sd1), prompt="x", steps=2, width=64, height=64, seed=1, scheduler=spelling)
        )[0]
        assert result.metadata["request"]["scheduler"] == name
        assert a1111 in format_parameters(result.metadata)


def test_an_unknown_scheduler_is_refused_before_loading():
    with pytest.raises(RequestError, match="unknown scheduler 'euler b'"):
        GenerationRequest(model="/no/such/model", prompt="x", scheduler="euler b").validate()


@pytest.mark.parametrize("name", names())
def test_every_offered_name_survives_the_a1111_text(name):
    """Written with A1111's sampler names ("PLMS", "Schedule type"), read back as the name we offer."""
    from studio.library.metadata import format_parameters, read_metadata

    meta = {"request": {"prompt": "x", "steps": 2, "seed": 1, "width": 64, "height": 64, "scheduler": name}}
    text = format_parameters(meta)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    result = read_metadata(buffer.getvalue())
    assert result is not None and result.source == "a1111" and result.scheduler == name
