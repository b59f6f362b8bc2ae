"""Inpainting and outpainting in the window, as an artist does it: paint a mask with the mouse, use the
keys, drag an edge to outpaint, generate on a tiny model, reuse the result's parameters (canvas and mask
come back) and use it as the next init image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel

from studio.ui.canvas import ImageCanvas
from studio.viewmodel.canvas_image import CanvasImage

TIMEOUT = 60_000


def picture(size=(64, 64)) -> Image.Image:
    """Four colour bands: any change of pixels shows."""
    image = Image.new("RGB", size)
    width = size[0] // 4
    for index, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 220, 40)]):
        image.paste(colour, (index * width, 0, (index + 1) * width, size[1]))
    return image


def point(canvas: ImageCanvas, x: float, y: float) -> QPoint:
    return canvas.image_to_view(x, y).toPoint()


def info(canvas: ImageCanvas) -> str:
    return canvas.findChild(QLabel, "canvasInfo").full_text()


def drag(qtbot, canvas: ImageCanvas, start: QPoint, *points: QPoint, button=Qt.MouseButton.LeftButton) -> None:
    view = canvas.view()
    qtbot.mousePress(view, button, pos=start)
    for step in points:
        qtbot.mouseMove(view, step)
    qtbot.mouseRelease(view, button, pos=points[-1] if points else start)


@pytest.fixture
def canvas(qtbot):
    widget = ImageCanvas(CanvasImage(output_size=(64, 64), fit_mode="stretch"))
    qtbot.addWidget(widget)
    widget.resize(400, 440)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_image(picture(), "bands")
    widget.mask.brush_size, widget.mask.hardness = 6, 100
    yield widget
    widget.canvas_image.shutdown()


def test_a_mouse_stroke_paints_the_mask_where_it_goes(qtbot, canvas):
    drag(qtbot, canvas, point(canvas, 8, 32), point(canvas, 30, 32), point(canvas, 56, 32))
    mask = canvas.mask
    assert all(mask.value_at(x, 32) == 255 for x in range(8, 57))
    assert mask.value_at(32, 10) == 0 and mask.value_at(32, 54) == 0
    assert " · mask " in info(canvas)
    assert canvas.mask.can_undo()


def test_right_drag_erases_and_ctrl_z_undoes_a_stroke(qtbot, canvas):
    canvas.mask.fill()
    drag(qtbot, canvas, point(canvas, 32, 4), point(canvas, 32, 60), button=Qt.MouseButton.RightButton)
    assert canvas.mask.value_at(32, 30) == 0 and canvas.mask.value_at(5, 30) == 255
    assert canvas.mask.tool == "brush"  # the right button's eraser was for that stroke only
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert canvas.mask.value_at(32, 30) == 255
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert canvas.mask.value_at(32, 30) == 0


def test_the_brush_keys(qtbot, canvas):
    canvas.setFocus()
    canvas.mask.brush_size = 20
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.mask.brush_size == 24
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.mask.brush_size == 20
    qtbot.keyClick(canvas, Qt.Key.Key_BraceLeft, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.mask.hardness == 90
    qtbot.keyClick(canvas, Qt.Key.Key_X)
    assert canvas.mask.tool == "eraser"
    qtbot.keyClick(canvas, Qt.Key.Key_X)
    assert canvas.mask.tool == "brush"
    qtbot.keyClick(canvas, Qt.Key.Key_Backspace, Qt.KeyboardModifier.ShiftModifier)  # fill
    assert canvas.mask.coverage() == 1.0
    qtbot.keyClick(canvas, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)  # invert
    assert canvas.mask.is_empty()
    assert canvas.has_image()  # none of these touched the picture


def test_wheel_zooms_about_the_pointer_and_space_drag_pans(qtbot, canvas):
    view = canvas.view()
    anchor = point(canvas, 16, 16)
    before = canvas.image_to_view(16, 16)
    wheel = QWheelEvent(
        QPointF(anchor), QPointF(view.mapToGlobal(anchor)), QPoint(), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(view, wheel)
    assert canvas.zoom() == pytest.approx(1.5625)
    after = canvas.image_to_view(16, 16)
    assert abs(after.x() - before.x()) < 1.5 and abs(after.y() - before.y()) < 1.5  # the pointed pixel stays put
    canvas.setFocus()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    start = canvas.image_to_view(32, 32)
    drag(qtbot, canvas, QPoint(100, 100), QPoint(140, 120))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    moved = canvas.image_to_view(32, 32)
    assert (moved.x() - start.x(), moved.y() - start.y()) == pytest.approx((40, 20), abs=1)
    assert canvas.mask.is_empty()  # panning paints nothing
    qtbot.keyClick(canvas, Qt.Key.Key_0)
    assert canvas.zoom() == 1.0


def test_dragging_the_right_edge_outpaints_in_steps_of_the_side_rule(qtbot, canvas):
    edge = canvas.image_to_view(64, 32)
    grip = QPoint(round(edge.x()) + 3, round(edge.y()))
    scale = canvas.image_to_view(1, 0).x() - canvas.image_to_view(0, 0).x()
    drag(qtbot, canvas, grip, QPoint(grip.x() + round(21 * scale), grip.y()))
    assert canvas.mask.expansion() == (0, 0, 24, 0)  # 21 px, to the nearest multiple of 8
    assert canvas.mask.grown_size() == (88, 64)
    assert canvas.mask.is_empty()  # an edge drag is not a stroke
    assert "outpaint → 88×64" in info(canvas)


# ------------------------------------------------------------------------------------ in the window


@pytest.fixture
def make_window(qtbot, tmp_path, tiny_sd1):
    from studio.engine import Engine
    from studio.ui.main_window import MainWindow

    made = []

    def make(name="window"):
        window = MainWindow(
            model=str(tiny_sd1),
            output_dir=tmp_path / "out",
            preferences_file=tmp_path / f"{name}-prefs.json",
            engine_factory=lambda: Engine(device="cpu", preview="linear"),
            qsettings=QSettings(str(tmp_path / f"{name}.ini"), QSettings.Format.IniFormat),
            queue_file=tmp_path / f"{name}-queue.json",
        )
        qtbot.addWidget(window)
        window.resize(1300, 800)
        window.show()
        qtbot.waitExposed(window)
        made.append(window)
        s = window.session.settings
        s.steps, s.scheduler, s.seed_mode, s.seed = 3, "DDIM", "fixed", 7
        s.set_size(64, 64)
        window.prompt_editor.set_prompts("a red door")
        return window

    yield make
    for window in made:
        window.shutdown()
        window.close()


def generate(qtbot, window):
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=TIMEOUT):
        assert window.session.generate() is not None, window.statusBar().currentMessage()
    return window.results.results()[-1]


def test_paint_a_mask_generate_reuse_and_iterate(qtbot, make_window):
    window = make_window()
    canvas = window.canvas
    canvas.set_image(picture(), "bands")
    canvas.mask.brush_size, canvas.mask.hardness = 12, 100
    drag(qtbot, canvas, point(canvas, 20, 32), point(canvas, 44, 32))
    window.session.settings.mask_blur = 2
    assert window.parameters.mask_blur.isEnabled()  # the inpainting options apply once a mask is painted
    result = generate(qtbot, window)
    out = np.asarray(Image.open(result.path).convert("RGB"), dtype=int)
    before = np.asarray(picture(), dtype=int)
    assert (out[:16] == before[:16]).all() and (out[48:] == before[48:]).all()  # far from the mask: exact
    assert np.abs(out[30:34, 24:40] - before[30:34, 24:40]).max() > 0  # under it: regenerated
    request = result.metadata["request"]
    assert request["mask_blur"] == 2 and request["mask_image_sha256"] and request["init_image_sha256"]

    other = make_window("other")  # a new session: the canvas and the mask come from the kept inputs
    message = other.session.reuse_parameters(result)
    assert "init image and mask are on the canvas" in message
    assert other.canvas.has_image() and other.session.settings.mask_blur == 2
    assert np.array_equal(np.asarray(other.canvas.mask.mask_image()), np.asarray(canvas.mask.mask_image()))
    again = generate(qtbot, other)
    assert np.array_equal(np.asarray(Image.open(again.path)), np.asarray(Image.open(result.path)))  # same pixels

    window.send_to_canvas(result)  # iterate: the result is the new init, the mask stays
    assert np.array_equal(np.asarray(canvas.prepared_image()), out.astype(np.uint8))
    assert canvas.mask.value_at(32, 32) == 255


def test_outpaint_from_the_window_grows_the_picture_and_keeps_the_old_area(qtbot, make_window):
    window = make_window()
    window.canvas.set_image(picture(), "bands")
    window.session.mask.set_expansion("right", 16)
    window.session.settings.outpaint_fill = "noise"
    result = generate(qtbot, window)
    out = Image.open(result.path).convert("RGB")
    assert out.size == (80, 64)
    assert np.array_equal(np.asarray(out)[:, :60], np.asarray(picture())[:, :60])  # the old area, bar the seam's blur
    assert result.metadata["request"]["expand"] == [0, 0, 16, 0]
    window.send_to_canvas(result)
    assert window.session.settings.width == 80 and window.session.mask.expansion() is None


def test_a_second_button_during_a_stroke_changes_nothing(qtbot, canvas):
    view = canvas.view()
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=point(canvas, 10, 10))  # erasing, on an empty mask
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=point(canvas, 10, 10))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=point(canvas, 10, 10))
    qtbot.mouseMove(view, point(canvas, 50, 10))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=point(canvas, 50, 10))
    assert canvas.mask.tool == "brush" and canvas.mask.is_empty() and not canvas.mask.is_stroking()


def test_painting_up_to_the_border_never_grows_the_canvas(qtbot, canvas):
    inside = canvas.image_to_view(63.9, 32)
    drag(qtbot, canvas, QPoint(int(inside.x()) - 1, int(inside.y())), QPoint(int(inside.x()) - 1, int(inside.y()) + 20))
    assert canvas.mask.expansion() is None and not canvas.mask.is_empty()


def test_space_is_forgotten_when_the_focus_leaves(qtbot, canvas):
    other = QLabel("elsewhere")
    qtbot.addWidget(other)
    canvas.setFocus()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    canvas.clearFocus()
    drag(qtbot, canvas, point(canvas, 10, 10), point(canvas, 30, 10))
    assert not canvas.mask.is_empty()  # painted, not panned
