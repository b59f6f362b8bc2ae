"""The model manager's backend on a real Hugging Face cache layout and a real (local) hub over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from studio.engine.catalog import CATALOG
from studio.engine.errors import Cancelled, ModelNotFoundError, RequestError, UnknownModelError
from studio.engine.loading import repo_cache_folder
from studio.engine.model_store import (
    download_model,
    download_size,
    local_model_statuses,
    model_statuses,
    remove_model,
)
from studio.library.disk_usage import disk_usage
from tests.cli.fake_hub import FakeHub, cache_repo, closed_port, folder_files

SD2 = CATALOG["sd-2.1"]
SD1 = CATALOG["sd-1.4"]
UNET = "unet/diffusion_pytorch_model.safetensors"
# Files the real repos hold beside what the app fetches: fp16 twins, pickles, configs of other tools.
NOT_FETCHED = {
    "unet/diffusion_pytorch_model.fp16.safetensors": b"f" * 3000,
    "unet/diffusion_pytorch_model.bin": b"p" * 5000,
    "v2-inference-v.yaml": b"y" * 70,
}


@pytest.fixture
def online(monkeypatch):
    """Network allowed for this test (the suite runs with HF_HUB_OFFLINE=1, which huggingface_hub reads once,
    at import): only ever towards the local FakeHub or a closed port."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def statuses_by_id(cache) -> dict:
    return {s.id: s for s in model_statuses(cache)}


def test_statuses_downloaded_partial_and_absent(tiny_sd1, tiny_sd2, tmp_path):
    sd2_files = folder_files(tiny_sd2)
    snapshot = cache_repo(tmp_path, SD2.repo, SD2.revision, sd2_files, listing={**sd2_files, **NOT_FETCHED})
    # An older revision sharing most blobs: its links add nothing to the size, its own blob does.
    cache_repo(tmp_path, SD2.repo, "f" * 40, {**sd2_files, "model_index.json": b"{}"}, ref=None)
    sd1_files = {k: v for k, v in folder_files(tiny_sd1).items() if k != UNET}  # interrupted: no UNet weights
    cache_repo(tmp_path, SD1.repo, SD1.revision, sd1_files)  # no listing: as an older client leaves it

    found = statuses_by_id(tmp_path)
    sd2 = found["sd-2.1"]
    assert (sd2.downloaded, sd2.partial, sd2.path) == (True, False, snapshot)
    bookkeeping = sum(p.stat().st_size for d in ("refs", "trees") for p in (snapshot.parents[1] / d).iterdir())
    assert sd2.size_on_disk == sum(len(v) for v in sd2_files.values()) + len(b"{}") + bookkeeping  # blobs once
    assert (sd2.repo, sd2.revision, sd2.family) == (SD2.repo, SD2.revision, "sd2")
    sd1 = found["sd-1.4"]
    assert (sd1.downloaded, sd1.partial, sd1.path) == (False, True, None)
    assert sd1.size_on_disk == sum(len(v) for v in sd1_files.values()) + len(SD1.revision)  # + refs/main
    deci = found["deci-diffusion-1.0"]
    assert (deci.downloaded, deci.partial, deci.size_on_disk, deci.path) == (False, False, 0, None)


def test_a_file_missing_from_the_hub_listing_means_partial(tiny_sd2, tmp_path):
    """huggingface_hub 2.x keeps the repo's listing: a wanted file it names that is absent = not complete."""
    files = folder_files(tiny_sd2)
    listing = {**files, "vae/diffusion_pytorch_model-00001-of-00002.safetensors": b"s" * 10}
    cache_repo(tmp_path, SD2.repo, SD2.revision, files, listing=listing)
    status = statuses_by_id(tmp_path)["sd-2.1"]
    assert (status.downloaded, status.partial) == (False, True)


def test_local_models_report_whether_they_still_exist(tiny_sd1, tmp_path):
    gone = tmp_path / "deleted.safetensors"
    statuses = local_model_statuses([str(tiny_sd1), gone])
    assert [(s.path, s.exists, s.kind) for s in statuses] == [(tiny_sd1, True, "folder"), (gone, False, "missing")]
    assert statuses[0].family == "sd1" and statuses[1].family is None


def test_download_size_counts_only_what_the_app_fetches(tiny_sd2, tmp_path, monkeypatch):
    files = folder_files(tiny_sd2)
    cache_repo(tmp_path, SD2.repo, SD2.revision, {}, listing={**files, **NOT_FETCHED})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fetched = {k: v for k, v in files.items() if k not in ("README.md", "studio_tiny.json")}
    assert download_size("sd-2.1", cache_dir=tmp_path) == sum(len(v) for v in fetched.values())  # from the listing
    assert download_size("sd-1.4", cache_dir=tmp_path) is None  # offline, no listing: unknown, and no wait


def test_download_size_from_the_hub_and_none_when_unreachable(online, tiny_sd2, tmp_path, monkeypatch):
    files = folder_files(tiny_sd2)
    fetched = sum(len(v) for k, v in files.items() if k not in ("README.md", "studio_tiny.json"))
    with FakeHub(SD2.repo, SD2.revision, {**files, **NOT_FETCHED}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert download_size("sd-2.1", cache_dir=tmp_path) == fetched
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert download_size("sd-2.1", cache_dir=tmp_path) is None


def test_download_with_progress_then_offline_load(online, tiny_sd2, tmp_path, monkeypatch):
    with FakeHub.from_folder(SD2.repo, SD2.revision, tiny_sd2, extra=NOT_FETCHED) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        seen = []
        path = download_model("sd-2.1", on_progress=seen.append, cache_dir=tmp_path)
        fetched_names = {_resolved(r.path) for r in hub.requests if r.method == "GET" and "/resolve/" in r.path}
    assert path == repo_cache_folder(SD2.repo, tmp_path) / "snapshots" / SD2.revision
    assert not fetched_names & set(NOT_FETCHED)  # no fp16 twin, no pickle, no yaml
    assert seen and seen[-1].done == seen[-1].total > 0
    wanted = sum(len(v) for k, v in folder_files(tiny_sd2).items() if k not in ("README.md", "studio_tiny.json"))
    assert {p.total for p in seen} == {wanted}  # the whole size from the first report, not a growing guess
    assert all(a.done <= b.done for a, b in zip(seen, seen[1:], strict=False))
    status = statuses_by_id(tmp_path)["sd-2.1"]
    assert status.downloaded and status.path == path and status.size_on_disk == disk_usage(path.parent.parent)
    # Now offline: the same call returns the cached snapshot at once.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download_model("sd-2.1", cache_dir=tmp_path) == path


def test_cancel_stops_mid_file_and_the_next_download_completes(online, tiny_sd2, tmp_path, monkeypatch):
    """huggingface_hub reports a file's progress every 10 MiB: the UNet here is 3.2 chunks, trickled out over
    seconds, and the cancel (set once some bytes have arrived) cuts it off after its first chunk."""
    big_unet = bytes(range(256)) * (32 * 4096 + 100)  # 32 MiB + a bit
    files = {**folder_files(tiny_sd2), UNET: big_unet}
    with FakeHub(SD2.repo, SD2.revision, files, slow_file=UNET) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        cancel = threading.Event()

        def on_progress(progress) -> None:
            if progress.done > 64 * 1024:
                cancel.set()

        with pytest.raises(Cancelled):
            download_model("sd-2.1", on_progress=on_progress, cancel=cancel, cache_dir=tmp_path)
        deadline = time.monotonic() + 10
        while UNET not in hub.aborted and time.monotonic() < deadline:  # the server notices at its next write
            time.sleep(0.05)
        assert UNET in hub.aborted  # cut off mid-file, not waited for
        status = statuses_by_id(tmp_path)["sd-2.1"]
        assert (status.downloaded, status.partial) == (False, True)
        snapshot = repo_cache_folder(SD2.repo, tmp_path) / "snapshots" / SD2.revision
        kept = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
        assert kept and UNET not in kept
        first = len(hub.requests)

        path = download_model("sd-2.1", cache_dir=tmp_path)
        fetched_again = {_resolved(r.path) for r in hub.requests[first:] if r.method == "GET" and "/resolve/" in r.path}
    assert (path / UNET).read_bytes() == big_unet
    assert UNET in fetched_again and not fetched_again & kept  # finished files are not fetched twice
    assert statuses_by_id(tmp_path)["sd-2.1"].downloaded


def _resolved(url_path: str) -> str:
    """The repo path of a /<repo>/resolve/<revision>/<path> request."""
    return url_path.split("/resolve/", 1)[1].split("/", 1)[1]


def test_a_set_cancel_stops_before_any_request(online, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        download_model("sd-2.1", cancel=cancel, cache_dir=tmp_path)


def test_unreachable_hub_fails_at_once_with_how_to_get_it(online, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError) as info:
        download_model("sd-2.1", cancel=threading.Event(), cache_dir=tmp_path)
    assert time.monotonic() - started < 5  # a refused connection, without the hub client's 24 s of retries
    message = str(info.value)
    assert "\n" not in message
    assert f"{SD2.repo}@{SD2.revision}" in message and "cannot be reached" in message
    assert "`studio models download sd-2.1`" in message
    assert not repo_cache_folder(SD2.repo, tmp_path).exists() or disk_usage(repo_cache_folder(SD2.repo, tmp_path)) == 0


def test_bad_ids_are_bad_input(tiny_sd1, tmp_path):
    with pytest.raises(UnknownModelError):
        download_model("no-such-model", cache_dir=tmp_path)
    with pytest.raises(RequestError, match="local folder"):
        download_model(str(tiny_sd1), cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="not downloaded"):
        remove_model("sd-1.4", cache_dir=tmp_path)


def test_remove_moves_the_repo_folder_to_the_trash(tiny_sd2, tmp_path):
    """In a child process with its own HOME and XDG_DATA_HOME: send2trash reads them at import, and the
    test must not fill the real trash."""
    cache = tmp_path / "cache"
    cache_repo(cache, SD2.repo, SD2.revision, folder_files(tiny_sd2))
    folder = repo_cache_folder(SD2.repo, cache)
    size = disk_usage(folder)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "share")}
    code = (
        "import sys; from studio.engine.model_store import remove_model; "
        f"print(remove_model('sd-2.1', cache_dir={str(cache)!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == size > 0
    assert not folder.exists()
    trashed = home / "share" / "Trash" / "files" / folder.name
    assert trashed.is_dir() and disk_usage(trashed) == size
    assert (home / "share" / "Trash" / "info" / f"{folder.name}.trashinfo").is_file()


def test_model_store_imports_no_torch():
    code = "import sys, studio.engine.model_store; print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'PySide6') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
