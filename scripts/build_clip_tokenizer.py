"""Build studio/resources/clip_tokenizer/ (vocab.json + merges.txt) from CLIP's byte-pair merge list.

The merge list is ../shared/data/clip-bpe/bpe_simple_vocab_16e6.txt.gz (from the open-clip-torch 3.3.0
wheel). The vocabulary follows from it as CLIP's simple tokenizer builds it: 256 byte symbols, the same
with "</w>", one token per merge, then the two special tokens -> 49,408 tokens.
Also writes tokenizer.json (the same tokenizer for the `tokenizers` library).
Run: python scripts/build_clip_tokenizer.py [BPE_GZ]
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "studio" / "resources" / "clip_tokenizer"
DEFAULT_BPE = ROOT.parent / "shared" / "data" / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable unicode map (as in GPT-2)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def build(bpe_path: Path, out: Path) -> int:
    lines = gzip.decompress(bpe_path.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    with open(out / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(" ".join(m) + "\n" for m in merges)
    return len(vocab)


def write_fast_tokenizer(out: Path) -> None:
    """tokenizer.json, so the window can count tokens with `tokenizers` alone (no torch, no transformers)."""
    from transformers import CLIPTokenizer

    CLIPTokenizer.from_pretrained(out).backend_tokenizer.save(str(out / "tokenizer.json"))


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_BPE
    print(f"{build(src, OUT)} tokens -> {OUT}")
    write_fast_tokenizer(OUT)
