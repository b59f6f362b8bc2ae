"""The LoRA and embedding catalogue: what real files are (from their headers), A1111's names and hashes,
crafted files as problems, bounded scans. Every file here is written with the safetensors library."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.library import extra_networks
from studio.library.extra_networks import (
    EMBEDDING,
    LORA,
    NetworkCatalog,
    describe,
    embedding_hash,
    lora_hash,
    scan,
    short_hash,
)

# A kohya/A1111 LoRA's key names (one layer each of text encoder and UNet cross-attention).
TE_Q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
UNET_K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
XL_UNET_K = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
PEFT_TE_Q = "text_encoder.text_model.encoder.layers.0.self_attn.q_proj"
PEFT_UNET_K = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"


def write(path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None) -> Path:
    """A real .safetensors file of zeros with these tensor shapes (fp16) and metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: np.zeros(shape, np.float16) for key, shape in shapes.items()}, str(path), metadata=metadata)
    return path


def kohya(path: Path, te: int | None = None, unet: int | None = None, *, metadata=None, prefix="lora_te_") -> Path:
    """A kohya LoRA: a text-encoder query projection `te` wide and/or a UNet attn2 key projection `unet` wide."""
    shapes: dict[str, tuple[int, ...]] = {}
    if te:
        key = TE_Q.replace("lora_te_", prefix)
        shapes |= {f"{key}.lora_down.weight": (4, te), f"{key}.lora_up.weight": (te, 4), f"{key}.alpha": ()}
    if unet:
        key = UNET_K if unet != 2048 else XL_UNET_K
        shapes |= {f"{key}.lora_down.weight": (4, unet), f"{key}.lora_up.weight": (320, 4), f"{key}.alpha": ()}
    if not shapes:  # conv layers only: the keys say nothing about the family
        shapes = {"lora_unet_conv_in.lora_down.weight": (4, 4, 3, 3), "lora_unet_conv_in.lora_up.weight": (320, 4, 1, 1)}
    return write(path, shapes, metadata)


# ------------------------------------------------------------------------------------------ LoRAs
@pytest.mark.parametrize(
    ("te", "unet", "prefix", "family"),
    [
        (768, 768, "lora_te_", "sd1"),
        (768, None, "lora_te_", "sd1"),
        (None, 768, "lora_te_", "sd1"),
        (1024, 1024, "lora_te_", "sd2"),
        (1024, None, "lora_te_", "sd2"),
        (None, 1024, "lora_te_", "sd2"),
        (768, 2048, "lora_te1_", "sdxl"),
        (768, None, "lora_te1_", "sdxl"),  # CLIP-L is 768 wide in SDXL too: the prefix decides
        (None, 2048, "lora_te_", "sdxl"),
        (768, 1024, "lora_te_", None),  # keys that disagree name no family
    ],
)
def test_a_kohya_loras_family_comes_from_its_shapes(tmp_path, te, unet, prefix, family):
    found = describe(kohya(tmp_path / "style.safetensors", te, unet, prefix=prefix), LORA)
    assert (found.kind, found.name, found.format, found.family, found.problem) == (LORA, "style", "kohya", family, "")
    assert found.width == (unet or {"sd1": 768, "sd2": 1024, "sdxl": 2048, None: None}[family])
    assert (found.pickle, found.vectors, found.usable) == (False, None, True)


@pytest.mark.parametrize(
    ("shapes", "family"),
    [
        ({f"{PEFT_UNET_K}.lora_A.weight": (4, 768), f"{PEFT_UNET_K}.lora_B.weight": (320, 4)}, "sd1"),
        ({f"{PEFT_TE_Q}.lora_A.weight": (4, 1024), f"{PEFT_TE_Q}.lora_B.weight": (1024, 4)}, "sd2"),
        ({f"{PEFT_UNET_K}.lora_A.weight": (4, 2048), "text_encoder_2.x.lora_A.weight": (4, 1280)}, "sdxl"),
        ({"down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight": (4, 1024)}, "sd2"),
    ],
    ids=["peft-sd1", "peft-sd2", "peft-sdxl", "attention-processor-sd2"],
)
def test_a_diffusers_loras_format_and_family_come_from_its_keys(tmp_path, shapes, family):
    found = describe(write(tmp_path / "p.safetensors", shapes), LORA)
    assert (found.format, found.family, found.problem) == ("peft", family, "")


@pytest.mark.parametrize(
    ("metadata", "family"),
    [
        ({"ss_base_model_version": "sd_v1"}, "sd1"),
        ({"ss_base_model_version": "sd_v2"}, "sd2"),
        ({"ss_base_model_version": "sd_v2_v"}, "sd2"),
        ({"ss_base_model_version": "sdxl_base_v1-0", "ss_v2": "False"}, "sdxl"),
        ({"modelspec.architecture": "stable-diffusion-v1/lora"}, "sd1"),
        ({"modelspec.architecture": "stable-diffusion-v2-512/lora"}, "sd2"),
        ({"modelspec.architecture": "stable-diffusion-v2-768-v/lora"}, "sd2"),
        ({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}, "sdxl"),
        ({"ss_v2": "True"}, "sd2"),
        ({"ss_v2": "False"}, None),  # SDXL files say False too
        ({}, None),
    ],
)
def test_a_loras_family_comes_from_its_metadata_when_its_keys_say_nothing(tmp_path, metadata, family):
    found = describe(kohya(tmp_path / "conv.safetensors", metadata=metadata), LORA)
    assert (found.format, found.family, found.problem) == ("kohya", family, "")


def test_a_loras_width_is_what_its_cross_attention_reads(tmp_path):
    found = describe(kohya(tmp_path / "tiny.safetensors", 32, 32, metadata={"ss_base_model_version": "sd_v1"}), LORA)
    assert (found.family, found.width) == ("sd1", 32)  # a test model: the family from metadata, the width measured


def test_shapes_outrank_metadata(tmp_path):
    """The tensors are what gets loaded; metadata can be copied from another file."""
    found = describe(kohya(tmp_path / "x.safetensors", 768, 768, metadata={"ss_base_model_version": "sdxl_base_v1-0"}), LORA)
    assert found.family == "sd1"


@pytest.mark.parametrize(
    ("key", "fmt", "problem"),
    [
        (f"{UNET_K}.hada_w1_a", "loha", "LyCORIS LoHa is not supported"),
        (f"{UNET_K}.lokr_w1", "lokr", "LyCORIS LoKr is not supported"),
    ],
)
def test_lycoris_loha_and_lokr_are_flagged(tmp_path, key, fmt, problem):
    shapes = {key: (320, 4), f"{UNET_K}.alpha": ()}
    found = describe(write(tmp_path / "ly.safetensors", shapes, {"ss_network_module": "lycoris.kohya"}), LORA)
    assert (found.format, found.problem, found.usable) == (fmt, problem, False)


def test_the_lycoris_algorithm_in_the_metadata_names_an_unknown_layout(tmp_path):
    metadata = {"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "lokr", "factor": -1})}
    found = describe(write(tmp_path / "ly.safetensors", {"something.else": (4,)}, metadata), LORA)
    assert (found.format, found.problem) == ("lokr", "LyCORIS LoKr is not supported")
    locon = {"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "locon"})}
    found = describe(kohya(tmp_path / "locon.safetensors", 768, 768, metadata=locon), LORA)
    assert (found.format, found.problem) == ("kohya", "")


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)}, "full checkpoint"),
        ({"emb_params": (2, 768)}, "embedding, not a LoRA"),
        ({"weights": (3, 3)}, "no LoRA weights"),
    ],
)
def test_a_file_that_is_not_a_lora_says_what_it_looks_like(tmp_path, shapes, expected):
    found = describe(write(tmp_path / "other.safetensors", shapes), LORA)
    assert found.format == "unknown" and expected in found.problem


def test_alias_and_trigger_words_come_from_kohya_metadata(tmp_path):
    frequency = {
        "img/10_cat": {"cat": 3, " dog ": 5, "line\nbreak": 100, "x" * 101: 50, "bird": 1},
        "img/5_more": {"cat": 4, "bird": 1, "negative": -3, "fraction": 2.5, "flag": True},
        "broken": ["not", "an", "object"],
    }
    metadata = {"ss_output_name": "Cat Style v2", "ss_tag_frequency": json.dumps(frequency)}
    found = describe(kohya(tmp_path / "cat_v2.safetensors", 768, 768, metadata=metadata), LORA)
    assert found.alias == "Cat Style v2"
    assert found.trigger_words == ("cat", "dog", "bird")


def test_trigger_words_are_at_most_twenty_and_bad_metadata_gives_none(tmp_path):
    tags = {f"tag{i:02}": 100 - i for i in range(30)}
    found = describe(kohya(tmp_path / "a.safetensors", 768, metadata={"ss_tag_frequency": json.dumps({"d": tags})}), LORA)
    assert found.trigger_words == tuple(f"tag{i:02}" for i in range(20))
    for raw in ("{not json", "[1, 2]", '{"d": {"a": NaN}}', "[" * 10_000):
        found = describe(kohya(tmp_path / "b.safetensors", 768, metadata={"ss_tag_frequency": raw}), LORA)
        assert (found.trigger_words, found.problem) == ((), "")
    found = describe(kohya(tmp_path / "c.safetensors", 768, metadata={"ss_output_name": "bad\x00name"}), LORA)
    assert found.alias is None


def test_a_pickle_lora_is_listed_unread(tmp_path):
    """Its contents cannot be known without unpickling, which only the loader may decide to do."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"state": Payload()}))
    found = describe(path, LORA)
    assert (found.pickle, found.format, found.family, found.problem) == (True, "unknown", None, "")
    assert not marker.exists()


# ------------------------------------------------------------------------------------- embeddings
@pytest.mark.parametrize(
    ("shapes", "fmt", "family", "vectors", "width"),
    [
        ({"emb_params": (3, 768)}, "a1111", "sd1", 3, 768),
        ({"emb_params": (2, 1024)}, "a1111", "sd2", 2, 1024),
        ({"<cat-toy>": (768,)}, "diffusers", "sd1", 1, 768),
        ({"<cat-toy>": (4, 1024)}, "diffusers", "sd2", 4, 1024),
        ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "sdxl", "sdxl", 2, 2048),
    ],
)
def test_an_embeddings_vectors_and_family_come_from_its_shapes(tmp_path, shapes, fmt, family, vectors, width):
    found = describe(write(tmp_path / "Easy_Negative.safetensors", shapes), EMBEDDING)
    assert (found.kind, found.name, found.format, found.family) == (EMBEDDING, "Easy_Negative", fmt, family)
    assert (found.vectors, found.width, found.problem, found.alias, found.trigger_words) == (vectors, width, "", None, ())


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ({"emb_params": (0, 768)}, "not [vectors, width]"),
        ({"emb_params": (1, 2, 768)}, "not [vectors, width]"),
        ({"a": (1, 768), "b": (1, 768)}, "holds 2 tensors"),
        ({"clip_l": (2, 768), "clip_g": (1280,)}, "clip_g has the shape [1280], not [vectors, width]"),
        ({"clip_l": (2, 768), "clip_g": (3, 1280)}, "different numbers of vectors"),
    ],
)
def test_an_embedding_no_text_encoder_can_use_has_a_problem(tmp_path, shapes, expected):
    found = describe(write(tmp_path / "e.safetensors", shapes), EMBEDDING)
    assert expected in found.problem


def test_an_embedding_of_another_width_has_no_family_and_the_loader_decides(tmp_path):
    """Whether vectors fit is a comparison with the loaded text encoder (tiny test models are 32 wide)."""
    found = describe(write(tmp_path / "e.safetensors", {"emb_params": (2, 32)}), EMBEDDING)
    assert (found.family, found.vectors, found.width, found.problem) == (None, 2, 32, "")
    spec = {"modelspec.architecture": "stable-diffusion-v2-512/textual-inversion"}  # kohya's
    found = describe(write(tmp_path / "f.safetensors", {"emb_params": (2, 32)}, spec), EMBEDDING)
    assert (found.family, found.width) == ("sd2", 32)
    found = describe(write(tmp_path / "g.safetensors", {"emb_params": (2, 768)}, spec), EMBEDDING)
    assert found.family == "sd1"  # the shapes outrank the metadata


def test_a_pickle_embedding_is_listed_with_unknown_vectors(tmp_path):
    (tmp_path / "old.bin").write_bytes(pickle.dumps({"string_to_param": {"*": [0.0]}}))
    found = describe(tmp_path / "old.bin", EMBEDDING)
    assert (found.format, found.pickle, found.vectors, found.family, found.problem) == ("pickle", True, None, None, "")


# ---------------------------------------------------------------------------------------- previews
def test_the_preview_is_a1111s_image_beside_the_file(tmp_path):
    path = kohya(tmp_path / "cat.safetensors", 768)
    assert describe(path, LORA).preview is None
    (tmp_path / "cat.webp").mkdir()  # a folder is no preview
    assert describe(path, LORA).preview is None
    for name in ("cat.webp", "cat.jpeg", "cat.jpg", "cat.png", "cat.preview.webp", "cat.preview.png"):
        if (tmp_path / name).is_dir():
            (tmp_path / name).rmdir()
        (tmp_path / name).write_bytes(b"image")
        assert describe(path, LORA).preview == tmp_path / name
        assert [f.preview for f in scan([tmp_path], LORA)] == [tmp_path / name]


# ------------------------------------------------------------------------------------------ hashes
def _addnet(path: Path) -> str:
    """A1111's "addnet hash", computed here independently: SHA-256 of the bytes after the header."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little") :]).hexdigest()


def test_a_safetensors_loras_hash_is_a1111s_addnet_hash(tmp_path):
    weights = np.random.default_rng(0).standard_normal(400_000).astype(np.float32)  # 1.6 MB: several blocks
    first = tmp_path / "a.safetensors"
    second = tmp_path / "b.safetensors"
    save_file({"lora_unet_x.lora_down.weight": weights}, str(first), metadata={"ss_output_name": "a"})
    save_file({"lora_unet_x.lora_down.weight": weights}, str(second), metadata={"ss_output_name": "a much longer name"})
    assert lora_hash(first) == _addnet(first) == lora_hash(second)  # metadata does not change it
    assert embedding_hash(first) == hashlib.sha256(first.read_bytes()).hexdigest() != embedding_hash(second)
    assert len(lora_hash(first)) == 64 and short_hash(lora_hash(first)) == lora_hash(first)[:12]


def test_a_recorded_sshs_model_hash_is_preferred(tmp_path):
    recorded = "0123456789abcdef" * 4
    path = kohya(tmp_path / "a.safetensors", 768, metadata={"sshs_model_hash": recorded})
    assert lora_hash(path) == recorded
    path = kohya(tmp_path / "b.safetensors", 768, metadata={"sshs_model_hash": "not a hash"})
    assert lora_hash(path) == _addnet(path)


def test_pickle_loras_and_embeddings_hash_the_whole_file(tmp_path):
    path = tmp_path / "old.pt"
    path.write_bytes(b"\x80\x04 anything at all" * 1000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert lora_hash(path) == embedding_hash(path) == expected


def test_a_hash_is_computed_once_per_change_of_the_file(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"w": np.ones(8, np.float32)}, str(path))
    before = path.stat()
    first = lora_hash(path)
    with path.open("r+b") as handle:  # same size, same inode, modification time put back: looks unchanged
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\1\2\3\4")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert lora_hash(path) == first
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert lora_hash(path) == _addnet(path) != first


def test_hashing_what_is_not_a_file_is_an_os_error(tmp_path, deadline):
    with pytest.raises(OSError):
        lora_hash(tmp_path / "missing.safetensors")
    with pytest.raises(OSError):
        embedding_hash(tmp_path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.safetensors")
        with pytest.raises(OSError):
            lora_hash(tmp_path / "pipe.safetensors")


# ---------------------------------------------------------------------------------- crafted files
def _good(path: Path) -> Path:
    return kohya(path, 768, 768)


def _truncated(path: Path) -> Path:
    data = _good(path).read_bytes()
    path.write_bytes(data[: len(data) - 100])
    return path


def _bytes(content: bytes):
    def make(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return make


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _loop(path: Path) -> Path:
    path.symlink_to(path.name)
    return path


CRAFTED = {
    "truncated": (_truncated, "truncated"),
    "header-length-huge": (_bytes((2**63).to_bytes(8, "little") + b"{}"), "over the 100,000,000-byte limit"),
    "header-length-past-the-end": (_bytes((10**6).to_bytes(8, "little") + b"{}"), "runs past the end"),
    "not-json": (_bytes((9).to_bytes(8, "little") + b"{not json"), "not valid JSON"),
    "empty": (_bytes(b""), "empty"),
    "tiny": (_bytes(b"\1\2"), "2 bytes long"),
    "folder": (_folder, "a folder, not a file"),
    "fifo": (_fifo, "not a regular file"),
    "symlink-loop": (_loop, "cannot be read"),
}


@pytest.mark.parametrize(("make", "expected"), CRAFTED.values(), ids=CRAFTED.keys())
@pytest.mark.parametrize("kind", [LORA, EMBEDDING])
def test_a_crafted_file_is_a_problem_not_an_exception(tmp_path, deadline, make, expected, kind):
    if make is _fifo and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = make(tmp_path / "x.safetensors")
    found = describe(path, kind)
    assert expected in found.problem and not found.problem.startswith("is ") and "\n" not in found.problem
    assert (found.name, found.path, found.usable) == ("x", path, False)
    listed = scan([tmp_path], kind)
    assert [f.problem for f in listed] == ([] if make is _folder else [found.problem])


def test_describe_of_a_missing_file_and_an_unknown_kind(tmp_path):
    assert "cannot be read" in describe(tmp_path / "gone.safetensors", LORA).problem
    assert "cannot be read" in describe("bad\0name.safetensors", LORA).problem
    with pytest.raises(ValueError, match="unknown network kind"):
        describe(tmp_path / "x.safetensors", "hypernet")


# ------------------------------------------------------------------------------------------- scans
def test_a_scan_recurses_sorts_by_name_and_keeps_to_its_suffixes(tmp_path):
    _good(tmp_path / "b.safetensors")
    _good(tmp_path / "sub" / "A.safetensors")
    _good(tmp_path / "sub" / "deeper" / "c.SAFETENSORS")
    for name in ("d.ckpt", "e.pt", "f.bin", "g.pth", "h.png", "h.preview.png", "notes.txt", "a.json"):
        (tmp_path / name).write_bytes(b"x")
    loras = scan([tmp_path], LORA)
    assert [f.name for f in loras] == ["A", "b", "c", "d", "e", "f"]
    assert [f.name for f in scan([tmp_path], EMBEDDING)] == ["A", "b", "c", "e", "f"]  # no .ckpt embeddings
    assert scan([tmp_path / "missing"], LORA) == []
    assert scan([], EMBEDDING) == []


def test_a_scan_reads_each_folder_once_through_links_and_overlaps(tmp_path):
    _good(tmp_path / "top.safetensors")
    _good(tmp_path / "sub" / "inner.safetensors")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "same.safetensors").symlink_to(tmp_path / "top.safetensors")
    found = scan([tmp_path, tmp_path / "sub", tmp_path / "sub" / "loop"], LORA)
    assert [f.name for f in found] == ["inner", "same", "top"]  # a link by another name is another name (A1111)


def test_a_scan_stops_at_its_depth_and_file_limits(tmp_path, monkeypatch):
    folder = tmp_path
    for level in range(12):
        _good(folder / f"level{level:02}.safetensors")
        folder = folder / "sub"
    names = [f.name for f in scan([tmp_path], LORA)]
    assert names == [f"level{level:02}" for level in range(extra_networks.MAX_DEPTH + 1)]
    monkeypatch.setattr(extra_networks, "MAX_FILES", 3)
    assert len(scan([tmp_path, tmp_path / "sub"], LORA)) == 3
    monkeypatch.setattr(extra_networks, "MAX_FILES", 100)
    monkeypatch.setattr(extra_networks, "MAX_ENTRIES", 5)
    assert len(scan([tmp_path], LORA)) < 5


# --------------------------------------------------------------------------------------- catalogue
def test_find_lora_takes_the_stem_then_the_alias_then_the_stem_in_any_case(tmp_path):
    kohya(tmp_path / "shared.safetensors", 768)
    kohya(tmp_path / "a.safetensors", 768, metadata={"ss_output_name": "shared"})  # loses to the stem
    kohya(tmp_path / "sub" / "b.safetensors", 768, metadata={"ss_output_name": "bee"})
    kohya(tmp_path / "c.safetensors", 768, metadata={"ss_output_name": "B"})  # alias before any-case stem
    kohya(tmp_path / "d.safetensors", 768, metadata={"ss_output_name": "twice"})
    kohya(tmp_path / "e.safetensors", 768, metadata={"ss_output_name": "twice"})
    catalog = NetworkCatalog([tmp_path], [])
    assert catalog.find_lora("shared").path == tmp_path / "shared.safetensors"
    assert catalog.find_lora("bee").path == tmp_path / "sub" / "b.safetensors"
    assert catalog.find_lora("B").name == "c"
    assert catalog.find_lora("C").name == "c"
    assert catalog.find_lora("SHARED").name == "shared"
    assert catalog.find_lora("twice") is None  # an alias two files share names neither
    assert catalog.find_lora("nothing") is None
    assert [f.name for f in catalog.loras()] == ["a", "b", "c", "d", "e", "shared"]
    assert catalog.embeddings() == []


def test_find_embedding_takes_the_stem_then_any_case(tmp_path):
    write(tmp_path / "EasyNegative.safetensors", {"emb_params": (8, 768)})
    write(tmp_path / "easynegative.safetensors", {"emb_params": (2, 768)})
    write(tmp_path / "Other.safetensors", {"emb_params": (1, 768)})
    catalog = NetworkCatalog([], [tmp_path])
    assert catalog.find_embedding("EasyNegative").vectors == 8
    assert catalog.find_embedding("easynegative").vectors == 2
    assert catalog.find_embedding("OTHER").name == "Other"
    assert catalog.find_embedding("missing") is None


def test_refresh_sees_new_and_changed_files(tmp_path):
    catalog = NetworkCatalog([tmp_path / "loras"], [tmp_path / "embeddings"])
    assert catalog.loras() == [] and catalog.embeddings() == []
    path = kohya(tmp_path / "loras" / "x.safetensors", 768)
    assert catalog.loras() == []  # until refreshed
    catalog.refresh()
    assert [f.family for f in catalog.loras()] == ["sd1"]
    kohya(path, 1024, 1024)  # a new size: read again
    catalog.refresh()
    assert [f.family for f in catalog.loras()] == ["sd2"]
    (tmp_path / "loras" / "x.png").write_bytes(b"image")  # a preview, not a change of the file
    catalog.refresh()
    assert catalog.find_lora("x").preview == tmp_path / "loras" / "x.png"
    path.unlink()
    catalog.refresh()
    assert catalog.loras() == []


def test_the_default_catalogue_reads_the_data_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path))
    kohya(tmp_path / "loras" / "mine.safetensors", 768)
    write(tmp_path / "embeddings" / "word.safetensors", {"emb_params": (1, 768)})
    catalog = NetworkCatalog.default()
    assert [f.name for f in catalog.loras()] == ["mine"]
    assert [f.name for f in catalog.embeddings()] == ["word"]
