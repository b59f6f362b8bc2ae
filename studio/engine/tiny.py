"""Tiny random-weight pipelines, built offline and deterministically.

Tests, CI and bug reports need a real diffusers pipeline without downloading gigabytes. These use each
family's real component classes and scheduler configs at tiny widths (a 4-block VAE keeps the scale
factor 8, so 64x64 images) and the real CLIP vocabulary shipped in `studio/resources`. Their images are
noise: a tiny model proves plumbing, never quality.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.engine.deci_config import scaled_configurations
from studio.library.resources import clip_tokenizer_dir

FAMILIES = ("sd1", "sd2", "deci")
INPAINT_FAMILIES = ("sd1-inpaint", "sd2-inpaint")
"""Tiny inpainting models: the family's pipeline with a 9-channel UNet (latents, mask, masked image), as
runwayml's and stabilityai's inpainting checkpoints have."""
TINY_WIDTH = 32  # text encoder hidden size == UNet cross-attention dim

# The real scheduler configs of the families (only the fields that matter; the rest are class defaults).
SD1_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "clip_sample": False,
}
SD2_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "clip_sample": False,
}
DECI_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "squaredcos_cap_v2",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
}

# DeciDiffusion 1.0's "configurations" at tiny widths: the same block counts, layouts and quirks (every
# resnet/attention count of the real model), channels at the 32-group GroupNorm minimum.
TINY_DECI_CONFIGURATIONS = scaled_configurations(
    {320: 32, 640: 64, 1280: 64},
    sample_size=8,
    temb_dim=128,
    num_attention_heads=4,
    cross_attention_dim=TINY_WIDTH,
)

README = """# Tiny random-weight {family} pipeline

Built by `studio make-tiny-model --family {family} --seed {seed}` for tests, CI and bug reports.
Same component classes and configs as the family, tiny widths, random weights: its images are noise.
"""


def _scheduler(config: dict):
    import diffusers

    cfg = dict(config)
    cls = getattr(diffusers, cfg.pop("_class_name"))
    return cls.from_config(cfg)


def _text_encoder(family: str, seed: int = 0):
    """A tiny CLIP text encoder with trained-looking LayerNorms (see `_realistic_norms`)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TINY_WIDTH,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TINY_WIDTH,
        # SD 2.x uses OpenCLIP's gelu and "!" as padding; SD 1.x / Deci use OpenAI CLIP's quick_gelu.
        hidden_act="gelu" if family == "sd2" else "quick_gelu",
        pad_token_id=0 if family == "sd2" else 49407,
        bos_token_id=49406,
        eos_token_id=49407,
    )
    model = CLIPTextModel(cfg)
    _realistic_norms(model, seed)
    return model


def _realistic_norms(module, seed: int) -> None:
    """Give every LayerNorm of `module` a seeded random gain and bias, as training leaves them.

    A fresh LayerNorm has gain 1 and bias 0, so the text encoder's output (its final LayerNorm's) has a
    mean of exactly 0 per token, up to rounding; a trained CLIP's has gains spread around 1 and biases
    that keep its mean well away from 0. A1111's emphasis rescales by that mean, so with fresh norms
    the tiny models would test that code only on rounding noise, which differs between CPUs and dtypes.
    Biases are drawn around a non-zero centre so the mean is clear of 0 whatever the seed. The generator
    is the norms' own (seeded from `seed`), so the other weights stay as they were for a given seed.
    """
    import torch

    generator = torch.Generator("cpu").manual_seed(10_007 + seed)
    with torch.no_grad():
        for norm in (m for m in module.modules() if isinstance(m, torch.nn.LayerNorm)):
            shape = norm.weight.shape
            norm.weight.copy_(1.0 + 0.25 * torch.randn(shape, generator=generator))
            norm.bias.copy_(0.3 + 0.2 * torch.randn(shape, generator=generator))


def _tokenizer(family: str):
    from transformers import CLIPTokenizer

    extra = {"pad_token": "!"} if family == "sd2" else {}
    return CLIPTokenizer.from_pretrained(clip_tokenizer_dir(), **extra)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=0.18215,
    )


def _unet(family: str, in_channels: int = 4):
    if family == "deci":
        from studio.engine.deci_unet import build_unet

        return build_unet(TINY_DECI_CONFIGURATIONS)
    from diffusers import UNet2DConditionModel

    sd2 = family == "sd2"
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TINY_WIDTH,
        attention_head_dim=(2, 4) if sd2 else 8,
        use_linear_projection=sd2,
        upcast_attention=sd2,
    )


def _safety_checker(threshold: float):
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    checker = StableDiffusionSafetyChecker(config)
    # The checker flags an image when cosine(image, concept) - threshold > 0 for any concept. Thresholds of
    # 1.0 never flag (cosine <= 1); tests build a copy with -1.0, which flags everything, for the real path.
    checker.concept_embeds_weights.data.fill_(threshold)
    checker.special_care_embeds_weights.data.fill_(threshold)
    processor = CLIPImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    return checker, processor


def build_tiny_pipeline(family: str = "sd1", seed: int = 0, *, safety_threshold: float = 1.0):
    """A tiny `StableDiffusionPipeline` of the family (or an inpainting variant), in memory. Same seed ->
    same weights."""
    if family not in (*FAMILIES, *INPAINT_FAMILIES):
        raise ValueError(f"unknown family {family!r}: choose one of {', '.join((*FAMILIES, *INPAINT_FAMILIES))}")
    import torch
    from diffusers import StableDiffusionPipeline

    family, inpainting = family.removesuffix("-inpaint"), family.endswith("-inpaint")
    torch.manual_seed(seed)
    unet = _unet(family, in_channels=9 if inpainting else 4)
    vae = _vae()
    text_encoder = _text_encoder(family, seed)
    scheduler = _scheduler({"sd1": SD1_SCHEDULER, "sd2": SD2_SCHEDULER, "deci": DECI_SCHEDULER}[family])
    checker, processor = _safety_checker(safety_threshold) if family == "sd1" else (None, None)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_tokenizer(family),
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=processor,
        requires_safety_checker=family == "sd1",
    )


def make_tiny_model(directory: str | Path, family: str = "sd1", seed: int = 0, *, safety_threshold: float = 1.0) -> Path:
    """Write a tiny pipeline in diffusers layout (safetensors) to `directory` and return it."""
    directory = Path(directory)
    pipe = build_tiny_pipeline(family, seed, safety_threshold=safety_threshold)
    directory.mkdir(parents=True, exist_ok=True)
    if family == "deci":
        _save_deci(pipe, directory)
    else:
        pipe.save_pretrained(directory, safe_serialization=True)
    (directory / "README.md").write_text(README.format(family=family, seed=seed), encoding="utf-8")
    marker = {"family": family, "seed": seed, "tiny": True, "safety_threshold": safety_threshold}
    (directory / "studio_tiny.json").write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return directory


def _save_deci(pipe, directory: Path) -> None:
    """DeciDiffusion's repository layout: the UNet-NAS in flexible_unet/ (config.json with "configurations",
    fp16 safetensors as published), standard SD components beside it, no safety checker (off for this
    family)."""
    import diffusers

    from studio.engine.deci_unet import save_flexible_unet

    save_flexible_unet(pipe.unet, directory / "flexible_unet", fp16=True)
    pipe.vae.save_pretrained(directory / "vae", safe_serialization=True)
    pipe.text_encoder.save_pretrained(directory / "text_encoder", safe_serialization=True)
    pipe.tokenizer.save_pretrained(directory / "tokenizer")
    pipe.scheduler.save_pretrained(directory / "scheduler")
    index = {
        # The published model_index.json names custom pipeline code; the engine never reads it for that.
        "_class_name": "DeciDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "flexible_unet": ["studio.engine.deci_unet", "DeciUNet"],
        "scheduler": ["diffusers", type(pipe.scheduler).__name__],
        "text_encoder": ["transformers", type(pipe.text_encoder).__name__],
        "tokenizer": ["transformers", type(pipe.tokenizer).__name__],
        "vae": ["diffusers", type(pipe.vae).__name__],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    (directory / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
