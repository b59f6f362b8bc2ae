"""Metadata: our format written and read back through real files, and other tools' formats read."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest
from PIL import Image

from studio.library import (
    PARAMETERS_KEY,
    STUDIO_KEY,
    MetadataError,
    exif_for,
    format_parameters,
    parse_parameters,
    pnginfo_for,
    read_metadata,
    save_image,
)
from studio.library.metadata import (
    JPEG_EXIF_LIMIT,
    MAX_TEXT_BYTES,
    decode_user_comment,
    split_scheduler,
)

from . import samples as S

# --------------------------------------------------------------------------------------------------
# format_parameters
# --------------------------------------------------------------------------------------------------


def test_format_parameters_exact_text() -> None:
    assert format_parameters(S.STUDIO_META) == (
        "a watercolor fox, autumn forest\n"
        "Negative prompt: blurry, low quality\n"
        "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1235, Size: 512x512, "
        "Model: sd-1.4, Version: latent-studio 0.1.0"
    )


def test_format_parameters_img2img_hash_quoting_and_numbers() -> None:
    meta = S.studio_meta(
        prompt="line one\nline two",
        negative_prompt="",
        guidance=7.0,
        scheduler="Euler a",
        strength=0.75,
        width=768,
        height=512,
    )
    meta["model"] = {
        "id": None,
        "repo": None,
        "path": "/models/my, model: v2.safetensors",
        "hash": "a1b2c3d4e5",
    }
    assert format_parameters(meta) == (
        "line one\nline two\n"
        "Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1235, Size: 768x512, "
        'Model hash: a1b2c3d4e5, Model: "my, model: v2", Denoising strength: 0.75, '
        "Version: latent-studio 0.1.0"
    )


def test_format_parameters_repo_basename_and_partial_meta() -> None:
    meta = S.studio_meta()
    meta["model"] = {"id": None, "repo": "CompVis/stable-diffusion-v1-4"}
    assert "Model: stable-diffusion-v1-4," in format_parameters(meta)
    # A partial dict still gives valid text, with nothing written as "None".
    text = format_parameters({"request": {"prompt": "just a prompt"}})
    assert text == "just a prompt\nVersion: latent-studio"
    assert "None" not in text


def test_quoted_values_are_json_like_a1111() -> None:
    meta = S.studio_meta()
    meta["model"] = {"id": 'weird "name", with\nnewline'}
    text = format_parameters(meta)
    assert 'Model: "weird \\"name\\", with\\nnewline"' in text
    assert parse_parameters(text)["params"]["Model"] == 'weird "name", with\nnewline'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
        ("Euler a", ("Euler a", "Automatic")),
        ("DDIM", ("DDIM", "Automatic")),
        ("Karras", ("Karras", "Automatic")),
        (None, (None, None)),
        # A1111 calls PNDM (without its warm-up, as ours) "PLMS".
        ("PNDM", ("PLMS", "Automatic")),
        # A1111 1.9+ reads "DPM++ 2M" + "Automatic" as Karras: the plain spacing must be said.
        ("DPM++ 2M", ("DPM++ 2M", "Uniform")),
        ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
        ("Euler Simple", ("Euler", "Simple")),
        ("UniPC", ("UniPC", "Automatic")),
    ],
)
def test_split_scheduler(name: str | None, expected: tuple[str | None, str | None]) -> None:
    assert split_scheduler(name) == expected


@pytest.mark.parametrize(
    ("pairs", "ours"),
    [
        ("Sampler: PLMS", "PNDM"),
        ("Sampler: PLMS, Schedule type: Automatic", "PNDM"),
        ("Sampler: DPM++ 2M, Schedule type: Uniform", "DPM++ 2M"),
        ("Sampler: DPM++ 2M, Schedule type: Karras", "DPM++ 2M Karras"),
        ("Sampler: DPM++ 2M, Schedule type: Automatic", "DPM++ 2M Karras"),  # A1111 1.9+: its own default
        ("Sampler: DPM++ 2M SDE, Schedule type: Automatic", "DPM++ 2M SDE Exponential"),
        ("Sampler: DPM++ 2M", "DPM++ 2M"),  # before 1.9 there was no schedule type: the name says it all
        ("Sampler: DPM++ 2M Karras", "DPM++ 2M Karras"),
        ("Sampler: Euler a, Schedule type: Automatic", "Euler a"),
        ("Sampler: Euler, Schedule type: Normal", "Euler"),
        ("Sampler: Euler, Schedule type: Karras", "Euler Karras"),
        ("Sampler: k_euler_a", "Euler a"),
        ("Sampler: UniPC, Schedule type: Automatic", "UniPC"),
    ],
)
def test_a1111_sampler_names_read_as_ours(pairs: str, ours: str) -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", f"a cat\nSteps: 20, {pairs}, Seed: 1, Size: 64x64")))
    assert result is not None and result.source == "a1111"
    assert result.scheduler == ours


@pytest.mark.parametrize("ours", ["DDIM", "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "UniPC", "PNDM"])
def test_our_scheduler_names_survive_the_a1111_text(ours: str) -> None:
    """Written as A1111 names, read back as ours (the engine's own list is checked in tests/engine)."""
    text = format_parameters(S.studio_meta(scheduler=ours))
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", text)))
    assert result is not None and result.source == "a1111"
    assert result.scheduler == ours


def test_reuse_names_a_local_model_by_its_path(tmp_path: Path) -> None:
    """A folder model's id is only the folder's name; reusing its parameters needs the path to load it."""
    meta = S.studio_meta()
    meta["model"] = {"id": "my-model", "repo": None, "path": "/models/my-model", "family": "sd1", "hash": None}
    result = read_metadata(save_image(Image.new("RGB", (8, 8)), tmp_path / "m.png", meta))
    assert result is not None and result.model == "/models/my-model"
    assert "Model: my-model," in result.raw[PARAMETERS_KEY]  # A1111 shows the name


@pytest.mark.parametrize(
    "prompt",
    [
        "plain prompt",
        "a cat, sitting: on a mat, (masterpiece:1.2)",
        "первый, 第二, ここ: 🎉🦊 emoji",
        "multi\nline\nprompt, with: everything",
        'quotes "inside", and \\ backslashes',
    ],
)
def test_parameters_text_round_trips_through_parser(prompt: str) -> None:
    meta = S.studio_meta(prompt=prompt, negative_prompt="neg, with: colon\nand newline")
    parsed = parse_parameters(format_parameters(meta))
    assert parsed["prompt"] == prompt
    assert parsed["negative_prompt"] == "neg, with: colon\nand newline"
    assert parsed["params"]["Seed"] == "1235"
    assert parsed["params"]["Sampler"] == "DPM++ 2M"


# --------------------------------------------------------------------------------------------------
# parse_parameters on A1111 texts from the wild
# --------------------------------------------------------------------------------------------------


def test_parse_classic() -> None:
    parsed = parse_parameters(S.A1111_CLASSIC)
    assert parsed["prompt"].startswith("masterpiece, best quality")
    assert parsed["prompt"].endswith("<lora:add_detail:0.6>")
    assert parsed["negative_prompt"] == "(worst quality, low quality:1.4), bad hands, EasyNegative"
    assert parsed["params"] == {
        "Steps": "28",
        "Sampler": "DPM++ 2M Karras",
        "CFG scale": "7",
        "Seed": "2179987202",
        "Size": "512x768",
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        "Clip skip": "2",
        "ENSD": "31337",
        "Version": "v1.6.0",
    }


def test_parse_hires_and_quoted_hashes() -> None:
    params = parse_parameters(S.A1111_HIRES_LORA)["params"]
    assert params["Lora hashes"] == "animeLineart: 2aa5c0c3a3f1"
    assert params["TI hashes"] == "EasyNegative: c74b4e810b03"
    assert params["Hires upscale"] == "2"
    assert params["Hires upscaler"] == "R-ESRGAN 4x+ Anime6B"
    assert params["Schedule type"] == "Karras"


def test_parse_multiline_prompt_and_negative() -> None:
    parsed = parse_parameters(S.A1111_MULTILINE_IMG2IMG)
    assert (
        parsed["prompt"]
        == "a cozy cabin in the woods,\nsnow falling, warm light from the windows\n\ngolden hour"
    )
    assert parsed["negative_prompt"] == "people,\ntext, watermark"
    assert parsed["params"]["Denoising strength"] == "0.6"


def test_parse_missing_negative_prompt() -> None:
    parsed = parse_parameters(S.A1111_NO_NEGATIVE)
    assert parsed["prompt"] == "portrait photo of an old fisherman, 85mm, kodak portra 400"
    assert parsed["negative_prompt"] == ""
    assert parsed["params"]["Model"] == "nai"


def test_parse_trailing_lines_after_parameters() -> None:
    parsed = parse_parameters(S.A1111_TRAILING)
    assert parsed["prompt"] == "a red fox in a snowy forest"
    assert parsed["negative_prompt"] == "blurry"
    assert parsed["params"]["Seed"] == "99"
    assert parsed["params"]["Template"] == "a {red|grey} fox in a snowy forest"
    assert parsed["trailing"] == "generated on my laptop"


def test_parse_escaped_quotes_and_nested_commas() -> None:
    params = parse_parameters(S.A1111_CONTROLNET)["params"]
    assert params["ADetailer prompt"] == 'smiling face, "bright" eyes'
    assert params["ControlNet 0"].startswith("Module: canny, Model: control_v11p_sd15_canny [d14c016b]")
    assert params["ControlNet 0"].endswith("Control Mode: Balanced")
    assert params["ADetailer confidence"] == "0.3"
    assert params["Version"] == "v1.6.0"


def test_parse_unquoted_json_values() -> None:
    params = parse_parameters(S.CIVITAI_UNQUOTED_JSON)["params"]
    assert json.loads(params["Hashes"]) == {"model": "31e35c80fc", "vae": "63aeecb90f"}
    assert json.loads(params["Civitai resources"]) == [{"type": "checkpoint", "modelVersionId": 128078}]
    assert params["Created Date"] == "2024-05-01T12:34:56.7890123Z"
    assert params["Model"] == "juggernautXL"


def test_parse_parameters_only_and_crlf() -> None:
    parsed = parse_parameters(S.A1111_PARAMS_ONLY)
    assert parsed["prompt"] == "" and parsed["negative_prompt"] == ""
    assert parsed["params"]["Sampler"] == "Euler a"
    parsed = parse_parameters(S.A1111_CRLF_COLONS)
    assert parsed["prompt"] == "style: anime, mood: calm\na cat (sitting:1.2) on a mat"
    assert parsed["negative_prompt"] == "dog"
    assert parsed["params"]["Size"] == "640x448"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "just a prompt, no params",
        "Negative prompt:",
        'Steps: "unterminated, Seed: 1',
        "a: b: c: d",
        "\x00\x01\x02",
        "Steps:" * 10_000,
        '"' * 5000,
        "{" * 5000 + "Steps: 1, Seed: 2",
    ],
)
def test_parse_never_crashes(text: str) -> None:
    parsed = parse_parameters(text)
    assert set(parsed) >= {"prompt", "negative_prompt", "params"}
    assert all(isinstance(value, str) for value in parsed["params"].values())


def test_parse_non_string_input() -> None:
    empty = {"prompt": "", "negative_prompt": "", "params": {}}
    assert parse_parameters(None) == empty  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Round trips through real files
# --------------------------------------------------------------------------------------------------

ROUND_TRIP_PROMPTS = [
    "a watercolor fox, autumn forest",
    "emoji 🦊🎉 and ünïcödé, 日本語のプロンプト",
    "commas, colons: and (weights:1.3), [brackets]",
    "first line\nsecond line: with colon\n\nfourth, after blank",
    "  leading and trailing spaces  ",
]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
@pytest.mark.parametrize("prompt", ROUND_TRIP_PROMPTS)
def test_round_trip_every_field(tmp_path: Path, suffix: str, prompt: str) -> None:
    meta = S.studio_meta(
        prompt=prompt, negative_prompt='ugly, "bad": hands\n🙈', strength=0.6, init_image_sha256="ab" * 32
    )
    meta["nsfw"] = True
    path = save_image(Image.new("RGB", (32, 24), (10, 20, 30)), tmp_path / f"image{suffix}", meta)
    result = read_metadata(path)
    assert result is not None
    assert result.source == "latent-studio"
    assert result.studio == meta
    assert result.prompt == prompt
    assert result.negative_prompt == 'ugly, "bad": hands\n🙈'
    assert (result.steps, result.guidance, result.seed) == (30, 7.5, 1235)
    assert (result.width, result.height) == (512, 512)
    assert result.scheduler == "DPM++ 2M Karras"
    assert result.model == "sd-1.4"
    assert result.strength == 0.6
    assert result.nsfw is True
    # The A1111 text is there too, for other tools.
    key = PARAMETERS_KEY if suffix == ".png" else "exif:UserComment"
    parsed = parse_parameters(result.raw[key])
    assert parsed["prompt"] == prompt.strip()
    assert parsed["params"]["Denoising strength"] == "0.6"


def test_to_request_fields_and_json_output(tmp_path: Path) -> None:
    path = save_image(Image.new("RGB", (8, 8)), tmp_path / "a.png", S.STUDIO_META)
    result = read_metadata(path)
    assert result is not None
    assert result.to_request_fields() == {
        "prompt": "a watercolor fox, autumn forest",
        "negative_prompt": "blurry, low quality",
        "steps": 30,
        "guidance": 7.5,
        "seed": 1235,
        "width": 512,
        "height": 512,
        "scheduler": "DPM++ 2M Karras",
        "model": "sd-1.4",
        "guidance_rescale": 0.0,
    }
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["source"] == "latent-studio"
    assert as_json["studio"]["scheduler_config"]["use_karras_sigmas"] is True
    summary = result.summary()
    assert summary.splitlines()[0] == "Source: Latent Studio"
    assert "Seed: 1235" in summary and "Model revision: 133a221b" in summary


def test_png_chunk_types(tmp_path: Path) -> None:
    ascii_path = save_image(Image.new("RGB", (8, 8)), tmp_path / "ascii.png", S.STUDIO_META)
    unicode_meta = S.studio_meta(prompt="café 🦊")
    unicode_path = save_image(Image.new("RGB", (8, 8)), tmp_path / "uni.png", unicode_meta)
    ascii_bytes, unicode_bytes = ascii_path.read_bytes(), unicode_path.read_bytes()
    assert b"tEXtparameters\x00" in ascii_bytes
    assert b"iTXtparameters\x00" in unicode_bytes
    assert b"iTXtlatent-studio\x00" in ascii_bytes
    # Pillow (what A1111 and most tools read with) sees the same text.
    with Image.open(unicode_path) as image:
        assert image.info[PARAMETERS_KEY] == format_parameters(S.studio_meta(prompt="café 🦊"))
        assert json.loads(image.info[STUDIO_KEY]) == S.studio_meta(prompt="café 🦊")


def test_pnginfo_for_and_exif_for_directly() -> None:
    info = pnginfo_for(S.STUDIO_META)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    result = read_metadata(buffer.getvalue())
    assert result is not None and result.studio == S.STUDIO_META
    exif = exif_for(S.STUDIO_META)
    assert exif[0x0131] == "latent-studio 0.1.0"
    assert json.loads(exif[0x010E]) == S.STUDIO_META
    comment = exif.get_ifd(0x8769)[0x9286]
    # Byte for byte what piexif.helper.UserComment.dump(text, encoding="unicode") gives (A1111's writer).
    assert comment == b"UNICODE\x00" + format_parameters(S.STUDIO_META).encode("utf-16-be")


def test_exif_json_is_ascii_only() -> None:
    meta = S.studio_meta(prompt="日本語 🦊")
    description = exif_for(meta)[0x010E]
    assert description.isascii()
    assert json.loads(description) == meta


def test_jpeg_long_prompt_drops_json_first(tmp_path: Path) -> None:
    prompt = "word, " * 4500  # 27,000 characters: the UTF-16 comment fits, comment + JSON do not
    meta = S.studio_meta(prompt=prompt)
    assert len(exif_for(meta).tobytes()) > JPEG_EXIF_LIMIT
    path = save_image(Image.new("RGB", (8, 8)), tmp_path / "long.jpg", meta)
    result = read_metadata(path)
    assert result is not None and result.source == "a1111"
    assert result.prompt == prompt.strip()
    assert result.seed == 1235


def test_jpeg_huge_prompt_still_saves(tmp_path: Path) -> None:
    meta = S.studio_meta(prompt="x" * 40_000)
    path = save_image(Image.new("RGB", (8, 8)), tmp_path / "huge.jpg", meta)
    assert read_metadata(path) is None  # nothing fitted, but the image was saved
    with Image.open(path) as image:
        assert image.getexif()[0x0131] == "latent-studio 0.1.0"


def test_read_from_pillow_image(tmp_path: Path) -> None:
    png = save_image(Image.new("RGB", (8, 8)), tmp_path / "a.png", S.STUDIO_META)
    jpg = save_image(Image.new("RGB", (8, 8)), tmp_path / "a.jpg", S.STUDIO_META)
    for path in (png, jpg):
        with Image.open(path) as image:
            result = read_metadata(image)
        assert result is not None and result.studio == S.STUDIO_META
    assert read_metadata(Image.new("RGB", (4, 4))) is None


def test_no_metadata_gives_none(tmp_path: Path) -> None:
    for suffix in (".png", ".jpg", ".webp"):
        path = save_image(Image.new("RGB", (8, 8)), tmp_path / f"plain{suffix}", None)
        assert read_metadata(path) is None
    gif = tmp_path / "plain.gif"
    Image.new("P", (8, 8)).save(gif)
    assert read_metadata(gif) is None


# --------------------------------------------------------------------------------------------------
# Other tools
# --------------------------------------------------------------------------------------------------


def test_a1111_png(tmp_path: Path) -> None:
    path = tmp_path / "a1111.png"
    path.write_bytes(S.png_bytes(S.text_chunk("parameters", S.A1111_HIRES_LORA)))
    result = read_metadata(path)
    assert result is not None and result.source == "a1111"
    assert result.prompt == "1girl, solo, looking at viewer, cherry blossoms, <lora:animeLineart:0.8>"
    assert result.negative_prompt == "EasyNegative, lowres, bad anatomy"
    assert (result.steps, result.guidance, result.seed) == (25, 6.5, 3360837375)
    assert (result.width, result.height) == (512, 768)
    assert result.scheduler == "DPM++ 2M Karras"
    assert result.model == "anythingV5_PrtRE"
    assert result.strength is None  # the hires pass's denoise, not img2img
    assert result.extra["Denoising strength"] == "0.45"
    assert result.extra["Lora hashes"] == "animeLineart: 2aa5c0c3a3f1"
    assert result.studio is None


def test_a1111_img2img_strength_and_old_sampler_names() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", S.A1111_MULTILINE_IMG2IMG)))
    assert result is not None
    assert result.strength == 0.6
    assert result.scheduler == "Euler a"
    classic = read_metadata(S.png_bytes(S.text_chunk("parameters", S.A1111_CLASSIC)))
    assert classic is not None and classic.scheduler == "DPM++ 2M Karras"
    assert classic.extra["Clip skip"] == "2"


def test_a1111_jpeg_user_comment_as_a1111_writes_it() -> None:
    raw = b"UNICODE\x00" + S.A1111_CLASSIC.encode("utf-16-be")
    result = read_metadata(S.jpeg_with_exif(S.user_comment_exif(raw)))
    assert result is not None and result.source == "a1111"
    assert result.seed == 2179987202
    assert result.raw["exif:UserComment"] == S.A1111_CLASSIC


def test_a1111_in_jpeg_comment_segment() -> None:
    result = read_metadata(S.jpeg_with_exif(comment=S.A1111_NO_NEGATIVE.encode("utf-8")))
    assert result is not None and result.source == "a1111"
    assert result.model == "nai"


def test_a1111_utf8_in_text_chunk() -> None:
    # Some writers put UTF-8 bytes in tEXt (the spec says Latin-1); we read them as UTF-8.
    text = "ネコ, cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 512x512"
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", text.encode("utf-8"))))
    assert result is not None and result.prompt == "ネコ, cat"
    latin = read_metadata(S.png_bytes(S.text_chunk("parameters", "café\nSteps: 1, Seed: 2, CFG scale: 3")))
    assert latin is not None and latin.prompt == "café"


def test_comfyui_default_graph(tmp_path: Path) -> None:
    path = tmp_path / "comfy.png"
    path.write_bytes(
        S.png_bytes(
            S.text_chunk("prompt", S.dumps(S.COMFY_DEFAULT)),
            S.text_chunk("workflow", S.dumps(S.COMFY_WORKFLOW)),
        )
    )
    result = read_metadata(path)
    assert result is not None and result.source == "comfyui"
    assert result.prompt == "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
    assert result.negative_prompt == "text, watermark"
    assert (result.steps, result.guidance, result.seed) == (20, 8.0, 156680208700286)
    assert (result.width, result.height) == (512, 512)
    assert result.scheduler == "Euler"
    assert result.model == "v1-5-pruned-emaonly"
    assert result.strength is None
    assert result.extra["sampler_name"] == "euler" and result.extra["scheduler"] == "normal"
    assert "workflow" in result.raw


def test_comfyui_sdxl_two_pass_graph() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("prompt", S.dumps(S.COMFY_SDXL_ADVANCED))))
    assert result is not None
    assert result.extra["sampler node"] == "19 (KSamplerAdvanced)"  # the base pass, not the refiner
    assert result.prompt == "a pixel art castle on a hill"
    assert result.negative_prompt == "blurry, photo"  # through ControlNetApplyAdvanced's negative
    assert result.seed == 640271075062843  # from the linked seed node
    assert (result.steps, result.guidance) == (30, 6.5)
    assert result.scheduler == "DPM++ 2M Karras"
    assert result.model == "sd_xl_base_1.0"  # through the LoRA loader
    assert (result.width, result.height) == (1024, 1024)


def test_comfyui_custom_sampler_graph() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("prompt", S.dumps(S.COMFY_CUSTOM_ADVANCED))))
    assert result is not None
    assert result.prompt == "a neon sign that says hello"
    assert (result.seed, result.steps) == (987654321, 20)
    assert result.scheduler == "Euler Simple"
    assert result.model == "flux1-dev"
    assert (result.width, result.height) == (1024, 768)


def test_comfyui_img2img_graph() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("prompt", S.dumps(S.COMFY_IMG2IMG))))
    assert result is not None
    assert result.strength == 0.55
    assert result.negative_prompt == ""
    assert result.scheduler == "DPM++ 2M SDE Exponential"
    assert result.width is None and result.height is None


def test_comfyui_cycles_and_missing_nodes() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("prompt", S.dumps(S.COMFY_CYCLIC))))
    assert result is not None and result.source == "comfyui"
    assert (result.seed, result.steps) == (77, 12)
    assert result.guidance is None  # "nan"
    assert result.prompt is None and result.negative_prompt is None and result.model is None


def test_comfyui_workflow_only_and_webp_exif() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("workflow", S.dumps(S.COMFY_WORKFLOW))))
    assert result is not None and result.source == "comfyui" and result.prompt is None
    # ComfyUI's WebP saver: Model (0x0110) = "prompt:<json>", Make (0x010F) = "workflow:<json>".
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + S.dumps(S.COMFY_DEFAULT)
    exif[0x010F] = "workflow:" + S.dumps(S.COMFY_WORKFLOW)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "WEBP", exif=exif)
    result = read_metadata(buffer.getvalue())
    assert result is not None and result.source == "comfyui"
    assert result.seed == 156680208700286


def test_invokeai_v3() -> None:
    result = read_metadata(S.png_bytes(S.itxt_chunk("invokeai_metadata", S.dumps(S.INVOKEAI_V3))))
    assert result is not None and result.source == "invokeai"
    assert result.prompt == "landscape, mountains at sunrise"
    assert result.negative_prompt == "low quality"
    assert (result.steps, result.guidance, result.seed) == (50, 7.5, 356120443)
    assert (result.width, result.height) == (768, 432)
    assert result.scheduler == "DPM++ 2M SDE Karras"
    assert result.model == "amixx_3Prunedfp16"
    assert result.strength is None
    assert result.extra["app_version"] == "3.3.0post3"
    assert result.extra["model base"] == "sd-1"


def test_invokeai_v5_img2img_and_legacy() -> None:
    result = read_metadata(
        S.png_bytes(S.itxt_chunk("invokeai_metadata", S.dumps(S.INVOKEAI_V5), compressed=True))
    )
    assert result is not None
    assert result.model == "Juggernaut XL v9"
    assert result.scheduler == "Euler a"
    assert result.strength == 0.7
    assert result.guidance == 6.0
    legacy = read_metadata(S.png_bytes(S.text_chunk("sd-metadata", S.dumps(S.INVOKEAI_LEGACY))))
    assert legacy is not None and legacy.source == "invokeai"
    assert legacy.prompt == "a lighthouse in a storm [lowres]"
    assert (legacy.seed, legacy.scheduler, legacy.model) == (3611423217, "LMS", "stable-diffusion-1.5")


def test_precedence_ours_then_a1111_then_invokeai_then_comfy() -> None:
    ours = S.itxt_chunk(STUDIO_KEY, json.dumps(S.STUDIO_META))
    a1111 = S.text_chunk("parameters", S.A1111_CLASSIC)
    invoke = S.text_chunk("invokeai_metadata", S.dumps(S.INVOKEAI_V3))
    comfy = S.text_chunk("prompt", S.dumps(S.COMFY_DEFAULT))
    assert read_metadata(S.png_bytes(comfy, invoke, a1111, ours)).source == "latent-studio"
    assert read_metadata(S.png_bytes(comfy, invoke, a1111)).source == "a1111"
    assert read_metadata(S.png_bytes(comfy, invoke)).source == "invokeai"
    assert read_metadata(S.png_bytes(comfy)).source == "comfyui"


def test_text_after_image_data_is_read() -> None:
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", S.A1111_CLASSIC), after_idat=True))
    assert result is not None and result.seed == 2179987202


# --------------------------------------------------------------------------------------------------
# EXIF UserComment encodings
# --------------------------------------------------------------------------------------------------

TEXT = "ünï, 🦊\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 11, Size: 64x64"


@pytest.mark.parametrize(
    "raw",
    [
        b"UNICODE\x00" + TEXT.encode("utf-16-be"),
        b"UNICODE\x00" + TEXT.encode("utf-16-le"),
        b"UNICODE\x00" + b"\xfe\xff" + TEXT.encode("utf-16-be"),
        b"UNICODE\x00" + b"\xff\xfe" + TEXT.encode("utf-16-le"),
        b"ASCII\x00\x00\x00" + TEXT.encode("utf-8"),
        b"\x00" * 8 + TEXT.encode("utf-8"),
        TEXT.encode("utf-8"),
        b"UNICODE\x00" + TEXT.encode("utf-16-be") + b"\x00\x00",
    ],
)
def test_user_comment_encodings(raw: bytes) -> None:
    assert decode_user_comment(raw) == TEXT
    result = read_metadata(S.jpeg_with_exif(S.user_comment_exif(raw)))
    assert result is not None and result.prompt == "ünï, 🦊" and result.seed == 11


def test_user_comment_odd_inputs() -> None:
    assert decode_user_comment(None) is None
    assert decode_user_comment(b"") == ""
    assert decode_user_comment(b"UNICODE\x00\x00A\x00") == "A"
    assert decode_user_comment(b"JIS\x00\x00\x00\x00\x00" + "テスト".encode("shift_jis")) == "テスト"
    assert isinstance(decode_user_comment(b"UNICODE\x00\xd8\x00"), str)  # lone surrogate: replaced


def test_camera_comment_is_not_generation_metadata() -> None:
    raw = b"ASCII\x00\x00\x00" + b"Holiday in Rome, day 3"
    assert read_metadata(S.jpeg_with_exif(S.user_comment_exif(raw))) is None


# --------------------------------------------------------------------------------------------------
# Garbage and hostile input
# --------------------------------------------------------------------------------------------------


def test_invalid_studio_json_falls_back_to_parameters() -> None:
    data = S.png_bytes(
        S.itxt_chunk(STUDIO_KEY, '{"schema": 1, "app": "latent-studio", "request": {'),
        S.text_chunk("parameters", S.A1111_NO_NEGATIVE),
    )
    result = read_metadata(data)
    assert result is not None and result.source == "a1111"
    assert STUDIO_KEY in result.raw


@pytest.mark.parametrize(
    "document",
    [
        {"schema": 1, "app": "someone-else", "request": {}},
        {"schema": "1", "app": "latent-studio", "request": {}},
        {"schema": 0, "app": "latent-studio", "request": {}},
        {"schema": True, "app": "latent-studio", "request": {}},
        {"schema": 1, "app": "latent-studio", "request": ["not", "a", "dict"]},
        ["schema", 1],
    ],
)
def test_studio_json_schema_checked(document: object) -> None:
    assert read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, json.dumps(document)))) is None


def test_studio_json_with_wrong_types_gives_partial_data() -> None:
    document = {
        "schema": 1,
        "app": "latent-studio",
        "request": {
            "prompt": 42,
            "steps": "abc",
            "guidance": "7.5",
            "seed": 3.0,
            "width": True,
            "height": None,
            "scheduler": ["x"],
            "strength": float("inf"),
        },
        "model": "not a dict",
        "seed": "12",
        "nsfw": "yes",
    }
    result = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, json.dumps(document))))
    assert result is not None and result.source == "latent-studio"
    assert result.prompt is None and result.steps is None and result.width is None
    assert result.guidance == 7.5 and result.seed == 12
    assert result.scheduler is None and result.model is None and result.strength is None
    assert result.nsfw is None


def test_binary_garbage_text_chunks() -> None:
    data = S.png_bytes(
        S.text_chunk("parameters", bytes(range(256))),
        S.png_chunk(b"iTXt", b"\xff\xfe\x00broken"),
        S.png_chunk(b"zTXt", b"key\x00\x00not zlib at all"),
        S.png_chunk(b"tEXt", b"no separator"),
        S.text_chunk("prompt", b"\x00\x01{\x02"),
    )
    result = read_metadata(data)
    assert result is not None and result.source == "a1111"


def test_oversized_text_chunk_is_ignored() -> None:
    huge = "x" * (MAX_TEXT_BYTES + 1)
    assert read_metadata(S.png_bytes(S.text_chunk("parameters", huge))) is None
    # Under the limit but long: accepted, and raw is truncated.
    long = "y" * 200_000 + "\nSteps: 1, Seed: 2, CFG scale: 3"
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", long)))
    assert result is not None and result.seed == 2
    assert len(result.raw["parameters"]) < 70_000


def test_ztxt_decompression_bomb_is_skipped() -> None:
    bomb = zlib.compress(b"a" * (20 * MAX_TEXT_BYTES), 9)
    data = S.png_bytes(S.ztxt_chunk("parameters", bomb), S.text_chunk("prompt", S.dumps(S.COMFY_DEFAULT)))
    with pytest.raises(ValueError):  # Pillow refuses to even open this file
        Image.open(io.BytesIO(data))
    result = read_metadata(data)
    assert result is not None and result.source == "comfyui"


def test_deeply_nested_and_absurd_json() -> None:
    for document in ("[" * 100_000, '{"a":' * 50_000):
        assert read_metadata(S.png_bytes(S.text_chunk("prompt", document))) is None
    # A number too long to be a seed costs only that number: the graph is still read.
    huge = '{"1": {"class_type": "KSampler", "inputs": {"seed": 1' + "0" * 5000 + "}}}"
    result = read_metadata(S.png_bytes(S.text_chunk("prompt", huge)))
    assert result is not None and result.source == "comfyui" and result.seed is None
    assert read_metadata(S.png_bytes(S.text_chunk("invokeai_metadata", "[1, 2, 3]"))) is None
    assert read_metadata(S.png_bytes(S.text_chunk("prompt", "{}"))) is None
    assert read_metadata(S.png_bytes(S.text_chunk("prompt", '{"positive": "a cat", "n": 1}'))) is None


HOSTILE_PARAMETERS = {
    "unclosed brackets": "Steps: 1, " + "a: {, " * 150_000,
    "commas without colons": "Steps: 1, Seed: 2, CFG: 3\n" + "(a, " * 200_000 + ": x, y: 1, z: 2",
    "unclosed quotes": "Steps: 1, " + 'a: "x\\", ' * 100_000,
    "many bracketed values": "Steps: 1, " + 'a: {"b": [1, 2]}, ' * 50_000,
    "long keys": ("x" * 5000 + ", ") * 150 + "Steps: 1",
    "deep brackets": "Steps: 1, a: " + "[" * 500_000,
    "many steps lines": "Steps: 1\n" * 100_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PARAMETERS))
def test_hostile_parameters_text_is_parsed_in_linear_time(name: str) -> None:
    # Each of these took seconds to minutes with a naive scanner; with the bounds it is milliseconds.
    text = HOSTILE_PARAMETERS[name][:MAX_TEXT_BYTES]
    result = read_metadata(S.png_bytes(S.text_chunk("parameters", text)))
    assert result is not None and result.source == "a1111"


def test_huge_comfy_graph_is_bounded() -> None:
    graph: dict[str, object] = {}
    for index in range(5000):
        graph[str(index)] = {
            "class_type": "KSampler",
            "inputs": {
                "seed": index,
                "positive": [str(index + 1), 0],
                "latent_image": [str(index + 1), 0],
                "model": [str(index + 1), 0],
            },
        }
    result = read_metadata(S.png_bytes(S.text_chunk("prompt", json.dumps(graph))))
    assert result is not None and result.source == "comfyui"


def test_bad_crc_chunk_is_skipped() -> None:
    bad = S.png_chunk(b"tEXt", b"parameters\x00" + S.A1111_CLASSIC.encode(), crc=0)
    assert read_metadata(S.png_bytes(bad)) is None


def test_truncated_png_still_gives_what_was_read() -> None:
    data = S.png_bytes(S.text_chunk("parameters", S.A1111_CLASSIC))
    cut = data[: data.index(b"IDAT") + 10]
    result = read_metadata(cut)
    assert result is not None and result.seed == 2179987202


def test_many_text_chunks_are_bounded() -> None:
    chunks = [S.text_chunk(f"k{i}", "v") for i in range(500)]
    result = read_metadata(S.png_bytes(*chunks, S.text_chunk("parameters", S.A1111_CLASSIC)))
    assert result is not None and result.seed == 2179987202  # known keys cannot be crowded out
    assert len(result.raw) <= 64 + 1


# --------------------------------------------------------------------------------------------------
# Fuzzing findings: invalid text, deep JSON, absurd numbers (whatever is read can be printed, stored and
# serialised; only the broken part goes missing)
# --------------------------------------------------------------------------------------------------

_FIELD_TYPES = {
    "prompt": str,
    "negative_prompt": str,
    "scheduler": str,
    "model": str,
    "steps": int,
    "seed": int,
    "width": int,
    "height": int,
    "guidance": float,
    "strength": float,
    "guidance_rescale": float,
    "mask_blur": int,
    "masked_content": str,
    "inpaint_area": str,
    "padding": int,
    "invert_mask": bool,
    "outpaint_fill": str,
    "expand": tuple,
}


def assert_usable(meta: object) -> None:
    """What every consumer relies on: ``studio info --json`` can print it as strict UTF-8 JSON, the
    gallery can store its strings, "reuse parameters" gets fields of the right types."""
    assert meta is not None
    document = json.dumps(meta.to_dict(), ensure_ascii=False, allow_nan=False)  # type: ignore[attr-defined]
    document.encode("utf-8")
    meta.summary().encode("utf-8")  # type: ignore[attr-defined]
    for name, value in meta.to_request_fields().items():  # type: ignore[attr-defined]
        assert type(value) is _FIELD_TYPES[name], (name, value)


def ours(request: dict[str, object] | str, **top: object) -> str:
    """Our JSON text with `request` (a dict, or raw JSON text spliced in) and other top-level keys."""
    body = request if isinstance(request, str) else json.dumps(request)
    rest = "".join(f", {json.dumps(key)}: {value if isinstance(value, str) else json.dumps(value)}" for key, value in top.items())
    return '{"schema": 1, "app": "latent-studio", "request": ' + body + rest + "}"


def test_lone_surrogates_in_our_json_become_replacement_characters() -> None:
    # json.dumps writes each lone surrogate as the escape \udXXX: valid JSON, invalid text once decoded.
    document = json.dumps(
        {
            "schema": 1,
            "app": "latent-studio",
            "app_version": "0.1\udfff",
            "request": {
                "prompt": "bad \ud800",
                "negative_prompt": "\udcff worse",
                "scheduler": "Euler\udc00",
                "model": "fallback",
                "joined": "\ud83d\ude00",
            },
            "model": {"id": "m\ud800", "revision": "\udbff"},
            "device": "cpu\ud800",
            "\ud800key": ["\udc80", {"\udfff": "\ud800"}],
        }
    )
    assert "\\ud800" in document
    meta = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, document)))
    assert meta is not None and meta.source == "latent-studio"
    assert meta.prompt == "bad \ufffd" and meta.negative_prompt == "\ufffd worse"
    assert meta.scheduler == "Euler\ufffd" and meta.model == "m\ufffd"
    assert meta.extra["Device"] == "cpu\ufffd" and meta.extra["Model revision"] == "\ufffd"
    assert meta.extra["Version"] == "latent-studio 0.1\ufffd"
    assert meta.studio is not None and meta.studio["\ufffdkey"] == ["\ufffd", {"\ufffd": "\ufffd"}]
    assert meta.studio["request"]["joined"] == "\U0001f600"  # a proper pair is one character, kept
    assert_usable(meta)


def test_lone_surrogates_in_a1111_parameters() -> None:
    # UTF-8 cannot encode a surrogate, but a file can hold its would-be bytes (ED A0 80) in an iTXt chunk.
    body = "a cat \ud800\nSteps: 20, Seed: 5, Model: m\udcff".encode("utf-8", "surrogatepass")
    itxt = S.png_chunk(b"iTXt", b"parameters\x00\x00\x00\x00\x00" + body)
    # A1111 JSON-quotes values with commas or colons; the quoting's \u escapes can spell a surrogate.
    quoted = 'a dog\nSteps: 20, Seed: 6, Model: "x, \\ud800", Lora hashes: "a: \\udcff"'
    for data, prompt, model in ((S.png_bytes(itxt), "a cat", None), (S.png_bytes(S.text_chunk("parameters", quoted)), "a dog", "x, \ufffd")):
        meta = read_metadata(data)
        assert meta is not None and meta.source == "a1111" and meta.prompt.startswith(prompt)
        assert_usable(meta)
        if model:
            assert meta.model == model and meta.extra["Lora hashes"] == "a: \ufffd"
    # UTF-16 in an EXIF UserComment can hold a lone surrogate's code unit too.
    raw = b"UNICODE\x00" + "a fox \ud800\nSteps: 20, Seed: 7".encode("utf-16-be", "surrogatepass")
    meta = read_metadata(S.jpeg_with_exif(S.user_comment_exif(raw)))
    assert meta is not None and meta.seed == 7 and meta.prompt == "a fox \ufffd"
    assert_usable(meta)


def test_lone_surrogates_in_comfyui_and_invokeai_json() -> None:
    graph = json.loads(json.dumps(S.COMFY_DEFAULT))
    graph["6"]["inputs"]["text"] = "glass \ud800 bottle"
    graph["4"]["inputs"]["ckpt_name"] = "model\udcff.safetensors"
    graph["3"]["inputs"]["sampler_name"] = "euler\udfff"
    comfy = read_metadata(S.png_bytes(S.text_chunk("prompt", json.dumps(graph))))
    assert comfy is not None and comfy.source == "comfyui"
    assert comfy.prompt == "glass \ufffd bottle" and comfy.model == "model\ufffd"
    assert_usable(comfy)
    invoke = dict(S.INVOKEAI_V5, positive_prompt="a \ud800", extra_key="\udcff", model={"name": "\udfff"})
    invoke["\ud800"] = "key with a surrogate"
    meta = read_metadata(S.png_bytes(S.itxt_chunk("invokeai_metadata", json.dumps(invoke))))
    assert meta is not None and meta.source == "invokeai"
    assert meta.prompt == "a \ufffd" and meta.model == "\ufffd" and meta.extra["extra_key"] == "\ufffd"
    assert meta.extra["\ufffd"] == "key with a surrogate"
    assert_usable(meta)


def test_lone_surrogate_in_a_pillow_images_own_text() -> None:
    image = Image.new("RGB", (4, 4))
    image.info["parameters"] = "made in memory \ud800\nSteps: 3, Seed: 4"
    meta = read_metadata(image)
    assert meta is not None and meta.prompt == "made in memory \ufffd" and meta.steps == 3
    assert_usable(meta)


def _nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "array" else ('{"a":' * depth + "1" + "}" * depth)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [900, 100_000])
def test_deep_json_in_our_chunk_falls_back_without_error(depth: int, kind: str) -> None:
    deep = _nested(depth, kind)
    for document in (deep, ours({"prompt": "deep"}, x=deep), ours('{"prompt": "deep", "x": ' + deep + "}")):
        alone = S.png_bytes(S.itxt_chunk(STUDIO_KEY, document))
        assert read_metadata(alone) is None
        with_text = S.png_bytes(S.itxt_chunk(STUDIO_KEY, document), S.text_chunk("parameters", S.A1111_NO_NEGATIVE))
        meta = read_metadata(with_text)
        assert meta is not None and meta.source == "a1111" and meta.seed == 1
        assert_usable(meta)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [900, 100_000])
def test_deep_json_in_comfyui_and_invokeai_chunks(depth: int, kind: str) -> None:
    deep = _nested(depth, kind)
    graph = json.dumps(S.COMFY_DEFAULT)
    inside_graph = graph[:-1] + ', "99": {"class_type": "Note", "inputs": {"x": ' + deep + "}}}"
    invoke = json.dumps(S.INVOKEAI_V3)[:-1] + ', "x": ' + deep + "}"
    for chunks in (
        [S.text_chunk("prompt", deep)],
        [S.text_chunk("prompt", inside_graph)],
        [S.text_chunk("workflow", deep)],
        [S.itxt_chunk("invokeai_metadata", deep)],
        [S.itxt_chunk("invokeai_metadata", invoke)],
        [S.itxt_chunk("sd-metadata", deep)],
    ):
        assert read_metadata(S.png_bytes(*chunks)) is None
    # Next to a good document, the deep one is only "not there".
    meta = read_metadata(S.png_bytes(S.itxt_chunk("invokeai_metadata", invoke), S.text_chunk("prompt", graph)))
    assert meta is not None and meta.source == "comfyui" and meta.seed == 156680208700286
    assert_usable(meta)


def test_json_nesting_up_to_the_limit_is_read_and_serialisable() -> None:
    # 60 levels inside our 1-level document: deeper than any real tool writes, still within bounds.
    meta = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, ours({"prompt": "ok"}, x=_nested(60, "array")))))
    assert meta is not None and meta.source == "latent-studio" and meta.prompt == "ok"
    assert_usable(meta)
    # Brackets inside strings are text, not nesting, escaped quotes and backslashes included.
    prompt = "[" * 5000 + '\\"{' * 100 + "\\\\" + "{" * 100
    meta = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, ours({"prompt": prompt}))))
    assert meta is not None and meta.prompt == prompt


@pytest.mark.parametrize("document", ["5", '"just a string"', "null", "true", "[]", "[1, 2]", "-1e999", '""'])
def test_non_object_json_is_not_metadata(document: str) -> None:
    for key in (STUDIO_KEY, "invokeai_metadata", "prompt", "workflow", "sd-metadata"):
        assert read_metadata(S.png_bytes(S.itxt_chunk(key, document))) is None
    meta = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, document), S.text_chunk("parameters", S.A1111_NO_NEGATIVE)))
    assert meta is not None and meta.source == "a1111"


@pytest.mark.parametrize(
    ("literal", "field"),
    [
        ("1e999", "guidance"),
        ("-1e999", "strength"),
        ("1" + "0" * 5000, "seed"),
        ("-" + "9" * 5000, "steps"),
        ("1" + "0" * 4200, "width"),
        ("NaN", "guidance"),
        ("Infinity", "seed"),
        ("-Infinity", "height"),
        ("1e308", "steps"),
        ("1" + "0" * 50 + ".5", "guidance"),
    ],
)
def test_absurd_numbers_cost_only_their_field(literal: str, field: str) -> None:
    request = '{"prompt": "numbers", "steps": 20, "guidance": 7.5, "seed": 3, "width": 64, "height": 64, "strength": 0.5, '
    request += f'"{field}": {literal}, "extra": [{literal}, {{"n": {literal}}}]}}'
    document = ours(request, seed=literal, batch_index=literal)
    meta = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, document)))
    assert meta is not None and meta.source == "latent-studio" and meta.prompt == "numbers"
    assert getattr(meta, field) is None
    assert_usable(meta)
    # The same numbers in other tools' JSON.
    invoke = '{"positive_prompt": "n", "steps": 20, "seed": ' + literal + ', "cfg_scale": ' + literal + ', "x": ' + literal + "}"
    meta = read_metadata(S.png_bytes(S.itxt_chunk("invokeai_metadata", invoke)))
    assert meta is not None and meta.steps == 20 and meta.seed is None and meta.guidance is None
    assert_usable(meta)
    graph = json.dumps(S.COMFY_DEFAULT).replace("156680208700286", literal)
    meta = read_metadata(S.png_bytes(S.text_chunk("prompt", graph)))
    assert meta is not None and meta.source == "comfyui" and meta.seed is None and meta.steps == 20
    assert_usable(meta)


WRONG_VALUES = {
    "prompt": [42, ["a"], {"a": 1}, None, True],
    "negative_prompt": [42, ["a"], False],
    "scheduler": [["Euler"], 1, {"x": 1}, "x" * 10_000],
    "model": [["m"], 3, {"id": None}, "m" * 10_000],
    "seed": [[1], "x", {"a": 1}, -1, 2**64, 1.5, True, "1" * 60],
    "steps": ["x", [20], -5, 0, 1e30, 10**9, 2.5, False],
    "width": [-1, 0, 1e30, 10**6, "wide", [512], 64.5],
    "height": [-64, 1e30, "x", None],
    "guidance": ["x", [7], -1, 1e30, True],
    "strength": ["x", -5, 1.5, 1e30, [0.5], True],
}


@pytest.mark.parametrize("field", sorted(WRONG_VALUES))
def test_wrong_types_and_ranges_for_every_field_are_absent(field: str) -> None:
    good = {"prompt": "p", "negative_prompt": "n", "scheduler": "Euler", "model": "sd-1.4", "seed": 1,
            "steps": 20, "width": 64, "height": 64, "guidance": 7.5, "strength": 0.5}
    for value in WRONG_VALUES[field]:
        top = {"seed": json.dumps(value)} if field == "seed" else {}  # the image's own seed wins
        meta = read_metadata(S.png_bytes(S.itxt_chunk(STUDIO_KEY, ours({**good, field: value}, **top))))
        assert meta is not None and meta.source == "latent-studio"
        assert getattr(meta, field) is None, (field, value)
        fields = meta.to_request_fields()
        assert field not in fields and len(fields) == len(good) - 1
        assert_usable(meta)


def test_wrong_types_in_invokeai_and_comfyui_are_absent() -> None:
    invoke = {"positive_prompt": ["not", "text"], "negative_prompt": 3, "seed": [1], "steps": "x",
              "width": -1, "height": 1e30, "cfg_scale": {"a": 1}, "scheduler": 5, "model": [1],
              "strength": 7, "generation_mode": ["img2img"]}
    meta = read_metadata(S.png_bytes(S.itxt_chunk("invokeai_metadata", json.dumps(invoke))))
    assert meta is not None and meta.source == "invokeai" and meta.to_request_fields() == {}
    assert_usable(meta)
    graph = json.loads(json.dumps(S.COMFY_DEFAULT))
    graph["3"]["inputs"].update(seed=[1], steps=-3, cfg="high", sampler_name=7, denoise=[0.5])
    graph["5"]["inputs"].update(width=-512, height=1e30)
    graph["6"]["inputs"]["text"] = {"not": "text"}
    graph["4"]["inputs"]["ckpt_name"] = ["x"]
    meta = read_metadata(S.png_bytes(S.text_chunk("prompt", json.dumps(graph))))
    assert meta is not None and meta.source == "comfyui"
    assert meta.to_request_fields() == {"negative_prompt": "text, watermark"}
    assert_usable(meta)


def test_comfyui_node_ids_that_only_look_numeric() -> None:
    # "²".isdigit() is True but int("²") raises; a 5000-digit id is past int()'s limit: ids, not numbers.
    for node_id in ("²", "٣", "9" * 5000):
        graph = {node_id: {"class_type": "KSampler", "inputs": {"seed": 8, "steps": 9}}}
        meta = read_metadata(S.png_bytes(S.text_chunk("prompt", json.dumps(graph))))
        assert meta is not None and meta.source == "comfyui" and (meta.seed, meta.steps) == (8, 9)
        assert_usable(meta)


def test_every_sample_is_usable() -> None:
    documents = [
        S.text_chunk("parameters", text)
        for text in (S.A1111_CLASSIC, S.A1111_HIRES_LORA, S.A1111_CONTROLNET, S.CIVITAI_UNQUOTED_JSON)
    ]
    documents += [S.text_chunk("prompt", json.dumps(S.COMFY_SDXL_ADVANCED))]
    documents += [S.itxt_chunk("invokeai_metadata", json.dumps(S.INVOKEAI_V3))]
    documents += [S.itxt_chunk(STUDIO_KEY, json.dumps(S.STUDIO_META))]
    for chunk in documents:
        assert_usable(read_metadata(S.png_bytes(chunk)))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_writing_replaces_lone_surrogates(tmp_path: Path, suffix: str) -> None:
    # A prompt pasted from a broken source can hold a lone surrogate: the image must still be saved.
    meta = S.studio_meta(prompt="pasted \ud800 text", negative_prompt="\udcff")
    meta["model"]["id"] = "sd-1.4\udfff"
    path = tmp_path / f"image{suffix}"
    save_image(Image.new("RGB", (8, 8)), path, meta)
    result = read_metadata(path)
    assert result is not None and result.source == "latent-studio"
    assert result.prompt == "pasted \ufffd text" and result.negative_prompt == "\ufffd"
    assert result.model == "sd-1.4\ufffd"
    assert_usable(result)
    text = format_parameters(meta)
    assert "pasted \ufffd text" in text and "Negative prompt: \ufffd" in text
    text.encode("utf-8")


# --------------------------------------------------------------------------------------------------
# Unreadable files
# --------------------------------------------------------------------------------------------------


def test_metadata_error_for_non_images(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.png"
    text_file.write_text("this is not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + S.png_chunk(b"tEXt", b"parameters\x00x"))
    cases = {
        text_file: "not an image",
        empty: "empty file",
        tmp_path / "missing.png": "no such file",
        tmp_path: "is a directory",
        bad_png: "not an image",
    }
    for path, message in cases.items():
        with pytest.raises(MetadataError) as info:
            read_metadata(path)
        assert str(path) in str(info.value) and message in str(info.value)
        assert "\n" not in str(info.value)
    assert issubclass(MetadataError, ValueError)
    with pytest.raises(TypeError):
        read_metadata(12345)  # type: ignore[arg-type]


def test_long_raw_text_is_cut_once_and_says_its_real_length():
    """The readers and the final check both bound text: the second cut must keep the first one's count."""
    import io

    from PIL import Image, PngImagePlugin

    from studio.library.metadata import read_metadata
    from studio.library.metadata.values import RAW_LIMIT

    text = '{"a": "' + "x" * 104_000 + '"}'
    info = PngImagePlugin.PngInfo()
    info.add_itxt("workflow", text)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    raw = read_metadata(buffer.getvalue()).raw["workflow"]
    assert len(raw) == RAW_LIMIT and raw.endswith(f"… [truncated, {len(text)} characters]")
