"""LoRAs and embeddings on the OpenVINO backend (the tiny sd1 model, float32 unless said): the converted
text encoder and UNet take LoRA matrices and embedding vectors as inputs, so switching them costs no
reconversion, a job without them gives the plain network's pixels, and the pixels stay close to torch's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from studio.engine import Engine, GenerationRequest
from studio.engine.precision import choose_placement
from studio.engine.tiny import make_tiny_embedding, make_tiny_lora
from studio.library.extra_networks import NetworkCatalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_sd1):
    root = tmp_path_factory.mktemp("ov-networks")
    loras, embeddings = root / "loras", root / "embeddings"
    loras.mkdir()
    embeddings.mkdir()
    make_tiny_lora(tiny_sd1, loras / "style.safetensors", rank=4, seed=1, scale=4.0)
    make_tiny_lora(tiny_sd1, loras / "detail.safetensors", rank=4, alpha=2.0, seed=2, scale=4.0, fmt="peft")
    make_tiny_lora(tiny_sd1, loras / "locon.safetensors", rank=4, seed=3, scale=4.0, conv=True)
    make_tiny_embedding(embeddings / "shiny.safetensors", model_dir=tiny_sd1, vectors=2, seed=5, scale=8.0)
    return NetworkCatalog([loras], [embeddings])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ov-lora-cache")


@pytest.fixture(scope="module")
def said():
    return []


@pytest.fixture(scope="module")
def ov(catalog, cache, said, tiny_sd1):
    engine = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=cache,
                    networks=catalog, on_status=said.append)
    engine.load(str(tiny_sd1))
    return engine


@pytest.fixture(scope="module")
def on_torch(catalog):
    return Engine(device="cpu", dtype="float32", backend="torch", preview="none", networks=catalog)


def run(engine, model, prompt: str, **kw):
    request = GenerationRequest(model=str(model), prompt=prompt, steps=2, seed=11, width=64, height=64, scheduler="DDIM", **kw)
    [result] = engine.generate(request)
    return np.asarray(result.image, dtype=np.int16), result


def test_weight_zero_is_the_plain_model_one_changes_it_and_nothing_leaks(ov, tiny_sd1, said):
    plain, _ = run(ov, tiny_sd1, "a red door")
    zero, _ = run(ov, tiny_sd1, "a red door <lora:style:0>")
    assert np.array_equal(zero, plain)
    one, result = run(ov, tiny_sd1, "a red door <lora:style:1>")
    assert np.abs(one - plain).mean() > 1
    assert result.metadata["backend"] == "openvino" and result.metadata["loras"][0]["name"] == "style"
    assert not [w for w in result.warnings if "not applied" in w]
    after, _ = run(ov, tiny_sd1, "a red door")
    assert np.array_equal(after, plain)
    assert not [text for text in said if "Optimising" in text and "UNet" in text][1:]  # converted once, at load


def test_lora_pixels_are_close_to_torch(ov, on_torch, tiny_sd1):
    for prompt in ("a red door <lora:style:1>", "a red door <lora:detail:0.8>", "a red door <lora:style:1:0.5>"):
        mine, _ = run(ov, tiny_sd1, prompt)
        theirs, _ = run(on_torch, tiny_sd1, prompt)
        plain, _ = run(on_torch, tiny_sd1, "a red door")
        assert np.abs(mine - theirs).mean() < 0.25  # measured 0.04 (the plain model's own difference: 0.03)
        assert np.abs(theirs - plain).mean() > 1


def test_two_loras_compose(ov, on_torch, tiny_sd1):
    style, _ = run(ov, tiny_sd1, "a red door <lora:style:1>")
    detail, _ = run(ov, tiny_sd1, "a red door <lora:detail:1>")
    both, result = run(ov, tiny_sd1, "a red door <lora:style:1> <lora:detail:1>")
    assert np.abs(both - style).mean() > 1 and np.abs(both - detail).mean() > 1
    assert [entry["name"] for entry in result.metadata["loras"]] == ["style", "detail"]
    theirs, _ = run(on_torch, tiny_sd1, "a red door <lora:style:1> <lora:detail:1>")
    assert np.abs(both - theirs).mean() < 0.25


def test_layers_openvino_does_not_take_are_said(ov, tiny_sd1):
    _pixels, result = run(ov, tiny_sd1, "a red door <lora:locon:1>")
    [note] = [w for w in result.warnings if "locon" in w]
    assert "applied to" in note and "of its" in note


def test_an_embedding_changes_the_output_only_where_its_word_is(ov, on_torch, tiny_sd1):
    plain, _ = run(ov, tiny_sd1, "a red door")
    shiny, result = run(ov, tiny_sd1, "a shiny red door")
    assert np.abs(shiny - plain).mean() > 1
    assert result.metadata["embeddings"][0]["name"] == "shiny" and result.metadata["embeddings"][0]["vectors"] == 2
    theirs, _ = run(on_torch, tiny_sd1, "a shiny red door")
    assert np.abs(shiny - theirs).mean() < 0.25
    after, _ = run(ov, tiny_sd1, "a red door")
    assert np.array_equal(after, plain)
    with_lora, _ = run(ov, tiny_sd1, "a shiny red door <lora:style:1>")
    theirs, _ = run(on_torch, tiny_sd1, "a shiny red door <lora:style:1>")
    assert np.abs(with_lora - theirs).mean() < 0.25


def test_a_second_engine_applies_loras_from_the_cache_without_converting(ov, catalog, cache, tiny_sd1):
    first, _ = run(ov, tiny_sd1, "a shiny red door <lora:style:1>")
    said = []
    second = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=cache,
                    networks=catalog, on_status=said.append)
    again, result = run(second, tiny_sd1, "a shiny red door <lora:style:1>")
    assert np.array_equal(first, again) and result.metadata["backend"] == "openvino"
    assert not [text for text in said if "Optimising" in text]


def test_bfloat16_applies_a_lora(catalog, cache, tiny_sd1):
    engine = Engine(device="cpu", dtype="bfloat16", backend="openvino", preview="none", openvino_cache=cache, networks=catalog)
    plain, _ = run(engine, tiny_sd1, "a red door")
    one, result = run(engine, tiny_sd1, "a red door <lora:style:1>")
    assert result.metadata["backend"] == "openvino" and np.abs(one - plain).mean() > 1
    f32 = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=cache, networks=catalog)
    reference, _ = run(f32, tiny_sd1, "a red door <lora:style:1>")
    assert np.abs(one - reference).mean() < 3


def test_int8_on_openvino_says_it_does_not_apply_them(catalog, tiny_sd1):
    engine = Engine(device="cpu", dtype="int8", backend="openvino", preview="none", networks=catalog)
    model = SimpleNamespace(placement=choose_placement("cpu", "int8", "openvino"))
    request = GenerationRequest(model=str(tiny_sd1), prompt="a shiny door <lora:style:1>")
    prepared = engine._prepare_networks(model, request)
    [note] = prepared.notes
    assert "not applied" in note and "int8" in note and "style" in note and "shiny" in note
    assert prepared.prompt.strip() == "a shiny door"
