"""Hostile image files: PNGs built chunk by chunk (any text, any length field, bad CRCs, bombs), JPEGs and
WebPs with crafted EXIF, truncated and bit-flipped files, non-images, and names no file system should have.

Each goes through `studio info`, `studio info --json`, `studio generate --init-image` (refused or stopped
at the missing model, writing nothing), and, folder by folder, `studio gallery scan` then `search`.
"""

from __future__ import annotations

import functools
import io
import os
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

from fuzz import hostile_text
from fuzz.runner import MODEL_MISSING, Case, Step

SIGNATURE = b"\x89PNG\r\n\x1a\n"
STUDIO_KEY = "latent-studio"


def chunk(kind: bytes, data: bytes, *, crc: int | None = None, length: int | None = None) -> bytes:
    checksum = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data) if length is None else length) + kind + data + struct.pack(">I", checksum)


def ihdr(width: int = 8, height: int = 8) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def idat(width: int = 8, height: int = 8) -> bytes:
    raw = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
    return chunk(b"IDAT", zlib.compress(raw))


def png(*text_chunks: bytes, width: int = 8, height: int = 8) -> bytes:
    """A PNG that declares `width` x `height` (huge ones included: bombs) but holds at most 64x64 pixels."""
    pixels = idat(min(width, 64), min(height, 64))
    return SIGNATURE + ihdr(width, height) + b"".join(text_chunks) + pixels + chunk(b"IEND", b"")


def text_chunk(key: str, value: str | bytes, rng: random.Random) -> bytes:
    """`value` under `key` as tEXt (latin-1), zTXt or iTXt (UTF-8, maybe compressed); bytes go in as they are."""
    kind = rng.choice([b"tEXt", b"zTXt", b"iTXt", b"iTXt"])
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    name = key.encode("latin-1")
    if kind == b"tEXt":
        data = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
        return chunk(kind, name + b"\x00" + data)
    if kind == b"zTXt":
        return chunk(kind, name + b"\x00\x00" + zlib.compress(raw))
    compressed = rng.random() < 0.3
    body = zlib.compress(raw) if compressed else raw
    return chunk(kind, name + b"\x00" + (b"\x01\x00" if compressed else b"\x00\x00") + b"\x00\x00" + body)


def a1111_text(rng: random.Random) -> str:
    fields = {
        "Steps": rng.choice(["20", "-1", "0", "nan", "9" * 50, hostile_text.text(rng)]),
        "Sampler": rng.choice(["Euler a", "DPM++ 2M Karras", hostile_text.text(rng)]),
        "CFG scale": rng.choice(["7", "inf", "-1e309", "x"]),
        "Seed": rng.choice(["5", "-1", "99999999999999999999999", "1e5", "0x10"]),
        "Size": rng.choice(["64x64", "0x0", "99999x99999", "x", "-8x8"]),
        "Model": hostile_text.text(rng)[:200],
    }
    segments = ", ".join(f"{k}: {v}" for k, v in fields.items() if rng.random() < 0.8)
    negative = f"\nNegative prompt: {hostile_text.text(rng)}" if rng.random() < 0.5 else ""
    return f"{hostile_text.text(rng)}{negative}\n{segments}"


def studio_json(rng: random.Random) -> str:
    data = {
        "app": "latent-studio",
        "schema": rng.choice([1, 2, "1", None, -1]),
        "request": {
            "prompt": "a castle on a hill",
            "negative_prompt": hostile_text.value(rng),
            "steps": hostile_text.value(rng),
            "guidance": hostile_text.value(rng),
            "seed": hostile_text.value(rng),
            "width": hostile_text.value(rng),
            "height": hostile_text.value(rng),
            "scheduler": hostile_text.value(rng),
        },
        "model": rng.choice([{"id": hostile_text.text(rng)}, hostile_text.value(rng)]),
        "batch_index": hostile_text.value(rng),
        hostile_text.text(rng)[:30]: hostile_text.value(rng),
    }
    if rng.random() < 0.2:
        data = hostile_text.value(rng)
    return hostile_text.json_text(data, rng)


def comfy_json(rng: random.Random) -> str:
    graph = {
        str(n): {
            "class_type": rng.choice(["KSampler", "CLIPTextEncode", "CheckpointLoaderSimple", hostile_text.text(rng)]),
            "inputs": {
                "text": "a castle on a hill",
                "seed": hostile_text.value(rng),
                "positive": [str(rng.randrange(6)), 0],
                "negative": rng.choice([[str(rng.randrange(6)), 0], hostile_text.value(rng)]),
                "model": [str(n), 0],  # cycles
                "ckpt_name": hostile_text.value(rng),
            },
        }
        for n in range(rng.randrange(1, 6))
    }
    return hostile_text.json_text(graph, rng)


def invoke_json(rng: random.Random) -> str:
    data = {
        "positive_prompt": "a castle on a hill",
        "seed": hostile_text.value(rng),
        "steps": hostile_text.value(rng),
        "model": rng.choice([{"name": hostile_text.text(rng)}, hostile_text.value(rng)]),
        "width": hostile_text.value(rng),
    }
    return hostile_text.json_text(data, rng)


def metadata_png(rng: random.Random) -> bytes:
    chunks = []
    for _ in range(rng.randrange(1, 4)):
        key = rng.choice(["parameters", STUDIO_KEY, "prompt", "workflow", "invokeai_metadata", "sd-metadata", "Comment"])
        maker = {
            "parameters": a1111_text, STUDIO_KEY: studio_json, "prompt": comfy_json, "workflow": comfy_json,
            "invokeai_metadata": invoke_json, "sd-metadata": invoke_json, "Comment": hostile_text.text,
        }[key]
        chunks.append(text_chunk(key, maker(rng), rng))
    return png(*chunks)


def broken_png(rng: random.Random) -> bytes:
    """Structure attacks: lengths, CRCs, bombs, truncation, chunk floods, invalid UTF-8, huge dimensions."""
    kind = rng.randrange(12)
    if kind == 0:
        return png(chunk(b"iTXt", STUDIO_KEY.encode() + b"\x00\x00\x00\x00\x00" + b"\xff\xfe{\x80}"))
    if kind == 1:
        return png(text_chunk("parameters", "x", rng)[:-4] + b"\x00\x00\x00\x00")  # bad CRC
    if kind == 2:
        return png(chunk(b"tEXt", b"parameters\x00x", length=0x7FFFFFFF))
    if kind == 3:
        bomb = zlib.compress(b"A" * (64 << 20), 9)
        return png(chunk(b"zTXt", b"parameters\x00\x00" + bomb))
    if kind == 4:
        return png(width=rng.choice([100_000, 1 << 20, 0]), height=rng.choice([100_000, 1, 0]))
    if kind == 5:
        return png(*[text_chunk("parameters", "x", rng) for _ in range(rng.choice([300, 5000]))])
    if kind == 6:
        data = metadata_png(rng)
        return data[: rng.randrange(len(data))]
    if kind == 7:
        data = bytearray(metadata_png(rng))
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 8:
        return png(chunk(b"tEXt", b"\x00\x00\x00"), chunk(b"iTXt", b"k"), chunk(b"zTXt", b"parameters\x00\x00notzlib"))
    if kind == 9:
        return png(chunk(b"eXIf", b"MM\x00*" + os.urandom(rng.randrange(0, 200))))
    if kind == 10:
        return png(text_chunk("parameters", "x" * (2 << 20), rng))
    return SIGNATURE + ihdr() + chunk(b"IEND", b"")  # no pixel data at all


def exif_image(rng: random.Random) -> bytes:
    """JPEG or WebP whose EXIF UserComment / ImageDescription holds hostile text in a random encoding."""
    image = Image.new("RGB", (8, 8), (rng.randrange(256), 0, 0))
    exif = Image.Exif()
    text = rng.choice([a1111_text(rng), studio_json(rng), hostile_text.text(rng)])[:30000]
    prefix = rng.choice([b"UNICODE\x00", b"ASCII\x00\x00\x00", b"\x00" * 8, b"JIS\x00\x00\x00\x00\x00", b""])
    encoded = text.encode(rng.choice(["utf-16-be", "utf-16-le", "utf-8"]), "surrogatepass")
    exif[0x8769] = {0x9286: prefix + encoded}
    exif[0x010E] = hostile_text.text(rng)[:1000].encode("utf-8", "replace").decode("latin-1")
    out = io.BytesIO()
    try:
        image.save(out, rng.choice(["JPEG", "WEBP"]), exif=exif)
    except (ValueError, OSError):
        image.save(out, "JPEG")
    return out.getvalue()


def other_file(rng: random.Random) -> bytes:
    return rng.choice([
        b"", b"just some text", os.urandom(rng.randrange(1, 4000)), b"\x89PNG\r\n\x1a\n", b"GIF89a" + os.urandom(50),
        b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00" + os.urandom(100), b"RIFF\xff\xff\xff\xffWEBPVP8 ",
        zlib.compress(b"x" * 1000), b"\x00" * 1000,
    ])


def file_name(rng: random.Random, n: int) -> bytes:
    """Mostly plain names; some hold escapes, bidi overrides, leading dashes, or bytes that are not UTF-8."""
    stem = rng.choice([
        f"img{n}", f"-img{n}", f"img{n}\x1b[31m", f"img{n}\u202egnp", f"bad{n}\udcff\udcfe", f"img {n}\r", f"img{n}\x07",
        f"{'x' * 200}{n}",
    ])
    suffix = rng.choice([".png", ".PNG", ".jpg", ".webp", ".png"])
    return os.fsencode(stem + suffix)


def make_file(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choices(["metadata", "broken", "exif", "other"], weights=[5, 3, 2, 1])[0]
    maker = {"metadata": metadata_png, "broken": broken_png, "exif": exif_image, "other": other_file}[kind]
    return kind, maker(rng)


def gallery_check(db: Path, folder: Path) -> str | None:
    """After the scan: the catalogue opens, holds every file whose name and decoding allowed it, and
    nothing else went wrong (the scan's own report is printed by the CLI step)."""
    from studio.library.gallery import Gallery

    with Gallery(db) as gallery:
        images = gallery.search(limit=10_000)
    indexed = {image.path.name for image in images}
    plain = [p for p in folder.iterdir() if p.name.startswith("img") and p.name.isprintable() and p.suffix == ".png"]
    missing = [p.name for p in plain if p.stat().st_size and p.name not in indexed and _decodes(p)]
    return f"{len(missing)} readable images not indexed, e.g. {missing[0]!r}" if missing else None


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - any failure: not a readable image
        return False


def cases(work: Path, rng: random.Random, count: int) -> list[Case]:
    folder_size = 40
    out: list[Case] = []
    folders: list[Path] = []
    for n in range(count):
        if n % folder_size == 0:
            folders.append(work / "images" / f"set{n // folder_size:03d}")
            folders[-1].mkdir(parents=True)
        kind, data = make_file(rng)
        path = Path(os.fsdecode(os.path.join(os.fsencode(folders[-1]), file_name(rng, n))))
        try:
            path.write_bytes(data)
        except OSError:  # a name the file system refuses (too long): a plain one
            path = folders[-1] / f"img{n}.png"
            path.write_bytes(data)
        name = f"{kind} {path.name!r}"
        out.append(Case("images", f"info {name}", [Step(["info", str(path)], {0: None, 1: "no generation parameters", 2: None})]))
        out.append(Case("images", f"info --json {name}", [Step(["info", "--json", str(path)], {0: None, 1: None, 2: None}, json_output=True)]))
        if n % 4 == 0:
            target = work / "out" / f"init{n}"
            argv = ["generate", "--prompt", "x", "--init-image", str(path), "--output-dir", str(target),
                    "--model", "sd-1.4", "--device", "cpu"]
            out.append(Case("images", f"init-image {name}", [Step(argv, {2: None, 1: MODEL_MISSING})], [target]))
    for folder in folders:
        db = work / "db" / f"{folder.name}.db"
        db.parent.mkdir(exist_ok=True)
        steps = [
            Step(["gallery", "--db", str(db), "scan", str(folder)], {0: None}),
            Step(["gallery", "--db", str(db), "search"], {0: None}),
            Step(["gallery", "--db", str(db), "search", "--json"], {0: None}, json_output=True),
            Step(["gallery", "--db", str(db), "search", "castle", "-hill"], {0: None}),
        ]
        out.append(Case("gallery", f"scan {folder.name}", steps, check=functools.partial(gallery_check, db, folder)))
    return out
