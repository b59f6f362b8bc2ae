"""The `studio` command: the desktop app, or headless sub-commands for scripts (design.md section 2).

Errors are one line on stderr: exit 2 for the user's bad arguments or input, 1 for failures. Heavy
modules (torch, diffusers, Qt) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from studio import __version__

EXIT_FAILURE = 1
EXIT_USAGE = 2
MAX_SEARCH_LIMIT = 1_000_000


class UsageError(Exception):
    """The user's mistake: exit 2, message on stderr, nothing written."""


class _Parser(argparse.ArgumentParser):
    """argparse with the contract's errors: one line naming the command's --help, not a usage dump."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args=None, namespace=None):
        # argparse reports unknown options from the top-level parser, as "studio"; name the sub-command's help.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras and getattr(parsed, "dash_words", None) is not None:
            # `gallery search dragon -castle fire`: a leading dash is the query's exclusion syntax, not an
            # option; argparse stops taking words at the first one, so the rest arrive here too.
            words = [e for e in extras if not e.startswith("--") and e != "-"]
            parsed.dash_words = words
            extras = [e for e in extras if e not in words]
        if extras:
            prog = getattr(parsed, "help_prog", None) or self.prog
            raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see {prog} --help)")
        return parsed


def _command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command whose parsed arguments remember its prog, for the "see ... --help" of unknown options."""
    parser = sub.add_parser(name, **kwargs)
    parser.set_defaults(help_prog=parser.prog)
    return parser


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number within [low, high], else one line naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    parse.__name__ = "number"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="studio", description="Latent Studio: local text-to-image and image-to-image.")
    parser.add_argument("--version", action="version", version=f"latent-studio {__version__}")
    parser.add_argument("--model", help="model for the desktop app (catalogue id, hub repo, folder or file)")
    parser.add_argument("--output-dir", type=Path, help="where the desktop app saves images, this run only (not saved)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    gen = _command(sub, "generate", help="generate images (txt2img, or img2img with --init-image)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default="")
    _add_model_options(gen)
    gen.add_argument("--steps", type=int)
    gen.add_argument("--guidance", type=float)
    gen.add_argument("--guidance-rescale", type=float)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument(
        "--scheduler",
        help="DDIM, Euler, Euler a, DPM++ 2M, DPM++ 2M Karras, UniPC, PNDM (A1111 and diffusers spellings too: "
        "euler_a, k_dpmpp_2m, PLMS, EulerAncestralDiscreteScheduler)",
    )
    gen.add_argument("--batch", type=int, default=1)
    gen.add_argument("--init-image", type=Path, help="image for img2img")
    gen.add_argument("--strength", type=float, help="img2img: how much to change the init image (0..1]")
    _add_inpaint_options(gen)
    gen.add_argument("--output-dir", type=Path)
    gen.add_argument("--no-safety-checker", action="store_true", help="turn off the model's safety checker")
    gen.add_argument("--json", action="store_true", help="print a JSON list of {path, seed, nsfw}")
    gen.set_defaults(func=cmd_generate)

    batch = _command(sub, "batch", help="run a model-card batch JSON file")
    batch.add_argument("input", type=Path, metavar="INPUT.json", help="the batch file, or - for standard input")
    batch.add_argument("-o", "--output", type=Path, metavar="OUTPUT.json", help="default: standard output")
    _add_model_options(batch)
    batch.add_argument("--seed", type=int, help="seed of the first prompt (then +1 per image)")
    batch.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help="run on a Ray cluster: one worker per GPU (or per CPU slot). auto: $RAY_ADDRESS, else a cluster "
        "started on this machine, else a local one; or a cluster address (needs: pip install 'latent-studio[cluster]')",
    )
    batch.add_argument("--workers", type=_int_between(1, 100_000), metavar="N", help="with --ray: at most N workers")
    batch.add_argument(
        "--checkpoint", type=Path, metavar="FILE",
        help="with --ray: record each finished prompt in FILE; run again with it to skip what is done",
    )
    batch.set_defaults(func=cmd_batch)

    serve = _command(
        sub, "serve", help="serve the engine over HTTP: a jobs API with live previews, and the model cards' /score",
        description="Listens on loopback unless --host says otherwise, which needs --token-file. Clients name "
        "catalogue models or the models inside --model-dir folders, never paths. API: GET /openapi.json.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=_int_between(0, 65535), default=7861, help="0: any free port (printed)")
    serve.add_argument("--token-file", type=Path, metavar="FILE", help="a file holding the bearer token clients send")
    serve.add_argument(
        "--model-dir", action="append", type=Path, default=[], metavar="DIR",
        help="offer the diffusers folders and .safetensors files in DIR by name (repeatable)",
    )
    serve.add_argument("--queue-limit", type=_int_between(1, 100_000), default=32, metavar="N",
                       help="jobs waiting before new ones are answered 429 (default 32)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                       help="let web pages from this origin call the API (repeatable; default: none)")
    serve.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help="run the engines as a Ray Serve deployment on a Ray cluster (one replica per GPU, else per 4 CPU "
        "cores); the API stays here. auto: $RAY_ADDRESS, a cluster on this machine, else a local one",
    )
    serve.add_argument("--replicas", type=_int_between(1, 10_000), metavar="N", help="with --ray: this many replicas")
    serve.add_argument(
        "--max-replicas", type=_int_between(1, 10_000), metavar="N",
        help="with --ray: autoscale from 1 replica up to N as jobs wait (nodes that join later are used too)",
    )
    _add_model_options(serve, pickles=False)
    serve.set_defaults(func=cmd_serve)

    info = _command(sub, "info", help="show the generation parameters embedded in an image")
    info.add_argument("image", type=Path)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    models = _command(sub, "models", help="the model catalogue: what is downloaded, where; download, remove")
    models.add_argument("--json", action="store_true", help="print a JSON list (catalogue rows, local models, then OpenVINO conversions)")
    models.set_defaults(func=cmd_models)
    msub = models.add_subparsers(dest="models_command", metavar="[ACTION]", parser_class=_Parser)
    download = _command(msub, "download", help="download a model into the Hugging Face cache (an interrupted one continues)")
    download.add_argument("model_id", metavar="ID", help="catalogue id, or hub repo id owner/name[@revision]")
    download.set_defaults(func=cmd_models_download)
    remove = _command(msub, "remove", help="move a downloaded model's cache folder to the trash")
    remove.add_argument("model_id", metavar="ID", help="catalogue id, or hub repo id owner/name")
    remove.set_defaults(func=cmd_models_remove)
    uncache = _command(
        msub, "remove-optimised", help="delete a model's OpenVINO conversion (it converts again on next use)"
    )
    uncache.add_argument("name", metavar="NAME", help="its folder name, as `studio models` lists it, or `all`")
    uncache.set_defaults(func=cmd_models_remove_optimised)

    gallery = _command(sub, "gallery", help="the local image library: scan folders, search prompts")
    gallery.add_argument("--db", type=Path, help="catalogue database (default: the app's own)")
    gsub = gallery.add_subparsers(dest="gallery_command", metavar="ACTION", parser_class=_Parser, required=True)
    scan = _command(gsub, "scan", help="add folders to the library and index them")
    scan.add_argument("folders", type=Path, nargs="+", metavar="DIR")
    scan.set_defaults(func=cmd_gallery_scan)
    repair = _command(
        gsub, "repair",
        help="move a damaged catalogue aside (never deleted) and rebuild it from its image folders",
    )
    repair.add_argument(
        "--force", action="store_true",
        help="rebuild even a catalogue that looks healthy; also replaces a file that is not a gallery catalogue "
        "(it is moved aside, never deleted)",
    )
    repair.set_defaults(func=cmd_gallery_repair)
    # No -h: `search -horse` is a query excluding "horse" (the search syntax), not -h with "orse".
    search = _command(
        gsub, "search", add_help=False, help="full-text search over prompts",
        description='Every word must match (as the start of a word); "a phrase" matches as written; '
        "-word excludes a word; neg:word looks in the negative prompt.",
    )
    search.add_argument("--help", action="help", help="show this help message and exit")
    search.add_argument("text", nargs="*", metavar="WORD", help="query words; -word excludes a word")
    search.add_argument("--model", help="only images made with this model")
    search.add_argument("--limit", type=_int_between(1, MAX_SEARCH_LIMIT), default=50, help="at most this many rows")
    search.add_argument("--json", action="store_true", help="print a JSON list of {path, prompt, model, seed, ...}")
    search.set_defaults(func=cmd_gallery_search, dash_words=[])

    tiny = _command(sub, "make-tiny-model", help="write a tiny random-weight pipeline (tests, bug reports)")
    tiny.add_argument("directory", type=Path, metavar="DIR")
    tiny.add_argument("--family", default="sd1", choices=["sd1", "sd2", "deci", "sd1-inpaint", "sd2-inpaint"])
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_make_tiny_model)

    lora = _command(sub, "make-tiny-lora", help="write a random-weight LoRA for a model folder (tests, benches)")
    lora.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a diffusers folder, e.g. a tiny model")
    lora.add_argument("output", type=Path, metavar="OUT", help="the .safetensors file to write")
    lora.add_argument("--rank", type=_int_between(1, 1024), default=4)
    lora.add_argument("--alpha", type=float, help="network alpha (default: the rank, i.e. scale 1)")
    lora.add_argument("--seed", type=int, default=0)
    lora.add_argument("--scale", type=float, default=1.0, help="multiply the up weights (a stronger effect)")
    lora.add_argument("--format", dest="fmt", default="kohya", choices=["kohya", "peft"],
                      help="kohya: A1111/kohya-ss keys (most shared files); peft: what diffusers saves")  # fmt: skip
    lora.add_argument("--algo", default="lora", choices=["lora", "loha", "lokr"],
                      help="loha/lokr: LyCORIS keys, which diffusers refuses")  # fmt: skip
    lora.add_argument("--conv", action="store_true", help="also the resnets' conv layers (LoCon)")
    lora.add_argument("--no-text-encoder", dest="text_encoder", action="store_false")
    lora.add_argument("--no-unet", dest="unet", action="store_false")
    lora.set_defaults(func=cmd_make_tiny_lora)

    emb = _command(sub, "make-tiny-embedding", help="write a random textual-inversion embedding (tests, benches)")
    emb.add_argument("output", type=Path, metavar="OUT", help="the file to write (.safetensors, or .pt)")
    emb.add_argument("--model", type=Path, metavar="MODEL_DIR", help="take the width from its text encoder")
    emb.add_argument("--vectors", type=_int_between(1, 75), default=2, help="tokens the embedding stands for")
    emb.add_argument("--seed", type=int, default=0)
    emb.add_argument("--scale", type=float, default=1.0, help="multiply the vectors")
    emb.add_argument(
        "--format", dest="fmt", default="safetensors", choices=["safetensors", "pt", "diffusers", "sdxl"],
        help="safetensors/pt: A1111's; diffusers: {token: vectors}; sdxl: clip_l and clip_g",
    )  # fmt: skip
    emb.set_defaults(func=cmd_make_tiny_embedding)

    networks = _command(sub, "networks", help="list the LoRAs and embeddings the prompts can name")
    networks.add_argument("--lora-dir", action="append", type=Path, default=[], metavar="DIR", help="also this folder")
    networks.add_argument("--embedding-dir", action="append", type=Path, default=[], metavar="DIR", help="also this folder")
    networks.add_argument("--hashes", action="store_true", help="also compute A1111's short hashes (reads every file)")
    networks.add_argument("--json", action="store_true", help="print a JSON list")
    networks.set_defaults(func=cmd_networks)
    return parser


def _add_inpaint_options(p: argparse.ArgumentParser) -> None:
    """Inpainting and outpainting, with AUTOMATIC1111's names and defaults (studio.library.masks)."""
    from studio.library.masks import INPAINT_AREAS, MASKED_CONTENT, OUTPAINT_FILLS

    group = p.add_argument_group("inpainting and outpainting (with --init-image)")
    group.add_argument("--mask", type=Path, help="white (or a PNG's opaque pixels) is regenerated, black is kept")
    group.add_argument("--mask-blur", type=int, metavar="PX", help="soften the mask's edge (default 4)")
    group.add_argument("--masked-content", choices=MASKED_CONTENT, help="what the masked area starts from (default original)")
    group.add_argument("--inpaint-area", choices=INPAINT_AREAS, help="whole picture, or only the masked box at the model's size (default whole)")
    group.add_argument("--padding", type=int, metavar="PX", help="around the mask with --inpaint-area masked (default 32)")
    group.add_argument("--invert-mask", action="store_true", help="regenerate what the mask does not cover")
    group.add_argument("--expand", metavar="L,T,R,B", help="outpaint: grow the canvas by these pixels on each side")
    group.add_argument("--outpaint-fill", choices=OUTPAINT_FILLS, help="what the new area starts as (default edge)")


def _add_model_options(p: argparse.ArgumentParser, *, pickles: bool = True) -> None:
    p.add_argument("--model", default="sd-1.4", help="catalogue id, hub repo id, diffusers folder or .safetensors")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument(
        "--backend", default="auto", choices=["auto", "torch", "openvino"],
        help="what runs the networks. auto: OpenVINO on the CPU where it is installed, else PyTorch. OpenVINO "
        "converts a model on first use (minutes for a full-size one) and caches it",
    )
    p.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16", "int8"],
        help="auto: float16 on a GPU; on the CPU bfloat16 where it is native (AVX512-BF16, AMX), else float32. "
        "bfloat16 keeps the VAE in float32 on PyTorch. int8 (OpenVINO, NNCF): the UNet quantized to int8, calibrated on "
        "the model on first use (minutes), about 2x bfloat16's speed; text-encoder weights in int8",
    )
    p.add_argument(
        "--threads", type=_int_between(1, 1024), default=None, metavar="N",
        help="CPU threads for the OpenVINO backend (default: all physical cores)",
    )
    if pickles:  # never for `serve`: its models are the network's choice
        p.add_argument("--allow-ckpt", action="store_true", help="allow pickle checkpoints (.ckpt), weights only")
    p.add_argument(
        "--lora-dir", action="append", type=Path, default=[], metavar="DIR",
        help="also look for <lora:name> files here (repeatable; the app's folder and the window's are always searched)",
    )
    p.add_argument(
        "--embedding-dir", action="append", type=Path, default=[], metavar="DIR",
        help="also look for textual-inversion embeddings here (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    from studio.engine.errors import (
        Cancelled,
        ModelNotFoundError,
        RequestError,
        UnknownModelError,
        first_line,
    )

    _quiet_warnings()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        image, argv = _image_to_open(argv, parser)
        args = parser.parse_args(argv)
        if args.command is None:
            from studio.app import run

            # Options given here apply to this run only: the window must not save them as preferences.
            return run(model=args.model, output_dir=args.output_dir, open_image=image)
        _quiet_logs()
        with _interrupt_sets(_INTERRUPTED):
            return args.func(args)
    except UnknownModelError as exc:  # a spelling that names no model: bad input
        return _fail(str(exc), EXIT_USAGE)
    except ModelNotFoundError as exc:  # named right, but not here and not downloadable now: a failure
        return _fail(str(exc), EXIT_FAILURE)
    except (UsageError, RequestError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (Cancelled, KeyboardInterrupt):
        return _fail("cancelled", 130)
    except BrokenPipeError:  # `studio models --json | head`: the reader left; stop quietly, as `cat` does
        _silence_stdout()
        return 128 + getattr(signal, "SIGPIPE", 13)
    except Exception as exc:  # noqa: BLE001 - a failure is one line, not a traceback
        if _is_usage_error(exc):
            return _fail(str(exc), EXIT_USAGE)
        return _fail(first_line(exc), EXIT_FAILURE)


def _image_to_open(argv: list[str], parser: argparse.ArgumentParser) -> tuple[Path | None, list[str]]:
    """`studio IMAGE` (what "Open with" in a file manager runs): the window, offering to restore the image's
    parameters. An argument that is an existing file and no command name is that image."""
    commands = {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)  # noqa: SLF001
                for name in action.choices}
    for index, arg in enumerate(argv):
        if arg.startswith("-") or (index > 0 and argv[index - 1] in ("--model", "--output-dir")):
            continue  # an option, or an option's value
        if arg in commands:
            return None, argv
        path = Path(arg)
        if path.is_file():
            return path, argv[:index] + argv[index + 1:]
        return None, argv
    return None, argv


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again on the closed pipe."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (tests capture stdout): nothing to flush
        pass


def _quiet_warnings() -> None:
    """Library warnings are not the user's business on a terminal: Pillow warns (UserWarning, with its
    site-packages path) about a corrupt EXIF block that we skip on purpose when reading an image."""
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")


def _quiet_logs() -> None:
    """A command reports in its own words (a scan lists what it skipped); our log records are for the app,
    and without a handler Python's last-resort one would print them raw on stderr."""
    import logging

    studio_log = logging.getLogger("studio")
    if not studio_log.handlers:
        studio_log.addHandler(logging.NullHandler())


# Set by Ctrl+C while a command runs: download threads see it at their next chunk and stop (Cancelled),
# so that the process can exit at once instead of waiting for every file in flight to finish.
_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def _interrupt_sets(event: threading.Event):
    """While the block runs, Ctrl+C sets `event` (then raises KeyboardInterrupt as usual)."""
    event.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        event.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _is_usage_error(exc: Exception) -> bool:
    from studio.library.folders import FolderError
    from studio.library.images import ImageLoadError
    from studio.library.metadata import MetadataError

    return isinstance(exc, ImageLoadError | MetadataError | FolderError)


def _fail(message: str, code: int) -> int:
    # Messages quote file names and file contents: nothing in them may act on the terminal.
    from studio.library.display import printable

    print(f"studio: error: {printable(message)}", file=sys.stderr)
    return code


def _warn(message: str) -> None:
    from studio.library.display import printable

    print(f"studio: warning: {printable(message)}", file=sys.stderr)


# ------------------------------------------------------------------------------------------- generate


def _make_engine(args, **kwargs):
    from studio.engine import Engine
    from studio.engine.loading import quiet_libraries

    quiet_libraries()  # before any pipeline import: transformers warns on it otherwise
    kwargs.setdefault("on_status", _status_printer())
    return Engine(
        device=args.device, dtype=args.dtype, backend=args.backend, threads=args.threads,
        allow_ckpt=getattr(args, "allow_ckpt", False), preview="none", networks=_network_catalog(args), **kwargs,
    )


def _network_catalog(args):
    """The LoRA and embedding folders: the app's, the window's (from the preferences), then --lora-dir /
    --embedding-dir."""
    from studio.library.extra_networks import NetworkCatalog

    return NetworkCatalog.with_folders(network_folders_of(args, "lora"), network_folders_of(args, "embedding"))


def _status_printer():
    """What a long load is doing (an OpenVINO conversion), on stderr: the model's first use takes minutes."""

    def show(text: str) -> None:
        print(f"studio: {text}", file=sys.stderr, flush=True)

    return show


def _inpaint_inputs(args):
    """The mask (loaded now: a bad file is exit 2 before any work) and the expansion, or None each."""
    from studio.library.masks import Expansion, MaskError, read_mask

    uses = [name for name in ("mask", "mask_blur", "masked_content", "inpaint_area", "padding", "expand", "outpaint_fill")
            if getattr(args, name) is not None] + (["invert_mask"] if args.invert_mask else [])
    if uses and args.init_image is None:
        raise UsageError(f"--{uses[0].replace('_', '-')} needs --init-image")
    if args.mask is None and args.expand is None and uses:
        raise UsageError(f"--{uses[0].replace('_', '-')} needs --mask or --expand")
    try:
        expand = Expansion.parse(args.expand) if args.expand is not None else None
        mask = read_mask(args.mask) if args.mask is not None else None
    except MaskError as exc:
        raise UsageError(str(exc)) from None
    if expand is not None:
        expand = (expand.left, expand.top, expand.right, expand.bottom)
    return mask, expand


def cmd_generate(args) -> int:
    from studio.engine import GenerationRequest
    from studio.library.folders import check_writable_folder
    from studio.library.images import load_image, sweep_stale_temp_files
    from studio.library.paths import default_output_dir
    from studio.library.saving import save_result

    output_dir = (args.output_dir or default_output_dir()).expanduser()
    if args.strength is not None and args.init_image is None:
        raise UsageError("--strength needs --init-image")
    init = load_image(args.init_image) if args.init_image else None  # bad image: exit 2 before any work
    mask, expand = _inpaint_inputs(args)
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
        mask_image=mask,
        mask_blur=args.mask_blur,
        masked_content=args.masked_content,
        inpaint_area=args.inpaint_area,
        padding=args.padding,
        invert_mask=args.invert_mask,
        expand=expand,
        outpaint_fill=args.outpaint_fill,
    )
    request.validate()
    check_writable_folder(output_dir)  # before minutes of loading and generating
    sweep_stale_temp_files(output_dir)  # what a killed run of ours left there
    results = _make_engine(args, on_download=_download_printer()).generate(request)
    for warning in dict.fromkeys(w for r in results for w in r.warnings):
        _warn(warning)
    written = [(save_result(r, output_dir), r) for r in results]
    _keep_inputs(results)
    if args.json:
        print(json.dumps([{"path": str(p), "seed": r.seed, "nsfw": r.nsfw} for p, r in written], indent=2))
    else:
        for path, _ in written:
            print(path)
    return 0


def _keep_inputs(results) -> None:
    """The init image and mask by content in the user's data folder, as the window keeps them, so that
    "Reuse parameters" on an image made here restores its canvas. Failing costs one warning, not the run."""
    from studio.library.display import first_line
    from studio.library.input_store import InputStore
    from studio.library.paths import inputs_dir

    if not results or not results[0].inputs:  # txt2img; a batch shares its inputs
        return
    try:
        store = InputStore(inputs_dir())
        store.keep(results[0].inputs)
        store.prune()
    except (OSError, ValueError) as exc:
        _warn(f"could not keep the init image and mask for reuse: {first_line(exc)}")


def _download_printer(cancel: threading.Event | None = None) -> Callable:
    """Download progress on stderr, one updating line, only when stderr is a terminal. Raises Cancelled
    (from the download threads) once `cancel` is set: that is how Ctrl+C stops a download."""
    from studio.engine.errors import Cancelled

    cancel = cancel if cancel is not None else _INTERRUPTED
    last = [-1]

    def show(progress) -> None:
        if cancel.is_set():
            raise Cancelled("download cancelled")
        if not sys.stderr.isatty() or not progress.total:
            return
        percent = min(100, int(100 * progress.done / progress.total))
        if percent != last[0]:
            last[0] = percent
            end = "\n" if percent >= 100 else ""
            text = f"downloading {_gb(progress.done)} of {_gb(progress.total)} ({percent}%)"
            print(f"\r{text}", end=end, file=sys.stderr, flush=True)

    return show


def _gb(size: int) -> str:
    """Bytes as people read them in a download line: GB with two decimals, MB below 1 GB."""
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------------- batch

def _batch_bytes(path: Path) -> bytes:
    """The batch input's bytes: `-` is standard input (a pipe); otherwise only a regular file (not
    /dev/zero, a FIFO, a folder). Either way at most MAX_CARD_BYTES are read."""
    import os
    import stat

    from studio.engine.card_format import MAX_CARD_BYTES

    limit = f"a batch file may hold at most {MAX_CARD_BYTES >> 20} MiB"
    if str(path) == "-":
        raw = sys.stdin.buffer.read(MAX_CARD_BYTES + 1)
        if len(raw) > MAX_CARD_BYTES:
            raise UsageError(f"standard input: {limit}")
        return raw
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path}: not a regular file (to pipe JSON in, pass - and use standard input)")
    if info.st_size > MAX_CARD_BYTES:
        raise UsageError(f"{path}: {info.st_size:,} bytes; {limit}")
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_CARD_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_CARD_BYTES:
        raise UsageError(f"{path}: {limit}")
    return raw


def read_batch_file(path: Path) -> object:
    """The batch input's JSON, or UsageError: read as `_batch_bytes` does, UTF-8, valid JSON within
    Python's nesting depth and integer size limits."""
    raw = _batch_bytes(path)
    name = "standard input" if str(path) == "-" else str(path)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None
    except RecursionError:
        raise UsageError(f"{name}: not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}: not valid JSON ({exc})") from None
    except ValueError:  # int() refuses a number of more than 4300 digits
        raise UsageError(f"{name}: not valid JSON (a number with thousands of digits)") from None


def _check_output_file(path: Path) -> Path:
    """`-o FILE`: not a folder, and its folder writable (made if missing), before any model loads."""
    from studio.library.folders import check_writable_folder

    path = path.expanduser()
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; name a file, e.g. {path / 'results.json'}")
    check_writable_folder(path.parent, what="folder of the output file")
    return path


def cmd_batch(args) -> int:
    from studio.engine.card_format import card_items, parse_card
    from studio.library.images import atomic_write_bytes

    if args.ray is None and (args.workers is not None or args.checkpoint is not None):
        raise UsageError("--workers and --checkpoint go with --ray")
    card = parse_card(read_batch_file(args.input))
    output = _check_output_file(args.output) if args.output else None
    requests = card.requests(args.model, args.seed)
    if args.ray is not None:
        out = [row for rows in _ray_batch(args, requests) for row in rows]
    else:
        engine = _make_engine(args, on_download=_download_printer())
        out = []
        for request in requests:
            results = engine.generate(request)
            for result in results:
                for warning in result.warnings:
                    _warn(warning)
            out.extend(card_items(request.prompt, results))
    text = json.dumps(out, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output, text.encode("utf-8"))
    else:
        print(text)
    return 0


def _ray_batch(args, requests) -> list[list[dict]]:
    """The batch on Ray (studio.server.ray_batch): progress on stderr, the card rows per request."""
    from studio.server.ray_batch import EngineOptions, run_ray_batch

    options = EngineOptions(
        device=args.device, dtype=args.dtype, backend=args.backend, threads=args.threads,
        allow_ckpt=getattr(args, "allow_ckpt", False),
        lora_dirs=tuple(map(str, network_folders_of(args, "lora"))),
        embedding_dirs=tuple(map(str, network_folders_of(args, "embedding"))),
    )

    def progress(done: int, total: int) -> None:
        print(f"studio: {done}/{total} done", file=sys.stderr, flush=True)

    return run_ray_batch(
        requests, options, address=args.ray, workers=args.workers, checkpoint=args.checkpoint,
        on_progress=progress, on_status=_status_printer(), on_warning=_warn,
    )


# ---------------------------------------------------------------------------------------------- serve


def cmd_serve(args) -> int:
    from studio.server.app import serve_forever
    from studio.server.config import ServerConfig, check_bind, read_token_file

    if (args.replicas is not None or args.max_replicas is not None) and args.ray is None:
        raise UsageError("--replicas and --max-replicas go with --ray")
    if args.replicas is not None and args.max_replicas is not None:
        raise UsageError("give --replicas (a fixed number) or --max-replicas (autoscaling), not both")
    token = read_token_file(args.token_file.expanduser()) if args.token_file else None
    check_bind(args.host, token)
    config = ServerConfig(
        host=args.host, port=args.port, token=token, model_dirs=args.model_dir, score_model=args.model,
        device=args.device, dtype=args.dtype, backend=args.backend, threads=args.threads,
        queue_limit=args.queue_limit, cors_origins=args.cors_origin, ray=args.ray, replicas=args.replicas,
        max_replicas=args.max_replicas,
        lora_dirs=[*network_folders_of(args, "lora")], embedding_dirs=[*network_folders_of(args, "embedding")],
    )

    def ready(url: str) -> None:
        print(url, flush=True)
        print(f"studio: serving on {url} (API: {url}/openapi.json; Ctrl+C stops)", file=sys.stderr, flush=True)

    serve_forever(config, ready)
    return 0


def network_folders_of(args, kind: str) -> list[Path]:
    """The window's LoRA or embedding folders (preferences) and the command line's --lora-dir/--embedding-dir."""
    from studio.library.preferences_file import network_folders, read_preferences

    loras, embeddings = network_folders(read_preferences())
    if kind == "lora":
        return [*loras, *getattr(args, "lora_dir", [])]
    return [*embeddings, *getattr(args, "embedding_dir", [])]


# ----------------------------------------------------------------------------------------------- info


def cmd_info(args) -> int:
    from studio.library.display import json_text, printable
    from studio.library.metadata import read_metadata

    if not args.image.exists():
        raise UsageError(f"{args.image}: no such file")
    meta = read_metadata(args.image)
    if meta is None:
        if args.json:
            print("null")
        print(f"studio: no generation parameters found in {printable(str(args.image))}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json_text(meta.to_dict()))
        return 0
    # Text from the file is untrusted: escapes, carriage returns, bidi overrides are shown, not obeyed.
    lines = [("source", meta.source), *meta.to_request_fields().items()]
    if meta.nsfw is not None:
        lines.append(("nsfw", str(meta.nsfw).lower()))
    lines += list(meta.extra.items())
    print("\n".join(f"{printable(key)}: {printable(value)}" for key, value in lines))
    return 0


# --------------------------------------------------------------------------------------------- models


def cmd_networks(args) -> int:
    """The LoRAs (by the name a <lora:name> tag takes) and embeddings (the word a prompt uses), with the
    family they are for, their trigger words, and why one cannot be used."""
    from studio.library.display import printable
    from studio.library.extra_networks import embedding_hash, lora_hash, short_hash

    catalog = _network_catalog(args)
    rows = []
    for item in [*catalog.loras(), *catalog.embeddings()]:
        row = {
            "kind": item.kind, "name": item.name, "alias": item.alias, "family": item.family, "format": item.format,
            "vectors": item.vectors, "trigger_words": list(item.trigger_words), "path": str(item.path),
            "preview": str(item.preview) if item.preview else None, "pickle": item.pickle, "problem": item.problem,
        }
        if args.hashes and not item.problem:
            try:
                row["hash"] = short_hash((lora_hash if item.kind == "lora" else embedding_hash)(item.path))
            except OSError as exc:
                row["problem"] = f"cannot be read ({exc.strerror or exc})"
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    loras, embeddings = catalog.folders()
    for title, kind, folders in (("LoRAs", "lora", loras), ("Embeddings", "embedding", embeddings)):
        print(f"{title} ({', '.join(str(f) for f in folders)})")
        chosen = [r for r in rows if r["kind"] == kind]
        if not chosen:
            print("  (none)")
        for row in chosen:
            details = [row["family"] or "family unknown", row["format"]]
            if row["vectors"]:
                details.append(f"{row['vectors']} vectors")
            if row.get("hash"):
                details.append(row["hash"])
            line = f"  {printable(row['name'])}  ({', '.join(printable(d) for d in details)})"
            if row["trigger_words"]:
                line += f"  triggers: {printable(', '.join(row['trigger_words'][:8]))}"
            if row["problem"]:
                line += f"  UNUSABLE: {printable(row['problem'])}"
            elif row["pickle"]:
                line += "  (pickle: needs --allow-ckpt)"
            print(line)
    return 0


def cmd_models(args) -> int:
    """The catalogue as the Hugging Face cache holds it, then the folders and files added in the app."""
    from studio.engine.loading import hub_cache_dir
    from studio.engine.model_store import local_model_statuses, model_statuses
    from studio.library.openvino_cache import OpenVinoCache
    from studio.library.preferences_file import local_models, read_preferences

    statuses = model_statuses()
    local = local_model_statuses(local_models(read_preferences()))
    if args.json:
        rows = [
            {
                "kind": "catalogue", "id": m.id, "name": m.name, "repo": m.repo, "revision": m.revision,
                "family": m.family, "downloaded": m.downloaded, "partial": m.partial, "local": m.downloaded,
                "size_on_disk": m.size_on_disk, "path": str(m.path) if m.path else None, "notes": m.notes,
            }
            for m in statuses
        ]
        rows += [
            {"kind": "local", "id": str(m.path), "name": m.path.name, "path": str(m.path), "exists": m.exists,
             "type": m.kind, "family": m.family}
            for m in local
        ]
        rows += [
            {"kind": "openvino", "id": e.folder.name, "name": e.label, "path": str(e.folder), "size_on_disk": e.size,
             "parts": list(e.parts), "created": e.created}
            for e in OpenVinoCache().entries()
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Catalogue (Hugging Face cache: {hub_cache_dir()})")
    for m in statuses:
        if m.downloaded:
            state = f"downloaded, {_gb(m.size_on_disk)}: {m.path}"
        elif m.partial:
            state = f"partly downloaded, {_gb(m.size_on_disk)} so far: resume with `studio models download {m.id}`"
        else:
            state = f"not downloaded: `studio models download {m.id}`"
        print(f"  {m.id:<20} {m.name:<22} {m.repo}@{m.revision[:7]}")
        print(f"  {'':<20} {state}")
        print(f"  {'':<20} {m.notes}")
    print("Local models (added in the app)")
    if not local:
        print("  none: add a diffusers folder or .safetensors file in the app, or pass --model PATH")
    for m in local:
        state = f"{m.kind}, {m.family or 'unknown family'}" if m.exists else "missing (moved or deleted)"
        print(f"  {m.path}  {state}")
    print("Also accepted: any hub repo id (owner/name[@revision]), a diffusers folder, a .safetensors file.")
    _print_openvino_cache()
    return 0


def _print_openvino_cache() -> None:
    from studio.library.display import printable
    from studio.library.openvino_cache import OpenVinoCache

    cache = OpenVinoCache()
    entries = cache.entries()
    print(f"Optimised for this CPU (OpenVINO cache: {cache.root})")
    if not entries:
        print("  none: a model is converted on its first use with the OpenVINO backend")
    for entry in entries:
        print(f"  {entry.folder.name:<40} {_gb(entry.size):>9}  {printable(entry.label)}, {len(entry.parts)} parts")
    if entries:
        print("  remove one with `studio models remove-optimised NAME` (or `all`)")


def cmd_models_remove_optimised(args) -> int:
    """Delete one model's OpenVINO conversion (or all): it is a cache, so nothing goes to the trash."""
    from studio.library.openvino_cache import OpenVinoCache

    cache = OpenVinoCache()
    entries = cache.entries()
    chosen = entries if args.name == "all" else [e for e in entries if e.folder.name == args.name]
    if not chosen:
        raise UsageError(f"{args.name}: no such model in the OpenVINO cache {cache.root} (see `studio models`)")
    freed = sum(cache.remove(entry.folder) for entry in chosen)
    print(f"removed {len(chosen)} optimised model(s) from {cache.root} ({_gb(freed)})")
    return 0


def cmd_models_download(args) -> int:
    """Fetch a model into the Hugging Face cache: progress on stderr (on a terminal), one line at the end.
    Ctrl+C stops it (exit 130); the next run resumes from what was fetched."""
    from studio.engine.model_store import download_model
    from studio.library.disk_usage import disk_usage

    path = download_model(args.model_id, on_progress=_download_printer(_INTERRUPTED), cancel=_INTERRUPTED)
    print(f"{args.model_id}: downloaded ({_gb(disk_usage(path.parent.parent))} in the cache): {path}")
    return 0


def cmd_models_remove(args) -> int:
    """Move a model's cache folder to the trash (nothing asked: the trash is the undo)."""
    from studio.engine.loading import repo_cache_folder, resolve_source
    from studio.engine.model_store import remove_model

    freed = remove_model(args.model_id)
    source = resolve_source(args.model_id)
    print(f"{args.model_id}: moved {repo_cache_folder(source.repo or args.model_id)} to the trash ({_gb(freed)})")
    return 0


# -------------------------------------------------------------------------------------------- gallery


def _open_gallery(args):
    from studio.library.gallery import Gallery

    return Gallery(args.db) if args.db else Gallery.default()


SKIPPED_SHOWN = 10
"""Skipped files a scan names one by one (the count covers the rest)."""


def cmd_gallery_scan(args) -> int:
    """Index folders; a file that cannot be indexed is skipped with its reason, never stops the scan."""
    from studio.library.display import printable

    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise UsageError(f"not a folder: {', '.join(missing)}")
    with _open_gallery(args) as gallery:
        folders = [gallery.add_folder(folder) for folder in args.folders]
        report = gallery.scan(folders)
    print(
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"skipped {report.unreadable} (unchanged {report.unchanged}) in {report.seconds:.1f} s"
    )
    shown = report.skipped[:SKIPPED_SHOWN]  # the report keeps the first ones; it counts them all
    for path, reason in shown:
        print(f"  skipped {printable(path)}: {printable(reason)}")
    if report.unreadable > len(shown):
        print(f"  … and {report.unreadable - len(shown)} more skipped")
    return 0


def cmd_gallery_repair(args) -> int:
    """Move a damaged catalogue aside and rebuild it; the file is not opened as a Gallery first (that is
    what fails on a damaged one)."""
    from studio.library.display import printable
    from studio.library.gallery import Gallery
    from studio.library.gallery_repair import rebuild_damaged
    from studio.library.paths import default_output_dir

    db = args.db.expanduser() if args.db else Gallery.default_path()
    # The app's own catalogue always covers its output folder, whatever the damaged file still lists.
    folders = [] if args.db else [f for f in [default_output_dir()] if f.is_dir()]
    report = rebuild_damaged(db, folders=folders, force=args.force)
    print(printable(report.describe()))
    return 0


def cmd_gallery_search(args) -> int:
    from studio.library.display import json_text, printable
    from studio.library.gallery import Query

    text = " ".join([*args.text, *args.dash_words])
    with _open_gallery(args) as gallery:
        images = gallery.search(Query(text=text, model=args.model), limit=args.limit)
    if args.json:
        rows = [
            {
                "path": str(i.path), "prompt": i.prompt, "negative_prompt": i.negative_prompt, "model": i.model,
                "seed": i.seed, "steps": i.steps, "scheduler": i.scheduler, "width": i.width, "height": i.height,
                "source": i.source, "rating": i.rating, "favourite": i.favourite,
            }
            for i in images
        ]
        print(json_text(rows))
        return 0
    for image in images:
        prompt = " ".join((image.prompt or "").split())[:80]
        seed = image.seed if image.seed is not None else "-"
        print("\t".join(printable(field) for field in (image.path, seed, image.model or "-", prompt)))
    return 0


# ------------------------------------------------------------------------------------ make-tiny-model


def cmd_make_tiny_model(args) -> int:
    from studio.engine.loading import quiet_libraries

    quiet_libraries()  # before the pipeline imports: no torchvision notice, no "Writing model shards" bars
    from studio.engine.tiny import make_tiny_model

    directory: Path = args.directory
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory} exists and is not an empty folder; choose a new one")
    path = make_tiny_model(directory, family=args.family, seed=args.seed)
    print(path)
    return 0


def _new_file(path: Path) -> Path:
    """Refuse to overwrite: these files are written for tests and benches, never over a user's own."""
    if path.exists():
        raise UsageError(f"{path} exists; choose a new file name")
    return path


def cmd_make_tiny_lora(args) -> int:
    from studio.engine.loading import quiet_libraries

    quiet_libraries()
    from studio.engine.tiny import make_tiny_lora

    if not (args.model_dir / "model_index.json").is_file():
        raise UsageError(f"{args.model_dir} is not a diffusers model folder (no model_index.json)")
    if not (args.unet or args.text_encoder):
        raise UsageError("--no-unet and --no-text-encoder together leave nothing to write")
    if args.algo != "lora" and args.fmt != "kohya":
        raise UsageError(f"--algo {args.algo} files exist only in kohya naming; drop --format {args.fmt}")
    path = make_tiny_lora(
        args.model_dir, _new_file(args.output), rank=args.rank, alpha=args.alpha, seed=args.seed,
        scale=args.scale, unet=args.unet, text_encoder=args.text_encoder, conv=args.conv, fmt=args.fmt,
        algo=args.algo,
    )  # fmt: skip
    print(path)
    return 0


def cmd_make_tiny_embedding(args) -> int:
    from studio.engine.tiny import make_tiny_embedding

    if args.model is not None and not (args.model / "text_encoder" / "config.json").is_file():
        raise UsageError(f"{args.model} has no text_encoder/config.json to take the width from")
    path = make_tiny_embedding(
        _new_file(args.output), vectors=args.vectors, model_dir=args.model, seed=args.seed, scale=args.scale,
        fmt=args.fmt,
    )  # fmt: skip
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
