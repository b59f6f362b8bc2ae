"""Random-weight pipelines at the real widths of a family (the shipped component configs), in memory.

Weights cannot be downloaded here, and speed depends on widths, not on weight values: a random SD 1.x
UNet runs exactly as many FLOPs as the real one. Its images are noise.
Families: sd1, sd2, and deci (DeciDiffusion 1.0's UNet-NAS at its real configuration, with the SD 1.x
text encoder and VAE it shares, and its own zero-SNR v-prediction DDIM schedule).
"""

from __future__ import annotations


def build_random_pipeline(family: str = "sd1", seed: int = 0):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from studio.library.resources import clip_tokenizer_dir, component_configs_dir

    configs = component_configs_dir("sd1" if family == "deci" else family)
    torch.manual_seed(seed)
    if family == "deci":
        from studio.engine.deci_unet import DECI_V1_CONFIGURATIONS, build_unet
        from studio.engine.tiny import DECI_SCHEDULER

        unet = build_unet(DECI_V1_CONFIGURATIONS).eval()
        scheduler = DDIMScheduler.from_config(DECI_SCHEDULER)
    else:
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet"))
        scheduler = DDIMScheduler.from_config(DDIMScheduler.load_config(configs / "scheduler"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae"))
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(configs / "text_encoder"))
    tokenizer = CLIPTokenizer.from_pretrained(clip_tokenizer_dir(), **({"pad_token": "!"} if family == "sd2" else {}))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def unet_step_timer(unet, sample, timestep, context):
    """A function that runs one UNet call (a torch module or the OpenVINO stand-in) and returns its seconds."""
    import time

    import torch

    def step() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            unet(sample, timestep, encoder_hidden_states=context, return_dict=False)
        return time.perf_counter() - start

    return step
