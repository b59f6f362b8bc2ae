"""`studio models`, `studio models download ID`, `studio models remove ID` on a real cache layout, a local
hub over HTTP, and the real trash (in a temporary home)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import pytest

from studio.cli import main
from studio.engine.catalog import CATALOG
from studio.engine.loading import repo_cache_folder
from studio.library.preferences_file import write_preferences
from tests.cli.fake_hub import FakeHub, cache_repo, folder_files
from tests.cli.test_cli_errors import FAST, child_env, run_child, studio_command

SD2 = CATALOG["sd-2.1"]
SD1 = CATALOG["sd-1.4"]
UNET = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Path:
    """This process's cache and preferences in tmp_path."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("LATENT_STUDIO_CONFIG", str(tmp_path / "config"))
    return tmp_path


def test_list_shows_downloaded_partial_absent_and_local_models(capsys, settings, tiny_sd1, tiny_sd2):
    cache = settings / "hf" / "hub"
    snapshot = cache_repo(cache, SD2.repo, SD2.revision, folder_files(tiny_sd2))
    cache_repo(cache, SD1.repo, SD1.revision, {k: v for k, v in folder_files(tiny_sd1).items() if k != UNET})
    gone = settings / "gone.safetensors"
    write_preferences({"local_models": [str(tiny_sd1), str(gone)]})

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"Catalogue (Hugging Face cache: {cache})" in out
    assert f"downloaded, 13.6 MB: {snapshot}" in out
    assert "partly downloaded" in out and "resume with `studio models download sd-1.4`" in out
    assert "not downloaded: `studio models download deci-diffusion-1.0`" in out
    local = out[out.index("Local models"):]
    assert f"{tiny_sd1}  folder, sd1" in local and f"{gone}  missing" in local

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    catalogue = {r["id"]: r for r in rows if r["kind"] == "catalogue"}
    assert (catalogue["sd-2.1"]["downloaded"], catalogue["sd-2.1"]["path"]) == (True, str(snapshot))
    assert (catalogue["sd-1.4"]["downloaded"], catalogue["sd-1.4"]["partial"]) == (False, True)
    assert catalogue["sd-2.1"]["size_on_disk"] > catalogue["sd-1.4"]["size_on_disk"] > 0
    assert [(r["path"], r["exists"]) for r in rows if r["kind"] == "local"] == [(str(tiny_sd1), True), (str(gone), False)]


def test_download_generate_offline_then_remove(capsys, settings, tiny_sd2, tmp_path):
    """The whole life of a model: download (progress on a terminal), use it offline, remove it to the trash."""
    env = child_env(tmp_path, HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "home" / "share"))
    (tmp_path / "home").mkdir()
    with FakeHub.from_folder(SD2.repo, SD2.revision, tiny_sd2) as hub:
        env["HF_ENDPOINT"] = hub.endpoint
        primary, replica = pty.openpty()  # stderr on a terminal: the progress line shows
        try:
            child = subprocess.run(
                [*studio_command(), "models", "download", "sd-2.1"], stdout=subprocess.PIPE, stderr=replica,
                env=env, timeout=120, text=True,
            )
            os.close(replica)
            progress = _read_all(primary)
        finally:
            os.close(primary)
    snapshot = repo_cache_folder(SD2.repo, tmp_path / "hf" / "hub") / "snapshots" / SD2.revision
    assert child.returncode == 0, progress
    assert child.stdout.splitlines() == [f"sd-2.1: downloaded (13.6 MB in the cache): {snapshot}"]
    assert "downloading" in progress and "(100%)" in progress and progress.endswith("\n")

    code = main(["generate", "--prompt", "x", "--model", "sd-2.1", "--output-dir", str(tmp_path / "out"), *FAST])
    assert code == 0, capsys.readouterr().err  # the downloaded snapshot loads, offline (HF_HUB_OFFLINE=1 here)
    capsys.readouterr()
    assert main(["models", "download", "sd-2.1"]) == 0  # already there: said at once, offline too
    assert capsys.readouterr().out == f"sd-2.1: downloaded (13.6 MB in the cache): {snapshot}\n"

    done = run_child(["models", "remove", "sd-2.1"], env)
    folder = snapshot.parents[1]
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"sd-2.1: moved {folder} to the trash (13.6 MB)\n"
    assert not folder.exists() and (tmp_path / "home" / "share" / "Trash" / "files" / folder.name).is_dir()
    again = run_child(["models", "remove", "sd-2.1"], env)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "is not downloaded" in again.stderr


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_ctrl_c_cancels_a_download_cleanly(tiny_sd2, tmp_path):
    big_unet = bytes(range(256)) * (32 * 4096 + 100)  # 32 MiB, trickled out over seconds
    with FakeHub(SD2.repo, SD2.revision, {**folder_files(tiny_sd2), UNET: big_unet}, slow_file=UNET) as hub:
        env = child_env(tmp_path, HF_ENDPOINT=hub.endpoint)
        child = subprocess.Popen(
            [*studio_command(), "models", "download", "sd-2.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, text=True,
        )
        deadline = time.monotonic() + 60
        while not any(r.method == "GET" and r.path.endswith(UNET) for r in hub.requests):
            assert time.monotonic() < deadline and child.poll() is None, "the download never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)  # not the many seconds the rest of the file would take
        while UNET not in hub.aborted and time.monotonic() < deadline:
            time.sleep(0.05)
    assert child.returncode == 130
    assert err == "studio: error: cancelled\n" and out == ""
    assert UNET in hub.aborted


def test_download_without_network_is_one_line(tmp_path):
    done = run_child(["models", "download", "deci-diffusion-1.0"], child_env(tmp_path))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "cannot be reached" in done.stderr
    assert "Deci/DeciDiffusion-v1-0@99d0c312e8e00e1bfb1aa89ad52b2a34f5829c2d" in done.stderr


def test_download_refuses_what_is_not_a_hub_model(capsys, settings, tiny_sd1):
    assert main(["models", "download", str(tiny_sd1)]) == 2
    assert "is a local folder, not a hub model" in capsys.readouterr().err
    assert main(["models", "download", "no-such-model"]) == 2
    assert "not in the catalogue" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`studio models --json | head -1`: the reader leaves early; no "Broken pipe" error line."""
    child = subprocess.Popen(
        [*studio_command(), "models", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=child_env(tmp_path),
    )
    child.stdout.close()  # before the child has written anything
    err = child.stderr.read()
    assert child.wait(timeout=60) == 128 + signal.SIGPIPE
    assert err == b""
