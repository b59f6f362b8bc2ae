"""int8 calibration samples: recorded from the pipeline's own UNet calls, at half its native side."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from studio.engine import Cancelled
from studio.engine.loading import load_folder
from studio.engine.openvino_calibration import CalibrationPlan, plan_for, unet_inputs
from studio.engine.precision import choose_placement


@pytest.fixture(scope="module")
def sd1_pipe(tiny_sd1):
    from diffusers import DDIMScheduler

    pipe = load_folder(tiny_sd1, "sd1", choose_placement("cpu", "float32", "openvino"))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # one UNet call per step (PNDM adds one)
    return pipe


def test_the_plan_is_half_the_native_side_on_the_size_rule(sd1_pipe):
    plan = plan_for(sd1_pipe)
    assert sd1_pipe.unet.config.sample_size * 8 == 64 and plan.side == 32  # the tiny model's native 64 px, halved
    assert plan.steps_total == len(plan.prompts) * plan.steps


def test_every_unet_call_is_a_sample_in_the_converted_unets_order(sd1_pipe):
    plan = CalibrationPlan(side=64, steps=3, prompts=("a red cube", "a blue sphere"))
    samples = unet_inputs(sd1_pipe, plan)
    assert len(samples) == plan.steps_total == 6
    width = sd1_pipe.text_encoder.config.hidden_size
    for sample, timestep, context in samples:
        assert sample.shape == (2, sd1_pipe.unet.config.in_channels, 8, 8)  # batch 2: classifier-free guidance
        assert timestep.shape == (2,) and timestep[0] == timestep[1]
        assert context.shape[0] == 2 and context.shape[2] == width
        assert {a.dtype for a in (sample, timestep, context)} == {np.dtype(np.float32)}
    first_run = [float(t[0]) for _s, t, _c in samples[:3]]
    assert first_run == sorted(first_run, reverse=True)  # the sampler's own descending timesteps
    assert not np.array_equal(samples[0][2], samples[3][2])  # each prompt its own embeddings
    assert len(unet_inputs(sd1_pipe, plan)) == 6  # the first run's recorder is gone


def test_a_cancel_stops_the_recording_at_the_next_step(sd1_pipe):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        unet_inputs(sd1_pipe, CalibrationPlan(side=64, steps=3), cancel)
    plan = CalibrationPlan(side=64, steps=2, prompts=("a red cube",))
    assert len(unet_inputs(sd1_pipe, plan)) == 2  # the cancelled run's recorder is gone


@pytest.mark.parametrize("family", ["sd1-inpaint"])
def test_an_inpainting_unet_is_calibrated_through_the_inpaint_pipeline(tmp_path_factory, family):
    from diffusers import DDIMScheduler

    from studio.engine.tiny import make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp("models") / family, family, seed=0)
    pipe = load_folder(folder, "sd1", choose_placement("cpu", "float32", "openvino"))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    samples = unet_inputs(pipe, CalibrationPlan(side=32, steps=2, prompts=("a red cube",)))
    assert len(samples) == 2
    assert samples[0][0].shape == (2, 9, 4, 4)  # latents, mask and masked picture, as the converted UNet takes them
