"""What int8 activations are calibrated on: the UNet's inputs as this model's own pipeline feeds them.

Quantizing activations needs their ranges, and a UNet's ranges depend on the timestep, the prompt
embeddings and the latents the sampler produces. So the samples are recorded from the pipeline itself
(its torch networks, before they move): a few short denoising runs of a few plain prompts, every UNet
call kept (batch 2, as under classifier-free guidance). They are taken at half the model's native side,
which makes the recording and NNCF's statistics four times cheaper (the converted UNet has dynamic
shapes, so the samples need not be at the size images are made). A convolution's activation range does
not depend on the image size; attention's softmax sees a quarter of the tokens, which changes its
ranges somewhat. Measured, not argued: final 512 px images at 41.2 dB (DeciDiffusion) against torch
fp32 (bench/openvino_speed, random weights at real widths; trained weights are not available here).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from studio.engine.errors import Cancelled

# Plain subjects across the kinds of picture people make: the calibration wants typical ranges, not a style.
CALIBRATION_PROMPTS = (
    "a photograph of a mountain lake at sunrise, detailed, sharp focus",
    "portrait of an old fisherman, oil painting, dramatic light",
)


@dataclass(frozen=True)
class CalibrationPlan:
    """Denoising runs of `steps` steps for each prompt at `side` px: one sample per UNet call (a step is
    one call for most samplers; PNDM's first takes two)."""

    side: int
    steps: int = 4
    prompts: tuple[str, ...] = CALIBRATION_PROMPTS
    guidance: float = 7.5

    @property
    def steps_total(self) -> int:
        return len(self.prompts) * self.steps


def plan_for(pipe) -> CalibrationPlan:
    """Half the model's native side, on its size rule (64 px for DeciDiffusion, 8 for the others)."""
    unet = pipe.unet
    multiple = int(getattr(unet, "latent_multiple", 0) or 1) * 8
    native = int(getattr(unet.config, "sample_size", 64) or 64) * 8
    side = max(multiple, (native // 2) // multiple * multiple)
    return CalibrationPlan(side=side)


def unet_inputs(pipe, plan: CalibrationPlan, cancel: threading.Event | None = None) -> list[tuple[np.ndarray, ...]]:
    """(sample, timestep, encoder_hidden_states) of every UNet call in the plan's runs, as float32 arrays
    in the order the converted UNet takes them (timestep one value per batch row)."""
    samples: list[tuple[np.ndarray, ...]] = []

    def record(_module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        context = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
        batch = sample.shape[0]
        samples.append((
            _array(sample),
            _array(torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch)),
            _array(context),
        ))

    def check(_pipe, _step, _timestep, callback_kwargs):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled while optimising the model for this CPU")
        return callback_kwargs

    runner, extra = _runner(pipe, plan)
    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.inference_mode():
            for index, prompt in enumerate(plan.prompts):
                runner(
                    prompt=prompt, num_inference_steps=plan.steps, guidance_scale=plan.guidance,
                    height=plan.side, width=plan.side, output_type="latent",
                    generator=torch.Generator().manual_seed(index), callback_on_step_end=check, **extra,
                )
    finally:
        handle.remove()
    return samples


def _runner(pipe, plan: CalibrationPlan):
    """The pipeline that feeds this UNet as generation will, and what it needs besides a prompt: an
    inpainting UNet (9 input channels: latents, mask, masked picture) is fed by the inpaint pipeline, on
    a picture with a hole in its middle, as an inpainting job would be."""
    if int(getattr(pipe.unet.config, "in_channels", 4)) != 9:
        return pipe, {}
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image, ImageDraw

    side = plan.side
    picture = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).rectangle((side // 4, side // 4, side * 3 // 4, side * 3 // 4), fill=255)
    runner = StableDiffusionInpaintPipeline(**pipe.components)
    runner.set_progress_bar_config(disable=True)
    return runner, {"image": picture, "mask_image": mask, "strength": 1.0}


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy())
