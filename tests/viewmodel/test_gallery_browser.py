"""GalleryBrowser without a widget: a real SQLite catalogue, real PNG files in tmp_path, the real gallery
thread and thumbnail pool, the trash pointed into tmp_path. What the page would show is read from the
browser's properties, signals and item model. Waits use signals or waitUntil, never sleeps.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap

from studio.library.gallery import Gallery
from studio.viewmodel.gallery_browser import ICON_SIZE, MAX_ICON_SIZE, MIN_ICON_SIZE, GalleryBrowser
from studio.viewmodel.gallery_details import MISSING
from studio.viewmodel.gallery_items import BROKEN_ROLE, IMAGE_ROLE, TOOLTIP_ROLE
from studio.viewmodel.properties import persisted_values, restore_values
from tests.worker.test_gallery_worker import four_images, make_ours

WAIT_MS = 15_000
BASE = 1_700_000_000.0


@pytest.fixture
def library(tmp_path) -> Path:
    return four_images(tmp_path / "images")


@pytest.fixture
def make_browser(qtbot, tmp_path, trash):
    made: list[GalleryBrowser] = []

    def make(folder: Path | None = None, **kw) -> GalleryBrowser:
        kw.setdefault("debounce_ms", 50)
        kw.setdefault("search_debounce_ms", 20)
        kw.setdefault("poll_ms", 0)
        browser = GalleryBrowser(tmp_path / "gallery.sqlite3", tmp_path / "thumbs", **kw)
        made.append(browser)
        if folder is not None:
            with qtbot.waitSignal(browser.scan_finished, timeout=WAIT_MS):
                browser.add_folder(folder)
            browser.refresh()  # at once, not after the refresh's pause
        return browser

    yield make
    for browser in made:
        assert browser.shutdown()


def names(browser: GalleryBrowser) -> list[str]:
    return [image.path.name for image in browser.model.images()]


def select(browser: GalleryBrowser, name: str) -> None:
    browser.select_row(names(browser).index(name))
    assert browser.current_image().path.name == name


# ------------------------------------------------------------------------------------------ rows
def test_rows_count_and_model_names_follow_the_library(make_browser, library, qtbot):
    browser = make_browser()
    assert names(browser) == [] and browser.count_text == "0 images" and browser.model_names() == []
    said: list[list[str]] = []
    browser.model_names_changed.connect(said.append)
    with qtbot.waitSignal(browser.scan_finished, timeout=WAIT_MS):
        browser.add_folder(library)
    qtbot.waitUntil(lambda: len(names(browser)) == 4, timeout=WAIT_MS)  # refreshed by itself
    assert names(browser) == ["snowfox.png", "umbrella.png", "castle.png", "fox.png"]
    assert browser.count_text == "4 images"
    assert browser.model_names() == ["sd-1.4", "sd-2.1", "v1-5-pruned-emaonly"] and said[-1] == browser.model_names()
    assert not browser.scanning


def test_the_item_model_serves_images_plain_tooltips_and_thumbnails(make_browser, library, qtbot):
    (library / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    browser = make_browser(library)
    model = browser.model
    assert model.rowCount() == 4  # the broken file is not catalogued
    index = model.index(names(browser).index("castle.png"))
    image = index.data(IMAGE_ROLE)
    assert image.prompt == "a red castle at dusk" and image.seed == 222
    assert index.data(TOOLTIP_ROLE).splitlines()[:2] == ["a red castle at dusk", "sd-2.1 · seed 222 · 32×32"]
    assert index.data(Qt.ItemDataRole.ToolTipRole) is None  # the view escapes TOOLTIP_ROLE itself
    assert model.mimeData([index]).urls()[0].toLocalFile() == str(image.path)

    assert index.data(Qt.ItemDataRole.DecorationRole) is None  # asked for now; none yet
    qtbot.waitUntil(lambda: model.cached_pixmap(image) is not None, timeout=WAIT_MS)
    pixmap = index.data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(pixmap, QPixmap) and pixmap.width() == 32 and not index.data(BROKEN_ROLE)
    assert model.thumbnail_requests == 1  # painted again: from the cache

    # A row whose thumbnail cannot be made is marked broken (the view draws a broken tile).
    row = browser.model.row_of(image.id)
    (library / "castle.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken now")
    browser.model.set_device_pixel_ratio(2.0)  # forgets the decoded thumbnails: asked for again
    assert model.index(row).data(Qt.ItemDataRole.DecorationRole) is None
    qtbot.waitUntil(lambda: model.index(row).data(BROKEN_ROLE), timeout=WAIT_MS)


# --------------------------------------------------------------------------------------- filters
def test_filters_are_properties_and_make_the_query(make_browser, library, qtbot):
    browser = make_browser(library)
    browser.search_text = "fox"  # applied after the typing pause
    qtbot.waitUntil(lambda: names(browser) == ["snowfox.png", "fox.png"], timeout=WAIT_MS)
    assert browser.count_text == "2 images"
    browser.search_text = ""
    browser.apply_filters()  # at once
    assert len(names(browser)) == 4

    browser.model_filter = "sd-2.1"
    assert names(browser) == ["castle.png"]
    browser.model_filter = None
    browser.sort = "oldest"
    assert names(browser) == ["fox.png", "castle.png", "umbrella.png", "snowfox.png"]
    with pytest.raises(ValueError):
        browser.sort = "random"
    assert browser.sort == "oldest"

    browser.date_range = "today"  # all made in 2023
    assert names(browser) == []
    made = datetime.fromtimestamp(BASE).date()  # local time, like the filter
    browser.date_from, browser.date_to = made + timedelta(days=1), made + timedelta(days=2)
    browser.date_range = "custom"
    assert names(browser) == []
    browser.date_from = made
    browser.date_to = made
    assert sorted(names(browser)) == ["castle.png", "fox.png", "snowfox.png", "umbrella.png"]
    query = browser.current_query()
    assert query.date_from == datetime.combine(made, datetime.min.time()).timestamp() and query.sort == "oldest"

    browser.date_range = "any"
    fox = browser.image_at_path(library / "fox.png")
    assert browser.service.set_favourite(fox.id, True)
    browser.favourites_only = True
    assert names(browser) == ["fox.png"]


def test_the_model_filter_lets_go_of_a_model_whose_last_image_went_away(make_browser, library, qtbot):
    browser = make_browser(library)
    browser.model_filter = "sd-2.1"
    assert names(browser) == ["castle.png"]
    (library / "castle.png").unlink()
    browser.index_paths([library / "castle.png"])
    qtbot.waitUntil(lambda: browser.model_filter is None, timeout=WAIT_MS)
    assert "sd-2.1" not in browser.model_names() and len(names(browser)) == 3


# ------------------------------------------------------------------------------------- selection
def test_selection_gives_the_details_as_data(make_browser, library, qtbot):
    browser = make_browser(library)
    details: list = []
    current: list = []
    browser.details_changed.connect(details.append)
    browser.current_changed.connect(current.append)
    assert browser.current_image() is None and not browser.has_selection()

    select(browser, "castle.png")
    shown = details[-1]
    assert current[-1].path.name == "castle.png" and shown.caption == "castle.png"
    assert shown.fields["prompt"] == "a red castle at dusk" and shown.fields["guidance"] == "7.5"
    assert shown.fields["source"] == "Latent Studio" and shown.fields["size"] == "32 × 32"
    assert shown.fields["scheduler"] != "" and "[latent-studio]" in shown.raw
    assert browser.current_details() == shown
    qtbot.waitUntil(lambda: browser.preview() is not None and browser.preview().width() == 32, timeout=WAIT_MS)

    assert browser.select_path(library / "a1111" / "umbrella.png")
    assert details[-1].fields["source"].startswith("AUTOMATIC1111") and details[-1].fields["created"] != MISSING
    assert details[-1].raw.startswith("[parameters]")

    browser.clear_selection()
    assert details[-1] is None and current[-1] is None and browser.preview() is None
    assert not browser.has_selection() and (browser.rating, browser.favourite) == (0, False)


def test_rating_and_favourite_of_the_selection_are_saved(make_browser, library, qtbot):
    browser = make_browser(library)
    select(browser, "castle.png")
    assert (browser.rating, browser.favourite) == (0, False)
    with qtbot.waitSignal(browser.service.image_changed, timeout=WAIT_MS):
        browser.rating = 4  # what the detail pane's spin box does
    browser.favourite = True
    castle = browser.image_at_path(library / "castle.png")
    assert (castle.rating, castle.favourite) == (4, True)
    assert browser.current_image().rating == 4  # the row was re-read
    with pytest.raises(ValueError):
        browser.rating = 6

    select(browser, "fox.png")
    assert (browser.rating, browser.favourite) == (0, False)  # the marks of the image now selected
    browser.rate_current(2)
    browser.toggle_favourite()
    fox = browser.image_at_path(library / "fox.png")
    assert (fox.rating, fox.favourite) == (2, True) and (browser.rating, browser.favourite) == (2, True)

    browser.sort = "rating"
    assert names(browser)[:2] == ["castle.png", "fox.png"]


def test_actions_on_the_selection(make_browser, library, qtbot):
    browser = make_browser(library)
    messages: list[str] = []
    browser.message.connect(messages.append)
    assert not browser.reuse_current_parameters() and messages[-1] == "No image selected"
    select(browser, "fox.png")
    with qtbot.waitSignal(browser.reuse_parameters, timeout=WAIT_MS) as blocker:
        assert browser.reuse_current_parameters()
    fields = blocker.args[0]
    assert (fields["prompt"], fields["seed"], fields["steps"]) == ("a watercolor fox in autumn", 111, 20)
    with qtbot.waitSignal(browser.reuse_seed, timeout=WAIT_MS) as blocker:
        assert browser.reuse_current_seed()
    assert blocker.args == [111]
    with qtbot.waitSignal(browser.send_to_canvas, timeout=WAIT_MS) as blocker:
        assert browser.send_current_to_canvas()
    assert blocker.args == [str(library / "fox.png")]
    assert browser.copy_prompt() and messages[-1] == "Prompt copied"


# ---------------------------------------------------------------------------------- delete, undo
def test_delete_hides_the_row_and_undo_brings_it_back(make_browser, library, trash):
    browser = make_browser(library)
    select(browser, "castle.png")
    assert not browser.can_undo
    assert browser.delete_current()
    assert names(browser) == ["snowfox.png", "umbrella.png", "fox.png"] and browser.can_undo
    assert browser.count_text.startswith("4 images (1 deleted")
    assert browser.current_image().path.name == "fox.png"  # the neighbour is selected
    assert browser.pending_delete() == library / "castle.png" and (library / "castle.png").exists()
    assert browser.undo_delete()
    assert names(browser) == ["snowfox.png", "umbrella.png", "castle.png", "fox.png"]
    assert browser.current_image().path.name == "castle.png" and not browser.can_undo
    assert browser.count_text == "4 images" and not trash.exists()
    assert not browser.undo_delete()


def test_a_delete_goes_to_the_trash_after_the_undo_window_or_at_shutdown(make_browser, library, qtbot, tmp_path, trash):
    browser = make_browser(library, undo_ms=50)
    select(browser, "fox.png")
    browser.delete_current()
    qtbot.waitUntil(lambda: (trash / "fox.png").is_file(), timeout=WAIT_MS)
    assert browser.pending_delete() is None and not browser.can_undo
    qtbot.waitUntil(lambda: browser.count_text == "3 images", timeout=WAIT_MS)

    browser.undo_ms = 60_000
    select(browser, "castle.png")
    browser.delete_current()
    assert (library / "castle.png").exists()
    assert browser.shutdown()  # the app quits within the undo window: the delete happens
    assert (trash / "castle.png").is_file()
    with Gallery(tmp_path / "gallery.sqlite3") as gallery:
        assert gallery.get_by_path(library / "castle.png") is None and gallery.count() == 2


# ------------------------------------------------------------------------------------- icon size
def test_icon_size_is_a_clamped_persisted_property_the_model_follows(make_browser):
    browser = make_browser(icon_size=10)
    assert browser.icon_size == MIN_ICON_SIZE == browser.model.icon_size()
    sizes: list[int] = []
    browser.icon_size_changed.connect(sizes.append)
    browser.reset_icon_size()
    browser.zoom_in()
    browser.zoom_out()
    browser.icon_size = 10_000
    browser.zoom_in()  # already the largest: no change
    assert sizes == [ICON_SIZE, ICON_SIZE + 16, ICON_SIZE, MAX_ICON_SIZE]
    assert browser.model.icon_size() == MAX_ICON_SIZE
    assert persisted_values(browser) == {"gallery_icon_size": MAX_ICON_SIZE}  # the key older versions wrote
    assert restore_values(browser, {"gallery_icon_size": "big"}) == ["icon_size"]
    assert restore_values(browser, {"gallery_icon_size": 200}) == [] and browser.icon_size == 200


# -------------------------------------------------------------------------------------- headless
def test_the_browser_runs_without_widgets(tmp_path):
    """In a process with a QGuiApplication only: PySide6.QtWidgets is never imported."""
    folder = tmp_path / "images"
    make_ours(folder / "owl.png", "an owl at night", seed=5)
    code = textwrap.dedent(
        f"""
        import sys
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtGui import QGuiApplication
        app = QGuiApplication([])
        from studio.viewmodel.gallery_browser import GalleryBrowser
        browser = GalleryBrowser({str(tmp_path / "g.sqlite3")!r}, {str(tmp_path / "thumbs")!r}, poll_ms=0)
        loop = QEventLoop()
        browser.scan_finished.connect(lambda report: loop.quit())
        QTimer.singleShot(60_000, loop.quit)
        browser.add_folder({str(folder)!r})
        loop.exec()
        browser.refresh()
        assert [i.path.name for i in browser.model.images()] == ["owl.png"], browser.model.images()
        assert browser.count_text == "1 image"
        assert browser.shutdown()
        assert "PySide6.QtWidgets" not in sys.modules
        print("ok")
        """
    )
    env_code = "import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n" + code
    out = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


def test_default_dates_of_the_custom_range(make_browser):
    browser = make_browser()
    assert browser.date_to == date.today() and browser.date_from == date.today() - timedelta(days=7)
    assert browser.date_range == "any" and browser.current_query().date_from is None
