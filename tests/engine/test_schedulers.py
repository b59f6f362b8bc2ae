"""Every offered scheduler keeps the model's prediction type, spacing and zero-SNR, and generates."""

from __future__ import annotations

import pytest

from studio.engine import GenerationRequest, RequestError
from studio.engine.schedulers import PRESERVED_KEYS, make_scheduler, name_of, names, resolve_name
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
