"""Weighted and long prompts: A1111 emphasis syntax and 75-token chunks turned into CLIP embeddings.

Each prompt is parsed (studio.library.prompt_syntax), each (text, weight) fragment tokenized without
BOS/EOS, and the tokens packed into chunks of 75 (a BREAK closes a chunk early). A chunk is encoded
as BOS + tokens + EOS + padding (77 ids, exactly what the tokenizer itself gives with
``padding="max_length"``: SD 1.x pads with EOS 49407, SD 2.x with "!" id 0), the hidden states are
multiplied by the token weights and rescaled so the chunk's mean is unchanged (A1111's "Original"
emphasis), and the chunks are concatenated along the sequence axis (77 * k tokens). The negative
prompt is padded with empty chunks to the prompt's count (or the other way round), because the
pipeline concatenates both for classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from studio.library.prompt_syntax import (
    CHUNK_LENGTH,
    Chunk,
    build_chunks,
    has_weights,
    parse_prompt_attention,
    strip_extra_networks,
)

__all__ = ["PromptInfo", "TokenCount", "chunk_input_ids", "count_tokens", "encode_prompts", "needs_embeddings",
           "prompt_chunks"]


class TokenCount(NamedTuple):
    tokens: int  # tokens the text encoder reads, BOS/EOS/padding excluded
    chunks: int  # 77-token chunks they fill (at least 1)


@dataclass(frozen=True)
class PromptInfo:
    prompt_chunks: int  # chunks the prompt needs
    negative_chunks: int  # chunks the negative prompt needs
    chunks: int  # chunks of both after padding: embeddings are 77 * chunks tokens long
    prompt_tokens: int
    negative_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.negative_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_chunks": self.prompt_chunks,
            "negative_chunks": self.negative_chunks,
            "chunks": self.chunks,
            "prompt_tokens": self.prompt_tokens,
            "negative_tokens": self.negative_tokens,
            "tokens": self.tokens,
        }


def chunk_length(tokenizer) -> int:
    """Tokens per chunk besides BOS and EOS: 75 for CLIP's 77."""
    length = getattr(tokenizer, "model_max_length", None)
    return length - 2 if isinstance(length, int) and 2 < length < 100_000 else CHUNK_LENGTH


def _tokenizer_fn(tokenizer, pipe=None):
    def tokenize(texts: list[str]) -> list[list[int]]:
        if pipe is not None and hasattr(pipe, "maybe_convert_prompt"):  # textual-inversion multi-vector tokens
            texts = [pipe.maybe_convert_prompt(text, tokenizer) for text in texts]
        return tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False).input_ids

    return tokenize


def comma_id(tokenizer) -> int | None:
    """The token id of "," (for A1111's word wrap at chunk ends); None if it is not one token."""
    ids = tokenizer(",", add_special_tokens=False, verbose=False).input_ids
    return ids[0] if len(ids) == 1 else None


def prompt_chunks(tokenizer, text: str, pipe=None) -> list[Chunk]:
    """The prompt's chunks: token ids (no BOS/EOS/padding) with one weight per token.

    Extra-network tags (``<lora:...>``) are removed first, as A1111 does: they are not text to encode.
    """
    return build_chunks(
        parse_prompt_attention(strip_extra_networks(text)), _tokenizer_fn(tokenizer, pipe), chunk_length(tokenizer),
        comma=comma_id(tokenizer),
    )


def count_tokens(tokenizer, text: str) -> TokenCount:
    """What the engine will read of `text`: the editor's counter shows this (e.g. "80/150")."""
    chunks = prompt_chunks(tokenizer, text)
    return TokenCount(tokens=sum(len(c.tokens) for c in chunks), chunks=len(chunks))


def needs_embeddings(tokenizer, prompt: str, negative: str) -> bool:
    """True when the pipeline cannot be given plain strings: weights, BREAK, or over one chunk of tokens."""
    prompt, negative = strip_extra_networks(prompt), strip_extra_networks(negative)
    if has_weights(prompt) or has_weights(negative):
        return True
    return any(len(prompt_chunks(tokenizer, text)) > 1 for text in (prompt, negative) if text)


def chunk_input_ids(tokenizer, chunk: Chunk) -> tuple[list[int], int]:
    """77 ids for one chunk, BOS + tokens + EOS + pad, and how many of them are not padding."""
    length = chunk_length(tokenizer)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    used = len(chunk.tokens) + 2
    return [bos, *chunk.tokens, eos] + [pad] * (length - len(chunk.tokens)), used


def encode_prompts(
    pipe, prompt: str, negative: str, *, device, dtype, clip_skip: int | None = None
) -> tuple[Any, Any, PromptInfo]:
    """(prompt_embeds, negative_prompt_embeds, info) for a Stable Diffusion pipeline, both [1, 77*k, dim].

    `clip_skip` follows diffusers: None or 0 -> the last layer, 1 -> the one before it (A1111's "Clip
    skip 2"), ... It applies to both prompts. Prompts without weights give the same embeddings as
    ``pipe.encode_prompt``.
    """
    import torch

    tokenizer = pipe.tokenizer
    positive = prompt_chunks(tokenizer, prompt or "", pipe)
    negatives = prompt_chunks(tokenizer, negative or "", pipe)
    count = max(len(positive), len(negatives))
    info = PromptInfo(
        prompt_chunks=len(positive),
        negative_chunks=len(negatives),
        chunks=count,
        prompt_tokens=sum(len(c.tokens) for c in positive),
        negative_tokens=sum(len(c.tokens) for c in negatives),
    )
    positive += [Chunk() for _ in range(count - len(positive))]
    negatives += [Chunk() for _ in range(count - len(negatives))]
    with torch.inference_mode():
        prompt_embeds = _encode_chunks(pipe, positive, clip_skip).to(device=device, dtype=dtype)
        negative_embeds = _encode_chunks(pipe, negatives, clip_skip).to(device=device, dtype=dtype)
    return prompt_embeds, negative_embeds, info


def _encode_chunks(pipe, chunks: list[Chunk], clip_skip: int | None):
    import torch

    encoder = pipe.text_encoder
    tokenizer = pipe.tokenizer
    encoder_device = getattr(pipe, "_execution_device", None) or encoder.device
    use_mask = bool(getattr(encoder.config, "use_attention_mask", False))
    empty_cache: dict[str, Any] = {}
    parts = []
    for chunk in chunks:
        if not chunk.tokens and "empty" in empty_cache:
            parts.append(empty_cache["empty"])
            continue
        ids, used = chunk_input_ids(tokenizer, chunk)
        input_ids = torch.tensor([ids], dtype=torch.long, device=encoder_device)
        mask = None
        if use_mask:
            mask = torch.zeros_like(input_ids)
            mask[:, :used] = 1
        # One chunk per call: a chunk's embeddings never depend on the other chunks (nor on batching).
        if clip_skip:
            output = encoder(input_ids, attention_mask=mask, output_hidden_states=True)
            # transformers 5 moved final_layer_norm from CLIPTextModel.text_model onto the model itself
            final_norm = getattr(encoder, "text_model", encoder).final_layer_norm
            hidden = final_norm(output.hidden_states[-(clip_skip + 1)])
        else:
            hidden = encoder(input_ids, attention_mask=mask)[0]
        weights = [1.0, *chunk.weights, 1.0] + [1.0] * (len(ids) - used)
        if any(w != 1.0 for w in weights):
            hidden = _apply_weights(hidden, weights)
        parts.append(hidden)
        if not chunk.tokens:
            empty_cache["empty"] = hidden
    return torch.cat(parts, dim=1)


# Below this fraction of the hidden states' spread, a chunk's mean is rounding noise, not a signal (see
# _apply_weights). float32 leaves ~1e-8 of it, bfloat16 ~1e-4; a real CLIP's mean is far above either.
MEAN_NOISE_FLOOR = 1e-3


def _apply_weights(hidden, weights: list[float]):
    """A1111's emphasis: scale each token's hidden state, then restore the chunk's mean (float32 maths).

    The restore multiplies by ``mean_before / mean_after``. That ratio only means something when both
    means stand clear of zero: hidden states straight out of a LayerNorm with no bias (as an untrained
    text encoder's are) have a mean that is zero up to rounding, and the ratio of two rounding errors is
    an arbitrary factor, sign included (NaN or inf where one is exactly 0), that would wreck the
    embeddings and differ between CPUs and dtypes. So when either mean is within
    ``MEAN_NOISE_FLOOR`` of the spread (standard deviation) of the unweighted states, or the weights
    cancel the mean, the scaled states are kept as they are. A trained encoder's final LayerNorm bias
    puts its mean far above that floor, so there this is A1111's "Original" emphasis unchanged.
    """
    import torch

    z = hidden.float()
    original_mean = z.mean()
    floor = MEAN_NOISE_FLOOR * z.std(correction=0) if z.numel() > 1 else z.new_zeros(())
    z = z * torch.tensor(weights, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
    new_mean = z.mean()
    if original_mean.abs() > floor and new_mean.abs() > floor:
        scale = original_mean / new_mean
        if torch.isfinite(scale):
            z = z * scale
    return z.to(hidden.dtype)
