"""The canvas's view-model without a widget: real PNG files decoded on its thread, fit modes, output
sizes, stale loads, refusals, and what drops and the clipboard offer (QMimeData is QtCore)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QByteArray, QMimeData, QUrl
from PySide6.QtGui import QColor, QImage

from studio.library.image_fit import FIT_MODES, prepare_image
from studio.viewmodel.canvas_image import CanvasImage
from studio.viewmodel.image_sources import WEB_REFUSAL, Candidate, ImageRequest, drag_verdict, file_request
from studio.viewmodel.properties import persisted_values, restore_values

GREEN, RED, BLUE = (0, 200, 0), (220, 0, 0), (0, 0, 220)
TIMEOUT = 5000


def bands_image() -> Image.Image:
    """400x100: four 100-px vertical bands green | red | blue | green."""
    image = Image.new("RGB", (400, 100), GREEN)
    image.paste(RED, (100, 0, 200, 100))
    image.paste(BLUE, (200, 0, 300, 100))
    return image


@pytest.fixture
def canvas(qtbot):
    model = CanvasImage(output_size=(100, 100))
    yield model
    assert model.shutdown()


@pytest.fixture
def bands_png(tmp_path) -> Path:
    path = tmp_path / "bands.png"
    bands_image().save(path)
    return path


@pytest.fixture
def blue_png(tmp_path) -> Path:
    path = tmp_path / "blue.png"
    Image.new("RGB", (10, 20), BLUE).save(path)
    return path


def load(qtbot, canvas: CanvasImage, path: Path) -> None:
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load_file(path)


def refused(qtbot, canvas: CanvasImage, start) -> str:
    """Run `start` (which starts a load or refuses at once); the message; fails if the image changed."""
    before = canvas.source_image()
    with qtbot.assertNotEmitted(canvas.image_changed, wait=50), qtbot.waitSignal(canvas.message, timeout=TIMEOUT) as blocker:
        start()
    assert canvas.source_image() is before and not canvas.is_loading()
    return blocker.args[0]


# ---------------------------------------------------------------------------------------- loading


def test_an_empty_canvas(canvas):
    assert not canvas.has_image() and not canvas.is_loading()
    assert canvas.prepared_image() is None and canvas.display_image() is None and canvas.source_image() is None
    assert canvas.fit_mode == "fit" and canvas.output_size == (100, 100)
    assert canvas.summary() == "Output 100×100"
    assert CanvasImage().output_size == (512, 512)  # the window's start


def test_a_png_file_loads_in_the_background_at_the_output_size(qtbot, canvas, bands_png):
    states: list[bool] = []
    canvas.loading_changed.connect(states.append)
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load_file(bands_png)
        assert canvas.is_loading() and not canvas.has_image()  # returned at once
        assert canvas.summary() == "Output 100×100 — loading…"
    assert states == [True, False]
    assert canvas.source_image().size == (400, 100) and canvas.source_label() == str(bands_png)
    prepared = canvas.prepared_image()
    assert prepared.size == (100, 100) and prepared.mode == "RGB"
    assert prepared.tobytes() == prepare_image(bands_image(), (100, 100), "fit").tobytes()
    display = canvas.display_image()
    assert isinstance(display, QImage) and (display.width(), display.height()) == (100, 100)
    assert canvas.summary() == "bands.png — 400×100 → 100×100"
    assert canvas.prepared_image() is not canvas.prepared_image()  # a copy each time


def test_fit_mode_and_output_size_re_prepare_without_image_changed(qtbot, canvas, bands_png):
    load(qtbot, canvas, bands_png)
    seen: list = []
    canvas.fit_mode_changed.connect(seen.append)
    shown: list[bytes] = []
    canvas.display_changed.connect(lambda: shown.append(canvas.display_image().constBits().tobytes()))
    for mode in FIT_MODES:
        with qtbot.assertNotEmitted(canvas.image_changed):
            canvas.set_fit_mode(mode)
        assert canvas.prepared_image().tobytes() == prepare_image(bands_image(), (100, 100), mode).tobytes()
    assert seen == ["crop", "stretch"]  # "fit" was already the mode: no signal
    assert len(shown) == 2 and shown[0] != shown[1]  # the display followed each change, once
    with qtbot.assertNotEmitted(canvas.image_changed):
        canvas.set_output_size(64, 128)
    assert canvas.output_size == (64, 128) and canvas.prepared_image().size == (64, 128)
    assert canvas.display_image().width() == 64 and canvas.source_image().size == (400, 100)
    with pytest.raises(ValueError):
        canvas.set_output_size(0, 64)
    with pytest.raises(ValueError):
        canvas.set_fit_mode("zoom")
    with pytest.raises(TypeError):
        canvas.output_size = [64, 64]  # (width, height), a tuple
    assert canvas.output_size == (64, 128) and canvas.fit_mode == "stretch"


def test_the_fit_mode_is_a_persisted_property(canvas):
    canvas.fit_mode = "crop"
    assert persisted_values(canvas) == {"fit_mode": "crop"}
    assert restore_values(canvas, {"fit_mode": "zoom"}) == ["fit_mode"] and canvas.fit_mode == "crop"
    assert restore_values(canvas, {"fit_mode": "stretch"}) == [] and canvas.fit_mode == "stretch"


def test_a_mode_changed_while_loading_applies_to_the_result(qtbot, canvas, bands_png):
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        canvas.load_file(bands_png)  # prepared on the thread for "fit"...
        canvas.set_fit_mode("crop")  # ...and asked for "crop" before it arrives
    assert canvas.prepared_image().tobytes() == prepare_image(bands_image(), (100, 100), "crop").tobytes()


def test_set_image_is_synchronous_converted_and_copied(qtbot, canvas):
    rgba = Image.new("RGBA", (50, 40), (0, 0, 255, 0))
    with qtbot.waitSignal(canvas.image_changed, timeout=1000):
        canvas.set_image(rgba, "result #1")
    assert canvas.source_label() == "result #1" and canvas.source_image().mode == "RGB"
    assert canvas.source_image() is not rgba and canvas.source_image().getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(TypeError):
        canvas.set_image("not an image")  # type: ignore[arg-type]
    with qtbot.waitSignal(canvas.image_changed, timeout=1000):
        canvas.clear()
    assert not canvas.has_image() and canvas.display_image() is None
    with qtbot.assertNotEmitted(canvas.image_changed):
        canvas.clear()


# ------------------------------------------------------------------------------------- newer wins


def test_a_newer_load_wins_over_one_in_flight(qtbot, canvas, bands_png, blue_png):
    changes: list[str] = []
    canvas.image_changed.connect(lambda: changes.append(canvas.source_label()))
    canvas.load_file(bands_png)
    canvas.load_file(blue_png)  # the first is stale now, whether it has finished or not
    qtbot.waitUntil(lambda: changes == [str(blue_png)], timeout=TIMEOUT)
    qtbot.wait(50)
    assert changes == [str(blue_png)] and not canvas.is_loading()


def test_clear_and_set_image_cancel_a_load_in_flight(qtbot, canvas, bands_png):
    states: list[bool] = []
    canvas.loading_changed.connect(states.append)
    with qtbot.assertNotEmitted(canvas.image_changed, wait=200), qtbot.assertNotEmitted(canvas.message):
        canvas.load_file(bands_png)
        canvas.clear()
    assert states == [True, False] and not canvas.has_image()
    canvas.load_file(bands_png)
    canvas.set_image(Image.new("RGB", (8, 8), RED), "mine")
    qtbot.wait(200)
    assert canvas.source_label() == "mine" and not canvas.is_loading()


def test_nothing_loads_after_shutdown(qtbot, bands_png):
    canvas = CanvasImage()
    assert canvas.shutdown()
    with qtbot.assertNotEmitted(canvas.loading_changed):
        assert not canvas.load_file(bands_png)
    assert not canvas.is_loading()


# ------------------------------------------------------------------------------------------ refusals


def test_a_failed_load_keeps_the_image_and_says_why(qtbot, canvas, bands_png, tmp_path):
    load(qtbot, canvas, bands_png)
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    message = refused(qtbot, canvas, lambda: canvas.load_file(text))
    assert message.startswith("Image not loaded: ") and "readme.txt" in message and "not an image" in message
    assert message.endswith("(the current image is kept)")
    assert canvas.source_label() == str(bands_png)


def test_a_folder_is_refused_at_once(qtbot, canvas, tmp_path):
    with qtbot.waitSignal(canvas.message) as blocker:
        assert not canvas.load_file(tmp_path)
    assert "is a folder" in blocker.args[0] and not canvas.is_loading()


def test_the_first_candidate_that_decodes_is_used(qtbot, canvas, tmp_path, blue_png):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    request = ImageRequest(
        (Candidate("path", str(broken), str(broken)), Candidate("path", str(blue_png), str(blue_png))), dropped_files=2
    )
    with qtbot.waitSignal(canvas.message, timeout=TIMEOUT) as note, qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load(request)
    assert canvas.source_label() == str(blue_png)
    assert note.args[0] == "2 items dropped: using only the first image, blue.png"


def test_when_every_candidate_fails_the_first_reason_is_given(qtbot, canvas, tmp_path):
    paths = []
    for name in ("a.txt", "b.txt", "c.txt"):
        paths.append(tmp_path / name)
        paths[-1].write_text("words")
    request = ImageRequest(tuple(Candidate("path", str(p), str(p)) for p in paths))
    message = refused(qtbot, canvas, lambda: canvas.load(request))
    assert "a.txt" in message and message.endswith("(and 2 other items failed too)")


def test_the_pixel_limit_holds_for_files_and_qimages(qtbot, bands_png):
    canvas = CanvasImage(max_pixels=100 * 100)
    assert "too large" in refused(qtbot, canvas, lambda: canvas.load_file(bands_png))
    mime = QMimeData()
    big = QImage(400, 100, QImage.Format.Format_RGB32)
    big.fill(QColor(0, 0, 255))
    mime.setImageData(big)
    assert "too large" in refused(qtbot, canvas, lambda: canvas.load_mime(mime))
    assert canvas.shutdown()


# ------------------------------------------------------------------------------- drops, clipboard


def test_a_dropped_file_url_and_raw_bytes(qtbot, canvas, bands_png):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bands_png))])
    assert drag_verdict(mime) is None
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load_mime(mime, "dropped")
    assert canvas.source_label() == str(bands_png)
    raw = QMimeData()
    raw.setData("image/png", QByteArray(bands_png.read_bytes()))
    raw.setUrls([QUrl("https://example.com/cat.png")])  # the web URL is never fetched: the bytes are used
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load_mime(raw, "clipboard")
    assert canvas.source_label() == "clipboard image (image/png)"


def test_a_transparent_qimage_lands_on_white(qtbot, canvas):
    qimage = QImage(40, 40, QImage.Format.Format_ARGB32)
    qimage.fill(QColor(0, 0, 0, 0))
    for x in range(20, 40):
        for y in range(40):
            qimage.setPixelColor(x, y, QColor(0, 0, 255))
    mime = QMimeData()
    mime.setImageData(qimage)
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load_mime(mime, "clipboard")
    assert canvas.source_image().getpixel((5, 5)) == (255, 255, 255)
    assert canvas.source_image().getpixel((30, 5)) == (0, 0, 255)
    assert canvas.source_label() == "clipboard image"


def test_what_holds_no_image_is_refused_with_its_reason(qtbot, canvas, tmp_path):
    text = QMimeData()
    text.setText("a sunny meadow")
    assert drag_verdict(text) == ""  # refused silently while dragging
    assert refused(qtbot, canvas, lambda: canvas.load_mime(text, "clipboard")) == "The clipboard holds no image"
    assert refused(qtbot, canvas, lambda: canvas.load_mime(text, "dropped")).startswith("Nothing to use here")
    web = QMimeData()
    web.setUrls([QUrl("https://example.com/cat.png")])
    assert drag_verdict(web) == WEB_REFUSAL
    assert refused(qtbot, canvas, lambda: canvas.load_mime(web)) == WEB_REFUSAL
    folder = QMimeData()
    folder.setUrls([QUrl.fromLocalFile(str(tmp_path))])
    assert "Folders" in drag_verdict(folder)
    assert "Folders" in refused(qtbot, canvas, lambda: canvas.load_mime(folder))
    assert refused(qtbot, canvas, lambda: canvas.load_mime(None)).startswith("Nothing to use here")


def test_file_request_names_the_path(bands_png):
    request = file_request(bands_png)
    assert request.candidates == (Candidate("path", str(bands_png), str(bands_png)),)


# ------------------------------------------------------------------------------------------- layers


def test_the_view_models_import_no_widgets():
    code = (
        "import sys, studio.viewmodel.canvas_image, studio.viewmodel.model_manager, studio.viewmodel.image_sources; "
        "print(sorted(m for m in sys.modules if m.startswith('PySide6.QtWidgets') or m == 'torch'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
