"""The Models dialog's view-model, without a widget: statuses, sizes, downloads with progress and cancel,
removal to the trash, on a real (tiny, loopback) hub and a real Hugging Face cache folder."""

from __future__ import annotations

import pytest

from studio.engine.catalog import CATALOG
from studio.viewmodel.model_manager import ModelManager
from tests.cli.fake_hub import FakeHub, cache_repo, closed_port, folder_files

SD1, SD2 = CATALOG["sd-1.4"], CATALOG["sd-2.1"]
UNET = "unet/diffusion_pytorch_model.safetensors"
WAIT_MS = 60_000


@pytest.fixture
def online(monkeypatch):
    """This process may reach a hub (the fake one on 127.0.0.1)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once, at import, from the tests' env


@pytest.fixture
def manager(qtbot, tmp_path):
    manager = ModelManager(cache_dir=tmp_path / "hub")
    yield manager
    assert manager.shutdown()


def test_statuses_read_the_cache_folder(qtbot, tmp_path, tiny_sd1, tiny_sd2):
    cache = tmp_path / "hub"
    snapshot = cache_repo(cache, SD2.repo, SD2.revision, folder_files(tiny_sd2))
    cache_repo(cache, SD1.repo, SD1.revision, {k: v for k, v in folder_files(tiny_sd1).items() if k != UNET})
    manager = ModelManager(cache_dir=cache)
    assert manager.status("sd-2.1") is None  # nothing read yet
    statuses = {status.id: status for status in manager.statuses()}
    assert set(statuses) == set(CATALOG)
    assert statuses["sd-2.1"].downloaded and statuses["sd-2.1"].path == snapshot
    assert statuses["sd-1.4"].partial and not statuses["sd-1.4"].downloaded
    assert manager.status("sd-2.1") is statuses["sd-2.1"]  # kept until the next read
    assert manager.status("not-a-model") is None
    assert not manager.is_downloading() and manager.progress_of("sd-1.4") is None
    assert manager.shutdown()


def test_the_download_size_is_asked_once(qtbot, online, manager, tiny_sd1, monkeypatch):
    with FakeHub.from_folder(SD1.repo, SD1.revision, tiny_sd1) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with qtbot.waitSignal(manager.size_known, timeout=WAIT_MS) as answer:
            assert manager.query_size("sd-1.4")
        assert not manager.query_size("sd-1.4")  # asked already
    assert answer.args[0] == "sd-1.4" and answer.args[1] > 0
    assert manager.known_size("sd-1.4") == answer.args[1]


def test_a_size_the_hub_cannot_tell_is_unknown_not_an_error(qtbot, online, manager, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with qtbot.assertNotEmitted(manager.failed), qtbot.waitSignal(manager.size_known, timeout=WAIT_MS) as answer:
        manager.query_size("deci-diffusion-1.0")
    assert answer.args == ["deci-diffusion-1.0", None] and manager.known_size("deci-diffusion-1.0") is None


def test_download_reports_progress_then_finishes(qtbot, online, manager, tiny_sd1, monkeypatch):
    seen: list[tuple] = []
    manager.progress.connect(lambda key, done, total: seen.append((key, done, total, manager.progress_of(key))))
    at_finish: list[tuple] = []
    manager.finished.connect(lambda key, path: at_finish.append((manager.is_downloading(key), manager.progress_of(key))))
    with FakeHub.from_folder(SD1.repo, SD1.revision, tiny_sd1) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with qtbot.waitSignal(manager.finished, timeout=WAIT_MS) as done:
            assert manager.download("sd-1.4")
            assert manager.is_downloading("sd-1.4") and manager.is_downloading()
            assert manager.progress_of("sd-1.4") == (0, None)  # started, nothing fetched yet
            assert not manager.download("sd-1.4")  # already under way
    assert seen and seen[-1][1] == seen[-1][2]  # the last report: all bytes of all bytes
    assert all(progress == (done, total) for _key, done, total, progress in seen)  # updated before the signal
    assert at_finish == [(False, None)]  # over before receivers hear of it
    status = next(s for s in manager.statuses() if s.id == "sd-1.4")
    assert status.downloaded and str(status.path) == done.args[1]


def test_cancel_keeps_what_was_fetched_then_remove_goes_to_the_trash(qtbot, online, manager, tiny_sd1, trash, monkeypatch):
    big_unet = bytes(range(256)) * (16 * 4096)  # 16 MiB, trickled out
    with FakeHub(SD1.repo, SD1.revision, {**folder_files(tiny_sd1), UNET: big_unet}, slow_file=UNET) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with qtbot.waitSignal(manager.progress, timeout=WAIT_MS):
            manager.download("sd-1.4")
        with qtbot.waitSignal(manager.cancelled, timeout=WAIT_MS):
            assert manager.cancel("sd-1.4")
    assert not manager.is_downloading("sd-1.4") and manager.progress_of("sd-1.4") is None
    assert not manager.cancel("sd-1.4")  # nothing left to cancel
    assert next(s for s in manager.statuses() if s.id == "sd-1.4").partial
    with qtbot.waitSignal(manager.removed, timeout=WAIT_MS) as removed:
        assert manager.remove("sd-1.4")
    assert removed.args[0] == "sd-1.4" and removed.args[1] > 0
    assert (trash / f"models--{SD1.repo.replace('/', '--')}").is_dir()
    assert not next(s for s in manager.statuses() if s.id == "sd-1.4").partial


def test_a_queued_download_cancelled_never_starts(qtbot, online, manager, tiny_sd1, monkeypatch):
    big_unet = bytes(range(256)) * (16 * 4096)
    progressed: list[str] = []
    manager.progress.connect(lambda key, *_: progressed.append(key))
    cancelled: list[str] = []
    manager.cancelled.connect(cancelled.append)
    with FakeHub(SD1.repo, SD1.revision, {**folder_files(tiny_sd1), UNET: big_unet}, slow_file=UNET) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with qtbot.waitSignal(manager.progress, timeout=WAIT_MS):
            manager.download("sd-1.4")
        assert manager.download("sd-2.1")  # waits behind the first: one download at a time
        assert manager.is_downloading("sd-2.1")
        assert manager.cancel("sd-2.1") and manager.cancel("sd-1.4")
        qtbot.waitUntil(lambda: len(cancelled) == 2, timeout=WAIT_MS)
    assert cancelled == ["sd-1.4", "sd-2.1"] and "sd-2.1" not in progressed
    assert not manager.is_downloading()


def test_failures_are_one_line(qtbot, online, manager, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with qtbot.waitSignal(manager.failed, timeout=WAIT_MS) as failed:
        manager.download("deci-diffusion-1.0")
    assert failed.args[0] == "deci-diffusion-1.0"
    assert "\n" not in failed.args[1] and "cannot be reached" in failed.args[1]
    assert manager.progress_of("deci-diffusion-1.0") is None and not manager.is_downloading()
    with qtbot.waitSignal(manager.failed, timeout=WAIT_MS) as failed:
        manager.remove("sd-1.4")  # nothing downloaded: nothing to remove
    assert failed.args[0] == "sd-1.4" and "not downloaded" in failed.args[1]


def test_nothing_starts_after_shutdown(qtbot, tmp_path):
    manager = ModelManager(cache_dir=tmp_path / "hub")
    assert manager.shutdown()
    assert not manager.download("sd-1.4") and not manager.is_downloading()
    assert not manager.remove("sd-1.4")
    assert not manager.query_size("sd-1.4")
    assert manager.shutdown()  # again: harmless


# ------------------------------------------------------------------------------- the OpenVINO cache
def publish_fake(cache, identity: str, label: str, components=("text_encoder", "unet")) -> None:
    """Parts of a model in the OpenVINO cache, written the way a conversion publishes them (1 KB each)."""

    def write(folder):
        (folder / "openvino_model.xml").write_text("x")
        (folder / "openvino_model.bin").write_bytes(b"0" * 1000)

    for component in components:
        cache.publish(identity, label, component, "fp16", "2026.0", write)


def test_the_openvino_cache_is_listed_and_a_model_removed(qtbot, tmp_path):
    from studio.library.openvino_cache import OpenVinoCache

    cache = OpenVinoCache(tmp_path / "openvino")
    manager = ModelManager(cache_dir=tmp_path / "hub", openvino_cache=cache)
    assert manager.openvino_models() == [] and manager.openvino_total_size() == 0  # no folder yet
    publish_fake(cache, "hub:a/big@1", "big-model", ("text_encoder", "unet", "vae_decoder"))
    publish_fake(cache, "folder:/models/small:1", "small-model", ("unet",))
    big, small = manager.openvino_models()  # largest first
    assert (big.label, len(big.parts), small.label, len(small.parts)) == ("big-model", 3, "small-model", 1)
    assert big.size > 3000 and manager.openvino_total_size() == big.size + small.size
    changed, removed = [], []
    manager.openvino_changed.connect(lambda: changed.append(len(manager.openvino_models())))
    manager.openvino_removed.connect(lambda label, freed: removed.append((label, freed)))
    freed = manager.remove_openvino(big.folder)
    assert freed == big.size and removed == [("big-model", big.size)] and changed == [1]
    assert not big.folder.exists() and [m.label for m in manager.openvino_models()] == ["small-model"]
    assert manager.shutdown()


def test_removing_what_is_not_an_openvino_model_fails_in_one_line(qtbot, tmp_path):
    from studio.library.openvino_cache import OpenVinoCache

    manager = ModelManager(cache_dir=tmp_path / "hub", openvino_cache=OpenVinoCache(tmp_path / "openvino"))
    (tmp_path / "precious").mkdir()
    failures = []
    manager.openvino_failed.connect(failures.append)
    assert manager.remove_openvino(tmp_path / "precious") is None
    assert (tmp_path / "precious").is_dir()  # never deleted: outside the cache
    assert len(failures) == 1 and failures[0].startswith("Could not remove precious: ") and "\n" not in failures[0]
    assert manager.shutdown()


def test_the_default_openvino_cache_is_the_users(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_STUDIO_CACHE", str(tmp_path / "cache"))
    manager = ModelManager(cache_dir=tmp_path / "hub")
    assert manager.openvino_cache.root == tmp_path / "cache" / "openvino"
    assert manager.shutdown()
