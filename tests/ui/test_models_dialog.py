"""The model manager on a real (tiny, loopback) hub: list, download with progress, cancel, remove, local."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal
from PySide6.QtWidgets import QMessageBox

from studio.engine.catalog import CATALOG
from studio.engine.errors import RequestError
from studio.engine.model_info import check_local_model
from studio.ui.models_dialog import ModelsDialog
from studio.viewmodel.model_manager import ModelManager
from tests.cli.fake_hub import FakeHub, cache_repo, folder_files

SD1, SD2 = CATALOG["sd-1.4"], CATALOG["sd-2.1"]
UNET = "unet/diffusion_pytorch_model.safetensors"
WAIT_MS = 60_000


class LocalModelList(QObject):
    """The window's list of added local models, as the dialog sees it (the four members it uses): a
    real list with the real model check, so the dialog is tested without the whole parameters panel."""

    model_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._specs: list[str] = []

    def local_models(self) -> list[str]:
        return list(self._specs)

    def add_local_model(self, spec: str) -> None:  # unchecked, as the command line's --model
        if spec not in self._specs:
            self._specs.append(spec)
            self.model_changed.emit(spec)

    def try_add_local_model(self, spec: str) -> bool:
        try:
            check_local_model(spec)
        except RequestError:
            return False
        self.add_local_model(spec)
        return True

    def remove_local_model(self, spec: str) -> bool:
        if spec not in self._specs:
            return False
        self._specs.remove(spec)
        self.model_changed.emit("")
        return True


@pytest.fixture
def online(monkeypatch, tmp_path):
    """This process may reach a hub (the fake one on 127.0.0.1)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once, at import, from the tests' env
    return tmp_path


@pytest.fixture
def dialog(qtbot, tmp_path):
    cache = tmp_path / "hub"
    manager = ModelManager(cache_dir=cache)
    dialog = ModelsDialog(manager, LocalModelList())
    qtbot.addWidget(dialog)
    dialog.refresh()
    yield dialog
    assert manager.shutdown()


def test_lists_downloaded_partial_and_absent_models(qtbot, tmp_path, tiny_sd1, tiny_sd2):
    cache = tmp_path / "hub"
    snapshot = cache_repo(cache, SD2.repo, SD2.revision, folder_files(tiny_sd2))
    cache_repo(cache, SD1.repo, SD1.revision, {k: v for k, v in folder_files(tiny_sd1).items() if k != UNET})
    manager = ModelManager(cache_dir=cache)
    models = LocalModelList()
    models.add_local_model(str(tiny_sd1))
    dialog = ModelsDialog(manager, models)
    qtbot.addWidget(dialog)
    dialog.refresh()
    rows = dialog.rows()
    assert rows["sd-2.1"][1] == "downloaded" and rows["sd-2.1"][3] == str(snapshot) and "MB" in rows["sd-2.1"][2]
    assert rows["sd-1.4"][1].startswith("partly downloaded")
    assert rows["deci-diffusion-1.0"][1].startswith("not downloaded")
    assert rows[str(tiny_sd1)][1] == "available"
    dialog.select("sd-1.4")
    assert dialog.download_button.isEnabled() and "Resume" in dialog.download_button.text()
    dialog.select("sd-2.1")
    assert not dialog.download_button.isEnabled() and dialog.use_button.isEnabled()
    assert manager.shutdown()


def test_download_shows_progress_then_the_model_is_ready(qtbot, online, dialog, tiny_sd1, monkeypatch):
    progress = []
    dialog.manager.progress.connect(lambda key, done, total: progress.append((key, done, total)))
    with FakeHub.from_folder(SD1.repo, SD1.revision, tiny_sd1) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        dialog.select("sd-1.4")
        with qtbot.waitSignal(dialog.manager.finished, timeout=WAIT_MS):
            assert dialog.download_selected()
    assert progress and progress[-1][1] == progress[-1][2]  # the last report: all bytes of all bytes
    assert dialog.rows()["sd-1.4"][1] == "downloaded" and "is downloaded" in dialog.note.text()
    assert dialog.use_button.isEnabled()
    used = []
    dialog.use_model.connect(used.append)
    dialog.use_selected()
    assert used == ["sd-1.4"]


def test_cancel_keeps_what_was_fetched_and_remove_goes_to_the_trash(qtbot, online, dialog, tiny_sd1, trash, monkeypatch):
    big_unet = bytes(range(256)) * (16 * 4096)  # 16 MiB, trickled out
    with FakeHub(SD1.repo, SD1.revision, {**folder_files(tiny_sd1), UNET: big_unet}, slow_file=UNET) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        dialog.select("sd-1.4")
        with qtbot.waitSignal(dialog.manager.progress, timeout=WAIT_MS):
            dialog.download_selected()
        assert dialog.cancel_button.isEnabled()
        with qtbot.waitSignal(dialog.manager.cancelled, timeout=WAIT_MS):
            dialog.cancel_selected()
    assert "cancelled" in dialog.note.text()
    row = dialog.rows()["sd-1.4"]
    assert row[1].startswith("partly downloaded") and not dialog.cancel_button.isEnabled()
    box = dialog.remove_selected()
    assert isinstance(box, QMessageBox)
    with qtbot.waitSignal(dialog.manager.removed, timeout=WAIT_MS):
        next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole).click()
    assert dialog.rows()["sd-1.4"][1].startswith("not downloaded")
    assert (trash / f"models--{SD1.repo.replace('/', '--')}").is_dir()


def test_no_network_is_one_line_and_nothing_changes(qtbot, online, dialog, monkeypatch):
    from tests.cli.fake_hub import closed_port

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    dialog.select("deci-diffusion-1.0")
    with qtbot.waitSignal(dialog.manager.failed, timeout=WAIT_MS) as failed:
        dialog.download_selected()
    assert "\n" not in failed.args[1] and "cannot be reached" in failed.args[1]
    assert dialog.rows()["deci-diffusion-1.0"][1].startswith("not downloaded")


def test_local_entries_are_added_checked_and_removed(qtbot, dialog, tiny_sd2, tmp_path):
    panel = dialog.models
    (tmp_path / "empty").mkdir()
    assert not panel.try_add_local_model(str(tmp_path / "empty"))
    assert panel.try_add_local_model(str(tiny_sd2))
    dialog.refresh()
    assert dialog.select(str(tiny_sd2)) and dialog.remove_button.text() == "&Remove from list"
    dialog.remove_selected()
    assert str(tiny_sd2) not in dialog.rows() and panel.local_models() == []


def test_a_local_model_path_that_spells_html_is_shown_literally(qtbot, dialog, tmp_path):
    """Folders whose names join into "<img src="/dev/zero">": shown as HTML, Qt would read /dev/zero and
    abort. Formats and escaping are checked; nothing is rendered or hovered."""
    from PySide6.QtCore import Qt

    assert dialog.note.textFormat() == Qt.TextFormat.PlainText  # before the path reaches it
    spec = str(tmp_path / '<img src="' / "dev" / 'null">' / "<b>model")
    dialog.models.add_local_model(spec)  # unchecked, as the command line's --model
    dialog.refresh()
    assert dialog.select(spec)
    assert dialog.note.text() == spec and dialog.rows()[spec] == ("<b>model", "missing", "–", spec)
    tip = dialog.tree.currentItem().toolTip(3)
    assert tip.startswith("<p style='white-space:pre-wrap'>") and "<img" not in tip and "<b>" not in tip
    assert "&lt;img src=&quot;/dev/null&quot;&gt;/&lt;b&gt;model" in tip


# ------------------------------------------------------------------------------- the OpenVINO cache
def test_models_optimised_for_this_cpu_are_listed_and_removed_after_asking(qtbot, tmp_path):
    from studio.library.openvino_cache import OpenVinoCache
    from studio.ui.models_dialog import OPENVINO_SECTION, format_bytes
    from tests.viewmodel.test_model_manager import publish_fake

    cache = OpenVinoCache(tmp_path / "openvino")
    publish_fake(cache, "hub:CompVis/stable-diffusion-v1-4@1", "CompVis/stable-diffusion-v1-4", ("text_encoder", "unet"))
    publish_fake(cache, "file:abc", "<b>dreamy.safetensors", ("unet",))
    manager = ModelManager(cache_dir=tmp_path / "hub", openvino_cache=cache)
    dialog = ModelsDialog(manager, LocalModelList())
    qtbot.addWidget(dialog)
    dialog.refresh()
    first, second = cache.entries()
    rows = dialog.rows()
    assert rows[str(first.folder)] == (
        "CompVis/stable-diffusion-v1-4", "2 parts optimised", format_bytes(first.size), str(first.folder)
    )
    assert first.size > 2000 and format_bytes(first.size) == "2 KB"
    assert rows[str(second.folder)][:2] == ("<b>dreamy.safetensors", "1 part optimised")  # shown as text, never HTML
    assert dialog._openvino_root.text(0) == f"{OPENVINO_SECTION} · {format_bytes(first.size + second.size)}"

    assert dialog.select(str(first.folder))
    assert dialog.remove_button.isEnabled() and not dialog.use_button.isEnabled() and dialog.reveal_button.isEnabled()
    assert "optimised for this CPU with OpenVINO" in dialog.note.text() and "unet-fp16-ov2026.0" in dialog.note.text()
    asked = dialog.remove_selected()
    assert isinstance(asked, QMessageBox) and asked.objectName() == "removeOpenVinoBox"
    assert "made again the next time the model runs on OpenVINO" in asked.text() and first.folder.is_dir()
    next(b for b in asked.buttons() if asked.buttonRole(b) == QMessageBox.ButtonRole.RejectRole).click()
    assert first.folder.is_dir()  # Cancel keeps it

    box = dialog.remove_selected()
    next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole).click()
    for answered in (asked, box):  # a closed box keeps the application's focus for the tests after this one
        answered.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not first.folder.exists() and str(first.folder) not in dialog.rows()
    assert dialog.note.text() == f"Removed the optimised copy of CompVis/stable-diffusion-v1-4 ({format_bytes(first.size)} freed)."
    assert str(second.folder) in dialog.rows()
    assert manager.shutdown()


def test_an_empty_openvino_cache_shows_an_empty_section(qtbot, tmp_path):
    from studio.library.openvino_cache import OpenVinoCache
    from studio.ui.models_dialog import OPENVINO_SECTION

    manager = ModelManager(cache_dir=tmp_path / "hub", openvino_cache=OpenVinoCache(tmp_path / "none"))
    dialog = ModelsDialog(manager, LocalModelList())
    qtbot.addWidget(dialog)
    dialog.refresh()
    assert dialog._openvino_root.text(0) == OPENVINO_SECTION and dialog._openvino_root.childCount() == 0
    assert manager.shutdown()
