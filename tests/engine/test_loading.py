"""Model sources: catalogue, hub cache (offline, real cache layout), folders, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from studio.engine import Engine, GenerationRequest, ModelNotFoundError, RequestError
from studio.engine.loading import (
    allow_patterns,
    detect_folder_family,
    fetch_from_hub,
    resolve_source,
)
from studio.engine.precision import choose_placement

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(cache, repo, model_dir, commit=COMMIT, ref="main"):
    """The Hugging Face cache layout: models--owner--name/{snapshots/<commit>/..., refs/<ref>}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(model_dir, root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / ref).write_text(commit)
    return root / "snapshots" / commit


def test_resolve_source_kinds(tiny_sd1, tmp_path):
    assert resolve_source("sd-1.4").kind == "catalog"
    assert resolve_source(str(tiny_sd1)).kind == "folder"
    hub = resolve_source("someone/some-model@abc123")
    assert (hub.kind, hub.repo, hub.revision) == ("hub", "someone/some-model", "abc123")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    assert resolve_source(str(weights)).kind == "file"
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(RequestError, match="not a model file"):
        resolve_source(str(notes))
    with pytest.raises(ModelNotFoundError, match="not in the catalogue"):
        resolve_source("no-such-model")


def test_family_detection_from_configs(tiny_sd1, tiny_sd2):
    assert detect_folder_family(tiny_sd1) == "sd1"
    assert detect_folder_family(tiny_sd2) == "sd2"


def test_hub_model_loads_from_the_local_cache_offline(tiny_sd2, tmp_path):
    fake_hub_cache(tmp_path, "someone/tiny-v", tiny_sd2)
    engine = Engine(device="cpu", offline=True, cache_dir=tmp_path, preview="none")
    result = engine.generate(
        GenerationRequest(model=f"someone/tiny-v@{COMMIT}", prompt="x", steps=2, width=64, height=64, seed=1)
    )[0]
    assert result.metadata["model"]["repo"] == "someone/tiny-v"
    assert result.metadata["model"]["revision"] == COMMIT
    assert result.metadata["model"]["family"] == "sd2"
    # A branch name resolves through refs/ to the same pinned snapshot.
    assert fetch_from_hub("someone/tiny-v", "main", offline=True, cache_dir=tmp_path).name == COMMIT


def test_missing_hub_model_offline_says_how_to_get_it(tmp_path):
    engine = Engine(device="cpu", offline=True, cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError) as info:
        engine.load("sd-1.4")
    message = str(info.value)
    assert "CompVis/stable-diffusion-v1-4" in message and "not downloaded" in message and "offline" in message


# File lists in the shape of the real repositories (weights beside their variants and pickles).
SD_REPO_FILES = [
    "model_index.json", "README.md", "v1-inference.yaml", "scheduler/scheduler_config.json",
    "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
    "feature_extractor/preprocessor_config.json",
    *(
        f"{folder}/{stem}{variant}"
        for folder, stem in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                             ("text_encoder", "model"), ("safety_checker", "model"))
        for variant in (".safetensors", ".fp16.safetensors", ".non_ema.safetensors", ".bin", ".fp16.bin")
    ),
    "unet/config.json", "vae/config.json", "text_encoder/config.json", "safety_checker/config.json",
]
DECI_REPO_FILES = [
    *(f for f in SD_REPO_FILES if not f.startswith("unet/")),
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors", "pipeline.py",
    "flexible_unet/config.json", "flexible_unet/diffusion_pytorch_model.fp16.safetensors",
]


def _fetched(entry, files):
    from huggingface_hub.utils import filter_repo_objects

    return set(
        filter_repo_objects(
            files, allow_patterns=allow_patterns(entry, entry.family), ignore_patterns=list(entry.ignore_patterns)
        )
    )


def test_download_is_limited_to_what_is_used():
    from studio.engine.catalog import CATALOG

    fetched = _fetched(CATALOG["deci-diffusion-1.0"], DECI_REPO_FILES)
    assert "flexible_unet/diffusion_pytorch_model.fp16.safetensors" in fetched  # its only weights
    assert not any(f.startswith(("unet/", "safety_checker/")) or f.endswith(".py") for f in fetched)
    weights = {f for f in fetched if f.endswith(".safetensors")}
    assert weights == {
        "flexible_unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    }

    fetched = _fetched(CATALOG["sd-1.4"], SD_REPO_FILES)
    weights = {f for f in fetched if f.endswith((".safetensors", ".bin"))}
    assert weights == {  # one file each: no fp16 / non-EMA twins, no pickles
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "safety_checker/model.safetensors",
    }
    assert {"model_index.json", "tokenizer/vocab.json", "feature_extractor/preprocessor_config.json"} <= fetched
    assert "safety_checker/model.safetensors" not in _fetched(CATALOG["sd-2.1"], SD_REPO_FILES)

    sharded = ["unet/diffusion_pytorch_model-00001-of-00002.safetensors",
               "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
               "unet/diffusion_pytorch_model.safetensors.index.json"]
    assert set(sharded) <= _fetched(CATALOG["sd-2.1"], SD_REPO_FILES + sharded)


def test_catalogue_pins_full_commit_ids():
    """The hub resolves branches, tags and full 40-hex commit ids, never short ones: a short pin would be a
    RevisionNotFound on every download."""
    import re

    from studio.engine.catalog import CATALOG

    for entry in CATALOG.values():
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.id
    assert CATALOG["deci-diffusion-1.0"].revision.startswith("99d0c31")  # design.md's revision


def test_placement_choices(monkeypatch):
    monkeypatch.setenv("STUDIO_AUTO_CPU_DTYPE", "float32")  # the CPU's own rule is tests/engine/test_precision.py's
    placement = choose_placement("auto", "auto")
    assert placement.device in {"cpu", "cuda", "mps"}
    assert choose_placement("cpu", "auto").dtype_name == "float32"
    assert choose_placement("cpu", "bf16").dtype_name == "bfloat16"
    with pytest.raises(RequestError, match="not supported on the CPU"):
        choose_placement("cpu", "float16")
    with pytest.raises(RequestError, match="unknown device"):
        choose_placement("tpu")


def test_cuda_asked_on_a_machine_without_it():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RequestError, match="sees no CUDA GPU"):
        choose_placement("cuda")


def test_not_a_diffusers_folder(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(RequestError, match="missing vae/, text_encoder/, tokenizer/, scheduler/"):
        Engine(device="cpu").load(str(tmp_path))


def test_pickle_only_weights_are_refused_without_opt_in(tiny_sd1, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_sd1, folder)
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(vae), folder / "vae" / "diffusion_pytorch_model.bin")
    vae.unlink()
    with pytest.raises(RequestError, match="pickle"):
        Engine(device="cpu").load(str(folder))
    loaded = Engine(device="cpu", allow_ckpt=True).load(str(folder))  # opt-in: weights_only loading
    assert loaded.family == "sd1"


def test_repository_code_is_never_run(tiny_sd1, tmp_path):
    """A folder naming a custom pipeline class and shipping code loads with our classes; its code never runs."""
    folder = tmp_path / "custom"
    shutil.copytree(tiny_sd1, folder)
    marker = tmp_path / "code-ran"
    (folder / "pipeline.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = ["pipeline", "EvilPipeline"]
    (folder / "model_index.json").write_text(json.dumps(index))
    result = Engine(device="cpu", preview="none").generate(
        GenerationRequest(model=str(folder), prompt="x", steps=2, width=64, height=64, seed=0)
    )
    assert result[0].image.size == (64, 64)
    assert not marker.exists()


def test_single_file_through_the_engine_records_the_model_hash(tmp_path):
    """A .safetensors single file, via Engine: generates, and metadata carries A1111's 10-hex model hash."""
    import hashlib

    from studio.engine.tiny import build_tiny_pipeline
    from tests.engine.ldm_export import pipeline_to_ldm, save_safetensors, write_config_dir

    pipe = build_tiny_pipeline("sd1", seed=3)
    path = save_safetensors(pipeline_to_ldm(pipe, "sd1"), tmp_path / "tiny.safetensors")
    configs = write_config_dir(pipe, tmp_path / "configs")
    engine = Engine(device="cpu", preview="none", single_file_configs=configs)
    result = engine.generate(GenerationRequest(model=str(path), prompt="x", steps=2, width=64, height=64, seed=0))[0]
    meta = result.metadata["model"]
    assert meta["hash"] == hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    assert (meta["family"], meta["path"], meta["id"]) == ("sd1", str(path), "tiny.safetensors")
    assert result.nsfw is None  # single files carry no safety checker


def test_sd2_file_prediction_note_defaults_and_a_sidecar_added_later(tmp_path):
    """An undescribed SD 2.x file runs as 768-v and says so once; a YAML put beside it afterwards takes
    effect on the next generation (512-base: epsilon, 512 px default) without restarting."""
    from studio.engine.tiny import build_tiny_pipeline
    from tests.engine.ldm_export import pipeline_to_ldm, save_safetensors, write_config_dir

    pipe = build_tiny_pipeline("sd2", seed=4)
    path = save_safetensors(pipeline_to_ldm(pipe, "sd2"), tmp_path / "base.safetensors")
    engine = Engine(device="cpu", preview="none", single_file_configs=write_config_dir(pipe, tmp_path / "configs"))
    request = GenerationRequest(model=str(path), prompt="x", steps=2, width=64, height=64, seed=0)

    first = engine.generate(request)[0]
    assert first.metadata["scheduler_config"]["prediction_type"] == "v_prediction"
    assert engine.load(str(path)).defaults.size == 768
    assert len(first.warnings) == 1 and "768-v" in first.warnings[0] and "base.yaml" in first.warnings[0]
    again = engine.generate(request)[0]
    assert again.warnings == [] and np.array_equal(np.asarray(again.image), np.asarray(first.image))

    (tmp_path / "base.yaml").write_text("parameterization: eps\n", encoding="utf-8")
    base = engine.generate(request)[0]
    assert base.metadata["scheduler_config"]["prediction_type"] == "epsilon"
    assert base.warnings == ["base.safetensors: epsilon (noise) prediction, from base.yaml beside the file"]
    assert engine.load(str(path)).defaults.size == 512
    assert not np.array_equal(np.asarray(base.image), np.asarray(first.image))  # the same weights, read as eps


def test_sd2_base_folder_defaults_to_512(tiny_sd2, tmp_path):
    """A diffusers SD 2.x folder predicting epsilon is a 512-base model: 512 px, not 768-v's 768."""
    from studio.engine.loading import local_model_kind

    folder = tmp_path / "sd2-base"
    shutil.copytree(tiny_sd2, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["prediction_type"] = "epsilon"
    config_path.write_text(json.dumps(config))
    engine = Engine(device="cpu", preview="none")
    assert (engine.load(str(tiny_sd2)).defaults.size, engine.load(str(folder)).defaults.size) == (768, 512)
    assert local_model_kind(str(folder)) == ("sd2", "epsilon")


def test_local_model_kind_reads_configs_and_headers_only(tiny_sd1, tmp_path):
    from studio.engine.loading import local_model_kind
    from studio.engine.tiny import build_tiny_pipeline
    from tests.engine.ldm_export import pipeline_to_ldm, save_safetensors

    assert local_model_kind(str(tiny_sd1)) == ("sd1", "epsilon")
    path = save_safetensors(pipeline_to_ldm(build_tiny_pipeline("sd2", seed=4), "sd2"), tmp_path / "m.safetensors")
    assert local_model_kind(str(path)) == ("sd2", "v_prediction")
    (tmp_path / "m.yaml").write_text("parameterization: eps\n", encoding="utf-8")
    assert local_model_kind(str(path)) == ("sd2", "epsilon")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    assert local_model_kind(str(tmp_path / "junk.safetensors")) == ("sd1", None)  # a guess; loading says why
    assert local_model_kind(str(tmp_path / "absent")) == ("sd1", None)


def test_taesd_previews_come_from_the_local_cache(tiny_sd1, tmp_path):
    """With madebyollin/taesd in the local HF cache, previews are TAESD decodes at full image size."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    taesd = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
    )
    snapshot = tmp_path / "models--madebyollin--taesd" / "snapshots" / COMMIT
    taesd.save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)
    events = []
    Engine(device="cpu", preview="auto", cache_dir=tmp_path).generate(
        GenerationRequest(model=str(tiny_sd1), prompt="x", steps=2, width=64, height=64, seed=0, scheduler="DDIM"), on_step=events.append
    )
    assert [e.preview.size for e in events] == [(64, 64), (64, 64)]
    linear = []
    Engine(device="cpu", preview="auto", cache_dir=tmp_path / "empty").generate(
        GenerationRequest(model=str(tiny_sd1), prompt="x", steps=2, width=64, height=64, seed=0, scheduler="DDIM"), on_step=linear.append
    )
    assert [e.preview.size for e in linear] == [(8, 8), (8, 8)]  # no TAESD: the linear preview


def test_download_progress_is_forwarded_in_bytes():
    from studio.engine.loading import _progress_class

    seen = []
    bar = _progress_class(seen.append)(total=300, unit="B", desc="Downloading")
    bar.update(100)
    bar.update(200)
    bar.close()
    assert [(p.done, p.total) for p in seen] == [(100, 300), (300, 300)]


def test_missing_model_files_names_what_a_snapshot_lacks(tiny_sd1, tmp_path):
    from studio.engine.catalog import CATALOG
    from studio.engine.loading import missing_model_files

    folder = tmp_path / "m"
    shutil.copytree(tiny_sd1, folder)
    assert missing_model_files(folder) == []
    assert missing_model_files(folder, CATALOG["sd-1.4"]) == []  # its safety checker is there too
    shutil.rmtree(folder / "safety_checker")
    assert missing_model_files(folder) == []  # optional outside the catalogue
    assert missing_model_files(folder, CATALOG["sd-1.4"]) == ["safety_checker/config.json", "safety_checker/model.safetensors"]
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(folder / "unet" / "diffusion_pytorch_model-00001-of-00002.safetensors")
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "diffusion_pytorch_model-00001-of-00002.safetensors", "b": "diffusion_pytorch_model-00002-of-00002.safetensors",
    }}))
    assert missing_model_files(folder) == ["unet/diffusion_pytorch_model-00002-of-00002.safetensors"]


def test_a_half_downloaded_snapshot_is_not_a_local_model(tiny_sd2, tmp_path):
    """Without huggingface_hub's file listing (older clients, hand copies) the hub client hands back any
    snapshot folder; the app's own check says that one is incomplete, and offline that is a clear error."""
    from studio.engine.loading import is_in_local_cache

    snapshot = fake_hub_cache(tmp_path, "someone/half", tiny_sd2)
    assert is_in_local_cache("someone/half", COMMIT, cache_dir=tmp_path) == snapshot
    (snapshot / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    assert is_in_local_cache("someone/half", COMMIT, cache_dir=tmp_path) is None
    with pytest.raises(ModelNotFoundError, match=f"someone/half@{COMMIT} is not downloaded"):
        fetch_from_hub("someone/half", COMMIT, offline=True, cache_dir=tmp_path)


def test_the_hub_cache_and_endpoint_are_read_when_used(tmp_path, monkeypatch):
    """huggingface_hub reads HF_HUB_CACHE and HF_ENDPOINT once, at import; the app reads them when it needs them."""
    from studio.engine.loading import hub_cache_dir, hub_endpoint, repo_cache_folder

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert repo_cache_folder("a/b") == tmp_path / "cache" / "models--a--b"
    assert hub_cache_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hub_endpoint() == "http://127.0.0.1:9"


def test_a_misspelt_model_is_bad_input_a_missing_one_a_failure():
    """The CLI maps UnknownModelError to exit 2 and other ModelNotFoundErrors to exit 1 (errors.py)."""
    from studio.engine.errors import UnknownModelError

    with pytest.raises(UnknownModelError):
        resolve_source("no such model")
    assert issubclass(UnknownModelError, ModelNotFoundError) and issubclass(ModelNotFoundError, RequestError)


def test_crafted_files_and_configs_are_bad_input_not_crashes(tiny_sd1, tmp_path):
    """A header with Infinity in a shape, a config nested 100,000 deep: an InvalidModelError (a RequestError:
    CLI exit 2) naming the file when loaded, a plain guess for the forms that only want the family."""
    from studio.engine.errors import InvalidModelError
    from studio.engine.loading import detect_folder_family, local_model_kind

    header = b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'
    crafted = tmp_path / "crafted.safetensors"
    crafted.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    with pytest.raises(InvalidModelError, match=r"crafted\.safetensors: is not a valid \.safetensors file: its header holds Infinity"):
        Engine(device="cpu", preview="none").load(str(crafted))
    assert local_model_kind(str(crafted)) == ("sd1", None)

    folder = tmp_path / "nested"
    shutil.copytree(tiny_sd1, folder)
    (folder / "unet" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidModelError, match=r"unet/config\.json: is nested more than 32 levels deep"):
        detect_folder_family(folder)
    with pytest.raises(InvalidModelError, match=r"unet/config\.json: is nested more than 32 levels deep"):
        Engine(device="cpu", preview="none").load(str(folder))
    assert local_model_kind(str(folder)) == ("sd1", None)
    assert issubclass(InvalidModelError, RequestError) and not issubclass(InvalidModelError, ModelNotFoundError)
