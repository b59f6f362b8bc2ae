"""DeciDiffusion 1.0's UNet-NAS ("flexible_unet"), written natively from diffusers building blocks.

The model repository ships its UNet as custom pipeline code that needs remote code execution (and a module
diffusers removed in 0.29). We never run code from a model repository: this module rebuilds the same network
from its published `flexible_unet/config.json` ("configurations") so that the published weights load
strictly, key for key (design.md section 4).

Structure. SD-1.x stem and head (`conv_in`, sinusoidal time projection + `time_embedding.linear_1/2`,
`conv_norm_out`, `conv_out`) around three down blocks, one mid block and three up blocks. Each block keeps
its layers in one `modules_list` in which resnets (R) and cross-attention transformers (A) alternate,
R,A,R,A,... until one kind runs out (the other then fills the tail):

    down0 [R,R]+down   down1 [R,A,R]+down   down2 [R,A,A,A]+down
    mid   [R,A,R,A,R,R,R]+upsample
    up0   [R,A,R,A,A,A,A,A]+up   up1 [R,A,R,A,R,A]+up   up2 [R,R,R]

Quirks reproduced exactly, because the weights were trained with them:
  * skip states are recorded right after each down resnet (before the attention that follows it), plus
    the `conv_in` output first and each downsampler's output, except the last down block's: that block
    downsamples but records no skip;
  * the mid block runs its first resnet once, then loops over all of its modules, so that resnet runs
    twice per forward; it ends with an upsampler;
  * the latent is therefore halved three times and doubled three times: image sides must be multiples of
    64 px (latent sides multiples of 8).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, BasicTransformerBlock
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from diffusers.models.upsampling import Upsample2D
from torch import nn

from studio.engine.deci_config import DECI_V1_CONFIGURATIONS, DECI_V1_PARAMETERS  # noqa: F401 - re-exported
from studio.engine.errors import RequestError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_NAME_FP16 = "diffusion_pytorch_model.fp16.safetensors"
NORM_GROUPS = 32  # GroupNorm groups of every resnet, attention and the output norm (fixed by the design)

_LIST_KEYS = (
    "down_blocks_in_channels", "down_blocks_out_channels", "down_blocks_num_resnets",
    "down_blocks_num_attentions", "add_downsample", "prev_output_channels", "up_blocks_num_resnets",
    "up_blocks_num_attentions", "add_upsample",
)  # fmt: skip


# ----------------------------------------------------------------------------------------- configuration


def layout(num_resnets: int, num_attentions: int) -> list[str]:
    """The module order of a block: R and A alternating until one kind runs out ("mix_block_in_forward")."""
    order: list[str] = []
    for has_r, has_a in itertools.zip_longest([True] * num_resnets, [True] * num_attentions, fillvalue=False):
        order += ["R"] * has_r + ["A"] * has_a
    return order


def validate_configurations(configurations: Mapping[str, Any]) -> dict[str, Any]:
    """A checked copy of a "configurations" dict; RequestError naming what is missing or inconsistent."""
    if not isinstance(configurations, Mapping):
        raise RequestError("DeciDiffusion UNet: 'configurations' must be a JSON object")
    cfg = dict(configurations)
    missing = [k for k in DECI_V1_CONFIGURATIONS if k not in cfg]
    if missing:
        raise RequestError(f"DeciDiffusion UNet: 'configurations' lacks {', '.join(missing)}")
    if not cfg["mix_block_in_forward"]:
        raise RequestError(
            "DeciDiffusion UNet: mix_block_in_forward=false (resnets before attentions) is not supported"
        )
    lengths = {k: len(cfg[k]) if isinstance(cfg[k], list | tuple) else -1 for k in _LIST_KEYS}
    if set(lengths.values()) != {3}:
        raise RequestError(f"DeciDiffusion UNet: the per-block lists must all have 3 entries, got {lengths}")
    if str(cfg["resnet_act_fn"]) not in ("silu", "swish"):
        raise RequestError(f"DeciDiffusion UNet: unsupported resnet_act_fn {cfg['resnet_act_fn']!r}")
    d_in, d_out = cfg["down_blocks_in_channels"], cfg["down_blocks_out_channels"]
    if list(d_in[1:]) != list(d_out[:-1]):
        raise RequestError("DeciDiffusion UNet: down_blocks_in_channels must follow down_blocks_out_channels")
    expected_prev = [d_out[-1], *list(reversed(d_out))[:-1]]
    if list(cfg["prev_output_channels"]) != expected_prev:
        raise RequestError(f"DeciDiffusion UNet: prev_output_channels must be {expected_prev}")
    heads = int(cfg["num_attention_heads"])
    for channels in (*d_in, *d_out):
        if channels % NORM_GROUPS or channels % heads:
            raise RequestError(
                f"DeciDiffusion UNet: {channels} channels is not a multiple of "
                f"{NORM_GROUPS} norm groups and {heads} heads"
            )
    if any(n < 1 for n in (*cfg["down_blocks_num_resnets"], *cfg["up_blocks_num_resnets"])):
        raise RequestError("DeciDiffusion UNet: every down and up block needs at least one resnet")
    return cfg


def configurations_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The "configurations" dict from a flexible_unet config.json: nested (the published layout, next to the
    UNet2DConditionModel fields the original class also registered) or flat (just the fields)."""
    nested = config.get("configurations")
    if isinstance(nested, Mapping):
        return validate_configurations(nested)
    if "down_blocks_in_channels" in config:
        return validate_configurations({k: v for k, v in config.items() if not k.startswith("_")})
    raise RequestError("DeciDiffusion UNet: config.json has no 'configurations' (not a flexible_unet config)")


# ----------------------------------------------------------------------------------------------- blocks


def _resnet(cfg: dict, in_channels: int, out_channels: int) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=int(cfg["temb_dim"]),
        eps=float(cfg["resnet_eps"]),
        groups=NORM_GROUPS,
        non_linearity="silu",
    )


class SpatialTransformer(nn.Module):
    """GroupNorm(32, eps 1e-6) -> 1x1 conv -> one BasicTransformerBlock (self-attn, cross-attn, GEGLU) -> 1x1
    conv, plus the residual. Weight keys: norm, proj_in, transformer_blocks.0.*, proj_out."""

    def __init__(self, channels: int, num_heads: int, cross_attention_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(NORM_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(
                    channels,
                    num_heads,
                    channels // num_heads,
                    cross_attention_dim=cross_attention_dim,
                    activation_fn="geglu",
                )
            ]
        )
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, hidden_states, encoder_hidden_states, attention_mask=None, encoder_attention_mask=None,
                cross_attention_kwargs=None):  # fmt: skip
        batch, channels, height, width = hidden_states.shape
        residual = hidden_states
        hidden_states = self.proj_in(self.norm(hidden_states))
        hidden_states = hidden_states.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        for block in self.transformer_blocks:
            hidden_states = block(
                hidden_states,
                attention_mask=attention_mask,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                cross_attention_kwargs=cross_attention_kwargs,
            )
        hidden_states = hidden_states.reshape(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(hidden_states) + residual


def _run(module: nn.Module, hidden_states, temb, ctx: dict):
    if isinstance(module, ResnetBlock2D):
        return module(hidden_states, temb)
    return module(hidden_states, **ctx)


class DownBlock(nn.Module):
    def __init__(self, cfg: dict, index: int, last: bool):
        super().__init__()
        in_c, out_c = cfg["down_blocks_in_channels"][index], cfg["down_blocks_out_channels"][index]
        order = layout(cfg["down_blocks_num_resnets"][index], cfg["down_blocks_num_attentions"][index])
        modules: list[nn.Module] = []
        for kind in order:
            if kind == "R":
                modules.append(_resnet(cfg, in_c if not modules else out_c, out_c))
            else:
                modules.append(
                    SpatialTransformer(out_c, cfg["num_attention_heads"], cfg["cross_attention_dim"])
                )
        self.modules_list = nn.ModuleList(modules)
        self.downsamplers = None
        if cfg["add_downsample"][index]:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_c, use_conv=True, out_channels=out_c, padding=1, name="op")]
            )
        self.records_downsample_skip = not last  # the quirk: the last block's downsample is not a skip

    def forward(self, hidden_states, temb, ctx: dict, skips: list):
        for module in self.modules_list:
            hidden_states = _run(module, hidden_states, temb, ctx)
            if isinstance(module, ResnetBlock2D):
                skips.append(hidden_states)  # right after the resnet, before any attention
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            if self.records_downsample_skip:
                skips.append(hidden_states)
        return hidden_states


class MidBlock(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        channels = cfg["down_blocks_out_channels"][-1]
        # One resnet first, then attention/resnet pairs (A before R): [R, A,R, A,R, R, R] for 4 resnets and
        # 2 attentions.
        modules: list[nn.Module] = [_resnet(cfg, channels, channels)]
        pairs = itertools.zip_longest(
            [True] * cfg["mid_num_attentions"], [True] * cfg["mid_num_resnets"], fillvalue=False
        )
        for has_attention, has_resnet in pairs:
            if has_attention:
                modules.append(
                    SpatialTransformer(channels, cfg["num_attention_heads"], cfg["cross_attention_dim"])
                )
            if has_resnet:
                modules.append(_resnet(cfg, channels, channels))
        self.modules_list = nn.ModuleList(modules)
        upsampler = (
            Upsample2D(channels, use_conv=True, out_channels=channels)
            if cfg["add_upsample_mid_block"]
            else nn.Identity()
        )
        self.upsamplers = nn.ModuleList([upsampler])

    def forward(self, hidden_states, temb, ctx: dict):
        hidden_states = self.modules_list[0](hidden_states, temb)  # the quirk: the first resnet runs twice
        for module in self.modules_list:
            hidden_states = _run(module, hidden_states, temb, ctx)
        for upsampler in self.upsamplers:
            hidden_states = upsampler(hidden_states)
        return hidden_states


class UpBlock(nn.Module):
    def __init__(self, cfg: dict, index: int):
        super().__init__()
        level = len(cfg["down_blocks_in_channels"]) - 1 - index
        in_c, out_c = cfg["down_blocks_in_channels"][level], cfg["down_blocks_out_channels"][level]
        prev_c = cfg["prev_output_channels"][index]
        num_resnets = cfg["up_blocks_num_resnets"][index]
        modules: list[nn.Module] = []
        resnet_index = 0
        for kind in layout(num_resnets, cfg["up_blocks_num_attentions"][index]):
            if kind == "R":
                hidden_c = prev_c if resnet_index == 0 else out_c
                skip_c = in_c if resnet_index == num_resnets - 1 else out_c
                modules.append(_resnet(cfg, hidden_c + skip_c, out_c))
                resnet_index += 1
            else:
                modules.append(
                    SpatialTransformer(out_c, cfg["num_attention_heads"], cfg["cross_attention_dim"])
                )
        self.modules_list = nn.ModuleList(modules)
        self.num_resnets = num_resnets
        self.upsamplers = None
        if cfg["add_upsample"][index]:
            self.upsamplers = nn.ModuleList([Upsample2D(out_c, use_conv=True, out_channels=out_c)])

    def forward(self, hidden_states, temb, ctx: dict, skips: list):
        for module in self.modules_list:
            if isinstance(module, ResnetBlock2D):
                hidden_states = torch.cat([hidden_states, skips.pop()], dim=1)
            hidden_states = _run(module, hidden_states, temb, ctx)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states)
        return hidden_states


# ------------------------------------------------------------------------------------------------ model


class DeciUNet(ModelMixin, AttentionMixin, ConfigMixin, PeftAdapterMixin):
    """DeciDiffusion's UNet-NAS as a diffusers model: StableDiffusion(Img2Img)Pipeline accept it as `unet`."""

    config_name = CONFIG_NAME
    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(self, configurations: dict | None = None, in_channels: int = 4, out_channels: int = 4):
        super().__init__()
        cfg = validate_configurations(DECI_V1_CONFIGURATIONS if configurations is None else configurations)
        # What Stable Diffusion pipelines read from `unet.config`; this UNet has no extra conditioning.
        self.register_to_config(
            configurations=cfg,
            sample_size=int(cfg["sample_size"]),
            cross_attention_dim=int(cfg["cross_attention_dim"]),
            time_cond_proj_dim=None,
            addition_embed_type=None,
            class_embed_type=None,
            encoder_hid_dim_type=None,
        )
        stem = cfg["down_blocks_in_channels"][0]
        self.conv_in = nn.Conv2d(in_channels, stem, kernel_size=3, padding=1)
        self.time_proj = Timesteps(stem, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(stem, int(cfg["temb_dim"]), act_fn="silu")
        count = len(cfg["down_blocks_in_channels"])
        self.down_blocks = nn.ModuleList([DownBlock(cfg, i, last=i == count - 1) for i in range(count)])
        self.mid_block = MidBlock(cfg)
        self.up_blocks = nn.ModuleList([UpBlock(cfg, i) for i in range(count)])
        head = cfg["down_blocks_out_channels"][0]
        self.conv_norm_out = nn.GroupNorm(NORM_GROUPS, head, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(head, out_channels, kernel_size=3, padding=1)
        self.latent_multiple = 2 ** sum(bool(d) for d in cfg["add_downsample"])

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        down_block_additional_residuals: tuple | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        down_intrablock_additional_residuals: tuple | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ):
        unsupported = {
            "class_labels": class_labels,
            "timestep_cond": timestep_cond,
            "added_cond_kwargs": added_cond_kwargs or None,
            "down_block_additional_residuals": down_block_additional_residuals,
            "mid_block_additional_residual": mid_block_additional_residual,
            "down_intrablock_additional_residuals": down_intrablock_additional_residuals,
        }
        given = [name for name, value in unsupported.items() if value is not None]
        if given:
            raise ValueError(f"DeciDiffusion's UNet does not take {', '.join(given)}")
        height, width = sample.shape[-2:]
        if height % self.latent_multiple or width % self.latent_multiple:
            raise ValueError(
                f"DeciDiffusion's UNet needs latent sides that are multiples of {self.latent_multiple} "
                f"(image sides multiples of {8 * self.latent_multiple} px), got {height}x{width}"
            )
        if attention_mask is not None:  # 1 keep, 0 discard -> additive bias, as UNet2DConditionModel does
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)
        if encoder_attention_mask is not None:
            encoder_attention_mask = ((1 - encoder_attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)

        temb = self.time_embedding(self._time_features(timestep, sample))
        ctx = {
            "encoder_hidden_states": encoder_hidden_states,
            "attention_mask": attention_mask,
            "encoder_attention_mask": encoder_attention_mask,
            "cross_attention_kwargs": cross_attention_kwargs,
        }
        hidden_states = self.conv_in(sample)
        skips = [hidden_states]
        for block in self.down_blocks:
            hidden_states = block(hidden_states, temb, ctx, skips)
        hidden_states = self.mid_block(hidden_states, temb, ctx)
        for block in self.up_blocks:
            hidden_states = block(hidden_states, temb, ctx, skips)
        if skips:  # cannot happen with a validated configuration
            raise RuntimeError(f"DeciDiffusion UNet: {len(skips)} skip connections left unused")
        hidden_states = self.conv_out(self.conv_act(self.conv_norm_out(hidden_states)))
        if not return_dict:
            return (hidden_states,)
        return UNet2DConditionOutput(sample=hidden_states)

    def _time_features(self, timestep, sample: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(timestep):
            is_float = isinstance(timestep, float)
            if sample.device.type in ("mps", "npu"):
                dtype = torch.float32 if is_float else torch.int32
            else:
                dtype = torch.float64 if is_float else torch.int64
            timestep = torch.tensor([timestep], dtype=dtype, device=sample.device)
        elif timestep.ndim == 0:
            timestep = timestep[None].to(sample.device)
        timestep = timestep.expand(sample.shape[0])
        # The projection is float32; cast to the model's dtype as UNet2DConditionModel does.
        return self.time_proj(timestep).to(dtype=sample.dtype)

    def skip_count(self) -> int:
        """How many skip states one forward records (and consumes): conv_in, each down resnet, each
        downsampler except the last block's."""
        count = 1
        for block in self.down_blocks:
            count += sum(isinstance(m, ResnetBlock2D) for m in block.modules_list)
            count += int(block.downsamplers is not None and block.records_downsample_skip)
        return count


def build_unet(
    configurations: Mapping[str, Any] | None = None, *, in_channels: int = 4, out_channels: int = 4
) -> DeciUNet:
    """A randomly initialised UNet-NAS for `configurations` (default: DeciDiffusion 1.0's)."""
    cfg = dict(DECI_V1_CONFIGURATIONS if configurations is None else configurations)
    return DeciUNet(configurations=cfg, in_channels=in_channels, out_channels=out_channels)


def block_layouts(unet: DeciUNet) -> dict[str, str]:
    """Each block's modules_list as a string of R/A plus its resampler, e.g. {"down1": "RAR+down", ...}."""

    def kinds(block) -> str:
        return "".join("R" if isinstance(m, ResnetBlock2D) else "A" for m in block.modules_list)

    out = {}
    for i, block in enumerate(unet.down_blocks):
        out[f"down{i}"] = kinds(block) + ("+down" if block.downsamplers is not None else "")
    mid = unet.mid_block
    out["mid"] = kinds(mid) + ("+up" if isinstance(mid.upsamplers[0], Upsample2D) else "")
    for i, block in enumerate(unet.up_blocks):
        out[f"up{i}"] = kinds(block) + ("+up" if block.upsamplers is not None else "")
    return out


# ----------------------------------------------------------------------------------------- save / load


def save_flexible_unet(unet: DeciUNet, folder: str | Path, *, fp16: bool = True) -> Path:
    """Write `folder/config.json` (with "configurations") and the weights, fp16 as the published repo has
    them."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "_class_name": type(unet).__name__,
        "_studio_note": "DeciDiffusion UNet-NAS (flexible_unet) written by Latent Studio",
        "configurations": dict(unet.config.configurations),
        "in_channels": unet.config.in_channels,
        "out_channels": unet.config.out_channels,
        "sample_size": unet.config.sample_size,
        "cross_attention_dim": unet.config.cross_attention_dim,
    }
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    dtype = torch.float16 if fp16 else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    name = WEIGHTS_NAME_FP16 if fp16 else WEIGHTS_NAME
    save_file(tensors, str(folder / name), metadata={"format": "pt"})
    return folder / name


def _weight_files(folder: Path, dtype) -> list[Path]:
    """The safetensors file(s) to read: the full-precision file for fp32/bf16 when present, else the fp16
    one (and the reverse for fp16); sharded files through their index."""
    full, half = folder / WEIGHTS_NAME, folder / WEIGHTS_NAME_FP16
    order = [half, full] if dtype == torch.float16 else [full, half]
    for path in order:
        if path.is_file():
            return [path]
    for path in order:
        index = path.with_name(path.name + ".index.json")
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise RequestError(f"{index}: unreadable shard index ({exc})") from None
            return [folder / name for name in sorted(set(weight_map.values()))]
    pickles = sorted(p.name for p in folder.glob("*.bin"))
    if pickles:
        raise RequestError(
            f"{folder}: the UNet weights are only in pickle files ({', '.join(pickles)}), which can run code "
            f"when loaded; convert them to {WEIGHTS_NAME}"
        )
    raise RequestError(f"{folder}: no UNet weights ({WEIGHTS_NAME_FP16} or {WEIGHTS_NAME})")


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_flexible_unet(folder: str | Path, dtype=None) -> DeciUNet:
    """The UNet-NAS from a `flexible_unet/` folder (config.json + safetensors), loaded strictly in `dtype`."""
    from safetensors import safe_open

    folder = Path(folder)
    dtype = dtype or torch.float32
    config_path = folder / CONFIG_NAME
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RequestError(f"{folder}: no {CONFIG_NAME} (not a DeciDiffusion flexible_unet folder)") from None
    except (OSError, ValueError) as exc:
        raise RequestError(f"{config_path}: unreadable config ({exc})") from None
    if not isinstance(config, dict):
        raise RequestError(f"{config_path}: not a JSON object")
    configurations = configurations_from_config(config)
    in_channels, out_channels = int(config.get("in_channels", 4)), int(config.get("out_channels", 4))
    files = _weight_files(folder, dtype)

    with torch.device("meta"):  # no memory, no random init: every tensor comes from the file
        unet = build_unet(configurations, in_channels=in_channels, out_channels=out_channels)
    expected = unet.state_dict()
    state: dict[str, torch.Tensor] = {}
    try:
        for path in files:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    tensor = f.get_tensor(key)
                    state[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    except FileNotFoundError as exc:
        raise RequestError(f"{folder}: missing weight file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error classes
        raise RequestError(
            f"{folder}: unreadable UNet weights ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        raise RequestError(f"{folder}: the UNet weights do not match its configurations ({'; '.join(parts)})")
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise RequestError(
            f"{folder}: UNet weight shapes do not match its configurations: {_describe(wrong, 4)}"
        )
    unet.load_state_dict(state, strict=True, assign=True)
    return unet.eval()
