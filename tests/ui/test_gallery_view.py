"""The gallery page driven like a user would: real catalogue, real files, real threads, real trash
(pointed into tmp_path). State is checked through the page's browser (its view-model); waits use signals or
waitUntil, never sleeps.
"""

from __future__ import annotations

import html
import shutil
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QDate, Qt
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import QApplication, QMainWindow

from studio.library.gallery import Gallery
from studio.library.images import encode_image
from studio.ui.gallery_details import NO_CHUNKS, NO_SELECTION
from studio.ui.gallery_grid import GRID_GAP, tooltip_for
from studio.ui.gallery_view import GalleryView
from studio.viewmodel.gallery_browser import GalleryBrowser
from studio.viewmodel.gallery_items import ICON_SIZE, IMAGE_ROLE, GalleryModel
from studio.worker import gallery as gallery_worker
from tests.conftest import use_test_trash
from tests.library.samples import studio_meta
from tests.library.test_gallery import scan_in_another_process
from tests.worker.test_gallery_worker import four_images, make_ours

WAIT_MS = 15_000
WATCH_MS = 20_000
BASE = 1_700_000_000.0


@pytest.fixture
def library(tmp_path) -> Path:
    return four_images(tmp_path / "images")


@pytest.fixture
def trash(tmp_path, monkeypatch) -> Path:
    return use_test_trash(tmp_path, monkeypatch)


@pytest.fixture
def make_view(qtbot, tmp_path, trash):
    browsers: list[GalleryBrowser] = []

    def make(
        folder: Path | None = None, db: Path | None = None, on_browser=None, window: QMainWindow | None = None,
        poll_ms: int = 1000, **kw,
    ) -> GalleryView:
        """A page over a fresh browser (`kw` are the browser's); with `window`, as that window's central
        widget (shown, active)."""
        kw.setdefault("search_debounce_ms", 20)
        browser = GalleryBrowser(
            db or tmp_path / "gallery.sqlite3", tmp_path / "thumbs", debounce_ms=50, poll_ms=poll_ms, **kw
        )
        browsers.append(browser)
        if on_browser is not None:
            on_browser(browser)
        if folder is not None:
            with qtbot.waitSignal(browser.scan_finished, timeout=WAIT_MS):
                browser.add_folder(folder)
        view = GalleryView(browser)
        if window is not None:
            window.setCentralWidget(view)
            window.resize(1100, 700)
            with qtbot.waitActive(window):  # window shortcuts only fire in the active window
                window.show()
                window.activateWindow()
            return view
        qtbot.addWidget(view)
        view.resize(1100, 700)
        view.show()
        qtbot.waitExposed(view)
        return view

    yield make
    for browser in browsers:
        assert browser.shutdown()


def names(view: GalleryView) -> list[str]:
    return [image.path.name for image in view.model.images()]


def select(view: GalleryView, name: str) -> None:
    row = names(view).index(name)
    view.browser.select_row(row)
    view.grid.setFocus()
    assert view.browser.current_image().path.name == name


def test_lists_the_library_newest_first_with_count(make_view, library):
    view = make_view(library)
    assert names(view) == ["snowfox.png", "umbrella.png", "castle.png", "fox.png"]
    assert view.library_bar.count_label.text() == "4 images"
    assert [view.filters.model_filter.itemText(i) for i in range(view.filters.model_filter.count())] == [
        "All models", "sd-1.4", "sd-2.1", "v1-5-pruned-emaonly",
    ]


def test_search_box_filters_by_prompt_after_a_pause(make_view, library, qtbot):
    view = make_view(library)
    qtbot.keyClicks(view.filters.search, "fox")
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "fox.png"], timeout=WAIT_MS)
    assert view.library_bar.count_label.text() == "2 images"
    view.filters.search.clear()
    qtbot.keyClicks(view.filters.search, "umbrella")
    qtbot.waitUntil(lambda: names(view) == ["umbrella.png"], timeout=WAIT_MS)
    view.filters.search.clear()
    qtbot.waitUntil(lambda: len(names(view)) == 4, timeout=WAIT_MS)


def test_model_favourites_and_sort_filters(make_view, library, qtbot):
    view = make_view(library)
    view.filters.model_filter.setCurrentIndex(view.filters.model_filter.findData("sd-2.1"))
    assert names(view) == ["castle.png"]
    view.filters.model_filter.setCurrentIndex(view.filters.model_filter.findData("sd-1.4"))
    assert names(view) == ["snowfox.png", "fox.png"]
    view.filters.model_filter.setCurrentIndex(0)

    view.filters.sort.setCurrentIndex(view.filters.sort.findData("oldest"))
    assert names(view) == ["fox.png", "castle.png", "umbrella.png", "snowfox.png"]

    select(view, "castle.png")
    view.details.favourite.setChecked(True)  # the detail pane's toggle persists it
    view.details.rating.setValue(4)
    select(view, "umbrella.png")
    qtbot.keyClick(view.grid, Qt.Key.Key_2)  # digits rate the selected image
    qtbot.keyClick(view.grid, Qt.Key.Key_F)  # F toggles favourite
    assert view.browser.image_at_path(library / "castle.png").rating == 4
    assert view.browser.image_at_path(library / "a1111" / "umbrella.png").rating == 2

    view.filters.sort.setCurrentIndex(view.filters.sort.findData("rating"))
    assert names(view) == ["castle.png", "umbrella.png", "snowfox.png", "fox.png"]
    view.filters.favourites_only.setChecked(True)
    assert names(view) == ["castle.png", "umbrella.png"]
    select(view, "umbrella.png")
    qtbot.keyClick(view.grid, Qt.Key.Key_F)  # no longer a favourite: leaves the filtered view
    qtbot.waitUntil(lambda: names(view) == ["castle.png"], timeout=WAIT_MS)

    view.filters.favourites_only.setChecked(False)
    view.filters.date_filter.setCurrentIndex(view.filters.date_filter.findData("today"))  # all made in 2023
    assert names(view) == []
    view.filters.date_filter.setCurrentIndex(view.filters.date_filter.findData("custom"))
    assert view.filters.date_from.isVisible()
    made = QDate(datetime.fromtimestamp(BASE).date())  # local time, like the filter
    view.filters.date_from.setDate(made.addDays(1))
    assert names(view) == []
    view.filters.date_from.setDate(made)
    view.filters.date_to.setDate(made)
    assert sorted(names(view)) == ["castle.png", "fox.png", "snowfox.png", "umbrella.png"]


def test_selecting_shows_the_details_and_raw_chunks(make_view, library, qtbot):
    view = make_view(library)
    select(view, "castle.png")
    f = view.details.fields
    assert f["prompt"].text() == "a red castle at dusk"
    assert f["negative_prompt"].text() == "blurry"
    assert (f["seed"].text(), f["steps"].text(), f["model"].text()) == ("222", "30", "sd-2.1")
    assert f["guidance"].text() == "7.5" and f["source"].text() == "Latent Studio"
    assert f["size"].text() == "32 × 32" and "castle.png" in f["file"].text()
    assert "[latent-studio]" in view.details.raw.toPlainText()
    qtbot.waitUntil(lambda: view.details.preview.source().width() == 32, timeout=WAIT_MS)  # decoded image arrived

    select(view, "umbrella.png")
    assert f["source"].text().startswith("AUTOMATIC1111")
    assert f["seed"].text() == "2179987202"
    raw = view.details.raw.toPlainText()
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
    assert view.library_bar.count_label.text().startswith("4 images (1 deleted")
    assert view.browser.current_image().path.name == "fox.png"  # the neighbour is selected: Delete again works
    assert (library / "castle.png").exists() and view.browser.pending_delete() == library / "castle.png"
    qtbot.keyClick(view.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert names(view) == ["snowfox.png", "umbrella.png", "castle.png", "fox.png"]
    assert view.browser.current_image().path.name == "castle.png"
    assert (library / "castle.png").exists() and not trash.exists()
    assert view.browser.pending_delete() is None and not view.act_undo.isEnabled()


def test_a_second_delete_sends_the_first_to_the_trash(make_view, library, qtbot, trash):
    view = make_view(library)
    select(view, "castle.png")
    view.browser.delete_current()
    select(view, "fox.png")
    view.browser.delete_current()
    assert not (library / "castle.png").exists() and (trash / "castle.png").is_file()
    assert (library / "fox.png").exists()  # still undoable
    qtbot.waitUntil(lambda: view.browser.image_at_path(library / "castle.png") is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "umbrella.png"], timeout=WAIT_MS)
    assert view.browser.undo_delete()
    assert names(view) == ["snowfox.png", "umbrella.png", "fox.png"]
    assert not view.browser.undo_delete()  # only the last delete can be undone


def test_delete_goes_to_the_trash_after_the_undo_window_and_at_shutdown(make_view, library, qtbot, trash, tmp_path):
    view = make_view(library, undo_ms=100)
    select(view, "fox.png")
    view.browser.delete_current()
    qtbot.waitUntil(lambda: (trash / "fox.png").is_file(), timeout=WAIT_MS)
    assert not (library / "fox.png").exists() and view.browser.pending_delete() is None

    select(view, "snowfox.png")
    view.browser.undo_ms = 60_000
    view.browser.delete_current()
    assert (library / "snowfox.png").exists()
    assert view.browser.shutdown()  # the app quits within the undo window: the delete happens
    assert (trash / "snowfox.png").is_file() and not (library / "snowfox.png").exists()
    with Gallery(tmp_path / "gallery.sqlite3") as gallery:
        assert gallery.get_by_path(library / "snowfox.png") is None


def test_add_and_remove_folders_with_scan_progress(make_view, library, tmp_path, qtbot):
    view = make_view()
    assert names(view) == [] and view.library_bar.count_label.text() == "0 images"
    shown_during_scan: list[bool] = []
    view.browser.scan_progress.connect(lambda *_: shown_during_scan.append(view.library_bar.progress.isVisible()))
    messages: list[str] = []
    view.message.connect(messages.append)
    with qtbot.waitSignal(view.browser.scan_finished, timeout=WAIT_MS):
        assert view.browser.add_folder(library) == library.resolve()
    assert shown_during_scan and all(shown_during_scan) and not view.library_bar.progress.isVisible()
    assert any(m.startswith("Library scanned: 4 added") for m in messages)
    qtbot.waitUntil(lambda: len(names(view)) == 4, timeout=WAIT_MS)
    assert view.library_bar.count_label.text() == "4 images"

    view.library_bar.fill_folder_menu()
    [remove] = [a for a in view.library_bar.folder_menu.actions() if a.text() == str(library.resolve())]
    remove.trigger()
    qtbot.waitUntil(lambda: names(view) == [], timeout=WAIT_MS)
    assert view.library_bar.count_label.text() == "0 images" and (library / "fox.png").exists()

    out = tmp_path / "out"
    view.browser.ensure_folder(out)
    qtbot.waitUntil(lambda: view.browser.folders() == [out.resolve()], timeout=WAIT_MS)
    view.library_bar.fill_folder_menu()
    [pinned] = view.library_bar.folder_menu.actions()
    assert "output folder" in pinned.text() and not pinned.isEnabled()


def test_a_file_dropped_into_a_watched_folder_appears_by_itself(make_view, library, qtbot):
    view = make_view(library)
    select(view, "castle.png")
    make_ours(library / "a1111" / "dropped.png", "a dropped dragon", seed=5, created=BASE + 100)
    qtbot.waitUntil(lambda: names(view)[:1] == ["dropped.png"], timeout=WATCH_MS)
    assert view.library_bar.count_label.text() == "5 images"
    assert view.browser.current_image().path.name == "castle.png"  # selection kept
    (library / "fox.png").unlink()
    qtbot.waitUntil(lambda: "fox.png" not in names(view), timeout=WATCH_MS)
    shutil.rmtree(library / "a1111")
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "castle.png"], timeout=WATCH_MS)


def test_thumbnails_arrive_off_the_gui_thread_for_painted_rows(make_view, library, qtbot, monkeypatch):
    ready: list[int] = []
    made_in: set[str] = set()
    read = gallery_worker.read_qimage

    def reading(path, size=None):  # decodes a thumbnail, in the thread that made it
        made_in.add(threading.current_thread().name)
        return read(path, size)

    monkeypatch.setattr(gallery_worker, "read_qimage", reading)

    def watch(browser: GalleryBrowser) -> None:
        browser.service.thumbnail_ready.connect(lambda image_id, image: ready.append(image_id))

    view = make_view(library, on_browser=watch)
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
    assert view.library_bar.count_label.text() == "2,000 images"
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


# ------------------------------------------------------------------------------------ thumbnail size
COLOURS = [(220, 40, 40), (40, 160, 60), (40, 70, 220), (230, 180, 30), (150, 50, 180), (30, 170, 170)]


@pytest.fixture
def big_images(tmp_path) -> Path:
    """Six 512 px images, one solid colour each: large enough that a thumbnail is never the whole image."""
    folder = tmp_path / "big"
    for i, colour in enumerate(COLOURS):
        make_ours(
            folder / f"big-{i}.png", f"a big picture {i}", seed=i, size=(512, 512), colour=colour, created=BASE + i
        )
    return folder


def thumbnails_shown(view: GalleryView) -> bool:
    model = view.model
    return all(model.cached_pixmap(image) is not None for image in model.images())


def painted_width(view: GalleryView, row: int) -> int:
    """How many pixels of the row's colour the grid shows across the middle of its cell (a screenshot)."""
    grid = view.grid
    image = view.model.image_at(row)
    colour = COLOURS[int(image.path.stem.split("-")[1])]
    shot: QImage = grid.viewport().grab().toImage()
    rect = grid.visualRect(view.model.index(row))
    ratio = shot.devicePixelRatio()
    y = round(rect.center().y() * ratio)

    def near(pixel: QColor) -> bool:
        return all(abs(a - b) <= 16 for a, b in zip(pixel.getRgb()[:3], colour, strict=True))

    xs = range(round(rect.left() * ratio), round((rect.right() + 1) * ratio))
    return round(sum(near(shot.pixelColor(x, y)) for x in xs) / ratio)


def cells_wrap_within_the_width(view: GalleryView) -> bool:
    grid = view.grid
    inside = grid.viewport().rect()
    rects = [grid.visualRect(view.model.index(row)) for row in range(view.model.rowCount())]
    return all(inside.left() <= r.left() and r.right() <= inside.right() for r in rects)


@pytest.mark.parametrize("width", [1000, 1200])
def test_the_default_size_shows_real_thumbnails_and_no_horizontal_scroll_bar(make_view, big_images, qtbot, width):
    view = make_view(big_images)
    view.resize(width, 700)
    assert view.icon_size() == ICON_SIZE == 160
    qtbot.waitUntil(lambda: thumbnails_shown(view), timeout=WAIT_MS)
    grid = view.grid
    assert grid.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert grid.horizontalScrollBar().maximum() == 0
    assert grid.width() > 1.8 * view.splitter.widget(1).width()  # the grid gets most of the width
    qtbot.waitUntil(lambda: cells_wrap_within_the_width(view), timeout=WAIT_MS)
    columns = {grid.visualRect(view.model.index(row)).left() for row in range(6)}
    assert len(columns) >= 3
    assert painted_width(view, 0) == 160  # what is on screen: a 160 px picture, not 55-70 px


def test_the_size_slider_and_zoom_keys_resize_the_grid_live(make_view, big_images, qtbot):
    view = make_view(big_images)
    view.resize(800, 700)  # narrow: at 320 px one column, still no horizontal scroll bar
    sizes: list[int] = []
    view.browser.icon_size_changed.connect(sizes.append)
    model = view.model
    first = model.image_at(0)
    qtbot.waitUntil(lambda: model.cached_pixmap(first) is not None, timeout=WAIT_MS)  # rows below: not painted
    assert model.cached_pixmap(first).width() == 160

    view.library_bar.size_slider.setValue(320)  # as a drag ends
    assert view.icon_size() == 320 and sizes == [320]
    assert view.grid.gridSize().height() == 320 + GRID_GAP
    # Asked again at the new size (from the larger stored thumbnail), not the 160 px one enlarged.
    qtbot.waitUntil(lambda: model.cached_pixmap(first).width() == 320, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: painted_width(view, 0) == 320, timeout=WAIT_MS)
    assert view.grid.horizontalScrollBar().maximum() == 0
    qtbot.waitUntil(lambda: cells_wrap_within_the_width(view), timeout=WAIT_MS)

    ctrl = Qt.KeyboardModifier.ControlModifier
    view.grid.setFocus()
    qtbot.keyClick(view.grid, Qt.Key.Key_Minus, ctrl)
    qtbot.keyClick(view.grid, Qt.Key.Key_Plus, ctrl)
    qtbot.keyClick(view.grid, Qt.Key.Key_Plus, ctrl)  # already the largest: nothing changes
    qtbot.keyClick(view.grid, Qt.Key.Key_0, ctrl)
    assert sizes == [320, 304, 320, 160] and view.library_bar.size_slider.value() == 160
    assert view.set_icon_size(10) == 64 and view.icon_size() == 64 and sizes[-1] == 64  # clamped
    qtbot.waitUntil(lambda: model.cached_pixmap(first).width() == 64, timeout=WAIT_MS)  # not a 320 one kept


def test_zoom_keys_work_anywhere_in_the_gallery_and_leave_the_window_alone(make_view, library, qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    view = make_view(library, window=window)
    view.filters.search.setFocus()
    qtbot.waitUntil(view.filters.search.hasFocus, timeout=WAIT_MS)
    qtbot.keyClick(view.filters.search, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert view.icon_size() == ICON_SIZE + 16 and view.filters.search.text() == ""
    qtbot.keyClick(view.filters.search, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert view.icon_size() == ICON_SIZE and view.filters.search.text() == ""
    # For the window's list of shortcuts: each action once, where it works.
    assert {view.act_bigger, view.act_smaller, view.act_default_size, view.act_focus_search} <= set(view.actions())
    assert view.act_reuse in view.grid_actions() and view.act_bigger not in view.grid_actions()


# ------------------------------------------------------------------------------------------- escape
def test_escape_in_the_search_box_clears_it_and_never_reaches_the_window(make_view, library, qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    cancelled: list[bool] = []
    cancel = QAction("Cancel", window, shortcut=QKeySequence("Escape"))  # the window's "cancel generation"
    cancel.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    cancel.triggered.connect(lambda: cancelled.append(True))
    window.addAction(cancel)
    view = make_view(library, window=window)
    view.filters.search.setFocus()
    qtbot.waitUntil(view.filters.search.hasFocus, timeout=WAIT_MS)
    qtbot.keyClicks(view.filters.search, "fox")
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "fox.png"], timeout=WAIT_MS)

    qtbot.keyClick(view.filters.search, Qt.Key.Key_Escape)
    assert view.filters.search.text() == "" and len(names(view)) == 4  # cleared, and the filter lifted at once
    assert view.filters.search.hasFocus() and cancelled == []
    qtbot.keyClick(view.filters.search, Qt.Key.Key_Escape)  # already empty: on to the grid
    assert view.grid.hasFocus() and cancelled == []

    qtbot.keyClick(view.grid, Qt.Key.Key_Escape)  # outside the search box the window's Escape is live
    assert cancelled == [True]


def test_handle_escape_clears_the_search_then_the_selection(make_view, library, qtbot):
    view = make_view(library)
    assert not view.handle_escape()  # nothing to do: the window may use Escape
    select(view, "castle.png")
    assert view.handle_escape()
    assert view.browser.current_image() is None and not view.grid.selectionModel().hasSelection()
    assert view.details.caption.text() == NO_SELECTION and view.details.fields["prompt"].text() == ""
    assert not view.handle_escape()

    view.browser.search_text = "castle"
    view.browser.apply_filters()
    view.filters.search.setFocus()
    qtbot.waitUntil(view.filters.search.hasFocus, timeout=WAIT_MS)
    assert view.handle_escape() and view.filters.search.text() == "" and len(names(view)) == 4
    assert view.handle_escape() and view.grid.hasFocus()  # empty search box: focus moves to the grid


# -------------------------------------------------------------------------------------- detail pane
def test_the_detail_pane_says_what_it_shows(make_view, library, qtbot):
    from PIL import Image

    Image.new("RGB", (20, 20), (9, 9, 9)).save(library / "plain.png")  # no metadata chunks at all
    view = make_view(library)
    assert view.browser.current_image() is None
    assert view.details.caption.text() == NO_SELECTION and view.details.preview.text() == NO_SELECTION
    assert all(label.text() == "" for label in view.details.fields.values())
    assert view.details.raw.toPlainText() == "" and view.details.raw.placeholderText() == ""  # no claim about a file

    select(view, "plain.png")
    assert view.details.caption.text() == "plain.png" and view.details.preview.text() == ""
    assert view.details.raw.toPlainText() == "" and view.details.raw.placeholderText() == NO_CHUNKS
    assert view.details.fields["source"].text() == "no generation parameters found"

    select(view, "castle.png")
    assert view.details.caption.text() == "castle.png" and "[latent-studio]" in view.details.raw.toPlainText()

    view.browser.clear_selection()
    assert view.details.caption.text() == NO_SELECTION and view.details.raw.placeholderText() == ""
    assert view.details.raw.toPlainText() == "" and view.details.preview.text() == NO_SELECTION


# ------------------------------------------------------------------------------------ other writers
def test_images_catalogued_by_another_process_appear_by_themselves(make_view, library, tmp_path, qtbot):
    view = make_view(library, poll_ms=100)
    select(view, "castle.png")
    messages: list[str] = []
    view.message.connect(messages.append)
    elsewhere = tmp_path / "elsewhere"
    make_ours(elsewhere / "owl.png", "an owl at night", seed=9, created=BASE + 50)
    assert scan_in_another_process(tmp_path / "gallery.sqlite3", elsewhere) == 1  # `studio gallery scan`
    qtbot.waitUntil(lambda: names(view)[:1] == ["owl.png"], timeout=WAIT_MS)  # no Rescan
    assert view.library_bar.count_label.text() == "5 images"
    assert view.browser.current_image().path.name == "castle.png"  # selection kept

    with qtbot.waitSignal(view.browser.scan_finished, timeout=WAIT_MS):
        view.act_rescan.trigger()
    assert messages[-1].startswith("Library scanned: up to date, no changes (5 files checked")


# ------------------------------------------------------------------------------ untrusted text
HOSTILE = "red \x1b[31mfox\x1b[0m \u202eevil\u202c\rhidden"


def test_metadata_text_is_shown_harmlessly_and_copied_exactly(make_view, tmp_path, qtbot):
    folder = tmp_path / "hostile"
    make_ours(folder / "trick.png", HOSTILE, model="model\x1b]0;title\x07", negative="bad\u2028line", created=BASE)
    view = make_view(folder)
    select(view, "trick.png")
    shown = view.details.fields["prompt"].text()
    assert shown == "red \\x1b[31mfox\\x1b[0m \\u202eevil\\u202c\\rhidden"
    assert view.details.fields["model"].text() == "model\\x1b]0;title\\x07"
    assert view.details.fields["negative_prompt"].text() == "bad\\u2028line"
    index = view.model.index(0)
    tooltip = tooltip_for(index)
    accessible = view.model.data(index, Qt.ItemDataRole.AccessibleTextRole)
    for text in (shown, tooltip, accessible, view.details.raw.toPlainText(), view.filters.model_filter.itemText(1)):
        assert not any(char in text for char in "\x1b\u202e\u202c\r\x07\u2028"), repr(text)
    assert "\\x1b[31mfox" in tooltip and "\\u202eevil" in tooltip and "\\rhidden" in tooltip
    assert view.filters.model_filter.itemData(1) == "model\x1b]0;title\x07"  # the filter still matches exactly
    view.act_copy_prompt.trigger()
    assert QApplication.clipboard().text() == HOSTILE  # the clipboard gets the prompt as it is


HTML_PAYLOAD = '<img src="/dev/null"><b>bold</b>'
"""Rendered as HTML, Qt would read /dev/zero for the image and abort: only formats and escaping are
checked here, so nothing ever renders it (the formats are checked before the text arrives)."""


def test_html_in_prompts_and_model_names_is_never_rendered(make_view, tmp_path, qtbot):
    folder = tmp_path / "html"
    make_ours(folder / "page.png", HTML_PAYLOAD, model=HTML_PAYLOAD, negative=HTML_PAYLOAD, created=BASE)
    view = make_view(folder)
    labels = [view.details.caption, view.library_bar.count_label, view.details.preview, *view.details.fields.values()]
    assert all(label.textFormat() == Qt.TextFormat.PlainText for label in labels)
    select(view, "page.png")
    for key in ("prompt", "negative_prompt", "model"):
        assert view.details.fields[key].text() == HTML_PAYLOAD  # shown exactly, as plain text
    assert HTML_PAYLOAD in view.details.raw.toPlainText()  # a QPlainTextEdit: never HTML
    assert view.filters.model_filter.itemText(1) == HTML_PAYLOAD  # combo box entries are plain text

    index = view.grid.model().index(0, 0)
    assert index.data(Qt.ItemDataRole.ToolTipRole) is None  # never Qt's own tooltip: it would render HTML
    tooltip = tooltip_for(index)  # what hovering the thumbnail shows
    assert tooltip.startswith("<p style='white-space:pre-wrap'>")  # escaped into HTML showing the text
    assert "<img" not in tooltip and "<b>" not in tooltip
    first, model_line = tooltip.split("<br>")[:2]
    assert first.endswith(html.escape(HTML_PAYLOAD)) and model_line.startswith(html.escape(HTML_PAYLOAD))


# ------------------------------------------------------------------------------ damaged catalogue
def test_damage_found_by_a_search_is_repaired_and_said_once(make_view, library, tmp_path, qtbot):
    view = make_view(library)
    messages: list[str] = []
    view.message.connect(messages.append)
    with sqlite3.connect(tmp_path / "gallery.sqlite3") as conn:
        conn.execute("DROP TABLE images_fts_data")  # the search index is broken under the open app
    conn.close()
    with qtbot.waitSignal(view.browser.scan_finished, timeout=WAIT_MS):
        qtbot.keyClicks(view.filters.search, "fox")  # the text search meets the damage; the rebuild rescans
    qtbot.waitUntil(lambda: names(view) == ["snowfox.png", "fox.png"], timeout=WAIT_MS)
    said = [m for m in messages if "damaged" in m]
    assert len(said) == 1 and "moved it to" in said[0] and "ratings" in said[0]
    assert not [m for m in messages if "search failed" in m]
    view.filters.search.clear()
    qtbot.waitUntil(lambda: len(names(view)) == 4, timeout=WAIT_MS)
    assert len([m for m in messages if "damaged" in m]) == 1


def test_closing_the_page_sends_a_pending_delete_to_the_trash(make_view, library, qtbot, trash):
    """What the window does as it closes: the page is closed first, so a delete waiting for its undo
    window is carried out (the window then shuts the browser down)."""
    window = QMainWindow()
    qtbot.addWidget(window)
    view = make_view(library, window=window)
    select(view, "castle.png")
    qtbot.keyClick(view.grid, Qt.Key.Key_Delete)
    assert (library / "castle.png").exists() and view.act_undo.isEnabled()
    view.close()
    assert (trash / "castle.png").is_file() and view.browser.pending_delete() is None
    assert not view.act_undo.isEnabled()
