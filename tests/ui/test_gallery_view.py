"""The gallery browser driven like a user would: real catalogue, real files, real threads, real trash
(pointed into tmp_path). Waits use signals or waitUntil, never sleeps.
"""

from __future__ import annotations

import shutil
import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QDate, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QApplication

from studio.library.gallery import Gallery
from studio.library.images import encode_image
from studio.ui.gallery_view import IMAGE_ROLE, GalleryModel, GalleryView
from studio.worker.gallery import GalleryService
from tests.library.samples import studio_meta
from tests.worker.test_gallery_worker import make_a1111, make_ours, use_test_trash

WAIT_MS = 15_000
WATCH_MS = 20_000
BASE = 1_700_000_000.0


@pytest.fixture
def library(tmp_path) -> Path:
    """Four images, oldest to newest: fox (sd-1.4), castle (sd-2.1), A1111 umbrella, snow fox (sd-1.4)."""
    folder = tmp_path / "images"
    make_ours(folder / "fox.png", "a watercolor fox in autumn", seed=111, steps=20, created=BASE + 1)
    make_ours(folder / "castle.png", "a red castle at dusk", seed=222, steps=30, model="sd-2.1", created=BASE + 2)
    make_a1111(folder / "a1111" / "umbrella.png", mtime=BASE + 3)
    make_ours(folder / "snowfox.png", "a fox in the snow", seed=444, steps=25, created=BASE + 4)
    return folder


@pytest.fixture
def trash(tmp_path, monkeypatch) -> Path:
    return use_test_trash(tmp_path, monkeypatch)


@pytest.fixture
def make_view(qtbot, tmp_path, trash):
    services: list[GalleryService] = []

    def make(folder: Path | None = None, db: Path | None = None, on_service=None, **kw) -> GalleryView:
        service = GalleryService(db or tmp_path / "gallery.sqlite3", tmp_path / "thumbs", debounce_ms=50)
        services.append(service)
        if on_service is not None:
            on_service(service)
        if folder is not None:
            with qtbot.waitSignal(service.scan_finished, timeout=WAIT_MS):
                service.add_folder(folder)
        kw.setdefault("search_debounce_ms", 20)
        view = GalleryView(service, **kw)
        qtbot.addWidget(view)
        view.resize(1100, 700)
        view.show()
        qtbot.waitExposed(view)
        return view

    yield make
    for service in services:
        assert service.shutdown()


def names(view: GalleryView) -> list[str]:
    return [image.path.name for image in view.model.images()]


def select(view: GalleryView, name: str) -> None:
    row = names(view).index(name)
    view.select_row(row)
    view.grid.setFocus()
    assert view.current_image().path.name == name


def test_lists_the_library_newest_first_with_count(make_view, library):
    view = make_view(library)
    assert names(view) == ["snowfox.png", "umbrella.png", "castle.png", "fox.png"]
    assert view.count_label.text() == "4 images"
    assert [view.model_filter.itemText(i) for i in range(view.model_filter.count())] == [
        "All models", "sd-1.4", "sd-2.1", "v1-5-pruned-emaonly",
    ]


def test_search_box_filters_by_prompt_after_a_pause(make_view, library, qtbot):
    view = make_view(library)
    qtbot.keyClicks(view.search, "fox")
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "fox.png"], timeout=WAIT_MS)
    assert view.count_label.text() == "2 images"
    view.search.clear()
    qtbot.keyClicks(view.search, "umbrella")
    qtbot.waitUntil(lambda: names(view) == ["umbrella.png"], timeout=WAIT_MS)
    view.search.clear()
    qtbot.waitUntil(lambda: len(names(view)) == 4, timeout=WAIT_MS)


def test_model_favourites_and_sort_filters(make_view, library, qtbot):
    view = make_view(library)
    view.model_filter.setCurrentIndex(view.model_filter.findData("sd-2.1"))
    assert names(view) == ["castle.png"]
    view.model_filter.setCurrentIndex(view.model_filter.findData("sd-1.4"))
    assert names(view) == ["snowfox.png", "fox.png"]
    view.model_filter.setCurrentIndex(0)

    view.sort.setCurrentIndex(view.sort.findData("oldest"))
    assert names(view) == ["fox.png", "castle.png", "umbrella.png", "snowfox.png"]

    select(view, "castle.png")
    view.favourite.setChecked(True)  # the detail pane's toggle persists it
    view.rating.setValue(4)
    select(view, "umbrella.png")
    qtbot.keyClick(view.grid, Qt.Key.Key_2)  # digits rate the selected image
    qtbot.keyClick(view.grid, Qt.Key.Key_F)  # F toggles favourite
    gallery = view.service.gallery()
    assert gallery.get_by_path(library / "castle.png").rating == 4
    assert gallery.get_by_path(library / "a1111" / "umbrella.png").rating == 2

    view.sort.setCurrentIndex(view.sort.findData("rating"))
    assert names(view) == ["castle.png", "umbrella.png", "snowfox.png", "fox.png"]
    view.favourites_only.setChecked(True)
    assert names(view) == ["castle.png", "umbrella.png"]
    select(view, "umbrella.png")
    qtbot.keyClick(view.grid, Qt.Key.Key_F)  # no longer a favourite: leaves the filtered view
    qtbot.waitUntil(lambda: names(view) == ["castle.png"], timeout=WAIT_MS)

    view.favourites_only.setChecked(False)
    view.date_filter.setCurrentIndex(view.date_filter.findData("today"))  # all made in 2023
    assert names(view) == []
    view.date_filter.setCurrentIndex(view.date_filter.findData("custom"))
    assert view.date_from.isVisible()
    made = QDate(datetime.fromtimestamp(BASE).date())  # local time, like the filter
    view.date_from.setDate(made.addDays(1))
    assert names(view) == []
    view.date_from.setDate(made)
    view.date_to.setDate(made)
    assert sorted(names(view)) == ["castle.png", "fox.png", "snowfox.png", "umbrella.png"]


def test_selecting_shows_the_details_and_raw_chunks(make_view, library, qtbot):
    view = make_view(library)
    select(view, "castle.png")
    f = view.fields
    assert f["prompt"].text() == "a red castle at dusk"
    assert f["negative_prompt"].text() == "blurry"
    assert (f["seed"].text(), f["steps"].text(), f["model"].text()) == ("222", "30", "sd-2.1")
    assert f["guidance"].text() == "7.5" and f["source"].text() == "Latent Studio"
    assert f["size"].text() == "32 × 32" and "castle.png" in f["file"].text()
    assert "[latent-studio]" in view.raw.toPlainText()
    qtbot.waitUntil(lambda: view.preview.source().width() == 32, timeout=WAIT_MS)  # decoded image arrived

    select(view, "umbrella.png")
    assert f["source"].text().startswith("AUTOMATIC1111")
    assert f["seed"].text() == "2179987202"
    raw = view.raw.toPlainText()
    assert raw.startswith("[parameters]") and "Negative prompt: (worst quality" in raw


def test_reuse_parameters_seed_and_send_to_canvas(make_view, library, qtbot):
    view = make_view(library)
    select(view, "fox.png")
    with qtbot.waitSignal(view.reuse_parameters, timeout=WAIT_MS) as blocker:
        qtbot.keyClick(view.grid, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    fields = blocker.args[0]
    assert (fields["prompt"], fields["seed"], fields["steps"]) == ("a watercolor fox in autumn", 111, 20)
    assert fields["negative_prompt"] == "blurry" and fields["model"] == "sd-1.4"

    with qtbot.waitSignal(view.reuse_seed, timeout=WAIT_MS) as blocker:
        view.buttons["seed"].click()
    assert blocker.args == [111]

    select(view, "umbrella.png")
    with qtbot.waitSignal(view.send_to_canvas, timeout=WAIT_MS) as blocker:
        view.act_to_canvas.trigger()
    assert blocker.args == [str(library / "a1111" / "umbrella.png")]
    with qtbot.waitSignal(view.reuse_parameters, timeout=WAIT_MS) as blocker:
        view.buttons["reuse"].click()
    assert blocker.args[0]["seed"] == 2179987202 and blocker.args[0]["steps"] == 28


def test_copy_image_and_prompt_with_the_keyboard(make_view, library, qtbot):
    view = make_view(library)
    select(view, "snowfox.png")
    clipboard = QApplication.clipboard()
    qtbot.keyClick(view.grid, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert clipboard.text() == "a fox in the snow"
    qtbot.keyClick(view.grid, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.image().size().toTuple() == (32, 32)


def test_delete_hides_the_row_and_undo_brings_it_back(make_view, library, qtbot, trash):
    view = make_view(library)
    select(view, "castle.png")
    qtbot.keyClick(view.grid, Qt.Key.Key_Delete)
    assert names(view) == ["snowfox.png", "umbrella.png", "fox.png"]
    assert view.count_label.text().startswith("4 images (1 deleted")
    assert view.current_image().path.name == "fox.png"  # the neighbour is selected: Delete again works
    assert (library / "castle.png").exists() and view.pending_delete() == library / "castle.png"
    qtbot.keyClick(view.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert names(view) == ["snowfox.png", "umbrella.png", "castle.png", "fox.png"]
    assert view.current_image().path.name == "castle.png"
    assert (library / "castle.png").exists() and not trash.exists()
    assert view.pending_delete() is None and not view.act_undo.isEnabled()


def test_a_second_delete_sends_the_first_to_the_trash(make_view, library, qtbot, trash):
    view = make_view(library)
    select(view, "castle.png")
    view.delete_current()
    select(view, "fox.png")
    view.delete_current()
    assert not (library / "castle.png").exists() and (trash / "castle.png").is_file()
    assert (library / "fox.png").exists()  # still undoable
    qtbot.waitUntil(lambda: view.service.gallery().get_by_path(library / "castle.png") is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "umbrella.png"], timeout=WAIT_MS)
    assert view.undo_delete()
    assert names(view) == ["snowfox.png", "umbrella.png", "fox.png"]
    assert not view.undo_delete()  # only the last delete can be undone


def test_delete_goes_to_the_trash_after_the_undo_window_and_at_shutdown(make_view, library, qtbot, trash):
    view = make_view(library, undo_ms=100)
    select(view, "fox.png")
    view.delete_current()
    qtbot.waitUntil(lambda: (trash / "fox.png").is_file(), timeout=WAIT_MS)
    assert not (library / "fox.png").exists() and view.pending_delete() is None

    select(view, "snowfox.png")
    view._undo_timer.setInterval(60_000)
    view.delete_current()
    assert (library / "snowfox.png").exists()
    assert view.service.shutdown()  # the app quits within the undo window: the delete happens
    assert (trash / "snowfox.png").is_file() and not (library / "snowfox.png").exists()
    with Gallery(view.service._db_path) as gallery:
        assert gallery.get_by_path(library / "snowfox.png") is None


def test_add_and_remove_folders_with_scan_progress(make_view, library, tmp_path, qtbot):
    view = make_view()
    assert names(view) == [] and view.count_label.text() == "0 images"
    shown_during_scan: list[bool] = []
    view.service.scan_progress.connect(lambda *_: shown_during_scan.append(view.progress.isVisible()))
    messages: list[str] = []
    view.message.connect(messages.append)
    with qtbot.waitSignal(view.service.scan_finished, timeout=WAIT_MS):
        assert view.add_folder(library) == library.resolve()
    assert shown_during_scan and all(shown_during_scan) and not view.progress.isVisible()
    assert any(m.startswith("Library scanned: 4 added") for m in messages)
    qtbot.waitUntil(lambda: len(names(view)) == 4, timeout=WAIT_MS)
    assert view.count_label.text() == "4 images"

    view._fill_folder_menu()
    [remove] = [a for a in view._folder_menu.actions() if a.text() == str(library.resolve())]
    remove.trigger()
    qtbot.waitUntil(lambda: names(view) == [], timeout=WAIT_MS)
    assert view.count_label.text() == "0 images" and (library / "fox.png").exists()

    out = tmp_path / "out"
    view.service.ensure_folder(out)
    qtbot.waitUntil(lambda: view.service.folders() == [out.resolve()], timeout=WAIT_MS)
    view._fill_folder_menu()
    [pinned] = view._folder_menu.actions()
    assert "output folder" in pinned.text() and not pinned.isEnabled()


def test_a_file_dropped_into_a_watched_folder_appears_by_itself(make_view, library, qtbot):
    view = make_view(library)
    select(view, "castle.png")
    make_ours(library / "a1111" / "dropped.png", "a dropped dragon", seed=5, created=BASE + 100)
    qtbot.waitUntil(lambda: names(view)[:1] == ["dropped.png"], timeout=WATCH_MS)
    assert view.count_label.text() == "5 images"
    assert view.current_image().path.name == "castle.png"  # selection kept
    (library / "fox.png").unlink()
    qtbot.waitUntil(lambda: "fox.png" not in names(view), timeout=WATCH_MS)
    shutil.rmtree(library / "a1111")
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "castle.png"], timeout=WATCH_MS)


def test_thumbnails_arrive_off_the_gui_thread_for_painted_rows(make_view, library, qtbot):
    ready: list[int] = []
    made_in: set[str] = set()

    def watch(service: GalleryService) -> None:
        service.thumbnail_ready.connect(lambda image_id, image: ready.append(image_id))
        service._thumbnail_made.connect(  # called where the QImage was made
            lambda *_: made_in.add(threading.current_thread().name), Qt.ConnectionType.DirectConnection
        )

    view = make_view(library, on_service=watch)
    model = view.model
    qtbot.waitUntil(lambda: len(ready) >= 4 and len(made_in) >= 1, timeout=WAIT_MS)
    assert all(name.startswith("studio-thumbnail") for name in made_in)
    for row in range(4):
        pixmap = model.index(row).data(Qt.ItemDataRole.DecorationRole)
        cached = model.cached_pixmap(model.image_at(row))
        assert isinstance(pixmap, QPixmap) and cached is not None and pixmap.cacheKey() == cached.cacheKey()
        assert pixmap.width() == 32  # the real thumbnail (the image is 32 px), not the placeholder tile
    assert model.thumbnail_requests == 4  # once each: later paints use the cache


@pytest.fixture(scope="module")
def big_library(tmp_path_factory) -> tuple[Path, Path]:
    """2,000 real PNG files with our metadata, catalogued once for the module."""
    root = tmp_path_factory.mktemp("big")
    folder = root / "images"
    folder.mkdir()
    meta = studio_meta(prompt="one of many foxes", seed=1)
    data = encode_image(Image.new("RGB", (8, 8), (10, 120, 60)), "PNG", meta)
    for i in range(2000):
        (folder / f"img-{i:04d}.png").write_bytes(data)
    db = root / "gallery.sqlite3"
    with Gallery(db) as gallery:
        gallery.add_folder(folder)
        assert gallery.scan().added == 2000
    return folder, db


def test_two_thousand_rows_are_fetched_page_by_page(make_view, big_library, qtbot, tmp_path):
    folder, db_template = big_library
    db = tmp_path / "big.sqlite3"
    shutil.copy(db_template, db)
    view = make_view(db=db)
    model: GalleryModel = view.model
    assert view.count_label.text() == "2,000 images"
    assert model.rowCount() == 200 and model.canFetchMore()
    model.fetchMore()
    assert model.rowCount() == 400
    qtbot.waitUntil(lambda: model.thumbnail_requests > 0, timeout=WAIT_MS)
    assert model.thumbnail_requests < 120  # only what was painted, not 400

    bar = view.grid.verticalScrollBar()

    def scroll_to_end() -> bool:
        bar.setValue(bar.maximum())  # the view asks for more when it reaches the end
        return model.rowCount() > 600

    qtbot.waitUntil(scroll_to_end, timeout=WAIT_MS)
    assert model.rowCount() < 2000 and model.pages_fetched < 10
    while model.canFetchMore():
        model.fetchMore()
    assert model.rowCount() == 2000 and len({i.id for i in model.images()}) == 2000
    assert model.index(1999).data(IMAGE_ROLE).path.parent == folder
