"""LoRAs and embeddings on the tiny sd1 model, with files the tests write (kohya keys, random low rank):
switched per job on the loaded model, nothing leaking into the next job, refusals said in one line."""

from __future__ import annotations

import numpy as np
import pytest

from studio.engine import Engine, GenerationRequest
from studio.engine.tiny import make_tiny_embedding, make_tiny_lora
from studio.library.extra_networks import NetworkCatalog, embedding_hash, lora_hash
from studio.library.prompt_syntax import strip_extra_networks


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_sd1, tiny_sd2):
    root = tmp_path_factory.mktemp("networks")
    loras, embeddings = root / "loras", root / "embeddings"
    loras.mkdir()
    embeddings.mkdir()
    make_tiny_lora(tiny_sd1, loras / "style.safetensors", rank=4, seed=1, scale=4.0)
    make_tiny_lora(tiny_sd1, loras / "detail.safetensors", rank=4, seed=2, scale=4.0)
    make_tiny_lora(tiny_sd2, loras / "sd2style.safetensors", rank=4, seed=3, scale=4.0)
    make_tiny_lora(tiny_sd1, loras / "fuzzy.safetensors", rank=4, seed=4, algo="loha")
    make_tiny_embedding(embeddings / "shiny.safetensors", model_dir=tiny_sd1, vectors=2, seed=5, scale=8.0)
    make_tiny_embedding(embeddings / "wide.safetensors", model_dir=tiny_sd2, vectors=1, seed=6, scale=8.0)
    make_tiny_embedding(embeddings / "pickled.pt", model_dir=tiny_sd1, vectors=1, seed=7, fmt="pt")
    return loras, embeddings


@pytest.fixture(scope="module")
def engine(folders):
    loras, embeddings = folders
    return Engine(device="cpu", dtype="float32", backend="torch", preview="none", networks=NetworkCatalog([loras], [embeddings]))


def run(engine, model, prompt: str, negative: str = "", **kw):
    request = GenerationRequest(
        model=str(model), prompt=prompt, negative_prompt=negative, steps=2, seed=11, width=64, height=64,
        scheduler="DDIM", **kw,
    )
    [result] = engine.generate(request)
    return np.asarray(result.image, dtype=np.int16), result


def test_weight_zero_is_the_model_itself_and_one_changes_the_pixels(engine, tiny_sd1):
    plain, _ = run(engine, tiny_sd1, "a red door")
    zero, result = run(engine, tiny_sd1, "a red door <lora:style:0>")
    assert np.array_equal(zero, plain)
    one, result = run(engine, tiny_sd1, "a red door <lora:style:1>")
    assert np.abs(one - plain).max() > 0
    [entry] = result.metadata["loras"]
    assert entry["name"] == "style" and entry["te"] == entry["unet"] == 1.0
    assert entry["sha256"] == lora_hash(engine._networks.catalog.find_lora("style").path)
    after, _ = run(engine, tiny_sd1, "a red door")  # nothing leaks into the next job
    assert np.array_equal(after, plain)


def test_two_loras_compose_and_each_weight_counts(engine, tiny_sd1):
    style, _ = run(engine, tiny_sd1, "a red door <lora:style:1>")
    detail, _ = run(engine, tiny_sd1, "a red door <lora:detail:1>")
    both, result = run(engine, tiny_sd1, "a red door <lora:style:1> <lora:detail:1>")
    assert not np.array_equal(both, style) and not np.array_equal(both, detail)
    assert [e["name"] for e in result.metadata["loras"]] == ["style", "detail"]
    unet_only, _ = run(engine, tiny_sd1, "a red door <lora:style:0:1>")
    assert not np.array_equal(unet_only, style)  # the text encoder's part off


def test_an_embedding_changes_the_output_only_where_its_word_is(engine, tiny_sd1):
    plain, _ = run(engine, tiny_sd1, "a red door")
    named, result = run(engine, tiny_sd1, "a red door, shiny")
    other_word, _ = run(engine, tiny_sd1, "a red door, shinyness")  # not the word
    assert np.abs(named - plain).max() > 0
    [entry] = result.metadata["embeddings"]
    assert entry["name"] == "shiny" and entry["vectors"] == 2
    assert entry["sha256"] == embedding_hash(engine._networks.catalog.find_embedding("shiny").path)
    assert result.metadata["request"]["prompt"] == "a red door, shiny"  # the prompt as typed
    after, _ = run(engine, tiny_sd1, "a red door")
    assert np.array_equal(after, plain)
    weighted, _ = run(engine, tiny_sd1, "a red door, (shiny:1.3)")
    assert not np.array_equal(weighted, named)
    in_negative, result = run(engine, tiny_sd1, "a red door", "shiny")
    assert not np.array_equal(in_negative, plain) and result.metadata["embeddings"][0]["name"] == "shiny"


def test_files_for_another_family_or_format_are_refused_in_one_line(engine, tiny_sd1):
    prompt = "a red door <lora:sd2style> <lora:fuzzy> <lora:nowhere:0.5>, wide, pickled"
    as_text, _ = run(engine, tiny_sd1, strip_extra_networks(prompt))  # the refused embeddings' names are words
    image, result = run(engine, tiny_sd1, prompt)
    assert np.array_equal(image, as_text)
    text = " | ".join(result.warnings)
    assert "LoRA 'sd2style' is for SD 2 and this model is SD 1: not applied" in text
    assert "LoRA 'fuzzy' not applied" in text and "LoHa" in text
    assert "LoRA 'nowhere' not found" in text
    assert "embedding 'wide' is for SD 2" in text
    assert "embedding 'pickled' is a pickle file" in text
    assert "loras" not in result.metadata and "embeddings" not in result.metadata


def test_a_pickled_embedding_loads_with_the_opt_in(folders, tiny_sd1):
    loras, embeddings = folders
    opted = Engine(device="cpu", dtype="float32", backend="torch", preview="none", allow_ckpt=True,
                   networks=NetworkCatalog([loras], [embeddings]))
    _image, result = run(opted, tiny_sd1, "a red door, pickled")
    assert result.metadata["embeddings"][0]["name"] == "pickled"


def test_the_a1111_text_carries_lora_and_ti_hashes(engine, tiny_sd1):
    from studio.library.metadata.a1111 import format_parameters

    _image, result = run(engine, tiny_sd1, "a red door <lora:style:0.8>, shiny")
    text = format_parameters(result.metadata)
    style = lora_hash(engine._networks.catalog.find_lora("style").path)[:12]
    shiny = embedding_hash(engine._networks.catalog.find_embedding("shiny").path)[:12]
    assert f'Lora hashes: "style: {style}"' in text
    assert f'TI hashes: "shiny: {shiny}"' in text


def test_auto_runs_an_int8_lora_job_on_pytorch_and_others_where_auto_would(folders, tiny_sd1, monkeypatch):
    monkeypatch.setenv("STUDIO_AUTO_BACKEND", "openvino")  # what auto is on a CPU with OpenVINO installed
    loras, embeddings = folders
    catalog = NetworkCatalog([loras], [embeddings])
    lora_job = GenerationRequest(model=str(tiny_sd1), prompt="x <lora:style>")
    int8 = Engine(device="cpu", dtype="int8", backend="auto", preview="none", networks=catalog)
    assert int8.placement(lora_job).backend == "torch"  # OpenVINO's int8 would quantize the LoRA away
    assert int8.placement(GenerationRequest(model=str(tiny_sd1), prompt="x, shiny")).backend == "torch"
    assert int8.placement(GenerationRequest(model=str(tiny_sd1), prompt="x")).backend == "openvino"
    plain = Engine(device="cpu", dtype="float32", backend="auto", preview="none", networks=catalog)
    assert plain.placement(lora_job).backend == "openvino"  # it applies them in float32 and bfloat16


def test_an_sd1_lora_on_decidiffusion_applies_its_text_encoder_half_and_says_so(engine, tmp_path_factory):
    from studio.engine.tiny import make_tiny_model

    deci = make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-deci", "deci", seed=0)
    plain, _ = run(engine, deci, "a red door")
    styled, result = run(engine, deci, "a red door <lora:style:1>")
    assert not np.array_equal(styled, plain)  # the text encoder's layers changed the conditioning
    [entry] = result.metadata["loras"]
    assert entry["name"] == "style"
    [note] = [w for w in result.warnings if "style" in w]
    assert "applied to" in note and "do not exist in this model" in note
    again, _ = run(engine, deci, "a red door")
    assert np.array_equal(again, plain)


def test_an_a1111_text_round_trip_keeps_the_tags_and_the_hashes(engine, tiny_sd1):
    """What another tool reads of our image (its A1111 text): the prompt with its tags, which reuse
    restores, and the hashes Civitai looks the files up by."""
    from studio.library.metadata.a1111 import format_parameters, from_a1111

    _image, result = run(engine, tiny_sd1, "a red door <lora:style:0.8>, shiny", "blurry <lora:detail:1>")
    meta = from_a1111(format_parameters(result.metadata))
    fields = meta.reuse_fields()
    assert fields["prompt"] == "a red door <lora:style:0.8>, shiny"
    assert fields["negative_prompt"] == "blurry <lora:detail:1>"
    style = lora_hash(engine._networks.catalog.find_lora("style").path)[:12]
    assert meta.extra["Lora hashes"] == f"style: {style}"
    assert meta.extra["TI hashes"].startswith("shiny: ")
