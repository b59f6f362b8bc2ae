"""DeciDiffusion's native UNet-NAS: structure and parameter count of the real configuration (on the meta
device: no memory), strict loading of the flexible_unet layout, the forward quirks, and the tiny family
through the CLI and the Engine."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from studio.engine import GenerationRequest, RequestError
from studio.engine.deci_unet import (
    DECI_V1_CONFIGURATIONS,
    WEIGHTS_NAME,
    WEIGHTS_NAME_FP16,
    block_layouts,
    build_unet,
    load_flexible_unet,
    save_flexible_unet,
)
from studio.engine.schedulers import SCHEDULERS
from studio.engine.tiny import TINY_DECI_CONFIGURATIONS

# design.md section 4, written out independently of the implementation.
LAYOUTS = {
    "down0": "RR+down",
    "down1": "RAR+down",
    "down2": "RAAA+down",
    "mid": "RARARRR+up",
    "up0": "RARAAAAA+up",
    "up1": "RARARA+up",
    "up2": "RRR",
}
BLOCK_PREFIX = {
    "down0": "down_blocks.0", "down1": "down_blocks.1", "down2": "down_blocks.2", "mid": "mid_block",
    "up0": "up_blocks.0", "up1": "up_blocks.1", "up2": "up_blocks.2",
}  # fmt: skip
RESNET_PARTS = ("norm1", "conv1", "time_emb_proj", "norm2", "conv2")
ATTENTION_PARTS = (
    "norm", "proj_in", "proj_out",
    "transformer_blocks.0.norm1", "transformer_blocks.0.norm2", "transformer_blocks.0.norm3",
    "transformer_blocks.0.attn1.to_out.0", "transformer_blocks.0.attn2.to_out.0",
    "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.ff.net.2",
)  # fmt: skip
ATTENTION_NO_BIAS = tuple(f"transformer_blocks.0.{a}.to_{p}" for a in ("attn1", "attn2") for p in "qkv")
# Resnets whose input width differs from their output width, hence a 1x1 conv_shortcut: the first resnet
# of down1 (320->640) and down2 (640->1280), and every up resnet (hidden + skip channels in).
SHORTCUTS = {
    ("down1", 0), ("down2", 0),
    ("up0", 0), ("up0", 2), ("up1", 0), ("up1", 2), ("up1", 4), ("up2", 0), ("up2", 1), ("up2", 2),
}  # fmt: skip


def expected_keys() -> set[str]:
    keys = {f"{m}.{p}" for m in ("conv_in", "conv_norm_out", "conv_out") for p in ("weight", "bias")}
    keys |= {f"time_embedding.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    for block, text in LAYOUTS.items():
        prefix = BLOCK_PREFIX[block]
        kinds, _, resample = text.partition("+")
        for j, kind in enumerate(kinds):
            base = f"{prefix}.modules_list.{j}"
            parts = (
                RESNET_PARTS + (("conv_shortcut",) if (block, j) in SHORTCUTS else ())
                if kind == "R"
                else ATTENTION_PARTS
            )
            keys |= {f"{base}.{part}.{p}" for part in parts for p in ("weight", "bias")}
            if kind == "A":
                keys |= {f"{base}.{part}.weight" for part in ATTENTION_NO_BIAS}
        if resample:
            sampler = "downsamplers" if resample == "down" else "upsamplers"
            keys |= {f"{prefix}.{sampler}.0.conv.{p}" for p in ("weight", "bias")}
    return keys


@pytest.fixture(scope="module")
def real_meta_unet():
    with torch.device("meta"):
        return build_unet(DECI_V1_CONFIGURATIONS)


@pytest.fixture()
def tiny_unet():
    torch.manual_seed(0)
    return build_unet(TINY_DECI_CONFIGURATIONS).eval()


@pytest.fixture(scope="module")
def tiny_deci(tmp_path_factory):
    from studio.cli import main

    directory = tmp_path_factory.mktemp("models") / "tiny-deci"
    assert main(["make-tiny-model", str(directory), "--family", "deci", "--seed", "0"]) == 0
    return directory


def latents(height: int, width: int, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, height // 8, width // 8, generator=g)
    context = torch.randn(batch, 77, TINY_DECI_CONFIGURATIONS["cross_attention_dim"], generator=g)
    return sample, context


# ------------------------------------------------------------------------------------------- structure


def test_real_configuration_is_the_published_one():
    assert DECI_V1_CONFIGURATIONS == {
        "sample_size": 64, "temb_dim": 1280, "resnet_eps": 1e-5, "resnet_act_fn": "silu",
        "num_attention_heads": 8, "cross_attention_dim": 768, "mix_block_in_forward": True,
        "down_blocks_in_channels": [320, 320, 640], "down_blocks_out_channels": [320, 640, 1280],
        "down_blocks_num_resnets": [2, 2, 1], "down_blocks_num_attentions": [0, 1, 3],
        "add_downsample": [True, True, True], "add_upsample_mid_block": True,
        "mid_num_resnets": 4, "mid_num_attentions": 2, "prev_output_channels": [1280, 1280, 640],
        "up_blocks_num_resnets": [2, 3, 3], "up_blocks_num_attentions": [6, 3, 0],
        "add_upsample": [True, True, False],
    }  # fmt: skip


def test_parameter_count_of_the_real_configuration(real_meta_unet):
    params = list(real_meta_unet.parameters())
    assert all(p.is_meta for p in params)
    assert sum(p.numel() for p in params) == 814_746_884


def test_block_layouts_follow_the_design(real_meta_unet):
    assert block_layouts(real_meta_unet) == LAYOUTS
    assert block_layouts(build_unet(TINY_DECI_CONFIGURATIONS)) == LAYOUTS  # the tiny model keeps every count


def test_state_dict_keys_are_exactly_the_published_ones(real_meta_unet):
    keys = set(real_meta_unet.state_dict())
    assert keys == expected_keys()
    families = {re.sub(r"\.\d+\.", ".N.", k).split(".")[0] for k in keys}
    assert families == {
        "conv_in",
        "time_embedding",
        "down_blocks",
        "mid_block",
        "up_blocks",
        "conv_norm_out",
        "conv_out",
    }


def test_weight_shapes_follow_the_channel_plan(real_meta_unet):
    shapes = {k: tuple(v.shape) for k, v in real_meta_unet.state_dict().items()}
    assert shapes["conv_in.weight"] == (320, 4, 3, 3)
    assert shapes["time_embedding.linear_1.weight"] == (1280, 320)
    assert shapes["time_embedding.linear_2.weight"] == (1280, 1280)
    assert shapes["down_blocks.2.modules_list.0.conv1.weight"] == (1280, 640, 3, 3)
    assert shapes["down_blocks.2.modules_list.3.transformer_blocks.0.attn2.to_k.weight"] == (1280, 768)
    assert shapes["down_blocks.1.modules_list.1.transformer_blocks.0.ff.net.0.proj.weight"] == (
        2 * 4 * 640,
        640,
    )
    assert shapes["mid_block.modules_list.0.conv1.weight"] == (1280, 1280, 3, 3)
    assert shapes["mid_block.upsamplers.0.conv.weight"] == (1280, 1280, 3, 3)
    # Up resnets take hidden + skip channels: the last one of a block the skip of the level below.
    assert shapes["up_blocks.0.modules_list.0.conv1.weight"] == (1280, 2560, 3, 3)
    assert shapes["up_blocks.0.modules_list.2.conv1.weight"] == (1280, 1920, 3, 3)
    assert shapes["up_blocks.1.modules_list.0.conv1.weight"] == (640, 1920, 3, 3)
    assert shapes["up_blocks.1.modules_list.4.conv1.weight"] == (640, 960, 3, 3)
    assert shapes["up_blocks.2.modules_list.0.conv1.weight"] == (320, 960, 3, 3)
    assert shapes["up_blocks.2.modules_list.2.conv1.weight"] == (320, 640, 3, 3)
    assert shapes["conv_norm_out.weight"] == (320,) and shapes["conv_out.weight"] == (4, 320, 3, 3)


def test_real_configuration_forward_shape_on_meta(real_meta_unet):
    with torch.device("meta"):
        sample, context = torch.empty(2, 4, 64, 96), torch.empty(2, 77, 768)
        out = real_meta_unet(sample, torch.tensor(999), encoder_hidden_states=context, return_dict=False)[0]
    assert out.shape == (2, 4, 64, 96)


def test_config_attributes_the_sd_pipelines_read(real_meta_unet):
    config = real_meta_unet.config
    assert config.in_channels == 4 and config.out_channels == 4 and config.sample_size == 64
    assert config.cross_attention_dim == 768
    assert config.time_cond_proj_dim is None and config.addition_embed_type is None
    assert dict(config.configurations) == DECI_V1_CONFIGURATIONS


# ----------------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 128)])
def test_output_shape(tiny_unet, height, width):
    sample, context = latents(height, width)
    with torch.inference_mode():
        out = tiny_unet(sample, torch.tensor(500), encoder_hidden_states=context).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()


def test_latent_sides_must_be_multiples_of_8(tiny_unet):
    sample, context = latents(64, 96)
    with pytest.raises(ValueError, match="multiples of 64 px"):
        tiny_unet(sample, 500, encoder_hidden_states=context)


def test_quirks_mid_resnet_twice_and_skips_last_in_first_out(tiny_unet):
    """Record every skip candidate with hooks and check what each up resnet concatenates."""
    from diffusers.models.resnet import ResnetBlock2D

    calls: dict[str, int] = {}
    recorded: list[torch.Tensor] = []  # what the design says is pushed, in order
    consumed: list[torch.Tensor] = []  # what up resnets receive (hidden + skip, concatenated)
    downsampled: list[torch.Tensor] = []
    mid_input: list[torch.Tensor] = []
    hooks = []

    def count(name):
        return lambda module, args, output: calls.__setitem__(name, calls.get(name, 0) + 1)

    def on_downsample(module, args, output):
        recorded.append(output)
        downsampled.append(output)

    for name, module in tiny_unet.named_modules():
        if isinstance(module, ResnetBlock2D):
            hooks.append(module.register_forward_hook(count(name)))
    hooks.append(tiny_unet.conv_in.register_forward_hook(lambda m, a, out: recorded.append(out)))
    for block in tiny_unet.down_blocks:
        for module in block.modules_list:
            if isinstance(module, ResnetBlock2D):
                hooks.append(module.register_forward_hook(lambda m, a, out: recorded.append(out)))
        hooks.append(block.downsamplers[0].register_forward_hook(on_downsample))
    hooks.append(tiny_unet.mid_block.register_forward_pre_hook(lambda m, args: mid_input.append(args[0])))
    for block in tiny_unet.up_blocks:
        for module in block.modules_list:
            if isinstance(module, ResnetBlock2D):
                hooks.append(module.register_forward_pre_hook(lambda m, args: consumed.append(args[0])))

    sample, context = latents(64, 128)
    with torch.inference_mode():
        tiny_unet(sample, torch.tensor(321), encoder_hidden_states=context)
    for hook in hooks:
        hook.remove()

    mid_first = "mid_block.modules_list.0"
    assert calls[mid_first] == 2
    assert all(n == 1 for name, n in calls.items() if name != mid_first)
    # The last block's downsample output goes into the mid block and is no skip.
    last_down = downsampled[-1]
    assert torch.equal(mid_input[0], last_down)
    skips = [t for t in recorded if t is not last_down]
    assert len(recorded) == 9 and len(skips) == 8 == tiny_unet.skip_count()
    assert len(consumed) == len(skips)  # every recorded skip consumed, once
    for concatenated, skip in zip(consumed, reversed(skips), strict=True):
        assert concatenated.shape[2:] == skip.shape[2:]
        assert torch.equal(concatenated[:, -skip.shape[1] :], skip)  # last in, first out


def test_attention_processors_sdpa_and_classic_agree(tiny_unet):
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = tiny_unet.attn_processors
    assert len(processors) == 2 * 15  # 15 transformers (1+3 down, 2 mid, 6+3 up), self + cross attention each
    assert {type(p) for p in processors.values()} == {AttnProcessor2_0}
    sample, context = latents(64, 64)
    with torch.inference_mode():
        sdpa = tiny_unet(sample, 500, encoder_hidden_states=context).sample
        tiny_unet.set_attn_processor(AttnProcessor())
        classic = tiny_unet(sample, 500, encoder_hidden_states=context).sample
    torch.testing.assert_close(sdpa, classic, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 0.01), (torch.bfloat16, 0.05)])
def test_half_precision_forward(tiny_unet, dtype, tolerance):
    # 128 px: the bottom of the UNet is 2x2 (at 64 px a 1x1 map in 2-channel norm groups is ill-conditioned).
    sample, context = latents(128, 128)
    with torch.inference_mode():
        reference = tiny_unet(sample, 500, encoder_hidden_states=context).sample
        tiny_unet.to(dtype)
        assert tiny_unet.dtype == dtype
        out = tiny_unet(sample.to(dtype), 500, encoder_hidden_states=context.to(dtype)).sample
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - reference).norm() < tolerance * reference.norm()


# ------------------------------------------------------------------------------------------- save / load


def test_strict_round_trip_fp16_file(tiny_unet, tmp_path):
    path = save_flexible_unet(tiny_unet, tmp_path / "flexible_unet")
    assert path.name == WEIGHTS_NAME_FP16
    saved = load_file(path)
    assert {t.dtype for t in saved.values()} == {torch.float16}
    as_fp16 = load_flexible_unet(tmp_path / "flexible_unet", dtype=torch.float16)
    as_fp32 = load_flexible_unet(tmp_path / "flexible_unet", dtype=torch.float32)
    assert as_fp16.dtype == torch.float16 and as_fp32.dtype == torch.float32
    for key, tensor in saved.items():
        assert torch.equal(as_fp16.state_dict()[key], tensor)
        assert torch.equal(as_fp32.state_dict()[key], tensor.float())
    assert dict(as_fp32.config.configurations) == TINY_DECI_CONFIGURATIONS


def test_full_precision_file_is_accepted_and_exact(tiny_unet, tmp_path):
    path = save_flexible_unet(tiny_unet, tmp_path, fp16=False)
    assert path.name == WEIGHTS_NAME
    loaded = load_flexible_unet(tmp_path, dtype=torch.float32)
    for key, tensor in tiny_unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor)
    sample, context = latents(64, 64)
    with torch.inference_mode():
        a = tiny_unet(sample, 10, encoder_hidden_states=context).sample
        b = loaded(sample, 10, encoder_hidden_states=context).sample
    assert torch.equal(a, b)


def test_published_config_layout_and_flat_layout(tiny_unet, tmp_path):
    """The published config.json nests "configurations" beside the fields its UNet2DConditionModel base
    registered; a flat file of just the fields is accepted too."""
    folder = tmp_path / "flexible_unet"
    save_flexible_unet(tiny_unet, folder)
    published = {
        "_class_name": "FlexibleUNet2DConditionModel",
        "_diffusers_version": "0.21.4",
        "act_fn": "silu",
        "block_out_channels": [320, 640, 1280, 1280],
        "cross_attention_dim": 32,
        "in_channels": 4,
        "out_channels": 4,
        "sample_size": 8,
        "configurations": TINY_DECI_CONFIGURATIONS,
    }
    (folder / "config.json").write_text(json.dumps(published))
    assert load_flexible_unet(folder, torch.float32).config.sample_size == 8
    (folder / "config.json").write_text(json.dumps(TINY_DECI_CONFIGURATIONS))
    assert dict(load_flexible_unet(folder, torch.float32).config.configurations) == TINY_DECI_CONFIGURATIONS


def _rewrite_weights(folder, change):
    path = folder / WEIGHTS_NAME_FP16
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, str(path))


def test_missing_key_is_a_clear_error(tiny_unet, tmp_path):
    save_flexible_unet(tiny_unet, tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.pop("mid_block.upsamplers.0.conv.weight"))
    with pytest.raises(RequestError, match=r"missing keys: mid_block\.upsamplers\.0\.conv\.weight"):
        load_flexible_unet(tmp_path, torch.float32)


def test_unexpected_key_is_a_clear_error(tiny_unet, tmp_path):
    save_flexible_unet(tiny_unet, tmp_path)
    _rewrite_weights(
        tmp_path, lambda t: t.__setitem__("down_blocks.2.downsamplers.1.conv.weight", torch.zeros(1))
    )
    with pytest.raises(RequestError, match=r"unexpected keys: down_blocks\.2\.downsamplers\.1\.conv\.weight"):
        load_flexible_unet(tmp_path, torch.float32)


def test_wrong_configuration_for_the_weights_is_a_clear_error(tiny_unet, tmp_path):
    save_flexible_unet(tiny_unet, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["configurations"]["mid_num_resnets"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RequestError, match=r"unexpected keys: mid_block\.modules_list\.6\."):
        load_flexible_unet(tmp_path, torch.float32)
    config["configurations"]["mid_num_resnets"] = 4
    config["configurations"]["temb_dim"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RequestError, match="shapes do not match"):
        load_flexible_unet(tmp_path, torch.float32)


def test_missing_files_and_bad_configs_are_clear_errors(tiny_unet, tmp_path):
    with pytest.raises(RequestError, match="no config.json"):
        load_flexible_unet(tmp_path, torch.float32)
    save_flexible_unet(tiny_unet, tmp_path)
    (tmp_path / WEIGHTS_NAME_FP16).rename(tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(RequestError, match="pickle"):
        load_flexible_unet(tmp_path, torch.float32)
    (tmp_path / "diffusion_pytorch_model.bin").unlink()
    with pytest.raises(RequestError, match="no UNet weights"):
        load_flexible_unet(tmp_path, torch.float32)
    (tmp_path / "config.json").write_text(
        json.dumps({"_class_name": "UNet2DConditionModel", "in_channels": 4})
    )
    with pytest.raises(RequestError, match="no 'configurations'"):
        load_flexible_unet(tmp_path, torch.float32)
    bad = {**TINY_DECI_CONFIGURATIONS}
    del bad["temb_dim"]
    (tmp_path / "config.json").write_text(json.dumps({"configurations": bad}))
    with pytest.raises(RequestError, match="lacks temb_dim"):
        load_flexible_unet(tmp_path, torch.float32)


# ---------------------------------------------------------------------------------- tiny family, engine


def req(model, **kw) -> GenerationRequest:
    base = {
        "prompt": "a lighthouse at dusk",
        "steps": 3,
        "seed": 7,
        "width": 64,
        "height": 64,
        "scheduler": None,
    }
    return GenerationRequest(model=str(model), **{**base, **kw})


def test_make_tiny_model_writes_the_flexible_unet_layout(tiny_deci):
    assert (tiny_deci / "flexible_unet" / "config.json").is_file()
    assert (tiny_deci / "flexible_unet" / WEIGHTS_NAME_FP16).is_file()
    assert not (tiny_deci / "unet").exists() and not (tiny_deci / "safety_checker").exists()
    for sub in ("vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_deci / sub).is_dir()
    config = json.loads((tiny_deci / "flexible_unet" / "config.json").read_text())
    assert config["configurations"] == TINY_DECI_CONFIGURATIONS
    scheduler = json.loads((tiny_deci / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDIMScheduler" and scheduler["prediction_type"] == "v_prediction"
    assert scheduler["rescale_betas_zero_snr"] is True and scheduler["timestep_spacing"] == "trailing"
    from studio.engine.loading import detect_folder_family

    assert detect_folder_family(tiny_deci) == "deci"


def test_same_seed_same_tiny_deci_model(tiny_deci, tmp_path):
    from studio.engine.tiny import make_tiny_model

    again = make_tiny_model(tmp_path / "again", "deci", seed=0)
    for name in ("flexible_unet/" + WEIGHTS_NAME_FP16, "vae/diffusion_pytorch_model.safetensors"):
        assert (again / name).read_bytes() == (tiny_deci / name).read_bytes()


def test_txt2img_with_the_deci_defaults(engine, tiny_deci):
    events = []
    results = engine.generate(req(tiny_deci, width=64, height=64), on_step=events.append)
    assert [r.image.size for r in results] == [(64, 64)]
    assert [e.step for e in events] == [1, 2, 3] and events[0].preview.size == (8, 8)
    meta = results[0].metadata
    assert meta["model"]["family"] == "deci" and results[0].nsfw is None
    assert meta["request"]["scheduler"] == "DDIM" and meta["request"]["guidance_rescale"] == 0.7
    loaded = engine.load(str(tiny_deci))
    assert type(loaded.txt2img.unet).__name__ == "DeciUNet" and loaded.safety_checker is None
    assert np.asarray(results[0].image).std() > 0


def test_wide_image_and_same_seed_same_pixels(engine, tiny_deci):
    a = engine.generate(req(tiny_deci, width=128, height=64, seed=3))[0].image
    b = engine.generate(req(tiny_deci, width=128, height=64, seed=3))[0].image
    assert a.size == (128, 64)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_img2img(engine, tiny_deci):
    init = Image.new("RGB", (80, 60), (220, 40, 40))
    events = []
    results = engine.generate(req(tiny_deci, steps=6, init_image=init, strength=0.5), on_step=events.append)
    assert results[0].image.size == (64, 64)
    assert len(events) == 3  # int(6 * 0.5) DDIM steps
    model = engine.load(str(tiny_deci))
    assert model.img2img.unet is model.txt2img.unet


@pytest.mark.parametrize("name", [n for n in SCHEDULERS if n != "PNDM"])
def test_every_zero_snr_scheduler_keeps_the_deci_schedule(engine, tiny_deci, name):
    result = engine.generate(req(tiny_deci, scheduler=name, steps=2))[0]
    config = result.metadata["scheduler_config"]
    assert config["prediction_type"] == "v_prediction"
    assert config["rescale_betas_zero_snr"] is True
    assert config["timestep_spacing"] == "trailing"
    assert result.image.size == (64, 64)


def test_pndm_is_refused_for_zero_snr(engine, tiny_deci):
    with pytest.raises(RequestError, match="zero-terminal-SNR"):
        engine.generate(req(tiny_deci, scheduler="PNDM"))


@pytest.mark.parametrize(("width", "height"), [(96, 64), (64, 96)])
def test_sides_not_multiples_of_64_are_refused(engine, tiny_deci, width, height):
    with pytest.raises(RequestError, match="multiple of 64"):
        engine.generate(req(tiny_deci, width=width, height=height))


def test_broken_flexible_unet_is_a_request_error(engine, tiny_deci, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_deci, broken)
    _rewrite_weights(broken / "flexible_unet", lambda t: t.pop("conv_in.weight"))
    with pytest.raises(RequestError, match=r"missing keys: conv_in\.weight"):
        engine.generate(req(broken))


def _modules_after(statement: str) -> set[str]:
    import subprocess
    import sys

    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_loading_module_stays_light():
    loaded = _modules_after("import studio.engine.loading")
    assert "torch" not in loaded and "studio.engine.deci_unet" not in loaded
    assert "PySide6" not in _modules_after("import studio.engine.deci_unet")
