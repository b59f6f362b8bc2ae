"""The img2img canvas with real widgets, real events and real image files (no mocks).

Drops are simulated the way Qt delivers them: a QMimeData in a QDragEnterEvent, then a QDropEvent, sent
to the widget.  Loads finish in a background thread, so tests wait on the canvas's signals.  The
widget's parts are found as a user's tools would find them (object names, texts); its state is its
view-model's (tests/viewmodel/test_canvas_image.py covers that without a widget).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QByteArray, QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QComboBox, QFileDialog, QLabel, QPushButton, QWidget

from studio.library.image_fit import FIT_MODES
from studio.ui.canvas import WEB_REFUSAL, ImageCanvas
from studio.viewmodel.canvas_image import CanvasImage
from studio.worker.qimage import pil_to_qimage
from tests.viewmodel.test_canvas_image import BLUE, GREEN, RED, TIMEOUT, bands_image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def colour(pixel: tuple[int, ...]) -> str:
    """The clearly dominant channel of an RGB pixel: "red", "green", "blue", or "mixed"."""
    r, g, b = pixel[:3]
    for name, value, others in (("red", r, (g, b)), ("green", g, (r, b)), ("blue", b, (r, g))):
        if value > 120 and all(value - other > 80 for other in others):
            return name
    return "mixed"


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drag_enter(canvas: ImageCanvas, mime: QMimeData) -> bool:
    event = QDragEnterEvent(
        QPoint(20, 20),
        Qt.DropAction.CopyAction | Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(canvas, event)
    return event.isAccepted()


def drop(canvas: ImageCanvas, mime: QMimeData) -> QDropEvent:
    """Enter, then drop, as Qt delivers a drag.

    Qt does not deliver a drop to a widget that refused the drag-enter, so after a refused enter the
    drop event is handed to ``dropEvent`` directly: the drop handler must refuse on its own too.
    """
    entered = drag_enter(canvas, mime)
    event = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction | Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    if entered:
        QApplication.sendEvent(canvas, event)
    else:
        canvas.dropEvent(event)
        assert not event.isAccepted()
    return event


def drop_and_load(qtbot, canvas: ImageCanvas, mime: QMimeData) -> QDropEvent:
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        event = drop(canvas, mime)
    return event


def drop_and_refuse(qtbot, canvas: ImageCanvas, mime: QMimeData) -> str:
    """Drop something unusable: returns the message; fails if the image changed."""
    before = canvas.source_image()
    with (
        qtbot.assertNotEmitted(canvas.image_changed, wait=50),
        qtbot.waitSignal(canvas.message, timeout=TIMEOUT) as blocker,
    ):
        drop(canvas, mime)
    assert canvas.source_image() is before
    assert not canvas.is_loading()
    return blocker.args[0]


@pytest.fixture
def canvas(qtbot) -> ImageCanvas:
    widget = ImageCanvas(CanvasImage(output_size=(100, 100)))
    qtbot.addWidget(widget)
    widget.resize(320, 320)
    yield widget
    widget.canvas_image.shutdown()


@pytest.fixture
def bands_png(tmp_path) -> Path:
    path = tmp_path / "bands.png"
    bands_image().save(path)
    return path


@pytest.fixture
def loaded(qtbot, canvas, bands_png) -> ImageCanvas:
    drop_and_load(qtbot, canvas, file_mime(bands_png))
    return canvas


# --------------------------------------------------------------------------------------- local files


def test_dropping_a_png_file_loads_it_at_the_output_size_in_every_mode(qtbot, canvas, bands_png):
    assert drag_enter(canvas, file_mime(bands_png))
    event = drop_and_load(qtbot, canvas, file_mime(bands_png))
    assert event.isAccepted()
    assert event.dropAction() == Qt.DropAction.CopyAction  # a file manager must never move the file
    assert canvas.has_image()
    assert canvas.source_image().size == (400, 100)
    assert canvas.source_label() == str(bands_png)
    for mode in FIT_MODES:
        canvas.set_fit_mode(mode)
        prepared = canvas.prepared_image()
        assert prepared.size == (100, 100) and prepared.mode == "RGB"


def test_decoding_happens_off_the_gui_thread(qtbot, canvas, bands_png):
    states: list[bool] = []
    canvas.loading_changed.connect(states.append)
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        drop(canvas, file_mime(bands_png))
        # The drop handler returned at once; the result arrives later through the event loop.
        assert canvas.is_loading() and not canvas.has_image()
    assert states == [True, False]
    assert not canvas.is_loading() and canvas.has_image()


def test_fit_mode_geometry(loaded):
    canvas = loaded
    canvas.set_fit_mode("stretch")  # all four bands, squeezed to 25 px each
    image = canvas.prepared_image()
    assert [colour(image.getpixel((x, 50))) for x in (12, 37, 62, 87)] == ["green", "red", "blue", "green"]

    canvas.set_fit_mode("crop")  # scale 1, the centre 100 px: half red, half blue, no green
    image = canvas.prepared_image()
    assert [colour(image.getpixel((x, y))) for x in (2, 40, 60, 97) for y in (2, 97)] == (
        ["red"] * 4 + ["blue"] * 4
    )

    canvas.set_fit_mode("fit")  # whole image 100x25, centred at rows 37..62, bands padded outward
    image = canvas.prepared_image()
    assert [colour(image.getpixel((x, 50))) for x in (12, 37, 62, 87)] == ["green", "red", "blue", "green"]
    # The padding continues each band's colour (edge-extended), not grey: no letterbox for the model.
    for y in (2, 20, 80, 97):
        assert [colour(image.getpixel((x, y))) for x in (12, 37, 62, 87)] == ["green", "red", "blue", "green"]
    # The image itself is pasted back sharp: band edges inside it are not blurred.
    assert image.getpixel((30, 50)) == image.getpixel((45, 50))


def test_set_output_size_after_loading_re_prepares(qtbot, loaded):
    with qtbot.assertNotEmitted(loaded.image_changed):
        loaded.set_output_size(64, 128)
    assert loaded.output_size() == (64, 128)
    assert loaded.prepared_image().size == (64, 128)
    assert loaded.source_image().size == (400, 100)  # the source is kept, only the preparation changes
    with pytest.raises(ValueError):
        loaded.set_output_size(0, 64)


def test_exif_rotated_jpeg_arrives_upright(qtbot, canvas, tmp_path):
    stored = Image.new("RGB", (80, 40), RED)  # stored sideways: red left, blue right
    stored.paste(BLUE, (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", exif=exif, quality=95)
    drop_and_load(qtbot, canvas, file_mime(path))
    upright = canvas.source_image()
    assert upright.size == (40, 80)
    assert colour(upright.getpixel((20, 10))) == "red"  # what was on the left is now on top
    assert colour(upright.getpixel((20, 70))) == "blue"


def test_several_files_use_the_first_image_and_say_so(qtbot, canvas, tmp_path, bands_png):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    other = tmp_path / "other.png"
    Image.new("RGB", (10, 10), BLUE).save(other)
    with qtbot.waitSignal(canvas.message, timeout=TIMEOUT) as blocker:
        drop_and_load(qtbot, canvas, file_mime(notes, bands_png, other))
    assert canvas.source_label() == str(bands_png)
    assert "3 items dropped" in blocker.args[0] and "bands.png" in blocker.args[0]


def test_a_path_that_spells_html_is_shown_literally(qtbot, canvas, tmp_path):
    """Folder names may join into markup: ".../<img src="/dev/zero">/..." across three folders. Shown as
    HTML (a tooltip's default when text looks like it), Qt would read /dev/zero and abort."""
    folder = tmp_path / '<img src="' / "dev" / 'null">'
    folder.mkdir(parents=True)
    path = folder / "<b>bands.png"  # no "/" in a file's own name
    bands_image().save(path, format="PNG")
    info = canvas.findChild(QLabel, "canvasInfo")
    assert info.textFormat() == Qt.TextFormat.PlainText  # before any text from the path reaches it
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.load_file(path)
    assert canvas.source_label() == str(path)
    assert canvas.canvas_image.summary() == "<b>bands.png — 400×100 → 100×100"  # the name, as plain text
    tip = info.toolTip()
    assert 'src="/dev/null"' in str(path) and "<img" not in tip and "<b>" not in tip
    assert tip.startswith("<p style='white-space:pre-wrap'>")  # escaped: shows the path, renders nothing
    assert tip.endswith("&lt;img src=&quot;/dev/null&quot;&gt;/&lt;b&gt;bands.png</p>")


# ------------------------------------------------------------------------------------------ refusals


def test_text_file_is_refused_and_the_previous_image_stays(qtbot, loaded, tmp_path):
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    message = drop_and_refuse(qtbot, loaded, file_mime(text))
    assert "readme.txt" in message and "not an image" in message
    assert "current image is kept" in message
    assert loaded.source_label().endswith("bands.png")


def test_truncated_png_is_refused(qtbot, loaded, tmp_path):
    noise = Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48)
    data = png_bytes(noise)
    broken = tmp_path / "broken.png"
    broken.write_bytes(data[: len(data) // 2])  # valid signature and header, half the pixel data
    message = drop_and_refuse(qtbot, loaded, file_mime(broken))
    assert "broken.png" in message and "truncated" in message


def test_image_over_the_pixel_limit_is_refused(qtbot, tmp_path, bands_png):
    small_limit = ImageCanvas(CanvasImage(output_size=(64, 64), max_pixels=100 * 100))
    qtbot.addWidget(small_limit)
    message = drop_and_refuse(qtbot, small_limit, file_mime(bands_png))
    assert "too large" in message and not small_limit.has_image()
    mime = QMimeData()
    mime.setImageData(pil_to_qimage(bands_image()))  # the QImage route checks the limit before encoding
    assert "too large" in drop_and_refuse(qtbot, small_limit, mime)


def test_directory_is_refused(qtbot, loaded, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with qtbot.waitSignal(loaded.message) as blocker:
        assert not drag_enter(loaded, file_mime(folder))  # refusal cursor, with the reason
    assert "Folders" in blocker.args[0]
    assert "Folders" in drop_and_refuse(qtbot, loaded, file_mime(folder))


def test_web_url_alone_is_refused_without_fetching(qtbot, canvas):
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.png")])
    with qtbot.waitSignal(canvas.message) as blocker:
        assert not drag_enter(canvas, mime)
    assert blocker.args[0] == WEB_REFUSAL
    message = drop_and_refuse(qtbot, canvas, mime)
    assert message == WEB_REFUSAL
    assert "can't be fetched" in message.lower() and "drag the image itself" in message
    assert not canvas.has_image()


def test_plain_text_is_refused_at_drag_enter(qtbot, canvas):
    mime = QMimeData()
    mime.setText("a sunny meadow")
    with qtbot.assertNotEmitted(canvas.message):
        assert not drag_enter(canvas, mime)
    assert "Nothing to use" in drop_and_refuse(qtbot, canvas, mime)


# ---------------------------------------------------------------------------- browser image data


@pytest.mark.parametrize("fmt", ["image/png", "image/jpeg", "application/octet-stream"])
def test_raw_bytes_with_a_web_url_are_used(qtbot, canvas, fmt):
    image = Image.new("RGB", (30, 20), RED)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if fmt == "image/jpeg" else "PNG")
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.png")])
    mime.setData(fmt, QByteArray(buffer.getvalue()))
    assert drag_enter(canvas, mime)
    drop_and_load(qtbot, canvas, mime)
    assert canvas.source_image().size == (30, 20)
    assert colour(canvas.source_image().getpixel((15, 10))) == "red"
    assert fmt in canvas.source_label()


def test_image_data_qimage_is_used_with_alpha_on_white(qtbot, canvas):
    qimage = QImage(40, 40, QImage.Format.Format_ARGB32)
    qimage.fill(QColor(0, 0, 255))
    for x in range(20):  # left half fully transparent
        for y in range(40):
            qimage.setPixelColor(x, y, QColor(0, 0, 0, 0))
    mime = QMimeData()
    mime.setImageData(qimage)
    mime.setUrls([QUrl("http://example.com/x.webp")])
    drop_and_load(qtbot, canvas, mime)
    source = canvas.source_image()
    assert source.getpixel((5, 5)) == (255, 255, 255)
    assert source.getpixel((30, 5)) == (0, 0, 255)


def test_data_url_image_is_decoded_locally(qtbot, canvas):
    encoded = base64.b64encode(png_bytes(Image.new("RGB", (12, 8), GREEN))).decode()
    mime = QMimeData()
    mime.setUrls([QUrl("data:image/png;base64," + encoded)])
    drop_and_load(qtbot, canvas, mime)
    assert canvas.source_image().size == (12, 8)


def test_undecodable_raw_bytes_fall_back_to_qt_image_data(qtbot, canvas):
    mime = QMimeData()
    mime.setData("image/avif-like", QByteArray(b"\x00\x01garbage"))
    qimage = QImage(16, 16, QImage.Format.Format_RGB32)
    qimage.fill(QColor(220, 0, 0))
    mime.setImageData(qimage)
    drop_and_load(qtbot, canvas, mime)
    assert colour(canvas.source_image().getpixel((8, 8))) == "red"


# -------------------------------------------------------------------------------------------- paste


def test_paste_clipboard_image(qtbot, canvas):
    qimage = QImage(24, 24, QImage.Format.Format_RGB32)
    qimage.fill(QColor(0, 200, 0))
    QApplication.clipboard().setImage(qimage)
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.paste_from_clipboard()
    assert canvas.source_image().size == (24, 24)
    assert colour(canvas.source_image().getpixel((3, 3))) == "green"


def test_paste_file_urls_and_raw_bytes_via_set_mime_data(qtbot, canvas, bands_png):
    QApplication.clipboard().setMimeData(file_mime(bands_png))
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.paste_from_clipboard()
    assert canvas.source_label() == str(bands_png)

    mime = QMimeData()
    mime.setData("image/png", QByteArray(png_bytes(Image.new("RGB", (7, 5), BLUE))))
    QApplication.clipboard().setMimeData(mime)
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.paste_from_clipboard()
    assert canvas.source_image().size == (7, 5)


def test_paste_plain_text_is_refused(qtbot, loaded):
    QApplication.clipboard().setText("just words")
    with qtbot.waitSignal(loaded.message) as blocker:
        assert not loaded.paste_from_clipboard()
    assert "no image" in blocker.args[0]
    assert loaded.source_label().endswith("bands.png")


def test_keyboard_paste_and_delete_on_the_focused_canvas(qtbot, canvas, bands_png):
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.setFocus()
    QApplication.clipboard().setMimeData(file_mime(bands_png))
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert canvas.has_image()
    with qtbot.waitSignal(canvas.image_changed):
        qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert not canvas.has_image()


# ----------------------------------------------------------------------------- open, set and clear


def test_open_file_dialog_loads_the_chosen_file(qtbot, canvas, bands_png):
    def choose() -> None:
        dialog = canvas.findChild(QFileDialog, "canvas-open-dialog")
        assert dialog is not None
        dialog.selectFile(str(bands_png))
        dialog.accept()

    QTimer.singleShot(0, choose)
    with qtbot.waitSignal(canvas.image_changed, timeout=TIMEOUT):
        assert canvas.open_file_dialog()
    assert canvas.source_label() == str(bands_png)


def test_set_image_and_clear(qtbot, canvas):
    rgba = Image.new("RGBA", (50, 40), (0, 0, 255, 255))
    with qtbot.waitSignal(canvas.image_changed):
        canvas.set_image(rgba, "result #1")
    assert canvas.has_image() and canvas.source_label() == "result #1"
    assert canvas.source_image().mode == "RGB" and canvas.source_image() is not rgba
    assert canvas.prepared_image().size == (100, 100)

    with qtbot.waitSignal(canvas.image_changed):
        canvas.clear()
    assert not canvas.has_image()
    assert canvas.prepared_image() is None and canvas.source_image() is None
    with qtbot.assertNotEmitted(canvas.image_changed):
        canvas.clear()  # nothing to clear: no signal


def test_clear_button(qtbot, loaded):
    button = next(b for b in loaded.findChildren(QPushButton) if b.text() == "Clear")
    with qtbot.waitSignal(loaded.image_changed):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert not loaded.has_image() and not button.isEnabled()


def test_newer_request_wins_over_a_load_in_flight(qtbot, canvas, bands_png, tmp_path):
    other = tmp_path / "other.png"
    Image.new("RGB", (10, 10), BLUE).save(other)
    drop(canvas, file_mime(bands_png))
    canvas.clear()  # makes the first load stale
    drop_and_load(qtbot, canvas, file_mime(other))
    qtbot.wait(20)
    assert canvas.source_label() == str(other)


def test_mode_selector_follows_set_fit_mode_and_emits(qtbot, loaded):
    box = loaded.findChild(QComboBox, "fitModeBox")
    before = loaded.prepared_image()
    with qtbot.waitSignal(loaded.fit_mode_changed) as blocker:
        box.setCurrentIndex(FIT_MODES.index("crop"))
    assert blocker.args == ["crop"] and loaded.fit_mode() == "crop"
    assert loaded.prepared_image().tobytes() != before.tobytes()  # what the engine gets follows
    loaded.set_fit_mode("stretch")
    assert box.currentData() == "stretch"
    with pytest.raises(ValueError):
        loaded.set_fit_mode("zoom")
    assert box.currentData() == "stretch" and loaded.fit_mode() == "stretch"


def test_the_widget_shows_the_view_model_it_is_given(qtbot, bands_png):
    model = CanvasImage(output_size=(64, 32), fit_mode="crop")
    widget = ImageCanvas(model)
    qtbot.addWidget(widget)
    assert widget.canvas_image is model and widget.fit_mode() == "crop" and widget.output_size() == (64, 32)
    assert widget.findChild(QComboBox, "fitModeBox").currentData() == "crop"
    model.fit_mode = "stretch"  # changed elsewhere (restored preferences): the selector follows
    assert widget.findChild(QComboBox, "fitModeBox").currentData() == "stretch"
    with qtbot.waitSignal(widget.image_changed, timeout=TIMEOUT):
        assert model.load_file(bands_png)
    assert widget.has_image() and widget.prepared_image().size == (64, 32)
    info = widget.findChild(QLabel, "canvasInfo")
    assert info.toolTip() == str(bands_png)  # the whole path
    model.set_output_size(32, 32)
    assert widget.prepared_image().size == (32, 32)
    assert model.shutdown()


def test_view_paints_the_prepared_image_and_the_empty_hint(qtbot, canvas):
    canvas.show()
    qtbot.waitExposed(canvas)
    empty = canvas.grab().toImage()
    assert not empty.isNull()
    assert "Ctrl+Shift+V" in canvas.hint_text() and "Ctrl+O" in canvas.hint_text()  # the menu's keys
    canvas.set_image(Image.new("RGB", (100, 100), RED))
    shot = canvas.findChild(QWidget, "canvasView").grab().toImage()
    centre = shot.pixelColor(shot.width() // 2, shot.height() // 2)
    assert colour((centre.red(), centre.green(), centre.blue())) == "red"


def test_the_size_line_is_not_squeezed_by_the_buttons(qtbot):
    """In the window's narrow right column the sizes stay readable: the line has a row of its own."""
    widget = ImageCanvas()  # the default view-model: 512×512, as the window starts
    qtbot.addWidget(widget)
    widget.resize(260, 320)  # the right panel's minimum width
    widget.show()
    qtbot.waitExposed(widget)
    [line] = [label for label in widget.findChildren(QLabel) if label.text().startswith("Output")]
    assert line.text() == "Output 512×512" and "…" not in line.text()
