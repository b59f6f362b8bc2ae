"""Random-weight pipelines at the real widths of a family (the shipped component configs), in memory.

Weights cannot be downloaded here, and speed depends on widths, not on weight values: a random SD 1.x
UNet runs exactly as many FLOPs as the real one. Its images are noise.
"""

from __future__ import annotations


def build_random_pipeline(family: str = "sd1", seed: int = 0):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from studio.engine.resources import clip_tokenizer_dir, component_configs_dir

    configs = component_configs_dir(family)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae"))
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(configs / "text_encoder"))
    scheduler = DDIMScheduler.from_config(DDIMScheduler.load_config(configs / "scheduler"))
    tokenizer = CLIPTokenizer.from_pretrained(clip_tokenizer_dir(), **({"pad_token": "!"} if family == "sd2" else {}))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
