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


# ------------------------------------------------------------------------------------ LoRAs, embeddings
#
# Tests and benches of LoRAs and textual-inversion embeddings need such files, and none may be downloaded.
# These write them from a model folder's own networks, in the layouts found in the wild: kohya-ss / A1111
# LoRAs (what most shared files are), diffusers/PEFT LoRAs (what `save_lora_weights` writes), LyCORIS
# LoHa/LoKr (which diffusers cannot load: the refusal paths), and A1111 / diffusers / SDXL embeddings.

LORA_FORMATS = ("kohya", "peft")
LORA_ALGOS = ("lora", "loha", "lokr")
EMBEDDING_FORMATS = ("safetensors", "pt", "diffusers", "sdxl")

# The layers kohya's networks.lora trains by default: every Linear (and 1x1 conv) inside the UNet's
# transformers and the text encoder's attention and MLP. Matched as name suffixes, so they find the same
# layers in DeciDiffusion's UNet-NAS, whose transformers sit in `modules_list` instead of `attentions`.
UNET_ATTENTION_LAYERS = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
)  # fmt: skip
TEXT_ENCODER_LAYERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                       "mlp.fc1", "mlp.fc2")  # fmt: skip
# LoCon (kohya's conv_dim): every layer of each resnet, as kohya adds them when conv layers are trained.
RESNET_LAYERS = ("conv1", "conv2", "conv_shortcut", "time_emb_proj")
LORA_UP_STD = 0.1
"""Std of the up weights at scale 1 (divided by sqrt(rank)), with down weights of std 1/sqrt(fan-in): the
LoRA then moves each layer's output by about a tenth of a unit input's, a visible change that leaves
the tiny model's activations finite. Real LoRAs are of that order; `scale` goes bigger or smaller."""
EMBEDDING_STD = 0.02  # CLIP's token-embedding init std: vectors the size of the model's own tokens


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def model_family(model_dir: Path) -> str:
    """sd1, sd2 or deci for a diffusers folder: its studio_tiny.json marker when there is one, else
    DeciDiffusion by its flexible_unet/, SD 2.x by OpenCLIP's plain gelu text encoder (SD 1.x uses
    OpenAI CLIP's quick_gelu)."""
    model_dir = Path(model_dir)
    family = str(_load_json(model_dir / "studio_tiny.json").get("family", ""))
    if family:
        return family.removesuffix("-inpaint")
    if (model_dir / "flexible_unet").is_dir():
        return "deci"
    act = _load_json(model_dir / "text_encoder" / "config.json").get("hidden_act")
    return "sd2" if act == "gelu" else "sd1"


def _networks(model_dir: Path, *, unet: bool, text_encoder: bool) -> dict:
    """{"unet": module, "text_encoder": module} built from the folder's configs on the meta device: the
    module names and layer shapes a LoRA needs, without reading (or allocating) a single weight, so that
    this works on full-size models as well as tiny ones."""
    import torch

    out = {}
    with torch.device("meta"):
        if unet and model_family(model_dir) == "deci":
            from studio.engine.deci_unet import build_unet, configurations_from_config

            config = _load_json(model_dir / "flexible_unet" / "config.json")
            out["unet"] = build_unet(
                configurations_from_config(config),
                in_channels=int(config.get("in_channels", 4)),
                out_channels=int(config.get("out_channels", 4)),
            )
        elif unet:
            from diffusers import UNet2DConditionModel

            config = UNet2DConditionModel.load_config(model_dir / "unet")
            out["unet"] = UNet2DConditionModel.from_config(config)
        if text_encoder:
            from transformers import CLIPTextConfig, CLIPTextModel

            out["text_encoder"] = CLIPTextModel(CLIPTextConfig.from_pretrained(model_dir / "text_encoder"))
    return out


def lora_targets(
    model_dir: str | Path, *, unet: bool = True, text_encoder: bool = True, conv: bool = False
) -> dict:
    """{component: {module name: (out, in, kernel)}} of the layers a LoRA of the model trains (kernel 0
    for a Linear). Attention layers are found by name suffix wherever the UNet keeps its transformers;
    resnets by class (diffusers' ResnetBlock2D, which DeciDiffusion's UNet-NAS uses too)."""
    import torch
    from diffusers.models.resnet import ResnetBlock2D

    def shape(module) -> tuple[int, int, int] | None:
        if isinstance(module, torch.nn.Linear):
            return module.out_features, module.in_features, 0
        if isinstance(module, torch.nn.Conv2d):
            return module.out_channels, module.in_channels, int(module.kernel_size[0])
        return None

    targets: dict[str, dict[str, tuple[int, int, int]]] = {}
    for component, network in _networks(Path(model_dir), unet=unet, text_encoder=text_encoder).items():
        suffixes = UNET_ATTENTION_LAYERS if component == "unet" else TEXT_ENCODER_LAYERS
        layers = {}
        for name, module in network.named_modules():
            if name.endswith(tuple("." + s for s in suffixes)) and (dims := shape(module)):
                layers[name] = dims
            if conv and isinstance(module, ResnetBlock2D):
                for child in RESNET_LAYERS:
                    if (dims := shape(getattr(module, child, None))) is not None:
                        layers[f"{name}.{child}"] = dims
        if component == "text_encoder":
            # transformers 5 dropped CLIPTextModel's `text_model` wrapper; the files in the wild (kohya's
            # lora_te_text_model_..., diffusers' text_encoder.text_model....) keep it, and both still load.
            layers = {n if n.startswith("text_model.") else f"text_model.{n}": d for n, d in layers.items()}
        targets[component] = dict(sorted(layers.items()))
    return targets


def _kohya_name(component: str, module: str) -> str:
    """kohya's key prefix: lora_unet_ / lora_te_ and the module path with dots as underscores."""
    return ("lora_unet_" if component == "unet" else "lora_te_") + module.replace(".", "_")


def _factor(n: int) -> tuple[int, int]:
    """n = a * b with a the largest divisor not above sqrt(n): LyCORIS's LoKr factorisation."""
    a = max(d for d in range(1, int(n**0.5) + 1) if n % d == 0)
    return a, n // a


def _kohya_metadata(model_dir: Path, path: Path, *, rank: int, alpha: float, conv: bool, algo: str) -> dict:
    """What kohya-ss sd-scripts writes, the fields loaders and galleries read: network, base model,
    output name, tag frequencies (the source of trigger words) and the SAI model spec."""
    family = model_family(model_dir)
    sd2 = family == "sd2"
    scheduler = _load_json(model_dir / "scheduler" / "scheduler_config.json")
    v_pred = scheduler.get("prediction_type") == "v_prediction"
    architecture = "stable-diffusion-v1"
    if sd2:
        architecture = "stable-diffusion-v2-768-v" if v_pred else "stable-diffusion-v2-512"
    args: dict[str, str] = {}
    if algo != "lora":
        args["algo"] = algo
    if conv:
        args.update(conv_dim=str(rank), conv_alpha=f"{alpha:g}")
    metadata = {
        "ss_network_module": "networks.lora" if algo == "lora" else "lycoris.kohya",
        "ss_network_dim": str(rank),
        "ss_network_alpha": f"{alpha:g}",
        "ss_base_model_version": "sd_v2" if sd2 else "sd_v1",
        "ss_v2": str(sd2),
        "ss_v_parameterization": str(sd2 and v_pred),
        "ss_sd_model_name": model_dir.name,
        "ss_output_name": path.stem,
        "ss_resolution": "(64, 64)",
        "ss_tag_frequency": json.dumps({"10_tinystyle": {"tinystyle": 10, "noise": 4, "1girl": 1}}),
        "ss_training_comment": "random weights written by studio make-tiny-lora, for tests",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{architecture}/{'lora' if algo == 'lora' else 'lycoris'}",
        "modelspec.implementation": "diffusers",
        "modelspec.title": path.stem,
    }
    if args:
        metadata["ss_network_args"] = json.dumps(args)
    return metadata


def _string_metadata(metadata: dict | None) -> dict[str, str]:
    """safetensors metadata is str -> str: other values go in as JSON, as kohya stores its dicts."""
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}


def make_tiny_lora(
    model_dir: str | Path,
    path: str | Path,
    *,
    rank: int = 4,
    alpha: float | None = None,
    seed: int = 0,
    scale: float = 1.0,
    unet: bool = True,
    text_encoder: bool = True,
    conv: bool = False,
    fmt: str = "kohya",
    algo: str = "lora",
    metadata: dict | None = None,
) -> Path:
    """Write a random-weight LoRA shaped for the model in `model_dir` to the .safetensors file `path`.

    It covers every attention linear of the UNet and text encoder (as chosen), plus each resnet's layers
    when `conv` (kohya's LoCon). fmt="kohya" writes kohya-ss / A1111 keys (fp16, per-layer alpha, kohya
    metadata); fmt="peft" what diffusers' `save_lora_weights` writes (fp32, PEFT keys, the adapter config
    in the metadata). Both formats hold the same values for a seed (fp16-representable), so loading either
    must change a model identically. algo="loha"/"lokr" writes LyCORIS keys instead (kohya naming), which
    diffusers refuses. `alpha` defaults to the rank (scale 1); `scale` multiplies the up weights, to make
    the effect bigger or smaller. Module names are the model's own: for DeciDiffusion its UNet-NAS's
    `modules_list` paths, which no SD 1.5 LoRA names. `metadata` is added last (overriding).
    """
    import numpy as np
    import torch
    from safetensors.torch import save_file

    if fmt not in LORA_FORMATS:
        raise ValueError(f"unknown LoRA format {fmt!r}: choose one of {', '.join(LORA_FORMATS)}")
    if algo not in LORA_ALGOS:
        raise ValueError(f"unknown LoRA algorithm {algo!r}: choose one of {', '.join(LORA_ALGOS)}")
    if algo != "lora" and fmt != "kohya":
        raise ValueError(f"{algo} files exist only in kohya naming (LyCORIS); use fmt='kohya'")
    if rank < 1:
        raise ValueError(f"rank must be at least 1, not {rank}")
    if not (unet or text_encoder):
        raise ValueError("a LoRA needs the UNet, the text encoder or both")
    model_dir, path = Path(model_dir), Path(path)
    alpha = float(rank if alpha is None else alpha)
    targets = lora_targets(model_dir, unet=unet, text_encoder=text_encoder, conv=conv)
    rng = np.random.default_rng(seed)

    def draw(shape: tuple[int, ...], std: float) -> torch.Tensor:
        # Rounded to fp16 so that the fp16 kohya file and the fp32 PEFT file hold the same numbers.
        return torch.from_numpy((rng.standard_normal(shape) * std).astype(np.float16))

    up_std = LORA_UP_STD * scale / rank**0.5
    tensors: dict[str, torch.Tensor] = {}
    peft_layers: dict[str, dict[str, torch.Tensor]] = {}
    for component, layers in targets.items():
        for module, (out_f, in_f, kernel) in layers.items():
            fan_in = in_f * max(kernel, 1) ** 2
            key = _kohya_name(component, module)
            if algo == "loha":  # dW = (w1_a @ w1_b) * (w2_a @ w2_b), each factor rank r
                std = (up_std / fan_in**0.5) ** 0.5
                for part, shape in (("w1_a", (out_f, rank)), ("w1_b", (rank, fan_in)),
                                    ("w2_a", (out_f, rank)), ("w2_b", (rank, fan_in))):  # fmt: skip
                    tensors[f"{key}.hada_{part}"] = draw(shape, std)
            elif algo == "lokr":  # dW = kron(w1, w2_a @ w2_b)
                (a, b), (c, d) = _factor(out_f), _factor(in_f)
                tensors[f"{key}.lokr_w1"] = draw((a, c), 1.0)
                tensors[f"{key}.lokr_w2_a"] = draw((b, rank), up_std)
                tensors[f"{key}.lokr_w2_b"] = draw((rank, d * max(kernel, 1) ** 2), 1 / fan_in**0.5)
            else:
                down_shape = (rank, in_f, kernel, kernel) if kernel else (rank, in_f)
                up_shape = (out_f, rank, 1, 1) if kernel else (out_f, rank)
                down = draw(down_shape, 1 / fan_in**0.5)
                up = draw(up_shape, up_std)
                if fmt == "peft":
                    peft_layers.setdefault(component, {})[f"{module}.lora_A.weight"] = down.float()
                    peft_layers[component][f"{module}.lora_B.weight"] = up.float()
                    continue
                tensors[f"{key}.lora_down.weight"] = down
                tensors[f"{key}.lora_up.weight"] = up
            tensors[f"{key}.alpha"] = torch.tensor(alpha, dtype=torch.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "peft":
        _save_peft_lora(path, peft_layers, targets, rank=rank, alpha=alpha, metadata=metadata)
    else:
        info = _kohya_metadata(model_dir, path, rank=rank, alpha=alpha, conv=conv, algo=algo)
        save_file(tensors, str(path), metadata={**info, **_string_metadata(metadata)})
    return path


def _save_peft_lora(
    path: Path, layers: dict, targets: dict, *, rank: int, alpha: float, metadata: dict | None
) -> None:
    """Write through diffusers' own `save_lora_weights`, so the file is what a diffusers training run
    saves (keys, prefixes, the `lora_adapter_metadata` LoraConfig), then add `metadata` if any."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    def config(component: str) -> dict | None:
        if component not in layers:
            return None
        # Layer names as training scripts give them to LoraConfig (to_q, mlp.fc1, ...), not full paths.
        suffixes = (*UNET_ATTENTION_LAYERS, *TEXT_ENCODER_LAYERS, *RESNET_LAYERS)
        names = {s for name in targets[component] for s in suffixes if name.endswith("." + s)}
        return {"r": rank, "lora_alpha": alpha, "target_modules": sorted(names),
                "rank_pattern": {}, "alpha_pattern": {}, "use_dora": False, "lora_bias": False}  # fmt: skip

    StableDiffusionLoraLoaderMixin.save_lora_weights(
        save_directory=str(path.parent),
        unet_lora_layers=layers.get("unet"),
        text_encoder_lora_layers=layers.get("text_encoder"),
        weight_name=path.name,
        unet_lora_adapter_metadata=config("unet"),
        text_encoder_lora_adapter_metadata=config("text_encoder"),
    )
    if metadata:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - not a mapping
            existing = f.metadata() or {}
        save_file(tensors, str(path), metadata={**existing, **_string_metadata(metadata)})


def text_encoder_widths(model_dir: str | Path) -> tuple[int, int | None]:
    """(hidden size of text_encoder, of text_encoder_2 or None): the widths an embedding must have."""
    model_dir = Path(model_dir)
    width = _load_json(model_dir / "text_encoder" / "config.json").get("hidden_size")
    if not width:
        raise ValueError(f"{model_dir}: no text_encoder/config.json with a hidden_size")
    second = _load_json(model_dir / "text_encoder_2" / "config.json").get("hidden_size")
    return int(width), int(second) if second else None


def make_tiny_embedding(
    path: str | Path,
    *,
    vectors: int = 2,
    width: int | None = None,
    model_dir: str | Path | None = None,
    seed: int = 0,
    scale: float = 1.0,
    fmt: str = "safetensors",
    width_g: int | None = None,
) -> Path:
    """Write a random textual-inversion embedding of `vectors` tokens to `path`.

    Formats: "safetensors" (A1111: one tensor `emb_params` [vectors, width]); "pt" (A1111's pickle:
    string_to_token / string_to_param / name / step, plain tensors so `torch.load(weights_only=True)`
    reads it); "diffusers" (what diffusers' textual_inversion script saves: {"<stem>": [vectors, width]});
    "sdxl" ({"clip_l": [vectors, width], "clip_g": [vectors, width_g]}, which an SD 1.x/2.x model must
    refuse). `width` is the text encoder's hidden size: from `model_dir` when given (and text_encoder_2's
    for width_g), else TINY_WIDTH; width_g defaults to SDXL's ratio (1280 for 768). Values have CLIP's
    token-embedding scale times `scale`.
    """
    import numpy as np
    import torch

    if fmt not in EMBEDDING_FORMATS:
        raise ValueError(f"unknown embedding format {fmt!r}: choose one of {', '.join(EMBEDDING_FORMATS)}")
    if vectors < 1:
        raise ValueError(f"an embedding needs at least one vector, not {vectors}")
    path = Path(path)
    if model_dir is not None:
        model_width, model_width_g = text_encoder_widths(model_dir)
        width = width or model_width
        width_g = width_g or model_width_g
    width = width or TINY_WIDTH
    width_g = width_g or round(width * 5 / 3)
    rng = np.random.default_rng(seed)

    def draw(w: int) -> torch.Tensor:
        values = rng.standard_normal((vectors, w)) * EMBEDDING_STD * scale
        return torch.from_numpy(values.astype(np.float32))

    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt":
        data = {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": draw(width)},
            "name": path.stem,
            "step": 0,
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
        }
        torch.save(data, path)
        return path
    from safetensors.torch import save_file

    if fmt == "sdxl":
        tensors = {"clip_l": draw(width), "clip_g": draw(width_g)}
    elif fmt == "diffusers":
        tensors = {f"<{path.stem}>": draw(width)}
    else:
        tensors = {"emb_params": draw(width)}
    metadata = {"format": "pt"}
    if model_dir is not None and fmt != "sdxl":  # what a trainer writes (kohya's modelspec)
        family = model_family(Path(model_dir))
        architecture = {"sd1": "stable-diffusion-v1", "deci": "stable-diffusion-v1", "sd2": "stable-diffusion-v2-512"}
        metadata["modelspec.architecture"] = f"{architecture.get(family, 'stable-diffusion-v1')}/textual-inversion"
    save_file(tensors, str(path), metadata=metadata)
    return path
