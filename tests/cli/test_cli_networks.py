"""LoRAs and embeddings from the command line: `studio networks` lists them, `generate` applies them from
--lora-dir / --embedding-dir and says what it could not apply; the metadata names them."""

from __future__ import annotations

import json

import pytest

from studio.cli import main
from studio.engine.tiny import make_tiny_embedding, make_tiny_lora
from studio.library.metadata import read_metadata
from tests.cli.test_cli import FAST, files_in, run


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_sd1):
    root = tmp_path_factory.mktemp("cli-networks")
    make_tiny_lora(tiny_sd1, root / "loras" / "style.safetensors", rank=4, seed=1, scale=4.0)
    make_tiny_embedding(root / "embeddings" / "shiny.safetensors", model_dir=tiny_sd1, vectors=2, seed=2)
    return root / "loras", root / "embeddings"


def test_networks_lists_what_the_prompts_can_name(capsys, folders):
    loras, embeddings = folders
    code, out, err = run(capsys, "networks", "--lora-dir", str(loras), "--embedding-dir", str(embeddings), "--hashes")
    assert code == 0 and err == ""
    assert "  style  (sd1, kohya, " in out and "triggers:" in out and "  shiny  (sd1, a1111, 2 vectors" in out
    code, out, _ = run(capsys, "networks", "--lora-dir", str(loras), "--embedding-dir", str(embeddings), "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["style"]["kind"] == "lora" and rows["shiny"]["vectors"] == 2


def test_generate_applies_a_lora_and_an_embedding_and_names_them(capsys, folders, tiny_sd1, tmp_path):
    loras, embeddings = folders
    code, out, err = run(
        capsys, "generate", "--prompt", "a door <lora:style:0.7>, shiny <lora:nope>", "--model", str(tiny_sd1), *FAST,
        "--lora-dir", str(loras), "--embedding-dir", str(embeddings), "--output-dir", str(tmp_path / "out"),
    )
    assert code == 0, err
    assert "LoRA 'nope' not found" in err
    [image] = files_in(tmp_path / "out")
    meta = read_metadata(image)
    assert [entry["name"] for entry in meta.studio["loras"]] == ["style"] and meta.studio["loras"][0]["te"] == 0.7
    assert meta.studio["embeddings"][0]["name"] == "shiny"
    assert meta.extra["LoRAs"].startswith("style (") and meta.extra["LoRAs"].endswith(") 0.7")
    assert main(["info", str(image)]) == 0
