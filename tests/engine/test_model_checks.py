"""Model folders with absurd configs or a broken tokenizer are refused before anything is built.

Each case copies a real tiny model (built once per session) and edits one of its files the way a fuzzer
did; the refusal must be one `InvalidModelError` line naming the file and field, from the check itself,
from the window's "Add a folder" and from the engine's load (the CLI's path: exit 2), in milliseconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from studio.engine import Engine
from studio.engine.deci_config import DECI_V1_CONFIGURATIONS, DECI_V1_PARAMETERS
from studio.engine.errors import InvalidModelError, RequestError
from studio.engine.model_checks import (
    check_config_folder,
    check_deci_unet_config,
    check_model_folder,
    check_safety_checker_config,
    check_text_encoder_config,
    check_tokenizer,
    check_unet_config,
)
from studio.engine.model_info import check_local_model
from studio.library.resources import clip_tokenizer_dir, component_configs_dir

Edit = Callable[[Path], None]


@pytest.fixture(scope="module")
def tiny_deci(tmp_path_factory) -> Path:
    from studio.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-deci", "deci", seed=0)


def config(relative: str, **changes) -> Edit:
    """An edit that sets fields of one JSON file of the folder."""

    def edit(folder: Path) -> None:
        path = folder / relative
        data = json.loads(path.read_text(encoding="utf-8"))
        data.update(changes)
        path.write_text(json.dumps(data), encoding="utf-8")

    return edit


def nested(relative: str, key: str, **changes) -> Edit:
    """An edit of an object inside a JSON file (the safety checker's vision_config, Deci's configurations)."""

    def edit(folder: Path) -> None:
        path = folder / relative
        data = json.loads(path.read_text(encoding="utf-8"))
        data[key].update(changes)
        path.write_text(json.dumps(data), encoding="utf-8")

    return edit


def written(relative: str, content: str) -> Edit:
    def edit(folder: Path) -> None:
        (folder / relative).write_text(content, encoding="utf-8")

    return edit


def tokenizer_json(**model_changes) -> Edit:
    return nested("tokenizer/tokenizer.json", "model", **model_changes)


def slow_tokenizer(then: Edit | None = None) -> Edit:
    """The tokenizer as the real SD repositories ship it (vocab.json + merges.txt, no tokenizer.json)."""

    def edit(folder: Path) -> None:
        tokenizer = folder / "tokenizer"
        shutil.rmtree(tokenizer)
        shutil.copytree(clip_tokenizer_dir(), tokenizer, ignore=shutil.ignore_patterns("tokenizer.json", "*.md"))
        if then is not None:
            then(folder)

    return edit


def removed(*relatives: str) -> Edit:
    def edit(folder: Path) -> None:
        for relative in relatives:
            (folder / relative).unlink()

    return edit


CASES: dict[str, tuple[str, Edit, str]] = {
    # id: (family, edit, what the message says, after the folder's path)
    "unet-channels-1e9": (
        "sd1",
        config("unet/config.json", block_out_channels=[1e9, 64]),
        r"unet/config\.json: block_out_channels\[0\] = 1000000000 is out of range \(1\.\.8192\)",
    ),
    "text-layers-100000": (
        "sd1",
        config("text_encoder/config.json", num_hidden_layers=100_000),
        r"text_encoder/config\.json: num_hidden_layers = 100000 is out of range \(1\.\.256\)",
    ),
    "unet-sample-size-0": ("sd1", config("unet/config.json", sample_size=0), r"sample_size = 0 is out of range"),
    "text-hidden-size-0": ("sd2", config("text_encoder/config.json", hidden_size=0), r"hidden_size = 0 is out of range"),
    "unet-in-channels-0": ("sd1", config("unet/config.json", in_channels=0), r"in_channels = 0 is out of range"),
    "vae-latent-channels--1": (
        "sd1", config("vae/config.json", latent_channels=-1), r"vae/config\.json: latent_channels = -1 is out of range"
    ),
    "vae-no-blocks": ("sd1", config("vae/config.json", block_out_channels=[]), r"block_out_channels has 0 entries"),
    "unet-width-as-text": (
        "sd1", config("unet/config.json", block_out_channels=["32", 64]), r"block_out_channels\[0\] = '32' is a string"
    ),
    "unet-width-as-float": (
        "sd1", config("unet/config.json", block_out_channels=[32.0, 64]), r"block_out_channels\[0\] = 32\.0 is not an integer"
    ),
    "unet-layers-as-bool": ("sd2", config("unet/config.json", layers_per_block=True), r"layers_per_block = true is a boolean"),
    "unet-block-lists-disagree": (
        "sd1", config("unet/config.json", down_block_types=["DownBlock2D"]), r"down_block_types has 1 entry, but block_out_channels has 2"
    ),
    "unet-groups-do-not-divide": ("sd1", config("unet/config.json", norm_num_groups=7), r"not a multiple of norm_num_groups = 7"),
    "unet-cross-attention-mismatch": (
        "sd1", config("unet/config.json", cross_attention_dim=64), r"cross_attention_dim = 64 does not match the text encoder's hidden_size = 32"
    ),
    "text-heads-do-not-divide": (
        "sd1", config("text_encoder/config.json", num_attention_heads=3), r"hidden_size = 32 is not a multiple of num_attention_heads = 3"
    ),
    "text-vocab-0": ("sd1", config("text_encoder/config.json", vocab_size=0), r"vocab_size = 0 is out of range"),
    "text-bigger-than-its-weights": (
        "sd1",
        config("text_encoder/config.json", num_hidden_layers=200),
        r"text_encoder/config\.json: describes at least [\d,]+ parameters, but model\.safetensors holds [\d,]+: the config does not match its weights",
    ),
    "scheduler-1e9-timesteps": (
        "sd1", config("scheduler/scheduler_config.json", num_train_timesteps=10**9), r"num_train_timesteps = 1000000000 is out of range"
    ),
    "safety-checker-width-1e6": (
        "sd1", nested("safety_checker/config.json", "vision_config", hidden_size=10**6), r"\(vision_config\): hidden_size = 1000000 is out of range"
    ),
    "image-processor-size-1e9": (
        "sd1", config("feature_extractor/preprocessor_config.json", size={"shortest_edge": 10**9}), r"size\.shortest_edge = 1000000000 is out of range"
    ),
    "config-nested-100k-deep": (
        "sd1", written("unet/config.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"), r"unet/config\.json: is nested more than 32 levels deep"
    ),
    "config-not-an-object": ("sd2", written("vae/config.json", "[1, 2]"), r"vae/config\.json: holds a list, not a JSON object"),
    "deci-channels-1e9": (
        "deci",
        nested("flexible_unet/config.json", "configurations", down_blocks_out_channels=[32, 10**9, 64]),
        r"flexible_unet/config\.json \(configurations\): down_blocks_out_channels\[1\] = 1000000000 is out of range",
    ),
    "deci-resnets-100000": (
        "deci",
        nested("flexible_unet/config.json", "configurations", mid_num_resnets=100_000),
        r"mid_num_resnets = 100000 is out of range \(0\.\.256\)",
    ),
    "tokenizer-json-empty-vocab": ("sd1", tokenizer_json(vocab={}), r"tokenizer/tokenizer\.json: the vocabulary is empty"),
    "tokenizer-json-no-merges": ("sd1", tokenizer_json(merges=[]), r"tokenizer/tokenizer\.json: no merges"),
    "tokenizer-json-merge-of-unknown-tokens": (
        "sd1", tokenizer_json(merges=["xyzzyq plugh"]), r"merge 1 \(xyzzyq plugh\) uses 'xyzzyq', which the vocabulary lacks"
    ),
    "tokenizer-files-missing": (
        "sd2", removed("tokenizer/tokenizer.json"), r"tokenizer: no tokenizer\.json, and vocab\.json and merges\.txt missing"
    ),
    "vocab-json-emptied": ("sd1", slow_tokenizer(written("tokenizer/vocab.json", "{}")), r"tokenizer/vocab\.json: the vocabulary is empty"),
    "merges-txt-emptied": ("sd1", slow_tokenizer(written("tokenizer/merges.txt", "#version: 0.2\n")), r"tokenizer/merges\.txt: no merges"),
    "merges-txt-missing": ("deci", slow_tokenizer(removed("tokenizer/merges.txt")), r"no tokenizer\.json, and merges\.txt missing"),
    "token-ids-beyond-the-embeddings": (
        "sd1",
        config("text_encoder/config.json", vocab_size=1000),
        r"tokenizer/tokenizer\.json: token ids go up to 49407, but the text encoder has only 1000 embeddings",
    ),
}


@pytest.mark.parametrize(("family", "edit", "expected"), CASES.values(), ids=CASES.keys())
def test_a_broken_folder_is_refused_before_anything_is_built(request, tmp_path, family, edit, expected):
    folder = tmp_path / "broken"
    shutil.copytree(request.getfixturevalue(f"tiny_{family}"), folder)
    edit(folder)
    with pytest.raises(InvalidModelError, match=expected) as err:
        check_model_folder(folder, family)
    message = str(err.value)
    assert message.startswith(str(folder)) and "\n" not in message
    with pytest.raises(InvalidModelError) as picked:
        check_local_model(str(folder))  # the window's "Add a folder"
    assert str(picked.value) == message
    with pytest.raises(InvalidModelError) as loaded:
        Engine(device="cpu", preview="none").load(str(folder))  # the CLI and the window's worker: exit 2
    assert str(loaded.value) == message
    assert isinstance(loaded.value, RequestError)  # what front ends show as it is


def test_tiny_models_and_both_tokenizer_layouts_pass(tiny_sd1, tiny_sd2, tiny_deci, tmp_path):
    for folder, family in ((tiny_sd1, "sd1"), (tiny_sd2, "sd2"), (tiny_deci, "deci")):
        check_model_folder(folder, family)
    check_tokenizer(clip_tokenizer_dir(), vocab_size=49408)  # tokenizer.json is the one read
    slow = tmp_path / "slow"
    shutil.copytree(clip_tokenizer_dir(), slow, ignore=shutil.ignore_patterns("tokenizer.json"))
    check_tokenizer(slow, vocab_size=49408)  # vocab.json + merges.txt, as SD repositories ship them


def test_a_sound_tokenizer_json_does_not_hide_an_emptied_vocab_json(tmp_path):
    """transformers 4.x's slow CLIPTokenizer reads vocab.json + merges.txt even beside tokenizer.json."""
    both = tmp_path / "both"
    shutil.copytree(clip_tokenizer_dir(), both)
    (both / "vocab.json").write_text("{}")
    with pytest.raises(InvalidModelError, match=r"vocab\.json: the vocabulary is empty"):
        check_tokenizer(both, vocab_size=49408)


def test_a_folder_that_passes_still_loads_and_generates(tiny_sd1, tmp_path):
    """Cases at the edges of the bounds that real folders have: a slow tokenizer, no safety checker."""
    from studio.engine import GenerationRequest

    folder = tmp_path / "plain"
    shutil.copytree(tiny_sd1, folder)
    slow_tokenizer()(folder)
    shutil.rmtree(folder / "safety_checker")
    result = Engine(device="cpu", preview="none").generate(
        GenerationRequest(model=str(folder), prompt="a lighthouse", steps=1, width=64, height=64, seed=0)
    )[0]
    assert result.image.size == (64, 64)


# Parameter counts of the real architectures (meta-device builds; the SD ones are checked against the
# shipped configs in test_single_file.py). A bound above one of them would refuse a real model.
SDXL_UNET = {
    "sample_size": 128,
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "use_linear_projection": True,
}
SDXL_UNET_PARAMETERS = 2_567_463_684
CLIP_BIG_G = {
    "architectures": ["CLIPTextModelWithProjection"],
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
}
CLIP_BIG_G_PARAMETERS = 694_659_840
REAL = {
    "sd1": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
}
SAFETY_CHECKER_PARAMETERS = 303_981_588


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_real_configs_pass_with_bounds_below_their_parameter_counts(family):
    bounds = check_config_folder(component_configs_dir(family), family)
    assert bounds.keys() == REAL[family].keys()
    for name, bound in bounds.items():
        assert 0.25 * REAL[family][name] < bound <= REAL[family][name], name


def test_sdxl_and_deci_sized_configs_pass():
    assert check_unet_config(SDXL_UNET, "sdxl/unet/config.json") <= SDXL_UNET_PARAMETERS
    assert check_text_encoder_config(CLIP_BIG_G, "sdxl/text_encoder_2/config.json") <= CLIP_BIG_G_PARAMETERS
    deci = {"configurations": DECI_V1_CONFIGURATIONS, "in_channels": 4, "out_channels": 4}
    assert check_deci_unet_config(deci, "deci/flexible_unet/config.json") <= DECI_V1_PARAMETERS
    safety = json.loads((component_configs_dir("sd1") / "safety_checker" / "config.json").read_text("utf-8"))
    assert check_safety_checker_config(safety, "sd1/safety_checker/config.json") <= SAFETY_CHECKER_PARAMETERS


def test_plausible_fields_that_add_up_to_an_impossible_model_are_refused():
    """Every field within its bounds, together 16 blocks of 8192 channels and 256 layers: too big to build."""
    huge = {
        **SDXL_UNET,
        "block_out_channels": [8192] * 16,
        "down_block_types": ["CrossAttnDownBlock2D"] * 16,
        "up_block_types": ["CrossAttnUpBlock2D"] * 16,
        "transformer_layers_per_block": 256,
        "attention_head_dim": 64,
    }
    with pytest.raises(InvalidModelError, match=r"huge/unet/config\.json: describes at least [\d,]+ parameters, more than"):
        check_unet_config(huge, "huge/unet/config.json")


def test_sharded_weights_are_counted_across_their_shards(tiny_sd1, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "sharded"
    shutil.copytree(tiny_sd1, folder)
    text = folder / "text_encoder"
    state = load_file(text / "model.safetensors")
    (text / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in shards.items():
        save_file({key: state[key] for key in part}, str(text / name))
    index = {"weight_map": {key: name for name, part in shards.items() for key in part}}
    (text / "model.safetensors.index.json").write_text(json.dumps(index))
    check_model_folder(folder, "sd1")
    config("text_encoder/config.json", num_hidden_layers=200)(folder)
    with pytest.raises(InvalidModelError, match=r"but model\.safetensors\.index\.json holds [\d,]+: the config does not match"):
        check_model_folder(folder, "sd1")
    index["weight_map"] = {keys[0]: "../../elsewhere.safetensors"}
    (text / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(InvalidModelError, match="weight_map names files outside"):
        check_model_folder(folder, "sd1")


def test_a_crafted_weight_file_in_a_folder_is_named(tiny_sd1, tmp_path):
    folder = tmp_path / "crafted"
    shutil.copytree(tiny_sd1, folder)
    header = b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    with pytest.raises(InvalidModelError, match=r"vae/diffusion_pytorch_model\.safetensors: is not a valid \.safetensors file"):
        check_model_folder(folder, "sd1")
