"""What the window learns about a model before loading it: is it one, which scheduler it ships with."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.engine.errors import RequestError
from studio.engine.model_info import check_local_model, default_scheduler_name


def test_a_model_folder_is_recognised(tiny_sd1, tiny_sd2):
    assert check_local_model(str(tiny_sd1)) == "sd1"
    assert check_local_model(str(tiny_sd2)) == "sd2"


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("photos", lambda p: p.mkdir(), "not a Stable Diffusion folder in diffusers layout"),
        ("notes.txt", lambda p: p.write_text("hello"), "not a .safetensors checkpoint"),
        (
            "style.safetensors",
            lambda p: save_file({"lora_unet_a.lora_down.weight": np.zeros((2, 2), np.float32)}, str(p)),
            "a LoRA",
        ),
        ("cut.safetensors", lambda p: p.write_bytes(b"\x00" * 3), "not a valid .safetensors file"),
    ],
    ids=["empty-folder", "text-file", "lora", "truncated"],
)
def test_what_is_not_a_model_is_named(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(RequestError, match=message):
        check_local_model(str(path))


def test_missing_path():
    with pytest.raises(RequestError, match="no such file or folder"):
        check_local_model("/no/such/model")


def test_default_scheduler_names(tiny_sd1, tiny_sd2):
    assert default_scheduler_name("deci-diffusion-1.0") == "DDIM"  # its own default
    assert default_scheduler_name("sd-1.4") == "PNDM"  # not downloaded: the family's shipped config
    assert default_scheduler_name("sd-2.1") == "DDIM"
    assert default_scheduler_name(str(tiny_sd1)) == "PNDM"  # a folder's own config
    assert default_scheduler_name(str(tiny_sd2)) == "DDIM"
    assert default_scheduler_name("/no/such/model") is None


def test_a_crafted_scheduler_config_names_no_scheduler_instead_of_crashing(tiny_sd1, tmp_path):
    import shutil

    folder = tmp_path / "nested"
    shutil.copytree(tiny_sd1, folder)
    (folder / "scheduler" / "scheduler_config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert default_scheduler_name(str(folder)) is None  # a hint only; loading the folder says what is wrong
    with pytest.raises(RequestError, match=r"scheduler_config\.json: is nested more than 32 levels deep"):
        check_local_model(str(folder))
