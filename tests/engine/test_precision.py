"""Mixed precision: bf16 UNet beside an fp32 VAE on the CPU, and fp16 attention upcast for SD 2.1."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from studio.engine import Engine, GenerationRequest
from studio.engine.loading import load_folder
from studio.engine.precision import (
    AUTO_CPU_DTYPE_ENV,
    BF16_MEASURED_PSNR_DB,
    BF16_MIN_PSNR_DB,
    Placement,
    UpcastAttnProcessor,
    auto_cpu_dtype,
    choose_placement,
    cpu_has_native_bf16,
    honour_attention_upcast,
    vae_dtype_name,
)
from studio.engine.single_file import load_single_file
from studio.engine.tiny import build_tiny_pipeline
from tests.engine.ldm_export import pipeline_to_ldm, save_safetensors, write_config_dir


def _upcast_attentions(unet) -> list[Attention]:
    return [m for m in unet.modules() if isinstance(m, Attention) and m.upcast_attention]


def _processors(unet) -> set[type]:
    return {type(m.processor) for m in unet.modules() if isinstance(m, Attention)}


# ------------------------------------------------------------------------------------- fp16 attention


def test_fp16_sd2_gets_the_upcast_processor_on_every_upcast_attention(tiny_sd2, tiny_sd1):
    sd2 = load_folder(tiny_sd2, "sd2", Placement("cpu", "float16"))
    wanting = _upcast_attentions(sd2.unet)
    assert wanting, "the tiny sd2 UNet asks for upcast_attention like SD 2.1 768-v"
    assert all(isinstance(m.processor, UpcastAttnProcessor) for m in wanting)
    # SD 1.x asks for no upcast and keeps diffusers' own processor; so does sd2 outside fp16.
    sd1 = load_folder(tiny_sd1, "sd1", Placement("cpu", "float16"))
    assert not _upcast_attentions(sd1.unet) and _processors(sd1.unet) == {AttnProcessor2_0}
    sd2_fp32 = load_folder(tiny_sd2, "sd2", Placement("cpu", "float32"))
    assert _processors(sd2_fp32.unet) == {AttnProcessor2_0}


def _record_sdpa_dtypes(monkeypatch) -> list[torch.dtype]:
    """A spy on torch's SDPA (the real kernel still runs): the dtype each attention was computed in."""
    seen: list[torch.dtype] = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(query, *args, **kwargs):
        seen.append(query.dtype)
        return real(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return seen


def _unet_inputs(unet, dtype):
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, 8, 8, generator=g).to(dtype)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g).to(dtype)
    return sample, torch.tensor(500), context


def test_upcast_attention_runs_in_fp32_where_diffusers_default_does_not(tiny_sd2, monkeypatch):
    pipe = load_folder(tiny_sd2, "sd2", Placement("cpu", "float16"))
    inputs = _unet_inputs(pipe.unet, torch.float16)
    seen = _record_sdpa_dtypes(monkeypatch)
    with torch.inference_mode():
        ours = pipe.unet(*inputs).sample
    assert len(seen) == len(_upcast_attentions(pipe.unet))  # each self- and cross-attention, once
    assert set(seen) == {torch.float32}
    assert ours.dtype == torch.float16 and torch.isfinite(ours).all()

    seen.clear()
    pipe.unet.set_attn_processor(AttnProcessor2_0())  # diffusers' default ignores upcast_attention
    with torch.inference_mode():
        pipe.unet(*inputs)
    assert set(seen) == {torch.float16}


def _overflowing_attention() -> Attention:
    """One attention whose scores reach ~4e6, far past fp16's largest value (65,504)."""
    torch.manual_seed(0)
    attn = Attention(query_dim=64, heads=1, dim_head=64, upcast_attention=True)
    with torch.no_grad():
        attn.to_q.weight.mul_(60)
        attn.to_k.weight.mul_(60)
    return attn


def test_upcast_processor_keeps_overflowing_scores_finite_and_accurate():
    attn = _overflowing_attention()
    x = torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(1)) * 30
    with torch.no_grad():
        reference = attn(x)
        q, k = attn.to_q(x).half(), attn.to_k(x).half()
        fp16_scores = (q @ k.transpose(1, 2)) / 8  # what an fp16 kernel without upcast materialises
        assert not torch.isfinite(fp16_scores).all()

        half = copy.deepcopy(attn).half()
        half.set_processor(UpcastAttnProcessor())
        ours = half(x.half()).float()
    assert torch.isfinite(ours).all()
    assert (ours - reference).abs().max() < 0.01 * reference.abs().max()


def test_upcast_processor_is_diffusers_sdpa_outside_fp16(tiny_sd2):
    pipe = load_folder(tiny_sd2, "sd2", Placement("cpu", "float32"))
    inputs = _unet_inputs(pipe.unet, torch.float32)
    with torch.inference_mode():
        default = pipe.unet(*inputs).sample
        assert honour_attention_upcast(pipe.unet) == len(_upcast_attentions(pipe.unet))
        ours = pipe.unet(*inputs).sample
    assert torch.equal(ours, default)


def test_upcast_processor_handles_masks_and_image_shaped_input():
    attn = Attention(query_dim=32, heads=2, dim_head=16, upcast_attention=True, residual_connection=True)
    x = torch.randn(1, 32, 4, 4)
    mask = torch.zeros(1, 1, 16)
    mask[..., :4] = -10000.0
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        expected = attn(x, attention_mask=mask)
        attn.set_processor(UpcastAttnProcessor())
        got = attn(x, attention_mask=mask)
        half = attn.half()
        got_half = half(x.half(), attention_mask=mask.half())
    assert torch.allclose(got, expected, atol=1e-6)
    assert got_half.shape == x.shape and torch.isfinite(got_half).all()


# ------------------------------------------------------------------------------------------ CPU bf16


def test_auto_on_the_cpu_is_bf16_only_where_it_is_native(monkeypatch):
    monkeypatch.delenv(AUTO_CPU_DTYPE_ENV, raising=False)
    assert BF16_MEASURED_PSNR_DB >= BF16_MIN_PSNR_DB  # the measured figure passes the rule...
    assert auto_cpu_dtype(native_bf16=True) == "bfloat16"
    assert auto_cpu_dtype(native_bf16=False) == "float32"  # ...but emulated bf16 is many times slower
    expected = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert choose_placement("cpu", "auto").dtype_name == expected
    monkeypatch.setenv(AUTO_CPU_DTYPE_ENV, "float32")
    assert auto_cpu_dtype(native_bf16=True) == "float32"
    assert choose_placement("cpu", "auto").dtype_name == "float32"


def test_bf16_on_cpu_keeps_the_vae_in_fp32():
    assert vae_dtype_name("cpu", "bfloat16") == "float32"
    assert vae_dtype_name("cuda", "bfloat16") == "bfloat16"
    assert vae_dtype_name("cuda", "float16") == "float16"
    assert choose_placement("cpu", "bf16").vae_dtype == torch.float32


@pytest.fixture(scope="module")
def bf16_engine():
    return Engine(device="cpu", dtype="bfloat16", preview="linear")


def test_bf16_txt2img_and_img2img_with_an_fp32_vae(bf16_engine, engine, tiny_sd1):
    request = GenerationRequest(
        prompt="a red boat", model=str(tiny_sd1), steps=3, width=64, height=64, seed=5, scheduler="DDIM"
    )
    steps = []
    (result,) = bf16_engine.generate(request, on_step=steps.append)
    pipe = bf16_engine.load(str(tiny_sd1)).txt2img
    assert pipe.unet.dtype == pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32
    assert len(steps) == 3 and all(s.preview is not None for s in steps)
    assert result.metadata["dtype"] == "bfloat16" and result.image.size == (64, 64)

    (fp32,) = engine.generate(request)
    ours, exact = np.asarray(result.image, dtype=np.float64), np.asarray(fp32.image, dtype=np.float64)
    assert np.abs(ours - exact).mean() < 8  # the same picture, up to bf16 rounding (0..255 scale)

    (varied,) = bf16_engine.generate(
        GenerationRequest(
            prompt="a red boat", model=str(tiny_sd1), steps=4, strength=0.5, seed=5, width=64, height=64,
            init_image=fp32.image,
        )
    )
    assert varied.image.size == (64, 64)


def test_bf16_folder_and_single_file_load_the_vae_straight_to_fp32(tiny_sd1, tmp_path):
    placement = choose_placement("cpu", "bf16")
    folder = load_folder(tiny_sd1, "sd1", placement)
    exact = load_folder(tiny_sd1, "sd1", Placement("cpu", "float32"))
    # Bit-equal to the fp32 load: a round trip through bf16 would have rounded every weight.
    for ours, theirs in zip(folder.vae.state_dict().values(), exact.vae.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)

    source = build_tiny_pipeline("sd1", seed=3)
    path = save_safetensors(pipeline_to_ldm(source, "sd1"), tmp_path / "tiny.safetensors")
    configs = write_config_dir(source, tmp_path / "configs")
    pipe, _, _ = load_single_file(path, torch_dtype=torch.bfloat16, vae_dtype=torch.float32, config_dir=configs)
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.float32
    assert torch.equal(pipe.vae.decoder.conv_out.weight, source.vae.decoder.conv_out.weight)
