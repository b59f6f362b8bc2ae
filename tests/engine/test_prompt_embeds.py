"""Weighted and long prompts on real tiny pipelines: embeddings, chunks, padding, and the images they give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.engine import GenerationRequest
from studio.engine.prompt_embeds import (
    chunk_input_ids,
    count_tokens,
    encode_prompts,
    needs_embeddings,
    prompt_chunks,
)

LONG = " ".join(["intricate"] * 150)  # "intricate" is one CLIP token


def req(model, **kw) -> GenerationRequest:
    base = {"prompt": "a lighthouse at dusk", "steps": 3, "seed": 7, "width": 64, "height": 64, "scheduler": None}
    return GenerationRequest(model=str(model), **{**base, **kw})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(params=["sd1", "sd2"])
def tiny(request, tiny_sd1, tiny_sd2):
    return {"sd1": tiny_sd1, "sd2": tiny_sd2}[request.param]


def pipe_of(engine, model):
    return engine.load(str(model)).txt2img


def encode(pipe, prompt, negative="", **kw):
    """Embeddings in the text encoder's own dtype (float32, or bfloat16 where STUDIO_AUTO_CPU_DTYPE says so),
    as the engine asks for them and as diffusers' encode_prompt returns them."""
    return encode_prompts(pipe, prompt, negative, device=torch.device("cpu"), dtype=pipe.text_encoder.dtype, **kw)


# ----------------------------------------------------------------------------------- embeddings
def test_unweighted_prompt_equals_diffusers_encode_prompt(engine, tiny):
    pipe = pipe_of(engine, tiny)
    prompt, negative = "a lighthouse at dusk, oil painting", "blurry, low quality"
    ours, ours_negative, info = encode(pipe, prompt, negative)
    with torch.no_grad():
        theirs, theirs_negative = pipe.encode_prompt(prompt, "cpu", 1, True, negative)
    assert ours.shape == theirs.shape == (1, 77, pipe.text_encoder.config.hidden_size)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_negative, theirs_negative, atol=1e-5, rtol=0)
    assert (info.prompt_chunks, info.negative_chunks, info.chunks) == (1, 1, 1)


def test_clip_skip_reads_an_earlier_layer(engine, tiny_sd1):
    """clip_skip=1 (A1111's "Clip skip: 2"): the layer before the last, through the final layer norm.

    (diffusers' own clip_skip path looks for `text_encoder.text_model`, which transformers 5 removed.)
    """
    pipe = pipe_of(engine, tiny_sd1)
    ours, ours_negative, _ = encode(pipe, "a cat", "blurry", clip_skip=1)
    encoder = pipe.text_encoder
    with torch.no_grad():
        for text, got in (("a cat", ours), ("blurry", ours_negative)):
            ids = pipe.tokenizer(text, padding="max_length", max_length=77, return_tensors="pt").input_ids
            hidden = encoder(ids, output_hidden_states=True).hidden_states[-2]
            torch.testing.assert_close(got, encoder.final_layer_norm(hidden), atol=1e-5, rtol=0)
    last, _, _ = encode(pipe, "a cat", "blurry")
    assert not torch.allclose(ours, last)


def test_empty_negative_equals_diffusers_unconditional(engine, tiny_sd1):
    pipe = pipe_of(engine, tiny_sd1)
    _, negative, info = encode(pipe, "a cat", "")
    with torch.no_grad():
        _, theirs = pipe.encode_prompt("a cat", "cpu", 1, True, None)
    torch.testing.assert_close(negative, theirs, atol=1e-5, rtol=0)
    assert info.negative_tokens == 0 and info.negative_chunks == 1


def test_weight_one_gives_identical_embeddings(engine, tiny_sd1):
    pipe = pipe_of(engine, tiny_sd1)
    plain, _, _ = encode(pipe, "a cat on a mat")
    for text in ("a (cat:1.0) on a mat", "a [(cat)] on a mat"):
        weighted, _, _ = encode(pipe, text)
        assert torch.equal(plain, weighted), text


def a1111_emphasis(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The oracle: A1111's "Original" emphasis, with the engine's documented guard: the mean is restored
    only where both means stand clear of rounding noise (MEAN_NOISE_FLOOR of the spread)."""
    from studio.engine.prompt_embeds import MEAN_NOISE_FLOOR

    z = hidden.double()
    floor = MEAN_NOISE_FLOOR * z.std(correction=0)
    scaled = z * weights.double().reshape(1, -1, 1)
    if abs(z.mean()) > floor and abs(scaled.mean()) > floor:
        scaled = scaled * (z.mean() / scaled.mean())
    return scaled.to(hidden.dtype)


def test_weights_follow_a1111_emphasis(engine, tiny_sd1):
    """Hidden states times the token weights, rescaled so the chunk's mean is unchanged."""
    pipe = pipe_of(engine, tiny_sd1)
    base, _, _ = encode(pipe, "a cat")
    weighted, _, info = encode(pipe, "a (cat:1.5)")
    assert info.prompt_tokens == 2
    # The tiny encoder's norms are trained-looking: its mean is a signal, so the rescale really runs here.
    assert abs(base.mean().item()) > 0.05 * base.std().item()
    weights = torch.ones(77)
    weights[2] = 1.5  # BOS, "a", "cat"
    # The encoder may run in bfloat16 (STUDIO_AUTO_CPU_DTYPE): the engine rounds its result to that dtype.
    encoder_dtype = pipe.text_encoder.dtype
    tolerance = 1e-5 if encoder_dtype == torch.float32 else 2 * torch.finfo(encoder_dtype).eps
    expected = a1111_emphasis(base, weights)
    torch.testing.assert_close(weighted, expected, atol=tolerance, rtol=tolerance)
    assert weighted.mean().item() == pytest.approx(base.mean().item(), rel=max(tolerance, 1e-4))
    assert not torch.allclose(weighted, base)


def test_weights_that_cancel_the_mean_are_not_divided_by_zero():
    """A1111 divides by the weighted mean; where weights make it exactly 0 that is inf/NaN embeddings (a
    black image). The scaled states are kept as they are instead."""
    from studio.engine.prompt_embeds import _apply_weights

    hidden = torch.ones(1, 3, 2)
    out = _apply_weights(hidden, [1.0, -1.0, 0.0])
    assert torch.equal(out, torch.tensor([[[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_mean_that_is_rounding_noise_is_not_restored(dtype):
    """States straight out of a LayerNorm without bias have a mean of 0 up to rounding: dividing by it
    would multiply the embeddings by an arbitrary factor (NaN where it is exactly 0), different on every
    CPU and dtype. Below the noise floor the weighted states are kept as they are."""
    from studio.engine.prompt_embeds import _apply_weights

    generator = torch.Generator().manual_seed(0)
    hidden = torch.nn.functional.layer_norm(torch.randn(1, 77, 32, generator=generator), (32,)).to(dtype)
    weights = [1.0] * 77
    weights[2] = 1.5
    out = _apply_weights(hidden, weights)
    expected = (hidden.float() * torch.tensor(weights).reshape(1, -1, 1)).to(dtype)
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    torch.testing.assert_close(out, a1111_emphasis(hidden, torch.tensor(weights)), atol=1e-2, rtol=1e-2)


def test_a_mean_clear_of_the_noise_floor_is_restored():
    from studio.engine.prompt_embeds import _apply_weights

    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(1, 77, 32, generator=generator) + 0.2
    weights = [1.0] * 77
    weights[5] = 0.5
    out = _apply_weights(hidden, weights)
    assert out.mean().item() == pytest.approx(hidden.mean().item(), rel=1e-5)
    torch.testing.assert_close(out, a1111_emphasis(hidden, torch.tensor(weights)), atol=1e-5, rtol=1e-5)


def test_embeddings_respect_dtype(engine, tiny_sd1):
    pipe = pipe_of(engine, tiny_sd1)
    embeds, negative, _ = encode_prompts(pipe, "(cat:1.2)", "", device="cpu", dtype=torch.float16)
    assert embeds.dtype == negative.dtype == torch.float16 and embeds.device.type == "cpu"
    assert not embeds.requires_grad


# ---------------------------------------------------------------------------------------- chunks
def test_long_prompt_makes_two_chunks(engine, tiny_sd1):
    pipe = pipe_of(engine, tiny_sd1)
    embeds, negative, info = encode(pipe, LONG, "blurry")
    assert embeds.shape[1] == negative.shape[1] == 154
    assert (info.prompt_chunks, info.negative_chunks, info.chunks) == (2, 1, 2)
    assert (info.prompt_tokens, info.negative_tokens) == (150, 1)
    assert count_tokens(pipe.tokenizer, LONG) == (150, 2)
    # The first chunk reads the first 75 tokens exactly as a 75-token prompt alone would.
    first, _, _ = encode(pipe, " ".join(["intricate"] * 75))
    torch.testing.assert_close(embeds[:, :77], first, atol=0, rtol=0)


def test_long_prompt_wraps_at_a_comma_like_a1111(engine, tiny_sd1):
    """70 tokens of phrases, then one that does not fit: it moves whole to the second chunk, whose
    embeddings are those of the phrase alone."""
    pipe = pipe_of(engine, tiny_sd1)
    phrases = ", ".join(["a red apple on a table"] * 11)  # 6 tokens + a comma each
    chunks = prompt_chunks(pipe.tokenizer, phrases)
    assert [len(c.tokens) for c in chunks] == [70, 6]
    assert pipe.tokenizer.decode(chunks[1].tokens) == "a red apple on a table"
    embeds, _, _ = encode(pipe, phrases)
    alone, _, _ = encode(pipe, "a red apple on a table")
    torch.testing.assert_close(embeds[:, 77:], alone, atol=0, rtol=0)


def test_shorter_negative_is_padded_with_empty_chunks(engine, tiny_sd1):
    pipe = pipe_of(engine, tiny_sd1)
    _, negative, _ = encode(pipe, LONG, "blurry")
    alone, empty, _ = encode(pipe, "blurry", "")
    torch.testing.assert_close(negative[:, :77], alone, atol=0, rtol=0)
    torch.testing.assert_close(negative[:, 77:], empty, atol=0, rtol=0)
    # and the other way round: a long negative pads the prompt
    embeds, negative, info = encode(pipe, "blurry", LONG)
    assert embeds.shape == negative.shape and (info.prompt_chunks, info.chunks) == (1, 2)
    torch.testing.assert_close(embeds[:, 77:], empty, atol=0, rtol=0)


def test_break_makes_two_chunks_for_a_short_prompt(engine, tiny_sd1):
    pipe = pipe_of(engine, tiny_sd1)
    embeds, negative, info = encode(pipe, "a cat BREAK a dog")
    assert embeds.shape[1] == negative.shape[1] == 154 and info.prompt_chunks == 2
    cat, _, _ = encode(pipe, "a cat")
    dog, _, _ = encode(pipe, "a dog")
    torch.testing.assert_close(embeds, torch.cat([cat, dog], dim=1), atol=0, rtol=0)
    assert count_tokens(pipe.tokenizer, "a cat BREAK a dog") == (4, 2)


@pytest.mark.parametrize(("family", "pad"), [("sd1", 49407), ("sd2", 0)])
def test_chunks_pad_with_the_tokenizers_pad_token(engine, tiny_sd1, tiny_sd2, family, pad):
    pipe = pipe_of(engine, {"sd1": tiny_sd1, "sd2": tiny_sd2}[family])
    [chunk] = prompt_chunks(pipe.tokenizer, "a (cat:1.3)")
    assert chunk.weights == [1.0, 1.3]
    ids, used = chunk_input_ids(pipe.tokenizer, chunk)
    assert len(ids) == 77 and used == 4
    assert ids[0] == 49406 and ids[3] == 49407 and set(ids[4:]) == {pad}
    # the same ids as the tokenizer's own max_length padding, which diffusers uses
    assert ids == pipe.tokenizer("a cat", padding="max_length", max_length=77).input_ids


def test_needs_embeddings(engine, tiny_sd1):
    tokenizer = pipe_of(engine, tiny_sd1).tokenizer
    assert not needs_embeddings(tokenizer, "a cat", "")
    assert not needs_embeddings(tokenizer, "(cat:1.0)", r"\(blurry\)")
    assert not needs_embeddings(tokenizer, " ".join(["intricate"] * 75), "")
    assert needs_embeddings(tokenizer, " ".join(["intricate"] * 76), "")
    assert needs_embeddings(tokenizer, "a cat", LONG)
    assert needs_embeddings(tokenizer, "(cat)", "")
    assert needs_embeddings(tokenizer, "a", "[blurry]")
    assert needs_embeddings(tokenizer, "a BREAK b", "")


# --------------------------------------------------------------------------------------- images
def test_plain_prompt_is_exactly_the_bare_pipeline(engine, tiny_sd1):
    """The unweighted path is diffusers' own: same pixels as calling the pipeline with the string."""
    result = engine.generate(req(tiny_sd1, prompt="a cat on a mat", negative_prompt="blurry", guidance=7.5))[0]
    model = engine.load(str(tiny_sd1))
    pipe = model.txt2img
    pipe.scheduler = model.scheduler_class.from_config(model.scheduler_config)
    bare = pipe(
        "a cat on a mat",
        negative_prompt="blurry",
        num_inference_steps=3,
        guidance_scale=7.5,
        width=64,
        height=64,
        generator=torch.Generator("cpu").manual_seed(7),
    ).images[0]
    assert np.array_equal(pixels(result.image), pixels(bare))


def test_weight_changes_the_image_and_weight_one_does_not(engine, tiny_sd1):
    """One weighted token of 77, mean restored: a small but real change on the tiny model (about 0.4 of
    a level in float32 for weight 2, more in bfloat16), far above nothing."""
    images = {
        text: pixels(engine.generate(req(tiny_sd1, prompt=text, guidance=7.5))[0].image)
        for text in ("cat", "(cat:2)", "(cat:1.0)")
    }
    assert np.array_equal(images["cat"], images["(cat:1.0)"])
    assert np.abs(images["cat"] - images["(cat:2)"]).mean() > 0.15


def test_long_prompt_generates_and_reads_past_75_tokens(engine, tiny_sd2):
    long_image = engine.generate(req(tiny_sd2, prompt=LONG + " sunset", negative_prompt="blurry"))[0]
    short_image = engine.generate(req(tiny_sd2, prompt=" ".join(["intricate"] * 75), negative_prompt="blurry"))[0]
    assert long_image.image.size == (64, 64) and long_image.warnings == []
    assert np.abs(pixels(long_image.image) - pixels(short_image.image)).mean() > 0.5


def test_weighted_batch_and_metadata_keep_the_raw_prompt(engine, tiny_sd2):
    prompt, negative = "a (lighthouse:1.3) at [dusk] BREAK oil painting", "(blurry:1.2)"
    results = engine.generate(req(tiny_sd2, prompt=prompt, negative_prompt=negative, batch=2, seed=11))
    assert [r.seed for r in results] == [11, 12]
    assert all(r.image.size == (64, 64) for r in results)
    assert np.abs(pixels(results[0].image) - pixels(results[1].image)).mean() > 1.0
    meta = results[0].metadata["request"]
    assert meta["prompt"] == prompt and meta["negative_prompt"] == negative
    again = pixels(engine.generate(req(tiny_sd2, prompt=prompt, negative_prompt=negative, seed=12))[0].image)
    # seed 12 alone is batch image 1 up to batched rounding (CPU-dependent): far closer to it than to image 0
    assert np.abs(again - pixels(results[1].image)).mean() < np.abs(again - pixels(results[0].image)).mean() / 4


def test_weighted_prompt_img2img(engine, tiny_sd1):
    init = Image.new("RGB", (64, 64), (200, 120, 40))
    result = engine.generate(req(tiny_sd1, prompt="(cat:1.4) " + LONG, init_image=init, strength=0.5))[0]
    assert result.image.size == (64, 64)
