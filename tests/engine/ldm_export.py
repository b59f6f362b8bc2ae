"""Export a diffusers Stable Diffusion pipeline to the ORIGINAL single-file (CompVis/LDM) key layout.

The inverse of diffusers' LDM -> diffusers conversion, written from the LDM module structure
(``ldm.modules.diffusionmodules.openaimodel.UNetModel``, ``...model.Encoder/Decoder``,
``ldm.modules.encoders.modules.FrozenCLIPEmbedder`` / ``FrozenOpenCLIPEmbedder``), generic in the number of
blocks, layers per block and widths, so a tiny pipeline exports to a file shaped like a real ``v1-5-*.safetensors``
or ``v2-1_768-*.safetensors``. Tests load the export back through diffusers' converters and compare every tensor:
an export that merely mirrored diffusers' key replacements would not look like a real file, so the names here
are the real LDM ones (``in_layers.0``, ``skip_connection``, ``nin_shortcut``, ``mid.attn_1.q``, ``resblocks``...).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.transformer."
OPENCLIP = "cond_stage_model.model."

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest: str, table: dict[str, str]) -> str:
    layer, _, param = rest.rpartition(".")
    return f"{table.get(layer, layer)}.{param}"


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel -> ``model.diffusion_model.*`` (openaimodel.UNetModel names)."""
    per_block = unet.config.layers_per_block + 1  # LDM: layers_per_block resnets + one down/upsample slot
    up_has_attention = ["CrossAttn" in kind for kind in unet.config.up_block_types]
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    out = {}
    for key, tensor in unet.state_dict().items():
        head, _, param = key.rpartition(".")
        if head in fixed:
            ldm = f"{fixed[head]}.{param}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = 1 + block * per_block + layer
            ldm = (
                f"input_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
                if kind == "resnets"
                else f"input_blocks.{index}.1.{rest}"
            )
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            ldm = f"input_blocks.{1 + int(m[1]) * per_block + per_block - 1}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            ldm = f"middle_block.{2 * int(m[1])}.{_resnet(m[2], _UNET_RESNET)}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            ldm = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = block * per_block + layer
            ldm = (
                f"output_blocks.{index}.0.{_resnet(rest, _UNET_RESNET)}"
                if kind == "resnets"
                else f"output_blocks.{index}.1.{rest}"
            )
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            block = int(m[1])
            slot = 2 if up_has_attention[block] else 1  # after [resnet, attention] or [resnet]
            ldm = f"output_blocks.{block * per_block + per_block - 1}.{slot}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out[UNET + ldm] = tensor
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """AutoencoderKL -> ``first_stage_model.*`` (taming-style Encoder/Decoder names; conv 1x1 attention)."""
    n_up = len(vae.config.up_block_types)
    out = {}
    for key, tensor in vae.state_dict().items():
        ldm = key.replace("conv_norm_out", "norm_out")
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            ldm = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            ldm = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            ldm = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            ldm = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            ldm = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            ldm = f"{m[1]}.mid.attn_1.{_VAE_ATTENTION[m[2]]}.{m[3]}"
            if m[2] != "group_norm" and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # LDM uses 1x1 convolutions for q, k, v, proj_out
        elif not re.fullmatch(
            r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.\w+|(post_)?quant_conv\.\w+", ldm
        ):
            raise KeyError(f"no LDM name for VAE key {key}")
        out[VAE + ldm] = tensor
    return out


def _text_keys(text_encoder) -> dict[str, torch.Tensor]:
    """State dict with transformers' ``text_model.`` prefix (CLIPTextModel dropped it in transformers 5.6)."""
    return {
        (key if key.startswith("text_model.") else "text_model." + key): tensor
        for key, tensor in text_encoder.state_dict().items()
    }


def clip_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """SD 1.x: FrozenCLIPEmbedder keeps the transformers CLIPTextModel under ``cond_stage_model.transformer``."""
    out = {CLIP + key: tensor for key, tensor in _text_keys(text_encoder).items()}
    # Real SD 1.x files (saved with transformers 4.2x) carry the position_ids buffer too.
    positions = text_encoder.config.max_position_embeddings
    out[CLIP + "text_model.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
    return out


def openclip_to_ldm(text_encoder, extra_layer: bool = True) -> dict[str, torch.Tensor]:
    """SD 2.x: FrozenOpenCLIPEmbedder keeps open_clip's text tower under ``cond_stage_model.model``.

    open_clip fuses q/k/v into ``attn.in_proj_*``. The real ViT-H text tower has one more residual block than
    diffusers loads (SD 2.x conditions on the penultimate layer); ``extra_layer`` adds such a block, plus the
    ``text_projection`` and ``logit_scale`` a real file carries, all of which the loader must ignore.
    """
    keys = _text_keys(text_encoder)
    width = text_encoder.config.hidden_size
    simple = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    layer_names = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    out = {}
    for key, tensor in keys.items():
        if key in simple:
            out[OPENCLIP + simple[key]] = tensor
            continue
        m = re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if not m:
            raise KeyError(f"no open_clip name for text encoder key {key}")
        layer, module, param = m.groups()
        block = f"{OPENCLIP}transformer.resblocks.{layer}."
        if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            if module == "self_attn.q_proj":
                prefix = f"text_model.encoder.layers.{layer}.self_attn."
                fused = [keys[f"{prefix}{p}_proj.{param}"] for p in "qkv"]
                out[f"{block}attn.in_proj_{param}"] = torch.cat(fused, dim=0)
            continue
        out[f"{block}{layer_names[module]}.{param}"] = tensor
    generator = torch.Generator().manual_seed(0)
    if extra_layer:
        last = text_encoder.config.num_hidden_layers - 1
        for key in [k for k in out if k.startswith(f"{OPENCLIP}transformer.resblocks.{last}.")]:
            extra = key.replace(f"resblocks.{last}.", f"resblocks.{last + 1}.")
            out[extra] = torch.randn(out[key].shape, generator=generator)
    out[OPENCLIP + "text_projection"] = torch.randn(width, width, generator=generator)
    out[OPENCLIP + "logit_scale"] = torch.tensor(4.6052)
    return out


def ddpm_buffers() -> dict[str, torch.Tensor]:
    """The LatentDiffusion schedule buffers every real SD file carries (unused by diffusers)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    return {
        "betas": betas.float(),
        "alphas_cumprod": alphas_cumprod.float(),
        "model_ema.decay": torch.tensor(0.9999),
    }


def pipeline_to_ldm(pipe, family: str) -> dict[str, torch.Tensor]:
    """The whole pipeline as one LDM state dict (contiguous CPU tensors, ready for safetensors/torch.save)."""
    text = clip_to_ldm(pipe.text_encoder) if family == "sd1" else openclip_to_ldm(pipe.text_encoder)
    state = {**unet_to_ldm(pipe.unet), **vae_to_ldm(pipe.vae), **text, **ddpm_buffers()}
    return {key: tensor.detach().cpu().contiguous().clone() for key, tensor in state.items()}


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    save_file(state, str(path))
    return path


def write_config_dir(pipe, directory: Path) -> Path:
    """The pipeline's diffusers layout minus every weight file: a ``config_dir`` for `load_single_file`."""
    pipe.save_pretrained(directory, safe_serialization=True)
    for pattern in ("*.safetensors", "*.bin", "*.msgpack", "*.pt"):
        for weights in directory.rglob(pattern):
            weights.unlink()
    return directory
