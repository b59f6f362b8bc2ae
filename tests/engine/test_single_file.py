"""Single-file checkpoints: detection, refusals, offline loading (tiny LDM exports) and the shipped configs."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio.engine.single_file import (
    SingleFileError,
    detect_family,
    family_from_shapes,
    load_single_file,
    read_checkpoint_header,
    read_checkpoint_keys,
    read_safetensors_header,
)
from studio.engine.tiny import build_tiny_pipeline
from studio.library.resources import component_configs_dir
from tests.engine.ldm_export import pipeline_to_ldm, save_safetensors, write_config_dir

FAMILIES = ("sd1", "sd2")
PREDICTION = {"sd1": "epsilon", "sd2": "v_prediction"}
SCHEDULER = {"sd1": "PNDMScheduler", "sd2": "DDIMScheduler"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core box OpenMP oversubscription makes a
    2-step 64x64 generation take seconds instead of ~50 ms. Restored afterwards for the other modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Per family: the tiny pipeline, its LDM state dict, that dict as .safetensors, a weightless config dir."""
    out = {}
    for family in FAMILIES:
        base = tmp_path_factory.mktemp(f"tiny-{family}")
        pipe = build_tiny_pipeline(family, seed=1)
        state = pipeline_to_ldm(pipe, family)
        path = save_safetensors(state, base / f"tiny-{family}.safetensors")
        configs = write_config_dir(pipe, base / "configs")
        out[family] = {"pipe": pipe, "state": state, "path": path, "configs": configs}
    return out


@pytest.fixture
def no_network(monkeypatch):
    """Pretend to be online (HF offline flags off) while any socket use fails and is recorded."""
    import diffusers.utils.hub_utils
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(diffusers.utils.hub_utils, "HF_HUB_OFFLINE", False)
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def _save(state: dict, path: Path) -> Path:
    return save_safetensors({k: v.contiguous() for k, v in state.items()}, path)


def _assert_same_weights(original, loaded):
    for name in ("unet", "vae", "text_encoder"):
        expected = getattr(original, name).state_dict()
        actual = getattr(loaded, name).state_dict()
        assert expected.keys() == actual.keys(), name
        different = [key for key in expected if not torch.equal(expected[key], actual[key])]
        assert different == [], f"{name}: {different[:3]}"


# ------------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("family", FAMILIES)
def test_ldm_export_round_trips_every_tensor_offline(exports, no_network, family):
    export = exports[family]
    pipe, loaded_family, _ = load_single_file(export["path"], config_dir=export["configs"])

    assert loaded_family == family
    _assert_same_weights(export["pipe"], pipe)
    assert type(pipe.scheduler).__name__ == SCHEDULER[family]
    assert pipe.scheduler.config.prediction_type == PREDICTION[family]
    assert pipe.tokenizer.pad_token == ("!" if family == "sd2" else "<|endoftext|>")
    assert len(pipe.tokenizer) == 49408
    assert pipe.safety_checker is None
    assert pipe.config.requires_safety_checker is False
    assert (pipe.feature_extractor is not None) == (family == "sd1")  # the tiny sd2 has no feature extractor

    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        "a lighthouse", num_inference_steps=2, height=64, width=64, generator=torch.Generator().manual_seed(0)
    ).images[0]
    assert image.size == (64, 64)
    assert no_network == []


def test_load_with_torch_dtype(exports, tmp_path):
    export = exports["sd1"]
    pipe, _, _ = load_single_file(export["path"], config_dir=export["configs"], torch_dtype=torch.bfloat16)
    for model in (pipe.unet, pipe.vae, pipe.text_encoder):
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # A half-precision file without torch_dtype loads as float32 (the configs' dtype), values unchanged.
    half = {k: v.half() if v.is_floating_point() else v for k, v in export["state"].items()}
    pipe, _, _ = load_single_file(_save(half, tmp_path / "fp16.safetensors"), config_dir=export["configs"])
    for model in (pipe.unet, pipe.vae, pipe.text_encoder):
        assert {p.dtype for p in model.parameters()} == {torch.float32}
    conv_in = export["pipe"].unet.conv_in.weight
    assert torch.equal(pipe.unet.conv_in.weight, conv_in.half().float())


def test_unnested_clip_keys_of_older_sd1_files_load(exports, tmp_path):
    export = exports["sd1"]
    old_style = "cond_stage_model.transformer.text_model."
    state = {k.replace(old_style, "cond_stage_model.transformer."): v for k, v in export["state"].items()}
    path = _save(state, tmp_path / "old-clip-keys.safetensors")
    assert detect_family(path) == "sd1"
    pipe, _, _ = load_single_file(path, config_dir=export["configs"])
    _assert_same_weights(export["pipe"], pipe)


def test_the_network_guard_catches_a_hub_request(no_network):
    from huggingface_hub import get_session

    with pytest.raises(Exception):  # noqa: B017 - whichever error the HTTP client wraps the refusal in
        get_session().head("https://huggingface.co/api/models", timeout=2)
    assert no_network != []


def test_shipped_configs_are_the_default_and_checked_against_the_file(exports):
    # A tiny (32-wide) file against the real SD 1.x configs: refused up front, no model is built.
    with pytest.raises(SingleFileError, match=r"does not match .* Stable Diffusion 1\.x component configs"):
        load_single_file(exports["sd1"]["path"])


def test_missing_component_is_refused(exports, tmp_path):
    state = {k: v for k, v in exports["sd1"]["state"].items() if not k.startswith("first_stage_model.")}
    path = _save(state, tmp_path / "no-vae.safetensors")
    with pytest.raises(SingleFileError, match=r"no VAE weights"):
        load_single_file(path, config_dir=exports["sd1"]["configs"])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("model.diffusion_model.out.2.weight", "lacks UNet weights the config expects"),
        ("first_stage_model.decoder.conv_out.bias", "lacks VAE weights the config expects"),
        (
            "cond_stage_model.model.ln_final.weight",
            r"lacks 1 text encoder weight\(s\) .*final_layer_norm\.weight",
        ),
    ],
)
def test_missing_tensor_is_reported_not_left_on_meta(exports, tmp_path, key, expected):
    state = dict(exports["sd2"]["state"])
    del state[key]
    path = _save(state, tmp_path / "partial.safetensors")
    with pytest.raises(SingleFileError, match=expected):
        load_single_file(path, config_dir=exports["sd2"]["configs"])


# ---------------------------------------------------------------------------------------- header & family


def test_header_gives_keys_and_shapes_without_loading_tensors(exports, monkeypatch):
    import safetensors
    import safetensors.torch

    def forbidden(*args, **kwargs):
        raise AssertionError("a tensor was loaded")

    monkeypatch.setattr(safetensors, "safe_open", forbidden)
    monkeypatch.setattr(safetensors.torch, "load_file", forbidden)
    state, path = exports["sd2"]["state"], exports["sd2"]["path"]
    assert read_checkpoint_keys(path) == set(state)
    assert read_checkpoint_header(path) == {k: tuple(v.shape) for k, v in state.items()}
    assert detect_family(path) == "sd2"


@pytest.mark.parametrize("family", FAMILIES)
def test_detect_family_of_tiny_exports(exports, family):
    assert detect_family(exports[family]["path"]) == family
    assert detect_family(exports[family]["path"], family=family) == family


def test_family_hint_contradicting_the_keys_is_an_error(exports):
    with pytest.raises(SingleFileError, match=r"Stable Diffusion 1\.x checkpoint, but family 'sd2'"):
        detect_family(exports["sd1"]["path"], family="sd2")
    with pytest.raises(SingleFileError, match="unknown family"):
        detect_family(exports["sd1"]["path"], family="sdxl")


def test_family_from_widths_when_the_text_encoder_is_absent(exports):
    shapes = {
        k: tuple(v.shape) for k, v in exports["sd1"]["state"].items() if not k.startswith("cond_stage_model.")
    }
    with pytest.raises(SingleFileError, match="cannot tell its family"):
        family_from_shapes(shapes)  # 32-wide: no rule
    assert family_from_shapes(shapes, family="sd2") == "sd2"
    real = dict(shapes)
    for key, shape in shapes.items():
        if key.endswith("attn2.to_k.weight"):
            real[key] = (shape[0], 1024)
    assert family_from_shapes(real) == "sd2"
    with pytest.raises(SingleFileError, match="1024-wide cross-attention"):
        family_from_shapes(real, family="sd1")


def test_text_encoder_width_must_match_cross_attention(exports):
    shapes = {k: tuple(v.shape) for k, v in exports["sd1"]["state"].items()}
    shapes["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] = (49408, 1024)
    with pytest.raises(SingleFileError, match="text encoder width 1024 does not match"):
        family_from_shapes(shapes)


# -------------------------------------------------------------------------------------------- refusals


def test_sdxl_is_refused(exports, tmp_path):
    state = {k: v for k, v in exports["sd1"]["state"].items() if not k.startswith("cond_stage_model.")}
    for key, value in exports["sd1"]["state"].items():
        if key.startswith("cond_stage_model.transformer."):
            state[key.replace("cond_stage_model.", "conditioner.embedders.0.")] = value
    state["conditioner.embedders.1.model.positional_embedding"] = torch.zeros(77, 32)
    path = _save(state, tmp_path / "sdxl.safetensors")
    with pytest.raises(
        SingleFileError, match=r"Stable Diffusion XL .*supported: Stable Diffusion 1\.x and 2\.x"
    ) as err:
        detect_family(path)
    assert str(path) in str(err.value)
    with pytest.raises(SingleFileError, match="XL"):
        load_single_file(path, config_dir=exports["sd1"]["configs"])


def test_sgm_layout_sd2_is_refused_without_calling_it_sdxl(exports):
    shapes = {
        key.replace("cond_stage_model.", "conditioner.embedders.0."): tuple(value.shape)
        for key, value in exports["sd2"]["state"].items()
    }
    with pytest.raises(SingleFileError, match=r"SGM-layout checkpoint .*SD-Turbo"):
        family_from_shapes(shapes)


def test_an_inpainting_checkpoint_loads_with_its_9_channel_unet(exports, tmp_path):
    pipe = build_tiny_pipeline("sd1-inpaint", seed=1)
    path = _save(pipeline_to_ldm(pipe, "sd1"), tmp_path / "inpaint.safetensors")
    loaded, family, _prediction = load_single_file(path, config_dir=exports["sd1"]["configs"])
    assert family == "sd1" and loaded.unet.config.in_channels == 9  # from conv_in's shape
    _assert_same_weights(pipe, loaded)


def test_an_instruct_pix2pix_unet_is_refused(exports, tmp_path):
    state = dict(exports["sd1"]["state"])
    conv_in = state["model.diffusion_model.input_blocks.0.0.weight"]
    state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(conv_in.shape[0], 8, 3, 3)
    path = _save(state, tmp_path / "pix2pix.safetensors")
    with pytest.raises(SingleFileError, match=r"InstructPix2Pix model \(UNet with 8 input channels\)"):
        detect_family(path)


def test_diffusers_format_file_is_refused(exports, tmp_path):
    path = _save(exports["sd1"]["pipe"].unet.state_dict(), tmp_path / "diffusion_pytorch_model.safetensors")
    with pytest.raises(SingleFileError, match="UNet in diffusers format .* load the whole diffusers folder"):
        detect_family(path)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 32)}, "LoRA"),
        ({"first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3)}, "standalone VAE"),
        (
            {"encoder.conv_in.weight": (8, 3, 3, 3), "decoder.up.0.block.0.conv1.weight": (8, 8, 3, 3)},
            "standalone VAE",
        ),
        ({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (9, 3)}, "Stable Diffusion 3"),
        ({"double_blocks.0.img_attn.norm.key_norm.scale": (128,)}, "FLUX"),
        ({"emb_params": (2, 768)}, "textual-inversion embedding"),
        ({"control_model.time_embed.0.weight": (1280, 320)}, "ControlNet"),
        ({"classifier.weight": (10, 512)}, "not a Stable Diffusion checkpoint"),
    ],
)
def test_other_files_say_what_they_seem_to_be(keys, expected):
    with pytest.raises(SingleFileError, match=expected):
        family_from_shapes(keys, "x.safetensors")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(SingleFileError, match=r"empty\.safetensors: is empty \(0 bytes\)"):
        detect_family(path)
    with pytest.raises(SingleFileError, match="is empty"):
        load_single_file(path)


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        len(b"[1, 2, 3]").to_bytes(8, "little") + b"[1, 2, 3]",  # a JSON header, but not an object
        len(b'{"a": 1}').to_bytes(8, "little") + b'{"a": 1}',  # an entry without dtype/shape/offsets
        b"<html><body>404 Not Found</body></html>",
    ],
)
def test_garbage_file_is_refused(tmp_path, content):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(SingleFileError, match=r"garbage\.safetensors: is not a valid \.safetensors file"):
        detect_family(path)
    with pytest.raises(SingleFileError, match="not a valid"):
        load_single_file(path)


def test_truncated_file_is_refused(exports, tmp_path):
    data = exports["sd1"]["path"].read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SingleFileError, match="is truncated"):
        detect_family(path)


def test_absurd_component_configs_are_refused_before_anything_is_built(exports, tmp_path):
    """The configs a single file is built from get the same checks as a model folder's (building that UNet
    would fail inside torch with a message about tensor sizes)."""
    import shutil

    from studio.engine.errors import InvalidModelError

    configs = tmp_path / "configs"
    shutil.copytree(exports["sd1"]["configs"], configs)
    unet = configs / "unet" / "config.json"
    unet.write_text(json.dumps({**json.loads(unet.read_text()), "block_out_channels": [1e9, 64]}))
    with pytest.raises(InvalidModelError, match=r"unet/config\.json: block_out_channels\[0\] = 1000000000 is out of range"):
        load_single_file(exports["sd1"]["path"], config_dir=configs)


def test_missing_file_folder_and_unknown_suffix(tmp_path):
    with pytest.raises(SingleFileError, match="no such file"):
        load_single_file(tmp_path / "absent.safetensors")
    with pytest.raises(SingleFileError, match="is a folder"):
        detect_family(tmp_path)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF....")
    with pytest.raises(SingleFileError, match=r"unsupported file type '\.gguf'"):
        load_single_file(gguf)


def test_error_is_a_value_error_on_one_line(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as err:
        load_single_file(path)
    assert isinstance(err.value, SingleFileError)
    assert "\n" not in str(err.value)
    assert err.value.path == str(path)
    copy = pickle.loads(pickle.dumps(err.value))
    assert (type(copy), str(copy), copy.path) == (SingleFileError, str(err.value), str(path))


# ------------------------------------------------------------------------------------- prediction type

# The start of an LDM inference config as A1111/ComfyUI users put beside a checkpoint (v2-inference.yaml
# for 512-base has no parameterization line: LDM's default, eps; v2-inference-v.yaml adds one).
LDM_YAML = """model:
  base_learning_rate: 1.0e-4
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
{extra}    linear_start: 0.00085
    linear_end: 0.0120
    first_stage_key: "jpg"
"""


def _copy(export: dict, folder: Path, metadata: dict[str, str] | None = None) -> Path:
    """The export under a fresh name (a sidecar is per file), optionally with safetensors metadata."""
    from safetensors.torch import save_file

    path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in export["state"].items()}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(
    ("sidecar", "metadata", "expected", "source"),
    [
        (None, {}, "v_prediction", "the Stable Diffusion 2.x default"),
        (LDM_YAML.format(extra=""), {}, "epsilon", "model.yaml beside the file"),
        (LDM_YAML.format(extra='    parameterization: "v"\n'), {}, "v_prediction", "model.yaml beside the file"),
        (LDM_YAML.format(extra="    parameterization: eps  # base\n"), {}, "epsilon", "model.yaml beside the file"),
        ("parameterization: 'eps'\n", {}, "epsilon", "model.yaml beside the file"),  # the one line we suggest
        ("keybindings: {}\n", {}, "v_prediction", "the Stable Diffusion 2.x default"),  # not an LDM config
        (None, {"modelspec.prediction_type": "epsilon"}, "epsilon", "modelspec.prediction_type"),
        (None, {"ss_v_parameterization": "False"}, "epsilon", "ss_v_parameterization"),
        (None, {"ss_v_parameterization": "True"}, "v_prediction", "ss_v_parameterization"),
        (LDM_YAML.format(extra=""), {"modelspec.prediction_type": "v"}, "epsilon", "model.yaml"),  # sidecar wins
    ],
)
def test_prediction_type_from_sidecar_metadata_or_family(exports, tmp_path, sidecar, metadata, expected, source):
    path = _copy(exports["sd2"], tmp_path, metadata)
    if sidecar is not None:
        (tmp_path / "model.yaml").write_text(sidecar, encoding="utf-8")
    pipe, family, prediction = load_single_file(path, config_dir=exports["sd2"]["configs"])
    assert (family, prediction.type, pipe.scheduler.config.prediction_type) == ("sd2", expected, expected)
    assert source in prediction.source
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # only the prediction type changes


def test_sd1_file_can_be_v_prediction_and_is_epsilon_by_default(exports, tmp_path):
    path = _copy(exports["sd1"], tmp_path, {"modelspec.prediction_type": "v"})
    pipe, _, prediction = load_single_file(path, config_dir=exports["sd1"]["configs"])
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert prediction.note(path, "sd1") == "model.safetensors: v-prediction, from the file's metadata " \
        "(modelspec.prediction_type)"
    _, _, default = load_single_file(exports["sd1"]["path"], config_dir=exports["sd1"]["configs"])
    assert (default.type, default.note(exports["sd1"]["path"], "sd1")) == ("epsilon", None)


def test_only_an_undescribed_sd2_file_gets_the_guess_explained(exports, tmp_path):
    path = _copy(exports["sd2"], tmp_path)
    _, _, guessed = load_single_file(path, config_dir=exports["sd2"]["configs"])
    note = guessed.note(path, "sd2")
    assert guessed.guessed and "768-v" in note and "model.yaml" in note and "parameterization: eps" in note
    (tmp_path / "model.yaml").write_text('parameterization: "v"\n', encoding="utf-8")
    _, _, recorded = load_single_file(path, config_dir=exports["sd2"]["configs"])
    assert (recorded.type, recorded.guessed, recorded.note(path, "sd2")) == ("v_prediction", False, None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("model:\n  params:\n    parameterization: x0\n", "parameterization 'x0'"),
        ("model:\n" + "#" * 1_000_001, "over 1 MB"),
    ],
)
def test_a_sidecar_we_cannot_follow_is_a_clear_error_before_any_weight_is_read(exports, tmp_path, content, expected):
    path = _copy(exports["sd2"], tmp_path)
    (tmp_path / "model.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(SingleFileError, match=expected) as info:
        load_single_file(path, config_dir=exports["sd2"]["configs"])
    assert "model.yaml" in str(info.value) and "\n" not in str(info.value)


def test_header_metadata_is_read_as_strings(tmp_path):
    header = {
        "__metadata__": {"modelspec.prediction_type": "v", "format": "pt"},
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    path = _crafted(tmp_path / "m.safetensors", header, data=b"\0" * 4)
    shapes, metadata = read_safetensors_header(path)
    assert (shapes, metadata) == ({"w": (1,)}, {"modelspec.prediction_type": "v", "format": "pt"})


# ------------------------------------------------------------------------------------ crafted headers


def _crafted(path: Path, header: dict | bytes, *, data: bytes = b"", length: int | None = None) -> Path:
    """A file laid out as .safetensors: 8-byte little-endian header length, header, data. `length`
    overrides the length field (a lie about the header's size)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(raw) if length is None else length
    path.write_bytes(size.to_bytes(8, "little") + raw + data)
    return path


def _one(shape=(1,), dtype="F32", offsets=(0, 4), name="model.diffusion_model.input_blocks.0.0.weight") -> bytes:
    """A one-tensor header with the given fields written verbatim (so that they can be non-JSON)."""
    return (
        f'{{"{name}": {{"dtype": "{dtype}", "shape": [{", ".join(map(str, shape))}], '
        f'"data_offsets": [{", ".join(map(str, offsets))}]}}}}'
    ).encode()


F32 = {"dtype": "F32", "shape": [1]}
CRAFTED = {
    # name: (header, data, length field or None, what the message must say)
    "infinity-shape": (_one(shape=("Infinity",)), b"\0" * 4, None, "holds Infinity, which is not a number JSON allows"),
    "nan-shape": (_one(shape=("NaN",)), b"\0" * 4, None, "holds NaN"),
    "negative-dimension": (_one(shape=(-1,)), b"\0" * 4, None, "negative dimension -1"),
    "float-dimension": (_one(shape=(2.5,)), b"\0" * 4, None, "dimension 2.5, not a whole number"),
    "bool-dimension": (_one(shape=("true",)), b"\0" * 4, None, "dimension true, not a whole number"),
    "1e30-dimension": (_one(shape=("1e30",)), b"\0" * 4, None, r"dimension 1e\+30, not a whole number"),
    "30-digit-dimension": (_one(shape=(10**30,)), b"\0" * 4, None, "an integer of 31 digits"),
    "huge-zero-sized-tensor": (_one(shape=(0, 2**50), offsets=(0, 0)), b"", None, "larger than any real tensor"),
    "huge-rank": (_one(shape=(1,) * 100_000), b"\0" * 4, None, "100,000 dimensions"),
    "nested-100k-deep": (
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"", None, "nested more than 8 levels deep"
    ),
    "unbalanced-brackets": (b'{"a": [[[}', b"", None, "brackets do not match"),
    "header-length-past-the-file": (_one(), b"\0" * 4, 10_000, r"header length 10,000 runs past the end"),
    "header-length-2-63": (_one(), b"\0" * 4, 2**63, "over the 100,000,000-byte limit"),
    "offsets-outside-the-file": (_one(offsets=(0, 4_000_000)), b"\0" * 4, None, "is truncated: tensor"),
    "offsets-reversed": (_one(offsets=(4, 0)), b"\0" * 4, None, r"not 0 <= begin <= end"),
    "offsets-not-two-numbers": (_one(offsets=(0,)), b"\0" * 4, None, "not two whole numbers"),
    "overlapping-offsets": (
        {"a": {**F32, "data_offsets": [0, 4]}, "b": {**F32, "data_offsets": [2, 6]}}, b"\0" * 6, None, "overlap"
    ),
    "gap-between-tensors": (
        {"a": {**F32, "data_offsets": [0, 4]}, "b": {**F32, "data_offsets": [8, 12]}},
        b"\0" * 12,
        None,
        "bytes 4..8 of the data belong to no tensor",
    ),
    "stray-bytes-after": (_one(), b"\0" * 9, None, "5 bytes after its last tensor"),
    "byte-count-wrong": (_one(shape=(2, 3)), b"\0" * 4, None, r"\(F32 \[2, 3\]\) needs 24 bytes, but its data_offsets span 4"),
    "unknown-dtype": (_one(dtype="F33"), b"\0" * 4, None, "unknown dtype 'F33'"),
    "dtype-not-a-string": ({"a": {**F32, "dtype": 7, "data_offsets": [0, 4]}}, b"\0" * 4, None, "unknown dtype 7"),
    "entry-not-an-object": ({"a": [1, 2]}, b"", None, "is described by a list, not an object"),
    "entry-without-offsets": ({"a": F32}, b"", None, "has no data_offsets"),
    "repeated-name": (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}', b"\0" * 4, None, "names 'a' twice"),
    "metadata-non-string": (
        {"__metadata__": {"steps": 20}, "a": {**F32, "data_offsets": [0, 4]}}, b"\0" * 4, None,
        r"__metadata__\['steps'\] is a number, not a string",
    ),
    "metadata-not-an-object": ({"__metadata__": ["x"], "a": {**F32, "data_offsets": [0, 4]}}, b"\0" * 4, None, "__metadata__ is a list"),
    "json-list": (b"[1, 2, 3]", b"", None, "its header is a list, not a JSON object"),
    "invalid-utf8": (b'{"\xff\xfe": 1}', b"", None, "not UTF-8 text"),
    "not-json": (b"{this is not json}", b"", None, "is not valid JSON"),
    "length-too-small": (b"{", b"", 1, "header length 1 is too short"),
}


@pytest.mark.parametrize(("header", "data", "length", "expected"), CRAFTED.values(), ids=CRAFTED.keys())
def test_a_crafted_header_is_one_clear_refusal(tmp_path, header, data, length, expected):
    """Every caller reads headers through read_safetensors_header: a crafted one is a SingleFileError (an
    InvalidModelError: bad input, CLI exit 2) naming the file and the problem, never another exception."""
    from studio.engine.errors import InvalidModelError
    from studio.engine.loading import local_model_kind
    from studio.engine.model_info import check_local_model

    path = _crafted(tmp_path / "crafted.safetensors", header, data=data, length=length)
    with pytest.raises(SingleFileError, match=expected) as err:
        read_safetensors_header(path)
    message = str(err.value)
    assert isinstance(err.value, InvalidModelError) and message.startswith(f"{path}: ") and "\n" not in message
    with pytest.raises(SingleFileError) as again:
        check_local_model(str(path))  # the window's "Add a checkpoint": the same one message
    assert str(again.value) == message
    assert local_model_kind(str(path)) == ("sd1", None)  # a form's guess: no crash


@pytest.mark.parametrize(("content", "expected"), [(b"", r"is empty \(0 bytes\)"), (b"\x08" + b"\0" * 6, "7 bytes long")])
def test_files_too_short_for_a_header_are_refused(tmp_path, content, expected):
    path = tmp_path / "short.safetensors"
    path.write_bytes(content)
    with pytest.raises(SingleFileError, match=expected):
        read_safetensors_header(path)
    with pytest.raises(SingleFileError, match=expected):
        load_single_file(path)


def test_files_safetensors_writes_are_valid(tmp_path):
    """Every dtype, scalars, empty tensors and metadata as the safetensors library writes them (it pads the
    header with spaces and orders the data by dtype) read back exactly."""
    from safetensors.torch import save_file

    tensors = {
        "f32": torch.zeros(2, 3),
        "f16": torch.zeros(5, dtype=torch.float16),
        "bf16": torch.zeros(1, 1, 3, dtype=torch.bfloat16),
        "f8": torch.zeros(7, dtype=torch.float8_e4m3fn),
        "i64": torch.zeros(3, dtype=torch.int64),
        "bool": torch.zeros(3, dtype=torch.bool),
        "c64": torch.zeros(2, dtype=torch.complex64),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 4),
    }
    path = tmp_path / "all.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt", "note": "[{]}\" \u00e9"})
    shapes, metadata = read_safetensors_header(path)
    assert shapes == {name: tuple(t.shape) for name, t in tensors.items()}
    assert metadata == {"format": "pt", "note": "[{]}\" \u00e9"}


# ------------------------------------------------------------------------------------------- pickles


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickle_refused_without_opt_in(exports, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save(exports["sd1"]["state"], path)
    with pytest.raises(SingleFileError, match=r"pickle checkpoint .*arbitrary code.*--allow-ckpt"):
        load_single_file(path, config_dir=exports["sd1"]["configs"])
    with pytest.raises(SingleFileError, match="--allow-ckpt"):
        detect_family(path)
    with pytest.raises(SingleFileError, match="pickle"):
        read_checkpoint_keys(path)


def test_ckpt_loads_with_opt_in(exports, tmp_path, no_network):
    export = exports["sd2"]
    path = tmp_path / "v2-tiny.ckpt"
    # The Lightning layout of real .ckpt files: weights nested under "state_dict" next to plain metadata.
    torch.save({"state_dict": export["state"], "global_step": 875000, "epoch": 3}, path)
    assert detect_family(path, allow_ckpt=True) == "sd2"
    pipe, family, _ = load_single_file(path, allow_ckpt=True, config_dir=export["configs"])
    assert family == "sd2"
    _assert_same_weights(export["pipe"], pipe)
    assert no_network == []


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a hostile .ckpt would do with something worse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pickle_with_code_is_refused_even_with_opt_in(exports, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": exports["sd1"]["state"], "callback": _Payload(marker)}, path)
    with pytest.raises(
        SingleFileError, match=r"objects other than tensors, refused even with --allow-ckpt .*posix\.mkdir"
    ):
        load_single_file(path, allow_ckpt=True, config_dir=exports["sd1"]["configs"])
    with pytest.raises(SingleFileError, match="other than tensors"):
        detect_family(path, allow_ckpt=True)
    assert not marker.exists()


def test_pickle_without_tensors_is_refused(tmp_path):
    path = tmp_path / "notes.ckpt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(SingleFileError, match="holds no tensors"):
        detect_family(path, allow_ckpt=True)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a pickle at all")
    with pytest.raises(SingleFileError, match="not a readable PyTorch checkpoint"):
        detect_family(broken, allow_ckpt=True)
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"w": torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(SingleFileError, match="not a readable PyTorch checkpoint"):
        detect_family(truncated, allow_ckpt=True)


# -------------------------------------------------------------------------------- shipped real configs

REAL_COUNTS = {  # measured with the configs instantiated on the meta device (no weights)
    "sd1": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_configs_build_the_real_architectures(family):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    configs = component_configs_dir(family)
    with init_empty_weights():
        models = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(configs / "text_encoder")),
        }
    counts = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    assert counts == REAL_COUNTS[family]
    assert all(p.is_meta for model in models.values() for p in model.parameters())


def test_shipped_config_values():
    sd1, sd2 = component_configs_dir("sd1"), component_configs_dir("sd2")

    def read(path: Path) -> dict:
        return json.loads(path.read_text(encoding="utf-8"))

    s1 = read(sd1 / "scheduler" / "scheduler_config.json")
    assert (s1["_class_name"], s1["prediction_type"], s1["beta_schedule"]) == (
        "PNDMScheduler",
        "epsilon",
        "scaled_linear",
    )
    assert (s1["beta_start"], s1["beta_end"], s1["skip_prk_steps"], s1["steps_offset"]) == (
        0.00085,
        0.012,
        True,
        1,
    )
    s2 = read(sd2 / "scheduler" / "scheduler_config.json")
    assert (s2["_class_name"], s2["prediction_type"]) == ("DDIMScheduler", "v_prediction")
    u2 = read(sd2 / "unet" / "config.json")
    assert u2["attention_head_dim"] == [5, 10, 20, 20]
    assert (u2["use_linear_projection"], u2["upcast_attention"], u2["cross_attention_dim"]) == (
        True,
        True,
        1024,
    )
    t1, t2 = read(sd1 / "text_encoder" / "config.json"), read(sd2 / "text_encoder" / "config.json")
    assert (t1["hidden_size"], t1["num_hidden_layers"], t1["hidden_act"]) == (768, 12, "quick_gelu")
    assert (t2["hidden_size"], t2["num_hidden_layers"], t2["num_attention_heads"]) == (1024, 23, 16)
    assert (t2["hidden_act"], t2["projection_dim"]) == ("gelu", 512)
    assert read(sd1 / "model_index.json")["requires_safety_checker"] is True
    assert (sd1 / "safety_checker" / "config.json").is_file()
    assert read(sd2 / "model_index.json")["safety_checker"] == [None, None]
    for folder in (sd1, sd2):  # configs only: no weights are shipped
        assert not [p for p in folder.rglob("*") if p.suffix in {".safetensors", ".bin", ".ckpt", ".msgpack"}]


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_scheduler_and_preprocessing_configs_load(family):
    import diffusers
    from transformers import CLIPImageProcessor

    configs = component_configs_dir(family)
    scheduler_class = getattr(diffusers, SCHEDULER[family])
    scheduler = scheduler_class.from_pretrained(str(configs), subfolder="scheduler", local_files_only=True)
    assert scheduler.config.prediction_type == PREDICTION[family]
    assert scheduler.config.steps_offset == 1
    processor = CLIPImageProcessor.from_pretrained(str(configs / "feature_extractor"), local_files_only=True)
    assert (processor.crop_size["height"], processor.crop_size["width"]) == (224, 224)


def test_importing_the_module_is_cheap():
    code = (
        "import sys, studio.engine.single_file; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'safetensors', 'PySide6') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert result.stdout.strip() == "[]"
