"""Hand-written metadata samples in the layouts other tools write in the wild, and file builders.

The A1111 texts follow what AUTOMATIC1111 (and Forge / Civitai) put in the PNG ``parameters`` chunk;
the ComfyUI graphs are API-format ``prompt`` chunks; the InvokeAI documents are ``invokeai_metadata``
(3.x and 5.x) and the 2.x ``sd-metadata`` chunk.  Prompts, seeds and hashes are made up.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import zlib
from typing import Any

from PIL import Image

# --------------------------------------------------------------------------------------------------
# Our metadata
# --------------------------------------------------------------------------------------------------

STUDIO_META: dict[str, Any] = {
    "schema": 1,
    "app": "latent-studio",
    "app_version": "0.1.0",
    "model": {
        "id": "sd-1.4",
        "repo": "CompVis/stable-diffusion-v1-4",
        "revision": "133a221b8aa7292a167afc5127cb63fb5005638b",
        "family": "sd1",
        "path": None,
        "hash": None,
    },
    "request": {
        "prompt": "a watercolor fox, autumn forest",
        "negative_prompt": "blurry, low quality",
        "steps": 30,
        "guidance": 7.5,
        "guidance_rescale": 0.0,
        "seed": 1234,
        "width": 512,
        "height": 512,
        "scheduler": "DPM++ 2M Karras",
        "batch": 2,
        "strength": None,
        "init_image_sha256": None,
    },
    "seed": 1235,
    "batch_index": 1,
    "scheduler_config": {"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": True},
    "device": "cpu",
    "dtype": "float32",
    "nsfw": False,
    "versions": {"torch": "2.13.0", "diffusers": "0.36.0"},
    "created": "2025-06-01T12:30:00+00:00",
}


def studio_meta(**request: Any) -> dict[str, Any]:
    """A copy of STUDIO_META with request fields replaced."""
    meta = copy.deepcopy(STUDIO_META)
    meta["request"].update(request)
    return meta


# --------------------------------------------------------------------------------------------------
# AUTOMATIC1111 "parameters" texts
# --------------------------------------------------------------------------------------------------

A1111_CLASSIC = (
    "masterpiece, best quality, a girl with an umbrella in the rain, (detailed eyes:1.2), "
    "<lora:add_detail:0.6>\n"
    "Negative prompt: (worst quality, low quality:1.4), bad hands, EasyNegative\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 2179987202, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, ENSD: 31337, Version: v1.6.0"
)

A1111_HIRES_LORA = (
    "1girl, solo, looking at viewer, cherry blossoms, <lora:animeLineart:0.8>\n"
    "Negative prompt: EasyNegative, lowres, bad anatomy\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3360837375, Size: 512x768, "
    "Model hash: 7f96a1a9ca, Model: anythingV5_PrtRE, Denoising strength: 0.45, Clip skip: 2, "
    "Hires upscale: 2, Hires steps: 12, Hires upscaler: R-ESRGAN 4x+ Anime6B, "
    'Lora hashes: "animeLineart: 2aa5c0c3a3f1", TI hashes: "EasyNegative: c74b4e810b03", Version: v1.9.4'
)

A1111_MULTILINE_IMG2IMG = (
    "a cozy cabin in the woods,\n"
    "snow falling, warm light from the windows\n"
    "\n"
    "golden hour\n"
    "Negative prompt: people,\n"
    "text, watermark\n"
    "Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 12345, Size: 768x512, Model hash: e1441589a6, "
    "Model: v1-5-pruned, Denoising strength: 0.6, Mask blur: 4, Version: v1.7.0"
)

A1111_NO_NEGATIVE = (
    "portrait photo of an old fisherman, 85mm, kodak portra 400\n"
    "Steps: 20, Sampler: DDIM, CFG scale: 8, Seed: 1, Size: 512x512, Model hash: 925997e9, Model: nai"
)

A1111_TRAILING = (
    "a red fox in a snowy forest\n"
    "Negative prompt: blurry\n"
    "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 99, Size: 512x512, Version: v1.10.1\n"
    "Template: a {red|grey} fox in a snowy forest\n"
    "generated on my laptop"
)

A1111_CONTROLNET = (
    "a knight in shining armor\n"
    "Negative prompt: lowres\n"
    "Steps: 20, Sampler: DPM++ SDE Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 4199bcdd14, "
    "Model: revAnimated_v122, ADetailer model: face_yolov8n.pt, "
    'ADetailer prompt: "smiling face, \\"bright\\" eyes", ADetailer confidence: 0.3, '
    'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1, '
    "Resize Mode: Crop and Resize, Processor Res: 512, Guidance Start: 0, Guidance End: 1, "
    'Pixel Perfect: False, Control Mode: Balanced", Version: v1.6.0'
)

CIVITAI_UNQUOTED_JSON = (
    "cinematic photo of a lighthouse at dusk\n"
    "Negative prompt: cartoon\n"
    "Steps: 30, CFG scale: 5, Sampler: DPM++ 2M SDE, Seed: 876543210, Size: 832x1216, Clip skip: 2, "
    "Created Date: 2024-05-01T12:34:56.7890123Z, "
    'Civitai resources: [{"type":"checkpoint","modelVersionId":128078}], '
    'Hashes: {"model": "31e35c80fc", "vae": "63aeecb90f"}, Model: juggernautXL'
)

A1111_PARAMS_ONLY = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512"

A1111_CRLF_COLONS = (
    "style: anime, mood: calm\r\n"
    "a cat (sitting:1.2) on a mat\r\n"
    "Negative prompt: dog\r\n"
    "Steps: 15, Sampler: LMS, CFG scale: 9, Seed: 7, Size: 640x448"
)

# --------------------------------------------------------------------------------------------------
# ComfyUI API graphs ("prompt" chunk)
# --------------------------------------------------------------------------------------------------

COMFY_DEFAULT: dict[str, Any] = {
    "3": {
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
        "class_type": "KSampler",
        "_meta": {"title": "KSampler"},
    },
    "4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, "class_type": "CheckpointLoaderSimple"},
    "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1}, "class_type": "EmptyLatentImage"},
    "6": {
        "inputs": {
            "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
            "clip": ["4", 1],
        },
        "class_type": "CLIPTextEncode",
    },
    "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode"},
    "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage"},
}

COMFY_WORKFLOW: dict[str, Any] = {
    "last_node_id": 9,
    "last_link_id": 9,
    "nodes": [
        {
            "id": 3,
            "type": "KSampler",
            "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1],
        },
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["beautiful scenery"]},
    ],
    "links": [[1, 4, 0, 3, 0, "MODEL"]],
    "version": 0.4,
}

# SDXL base + refiner with KSamplerAdvanced, CLIPTextEncodeSDXL, a LoRA chain, a seed primitive node
# and a ControlNet between the prompt and the sampler.
COMFY_SDXL_ADVANCED: dict[str, Any] = {
    "10": {"inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}, "class_type": "CheckpointLoaderSimple"},
    "11": {"inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}, "class_type": "CheckpointLoaderSimple"},
    "12": {
        "inputs": {
            "lora_name": "pixel-art-xl.safetensors",
            "strength_model": 0.8,
            "strength_clip": 0.8,
            "model": ["10", 0],
            "clip": ["10", 1],
        },
        "class_type": "LoraLoader",
    },
    "13": {"inputs": {"seed": 640271075062843}, "class_type": "Seed (rgthree)"},
    "14": {"inputs": {"width": 1024, "height": 1024, "batch_size": 1}, "class_type": "EmptyLatentImage"},
    "15": {
        "inputs": {
            "width": 4096,
            "height": 4096,
            "crop_w": 0,
            "crop_h": 0,
            "target_width": 1024,
            "target_height": 1024,
            "text_g": "a pixel art castle on a hill",
            "text_l": "a pixel art castle on a hill",
            "clip": ["12", 1],
        },
        "class_type": "CLIPTextEncodeSDXL",
    },
    "16": {"inputs": {"text": "blurry, photo", "clip": ["12", 1]}, "class_type": "CLIPTextEncode"},
    "17": {"inputs": {"control_net_name": "canny.safetensors"}, "class_type": "ControlNetLoader"},
    "18": {
        "inputs": {
            "strength": 0.7,
            "start_percent": 0,
            "end_percent": 1,
            "positive": ["15", 0],
            "negative": ["16", 0],
            "control_net": ["17", 0],
            "image": ["30", 0],
        },
        "class_type": "ControlNetApplyAdvanced",
    },
    "19": {
        "inputs": {
            "add_noise": "enable",
            "noise_seed": ["13", 0],
            "steps": 30,
            "cfg": 6.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "start_at_step": 0,
            "end_at_step": 24,
            "return_with_leftover_noise": "enable",
            "model": ["12", 0],
            "positive": ["18", 0],
            "negative": ["18", 1],
            "latent_image": ["14", 0],
        },
        "class_type": "KSamplerAdvanced",
    },
    "2": {
        "inputs": {
            "add_noise": "disable",
            "noise_seed": 0,
            "steps": 30,
            "cfg": 6.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "start_at_step": 24,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
            "model": ["11", 0],
            "positive": ["21", 0],
            "negative": ["22", 0],
            "latent_image": ["19", 0],
        },
        "class_type": "KSamplerAdvanced",
    },
    "21": {
        "inputs": {
            "ascore": 6,
            "width": 1024,
            "height": 1024,
            "text": "a pixel art castle on a hill",
            "clip": ["11", 1],
        },
        "class_type": "CLIPTextEncodeSDXLRefiner",
    },
    "22": {
        "inputs": {"ascore": 2.5, "width": 1024, "height": 1024, "text": "blurry, photo", "clip": ["11", 1]},
        "class_type": "CLIPTextEncodeSDXLRefiner",
    },
    "30": {"inputs": {"image": "castle_edges.png", "upload": "image"}, "class_type": "LoadImage"},
}

# Flux-style custom sampling: SamplerCustomAdvanced with noise / guider / sampler / sigmas nodes.
COMFY_CUSTOM_ADVANCED: dict[str, Any] = {
    "1": {
        "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "fp8_e4m3fn"},
        "class_type": "UNETLoader",
    },
    "2": {
        "inputs": {"text": "a neon sign that says hello", "clip": ["9", 0]},
        "class_type": "CLIPTextEncode",
    },
    "3": {"inputs": {"guidance": 3.5, "conditioning": ["2", 0]}, "class_type": "FluxGuidance"},
    "4": {"inputs": {"model": ["1", 0], "conditioning": ["3", 0]}, "class_type": "BasicGuider"},
    "5": {"inputs": {"noise_seed": 987654321}, "class_type": "RandomNoise"},
    "6": {"inputs": {"sampler_name": "euler"}, "class_type": "KSamplerSelect"},
    "7": {
        "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1, "model": ["1", 0]},
        "class_type": "BasicScheduler",
    },
    "8": {"inputs": {"width": 1024, "height": 768, "batch_size": 1}, "class_type": "EmptySD3LatentImage"},
    "9": {
        "inputs": {"clip_name1": "t5xxl_fp8.safetensors", "clip_name2": "clip_l.safetensors", "type": "flux"},
        "class_type": "DualCLIPLoader",
    },
    "10": {
        "inputs": {
            "noise": ["5", 0],
            "guider": ["4", 0],
            "sampler": ["6", 0],
            "sigmas": ["7", 0],
            "latent_image": ["8", 0],
        },
        "class_type": "SamplerCustomAdvanced",
    },
}

# img2img: the latent comes from VAEEncode of a loaded image, denoise < 1.
COMFY_IMG2IMG: dict[str, Any] = {
    "1": {"inputs": {"ckpt_name": "dreamshaper_8.safetensors"}, "class_type": "CheckpointLoaderSimple"},
    "2": {"inputs": {"image": "photo.png", "upload": "image"}, "class_type": "LoadImage"},
    "3": {"inputs": {"pixels": ["2", 0], "vae": ["1", 2]}, "class_type": "VAEEncode"},
    "4": {"inputs": {"text": "oil painting of a harbour", "clip": ["1", 1]}, "class_type": "CLIPTextEncode"},
    "5": {"inputs": {"text": "", "clip": ["1", 1]}, "class_type": "CLIPTextEncode"},
    "6": {
        "inputs": {
            "seed": 5,
            "steps": 25,
            "cfg": 7.0,
            "sampler_name": "dpmpp_2m_sde",
            "scheduler": "exponential",
            "denoise": 0.55,
            "model": ["1", 0],
            "positive": ["4", 0],
            "negative": ["5", 0],
            "latent_image": ["3", 0],
        },
        "class_type": "KSampler",
    },
}

# Broken on purpose: conditioning nodes in a cycle, a link to a node that does not exist, a model
# link pointing back at the sampler, a latent pointing at itself.
COMFY_CYCLIC: dict[str, Any] = {
    "1": {
        "inputs": {
            "seed": "77",
            "steps": "12",
            "cfg": "nan",
            "sampler_name": "euler",
            "scheduler": "normal",
            "model": ["1", 0],
            "positive": ["2", 0],
            "negative": ["404", 0],
            "latent_image": ["4", 0],
        },
        "class_type": "KSampler",
    },
    "2": {
        "inputs": {"conditioning_1": ["3", 0], "conditioning_2": ["3", 0]},
        "class_type": "ConditioningCombine",
    },
    "3": {"inputs": {"conditioning": ["2", 0]}, "class_type": "ConditioningSetArea"},
    "4": {"inputs": {"samples": ["4", 0]}, "class_type": "LatentUpscaleBy"},
    "5": "not a node",
    "6": {"class_type": "CLIPTextEncode", "inputs": ["not", "a", "dict"]},
}

# --------------------------------------------------------------------------------------------------
# InvokeAI
# --------------------------------------------------------------------------------------------------

INVOKEAI_V3: dict[str, Any] = {
    "app_version": "3.3.0post3",
    "generation_mode": "txt2img",
    "positive_prompt": "landscape, mountains at sunrise",
    "negative_prompt": "low quality",
    "width": 768,
    "height": 432,
    "seed": 356120443,
    "rand_device": "cpu",
    "cfg_scale": 7.5,
    "steps": 50,
    "scheduler": "dpmpp_2m_sde_k",
    "clip_skip": 0,
    "model": {"model_name": "amixx_3Prunedfp16", "base_model": "sd-1", "model_type": "main"},
    "controlnets": [],
    "ipAdapters": [],
    "t2iAdapters": [],
    "loras": [],
    "vae": {"model_name": "sd-vae-ft-mse", "base_model": "sd-1"},
}

INVOKEAI_V5: dict[str, Any] = {
    "generation_mode": "sdxl_img2img",
    "positive_prompt": "a brutalist concrete library, overcast",
    "negative_prompt": "",
    "width": 1024,
    "height": 1024,
    "seed": 1948127612,
    "rand_device": "cpu",
    "cfg_scale": 6,
    "cfg_rescale_multiplier": 0,
    "steps": 32,
    "scheduler": "euler_a",
    "strength": 0.7,
    "model": {
        "key": "c1a9e0b8-5d2b-4a6e-9b8c-3f0d5e7a1c22",
        "hash": "blake3:4a1e2b3c4d5e6f",
        "name": "Juggernaut XL v9",
        "base": "sdxl",
        "type": "main",
    },
    "loras": [],
    "app_version": "5.4.3",
}

INVOKEAI_LEGACY: dict[str, Any] = {
    "model": "stable diffusion",
    "model_weights": "stable-diffusion-1.5",
    "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
    "app_id": "invoke-ai/InvokeAI",
    "app_version": "2.2.5",
    "image": {
        "prompt": [{"prompt": "a lighthouse in a storm [lowres]", "weight": 1.0}],
        "steps": 50,
        "cfg_scale": 7.5,
        "threshold": 0,
        "perlin": 0,
        "height": 512,
        "width": 512,
        "seed": 3611423217,
        "seamless": False,
        "hires_fix": False,
        "type": "txt2img",
        "postprocessing": None,
        "sampler": "k_lms",
        "variations": [],
    },
}

# --------------------------------------------------------------------------------------------------
# File builders
# --------------------------------------------------------------------------------------------------


def png_chunk(ctype: bytes, data: bytes, *, crc: int | None = None) -> bytes:
    value = zlib.crc32(ctype + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", value)


def text_chunk(key: str, value: str | bytes) -> bytes:
    payload = value if isinstance(value, bytes) else value.encode("latin-1")
    return png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + payload)


def itxt_chunk(key: str, value: str, *, compressed: bool = False) -> bytes:
    body = value.encode("utf-8")
    if compressed:
        body = zlib.compress(body)
    header = key.encode("latin-1") + b"\x00" + bytes([1 if compressed else 0, 0]) + b"\x00\x00"
    return png_chunk(b"iTXt", header + body)


def ztxt_chunk(key: str, compressed: bytes) -> bytes:
    return png_chunk(b"zTXt", key.encode("latin-1") + b"\x00\x00" + compressed)


def png_bytes(*chunks: bytes, size: tuple[int, int] = (8, 8), after_idat: bool = False) -> bytes:
    """A small valid PNG with extra chunks inserted after IHDR (or just before IEND)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 80, 120)).save(buffer, "PNG")
    data = buffer.getvalue()
    if after_idat:
        return data[:-12] + b"".join(chunks) + data[-12:]
    ihdr_end = 8 + 25
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def png_header_only(width: int, height: int, *, mode_bits: tuple[int, int] = (1, 0)) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no data: cheap bomb-limit probes."""
    ihdr = struct.pack(">IIBBBBB", width, height, mode_bits[0], mode_bits[1], 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def jpeg_with_exif(exif: Image.Exif | None = None, *, comment: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, Any] = {}
    if exif is not None:
        options["exif"] = exif
    if comment is not None:
        options["comment"] = comment
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def user_comment_exif(raw: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = raw
    return exif


def dumps(data: Any) -> str:
    return json.dumps(data)
