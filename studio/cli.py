"""The `studio` command: the desktop app, or headless sub-commands for scripts (design.md section 2).

Errors are one line on stderr: exit 2 for the user's bad arguments or input, 1 for failures. Heavy
modules (torch, diffusers, Qt) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from studio import __version__

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The user's mistake: exit 2, message on stderr, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: same one-line style, exit 2
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="studio", description="Latent Studio: local text-to-image and image-to-image.")
    parser.add_argument("--version", action="version", version=f"latent-studio {__version__}")
    parser.add_argument("--model", help="model for the desktop app (catalogue id, hub repo, folder or file)")
    parser.add_argument("--output-dir", type=Path, help="where the desktop app saves images")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    gen = sub.add_parser("generate", help="generate images (txt2img, or img2img with --init-image)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default="")
    _add_model_options(gen)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--guidance", type=float)
    gen.add_argument("--guidance-rescale", type=float)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--scheduler", help="DDIM, Euler, Euler a, DPM++ 2M, DPM++ 2M Karras, UniPC, PNDM")
    gen.add_argument("--batch", type=int, default=1)
    gen.add_argument("--init-image", type=Path, help="image for img2img")
    gen.add_argument("--strength", type=float, help="img2img: how much to change the init image (0..1]")
    gen.add_argument("--output-dir", type=Path)
    gen.add_argument("--no-safety-checker", action="store_true", help="turn off the model's safety checker")
    gen.add_argument("--json", action="store_true", help="print a JSON list of {path, seed, nsfw}")
    gen.set_defaults(func=cmd_generate)

    batch = sub.add_parser("batch", help="run a model-card batch JSON file")
    batch.add_argument("input", type=Path, metavar="INPUT.json")
    batch.add_argument("-o", "--output", type=Path, metavar="OUTPUT.json", help="default: standard output")
    _add_model_options(batch)
    batch.add_argument("--seed", type=int, help="seed of the first prompt (then +1 per image)")
    batch.set_defaults(func=cmd_batch)

    info = sub.add_parser("info", help="show the generation parameters embedded in an image")
    info.add_argument("image", type=Path)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    models = sub.add_parser("models", help="list the model catalogue and what is available locally")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    gallery = sub.add_parser("gallery", help="the local image library: scan folders, search prompts")
    gallery.add_argument("--db", type=Path, help="catalogue database (default: the app's own)")
    gsub = gallery.add_subparsers(dest="gallery_command", metavar="ACTION", parser_class=_Parser, required=True)
    scan = gsub.add_parser("scan", help="add folders to the library and index them")
    scan.add_argument("folders", type=Path, nargs="+", metavar="DIR")
    scan.set_defaults(func=cmd_gallery_scan)
    search = gsub.add_parser("search", help="full-text search over prompts")
    search.add_argument("text", nargs="?", default="")
    search.add_argument("--model", help="only images made with this model")
    search.add_argument("--limit", type=int, default=50)
    search.add_argument("--json", action="store_true", help="print a JSON list of {path, prompt, model, seed, ...}")
    search.set_defaults(func=cmd_gallery_search)

    tiny = sub.add_parser("make-tiny-model", help="write a tiny random-weight pipeline (tests, bug reports)")
    tiny.add_argument("directory", type=Path, metavar="DIR")
    tiny.add_argument("--family", default="sd1", choices=["sd1", "sd2", "deci"])
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_make_tiny_model)
    return parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sd-1.4", help="catalogue id, hub repo id, diffusers folder or .safetensors")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
        help="auto: float16 on a GPU; on the CPU bfloat16 where it is native (AVX512-BF16, AMX), else float32. "
        "bfloat16 keeps the VAE in float32",
    )
    p.add_argument("--allow-ckpt", action="store_true", help="allow pickle checkpoints (.ckpt), weights only")


def main(argv: Sequence[str] | None = None) -> int:
    from studio.engine.errors import Cancelled, RequestError

    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            from studio.app import run

            return run(model=args.model, output_dir=args.output_dir)
        return args.func(args)
    except (UsageError, RequestError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (Cancelled, KeyboardInterrupt):
        return _fail("cancelled", 130)
    except Exception as exc:  # noqa: BLE001 - a failure is one line, not a traceback
        if _is_usage_error(exc):
            return _fail(str(exc), EXIT_USAGE)
        return _fail(str(exc) or type(exc).__name__, EXIT_FAILURE)


def _is_usage_error(exc: Exception) -> bool:
    from studio.library.images import ImageLoadError
    from studio.library.metadata import MetadataError

    return isinstance(exc, ImageLoadError | MetadataError)


def _fail(message: str, code: int) -> int:
    print(f"studio: error: {message}", file=sys.stderr)
    return code


# ------------------------------------------------------------------------------------------- generate


def _make_engine(args, **kwargs):
    import logging

    from studio.engine import Engine

    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return Engine(device=args.device, dtype=args.dtype, allow_ckpt=args.allow_ckpt, preview="none", **kwargs)


def _check_output_dir(path: Path) -> Path:
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"output folder {path} is a file")
    return path


def cmd_generate(args) -> int:
    from studio.engine import GenerationRequest
    from studio.library.images import load_image
    from studio.library.saving import save_result
    from studio.settings import default_output_dir

    output_dir = _check_output_dir(args.output_dir or default_output_dir())
    if args.strength is not None and args.init_image is None:
        raise UsageError("--strength needs --init-image")
    init = load_image(args.init_image) if args.init_image else None  # bad image: exit 2 before any work
    request = GenerationRequest(
        model=args.model,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        steps=args.steps,
        guidance=args.guidance,
        guidance_rescale=args.guidance_rescale,
        seed=args.seed,
        width=args.width,
        height=args.height,
        scheduler=args.scheduler,
        batch=args.batch,
        init_image=init,
        strength=args.strength,
        safety_checker=False if args.no_safety_checker else None,
    )
    request.validate()
    results = _make_engine(args, on_download=_download_printer()).generate(request)
    for warning in dict.fromkeys(w for r in results for w in r.warnings):
        print(f"studio: warning: {warning}", file=sys.stderr)
    written = [(save_result(r, output_dir), r) for r in results]
    if args.json:
        print(json.dumps([{"path": str(p), "seed": r.seed, "nsfw": r.nsfw} for p, r in written], indent=2))
    else:
        for path, _ in written:
            print(path)
    return 0


def _download_printer() -> Callable:
    """Download progress on stderr, one updating line, only when stderr is a terminal."""
    last = [-1]

    def show(progress) -> None:
        if not sys.stderr.isatty() or not progress.total:
            return
        percent = int(100 * progress.done / progress.total)
        if percent != last[0]:
            last[0] = percent
            end = "\n" if percent >= 100 else ""
            print(f"\rdownloading {progress.done / 1e9:.2f} / {progress.total / 1e9:.2f} GB ({percent}%)", end=end, file=sys.stderr)

    return show


# ---------------------------------------------------------------------------------------------- batch

BATCH_PARAMETERS = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "guidance_rescale": "guidance_rescale",
    "negative_prompt": "negative_prompt",
    "height": "height",
    "width": "width",
    "seed": "seed",
    "scheduler": "scheduler",
}


def parse_batch_input(data) -> tuple[list[str], dict]:
    """Prompts and request fields from the model cards' `input_data` JSON; UsageError when malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("input_data"), dict):
        raise UsageError('batch input must be a JSON object with an "input_data" object')
    body = data["input_data"]
    columns = body.get("columns", ["prompt"])
    if not isinstance(columns, list) or "prompt" not in columns:
        raise UsageError('input_data.columns must be a list containing "prompt"')
    rows = body.get("data")
    if not isinstance(rows, list) or not rows:
        raise UsageError("input_data.data must be a non-empty list of prompts")
    column = columns.index("prompt")
    prompts = []
    for n, row in enumerate(rows):
        value = row[column] if isinstance(row, list) and len(row) > column else row
        if isinstance(row, dict):
            value = row.get("prompt")
        if not isinstance(value, str):
            raise UsageError(f"input_data.data[{n}]: the prompt must be text, got {type(value).__name__}")
        prompts.append(value)
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise UsageError("input_data.parameters must be an object")
    unknown = sorted(set(params) - set(BATCH_PARAMETERS))
    if unknown:
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(BATCH_PARAMETERS)})")
    fields = {BATCH_PARAMETERS[k]: v for k, v in params.items()}
    return prompts, fields


def cmd_batch(args) -> int:
    from studio.engine import GenerationRequest
    from studio.library.images import atomic_write_bytes, encode_image

    try:
        data = json.loads(args.input.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{args.input}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{args.input}: not valid JSON ({exc})") from None
    prompts, fields = parse_batch_input(data)
    if args.output:
        _check_output_dir(args.output.parent if str(args.output.parent) else Path("."))
    base_seed = args.seed if args.seed is not None else fields.pop("seed", None)
    fields.pop("seed", None)
    requests = []
    for n, prompt in enumerate(prompts):
        seed = None if base_seed is None else base_seed + n
        request = GenerationRequest(model=args.model, prompt=prompt, seed=seed, **fields)
        request.validate()  # every prompt checked before the first image is made
        requests.append(request)
    engine = _make_engine(args, on_download=_download_printer())
    out = []
    for request in requests:
        for result in engine.generate(request):
            for warning in result.warnings:
                print(f"studio: warning: {warning}", file=sys.stderr)
            png = encode_image(result.image, "PNG", result.metadata)
            out.append(
                {
                    "prompt": request.prompt,
                    "generated_image": base64.b64encode(png).decode("ascii"),
                    "nsfw_content_detected": result.nsfw,
                }
            )
    text = json.dumps(out, indent=2)
    if args.output:
        atomic_write_bytes(args.output, text.encode("utf-8"))
    else:
        print(text)
    return 0


# ----------------------------------------------------------------------------------------------- info


def cmd_info(args) -> int:
    from studio.library.metadata import read_metadata

    if not args.image.exists():
        raise UsageError(f"{args.image}: no such file")
    meta = read_metadata(args.image)
    if meta is None:
        if args.json:
            print("null")
        print(f"studio: no generation parameters found in {args.image}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(meta.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"source: {meta.source}")
    for key, value in meta.to_request_fields().items():
        print(f"{key}: {value}")
    if meta.nsfw is not None:
        print(f"nsfw: {str(meta.nsfw).lower()}")
    for key, value in meta.extra.items():
        print(f"{key}: {value}")
    return 0


# --------------------------------------------------------------------------------------------- models


def cmd_models(args) -> int:
    from studio.engine.catalog import CATALOG
    from studio.engine.loading import is_in_local_cache

    rows = []
    for entry in CATALOG.values():
        path = is_in_local_cache(entry.repo, entry.revision, entry)
        rows.append(
            {
                "id": entry.id,
                "name": entry.name,
                "repo": entry.repo,
                "revision": entry.revision,
                "family": entry.family,
                "local": path is not None,
                "path": str(path) if path else None,
                "notes": entry.notes,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        where = row["path"] if row["local"] else "not downloaded (fetched on first use when online)"
        print(f"{row['id']:<20} {row['name']:<24} {row['repo']}@{row['revision'][:7]}")
        print(f"{'':<20} {where}")
        print(f"{'':<20} {row['notes']}")
    print("Also accepted: any hub repo id (owner/name[@revision]), a diffusers folder, a .safetensors file.")
    return 0


# -------------------------------------------------------------------------------------------- gallery


def _open_gallery(args):
    from studio.library.gallery import Gallery

    return Gallery(args.db) if args.db else Gallery.default()


def cmd_gallery_scan(args) -> int:
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise UsageError(f"not a folder: {', '.join(missing)}")
    with _open_gallery(args) as gallery:
        folders = [gallery.add_folder(folder) for folder in args.folders]
        report = gallery.scan(folders)
    print(
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"unreadable {report.unreadable} (unchanged {report.unchanged}) in {report.seconds:.1f} s"
    )
    return 0


def cmd_gallery_search(args) -> int:
    from studio.library.gallery import Query

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with _open_gallery(args) as gallery:
        images = gallery.search(Query(text=args.text, model=args.model), limit=args.limit)
    if args.json:
        rows = [
            {
                "path": str(i.path), "prompt": i.prompt, "negative_prompt": i.negative_prompt, "model": i.model,
                "seed": i.seed, "steps": i.steps, "scheduler": i.scheduler, "width": i.width, "height": i.height,
                "source": i.source, "rating": i.rating, "favourite": i.favourite,
            }
            for i in images
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for image in images:
        prompt = " ".join((image.prompt or "").split())
        print(f"{image.path}\t{image.seed if image.seed is not None else '-'}\t{image.model or '-'}\t{prompt[:80]}")
    return 0


# ------------------------------------------------------------------------------------ make-tiny-model


def cmd_make_tiny_model(args) -> int:
    from studio.engine.tiny import make_tiny_model

    directory: Path = args.directory
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory} exists and is not an empty folder; choose a new one")
    path = make_tiny_model(directory, family=args.family, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
