"""The LoRA and embedding files `studio.engine.tiny` writes: that diffusers reads each the way it reads the
files in the wild (kohya/A1111, diffusers/PEFT, LoCon, A1111 and diffusers embeddings), refuses the ones it
cannot (LyCORIS LoHa/LoKr), and that a LoRA visibly changes the model, so that the LoRA tests of the engine
built on them test something."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from studio.engine.tiny import lora_targets, make_tiny_embedding, make_tiny_lora, make_tiny_model


def _pipeline(folder):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)


def _unet_out(pipe) -> torch.Tensor:
    """One UNet forward on fixed random inputs: what a LoRA of the UNet must change."""
    generator = torch.Generator("cpu").manual_seed(1234)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        return pipe.unet(sample, 10, encoder_hidden_states=context).sample


def _text_out(pipe) -> torch.Tensor:
    ids = pipe.tokenizer(["a tiny cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]


def _read(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}, f.metadata() or {}  # noqa: SIM118


@pytest.fixture(scope="module")
def tiny_deci(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-deci", "deci", seed=0)


# ------------------------------------------------------------------------------------------------ LoRAs


def test_kohya_lora_changes_the_model_and_weight_zero_restores_it_exactly(tiny_sd1, tmp_path):
    path = make_tiny_lora(tiny_sd1, tmp_path / "style.safetensors")
    pipe = _pipeline(tiny_sd1)
    unet_before, text_before = _unet_out(pipe), _text_out(pipe)

    pipe.load_lora_weights(str(path), adapter_name="t")
    unet_after, text_after = _unet_out(pipe), _text_out(pipe)
    assert torch.isfinite(unet_after).all()
    assert (unet_after - unet_before).abs().max() > 1e-2  # visible, not rounding
    assert (text_after - text_before).abs().max() > 1e-2

    pipe.set_adapters("t", 0.0)
    assert torch.equal(_unet_out(pipe), unet_before)
    assert torch.equal(_text_out(pipe), text_before)


def test_kohya_file_has_kohya_keys_and_metadata(tiny_sd1, tiny_sd2, tmp_path):
    tensors, meta = _read(make_tiny_lora(tiny_sd1, tmp_path / "my_style.safetensors", rank=8, alpha=4))
    assert all(key.startswith(("lora_unet_", "lora_te_")) for key in tensors)
    q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    assert tensors[f"{q}.lora_down.weight"].shape == (8, 32)
    assert tensors[f"{q}.lora_up.weight"].shape == (32, 8)
    assert tensors[f"{q}.alpha"].item() == 4.0
    assert tensors[f"{q}.lora_down.weight"].dtype == torch.float16
    assert "lora_te_text_model_encoder_layers_1_mlp_fc2.lora_up.weight" in tensors
    # Every attention linear of both networks, nothing else (no resnets without conv=True).
    targets = lora_targets(tiny_sd1)
    assert len(tensors) == 3 * (len(targets["unet"]) + len(targets["text_encoder"]))
    assert not any("resnets" in key for key in tensors)
    assert meta["ss_network_module"] == "networks.lora"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("8", "4")
    assert meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_output_name"] == "my_style"
    assert json.loads(meta["ss_tag_frequency"])["10_tinystyle"]["tinystyle"] == 10
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"

    _, meta2 = _read(make_tiny_lora(tiny_sd2, tmp_path / "v2.safetensors", metadata={"ss_output_name": "x", "n": 3}))
    assert meta2["ss_base_model_version"] == "sd_v2"
    assert meta2["modelspec.architecture"] == "stable-diffusion-v2-768-v/lora"  # the tiny sd2 is v-prediction
    assert (meta2["ss_output_name"], meta2["n"]) == ("x", "3")  # `metadata` wins, stored as strings


def test_peft_file_loads_and_changes_the_model_exactly_as_the_kohya_file(tiny_sd1, tmp_path):
    kohya = make_tiny_lora(tiny_sd1, tmp_path / "k.safetensors", seed=3)
    peft = make_tiny_lora(tiny_sd1, tmp_path / "p.safetensors", seed=3, fmt="peft")
    tensors, meta = _read(peft)
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight" in tensors
    assert "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight" in tensors
    config = json.loads(meta["lora_adapter_metadata"])
    assert (config["unet.r"], config["unet.lora_alpha"]) == (4, 4.0)
    assert "to_out.0" in config["unet.target_modules"]

    outputs = []
    for path in (kohya, peft):
        pipe = _pipeline(tiny_sd1)
        pipe.load_lora_weights(str(path), adapter_name="t")
        outputs.append((_unet_out(pipe), _text_out(pipe)))
    (unet_k, text_k), (unet_p, text_p) = outputs
    assert torch.equal(unet_k, unet_p)
    assert torch.equal(text_k, text_p)


def test_alpha_scales_the_effect_as_alpha_over_rank(tiny_sd1, tmp_path):
    """alpha = rank/2 with doubled up weights is the same network (to fp16 rounding of the tiniest up
    weights, which are subnormal there); alpha = rank/2 alone is not."""
    outputs = []
    for name, alpha, scale in (("full", None, 1.0), ("half-doubled", 2.0, 2.0), ("half", 2.0, 1.0)):
        path = make_tiny_lora(tiny_sd1, tmp_path / f"{name}.safetensors", alpha=alpha, scale=scale)
        pipe = _pipeline(tiny_sd1)
        pipe.load_lora_weights(str(path), adapter_name="t")
        outputs.append(_unet_out(pipe))
    full, half_doubled, half = outputs
    torch.testing.assert_close(half_doubled, full, rtol=1e-5, atol=1e-5)
    assert (half - full).abs().max() > 1e-2


def test_locon_file_loads_onto_the_resnets(tiny_sd1, tmp_path):
    plain = make_tiny_lora(tiny_sd1, tmp_path / "plain.safetensors", text_encoder=False)
    locon = make_tiny_lora(tiny_sd1, tmp_path / "locon.safetensors", text_encoder=False, conv=True)
    tensors, meta = _read(locon)
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert tensors[f"{conv}.lora_down.weight"].shape == (4, 32, 3, 3)
    assert tensors[f"{conv}.lora_up.weight"].shape == (32, 4, 1, 1)
    assert "lora_unet_up_blocks_0_resnets_0_conv_shortcut.lora_down.weight" in tensors
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "4"}

    outputs = []
    for path in (plain, locon):
        pipe = _pipeline(tiny_sd1)
        text_before = _text_out(pipe)
        pipe.load_lora_weights(str(path), adapter_name="t")
        assert torch.equal(_text_out(pipe), text_before)  # --no-text-encoder: the text encoder is untouched
        outputs.append(_unet_out(pipe))
    assert hasattr(pipe.unet.down_blocks[0].resnets[0].conv1, "lora_A")
    assert not torch.equal(*outputs)


def test_unet_only_and_text_encoder_only(tiny_sd1, tmp_path):
    unet_only, _ = _read(make_tiny_lora(tiny_sd1, tmp_path / "u.safetensors", text_encoder=False))
    te_only, _ = _read(make_tiny_lora(tiny_sd1, tmp_path / "t.safetensors", unet=False))
    assert unet_only and all(key.startswith("lora_unet_") for key in unet_only)
    assert te_only and all(key.startswith("lora_te_") for key in te_only)
    with pytest.raises(ValueError, match="needs the UNet"):
        make_tiny_lora(tiny_sd1, tmp_path / "none.safetensors", unet=False, text_encoder=False)


@pytest.mark.parametrize(("algo", "part"), [("loha", "hada_w1_a"), ("lokr", "lokr_w1")])
def test_lycoris_files_are_refused_by_diffusers(tiny_sd1, tmp_path, algo, part):
    path = make_tiny_lora(tiny_sd1, tmp_path / f"{algo}.safetensors", algo=algo)
    tensors, meta = _read(path)
    assert f"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.{part}" in tensors
    assert not any("lora_down" in key for key in tensors)
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"])["algo"] == algo
    pipe = _pipeline(tiny_sd1)
    with pytest.raises(ValueError):
        pipe.load_lora_weights(str(path), adapter_name="t")
    with pytest.raises(ValueError, match="kohya"):
        make_tiny_lora(tiny_sd1, tmp_path / "x.safetensors", algo=algo, fmt="peft")


def test_same_seed_writes_the_same_file(tiny_sd1, tmp_path):
    a = make_tiny_lora(tiny_sd1, tmp_path / "a" / "x.safetensors", seed=5)
    b = make_tiny_lora(tiny_sd1, tmp_path / "b" / "x.safetensors", seed=5)
    c = make_tiny_lora(tiny_sd1, tmp_path / "c" / "x.safetensors", seed=6)
    (ta, ma), (tb, mb), (tc, _) = _read(a), _read(b), _read(c)
    assert ma == mb  # (not the bytes: safetensors writes metadata in hash order)
    assert all(torch.equal(ta[key], tb[key]) for key in ta) and ta.keys() == tb.keys() == tc.keys()
    assert not any(torch.equal(ta[key], tc[key]) for key in ta if key.endswith("weight"))


def test_deci_lora_names_the_unet_nas_modules_and_shares_only_the_text_encoder_with_sd1(
    tiny_sd1, tiny_deci, tmp_path
):
    """DeciDiffusion keeps its transformers in `modules_list`, where SD has `attentions`: an SD 1.5 LoRA's
    text-encoder half fits it, its UNet half names nothing there."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    from studio.engine.deci_unet import load_flexible_unet

    deci, _ = _read(make_tiny_lora(tiny_deci, tmp_path / "deci.safetensors", conv=True))
    sd1, _ = _read(make_tiny_lora(tiny_sd1, tmp_path / "sd1.safetensors", conv=True))
    assert "lora_unet_down_blocks_1_modules_list_1_transformer_blocks_0_attn2_to_k.lora_down.weight" in deci
    assert "lora_unet_mid_block_modules_list_0_conv1.lora_down.weight" in deci
    unet_keys = {key for key in deci if key.startswith("lora_unet_")}
    assert unet_keys and not unet_keys & set(sd1)
    te = {key: tensor.shape for key, tensor in deci.items() if key.startswith("lora_te_")}
    assert te == {key: tensor.shape for key, tensor in sd1.items() if key.startswith("lora_te_")}

    # The PEFT file's module paths are the UNet-NAS's own: PEFT injects every one of them.
    tensors, meta = _read(make_tiny_lora(tiny_deci, tmp_path / "deci-peft.safetensors", fmt="peft", unet=True))
    config = {k.removeprefix("unet."): v for k, v in json.loads(meta["lora_adapter_metadata"]).items()
              if k.startswith("unet.")}  # fmt: skip
    unet = load_flexible_unet(tiny_deci / "flexible_unet")
    generator = torch.Generator("cpu").manual_seed(0)
    sample, context = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 77, 32, generator=generator)
    with torch.no_grad():
        before = unet(sample, 10, encoder_hidden_states=context).sample
    inject_adapter_in_model(LoraConfig(**config), unet, adapter_name="t")
    state = {k.removeprefix("unet."): v for k, v in tensors.items() if k.startswith("unet.")}
    result = set_peft_model_state_dict(unet, state, adapter_name="t")
    assert not [key for key in result.unexpected_keys if "lora" in key]
    with torch.no_grad():
        after = unet(sample, 10, encoder_hidden_states=context).sample
    assert (after - before).abs().max() > 1e-2


# ------------------------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "diffusers"])
def test_embedding_loads_as_textual_inversion(tiny_sd1, tmp_path, fmt):
    suffix = ".pt" if fmt == "pt" else ".safetensors"
    path = make_tiny_embedding(tmp_path / f"tinyemb{suffix}", vectors=3, model_dir=tiny_sd1, fmt=fmt, seed=2)
    if fmt == "pt":
        data = torch.load(path, weights_only=True)  # plain tensors: no code runs on load
        assert data["string_to_token"] == {"*": 265} and data["name"] == "tinyemb"
        vectors = data["string_to_param"]["*"]
    else:
        tensors, _ = _read(path)
        assert list(tensors) == ["<tinyemb>" if fmt == "diffusers" else "emb_params"]
        vectors = next(iter(tensors.values()))
    assert vectors.shape == (3, 32) and vectors.dtype == torch.float32

    pipe = _pipeline(tiny_sd1)
    size = len(pipe.tokenizer)
    pipe.load_textual_inversion(data if fmt == "pt" else str(path), token="<t>")
    assert len(pipe.tokenizer) == size + 3
    ids = pipe.tokenizer.convert_tokens_to_ids(["<t>", "<t>_1", "<t>_2"])
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[ids].detach(), vectors)


def test_embedding_widths_follow_the_model(tmp_path):
    """Full-size widths from a model folder's configs; SDXL files carry clip_l and clip_g."""
    model = tmp_path / "model"
    for sub, width in (("text_encoder", 768), ("text_encoder_2", 1280)):
        (model / sub).mkdir(parents=True)
        (model / sub / "config.json").write_text(json.dumps({"hidden_size": width}), encoding="utf-8")
    tensors, _ = _read(make_tiny_embedding(tmp_path / "xl.safetensors", model_dir=model, fmt="sdxl", vectors=4))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {"clip_l": (4, 768), "clip_g": (4, 1280)}
    tensors, _ = _read(make_tiny_embedding(tmp_path / "tiny-xl.safetensors", fmt="sdxl"))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {"clip_l": (2, 32), "clip_g": (2, 53)}
    with pytest.raises(ValueError, match="unknown embedding format"):
        make_tiny_embedding(tmp_path / "x.bin", fmt="bin")


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_loras_and_embeddings(tiny_sd1, tmp_path, capsys):
    from studio.cli import main

    lora = tmp_path / "cli-lora.safetensors"
    assert main(["make-tiny-lora", str(tiny_sd1), str(lora), "--rank", "2", "--conv", "--no-text-encoder"]) == 0
    assert capsys.readouterr().out.strip() == str(lora)
    tensors, meta = _read(lora)
    assert meta["ss_network_dim"] == "2" and not any(key.startswith("lora_te_") for key in tensors)
    assert any("resnets" in key for key in tensors)

    peft = tmp_path / "cli-peft.safetensors"
    assert main(["make-tiny-lora", str(tiny_sd1), str(peft), "--format", "peft", "--seed", "1"]) == 0
    assert "lora_adapter_metadata" in _read(peft)[1]
    loha = tmp_path / "cli-loha.safetensors"
    assert main(["make-tiny-lora", str(tiny_sd1), str(loha), "--algo", "loha"]) == 0
    assert any(key.endswith(".hada_w1_a") for key in _read(loha)[0])

    emb = tmp_path / "cli-emb.pt"
    assert main(["make-tiny-embedding", str(emb), "--model", str(tiny_sd1), "--vectors", "5", "--format", "pt"]) == 0
    assert torch.load(emb, weights_only=True)["string_to_param"]["*"].shape == (5, 32)
    capsys.readouterr()

    # Never over an existing file; a folder that is no model is named as such.
    assert main(["make-tiny-embedding", str(emb)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["make-tiny-lora", str(tmp_path), str(tmp_path / "new.safetensors")]) == 2
    assert "model_index.json" in capsys.readouterr().err
    assert main(["make-tiny-lora", str(tiny_sd1), str(tmp_path / "y.safetensors"), "--algo", "lokr",
                 "--format", "peft"]) == 2  # fmt: skip
