"""The canvas's mask layer, headless: strokes, edits, undo, following the picture, outpainting."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.viewmodel.canvas_image import CanvasImage
from studio.viewmodel.canvas_mask import CanvasMask


@pytest.fixture
def layer(qapp):
    canvas = CanvasImage(output_size=(128, 96), fit_mode="stretch")
    canvas.set_image(Image.new("RGB", (128, 96), (90, 120, 150)), "picture")
    mask = CanvasMask(canvas)
    yield mask
    canvas.shutdown()


def pixels(mask: CanvasMask) -> np.ndarray:
    image = mask.mask_image()
    return np.zeros((96, 128), np.uint8) if image is None else np.asarray(image)


def stroke(mask: CanvasMask, *points: tuple[float, float]) -> None:
    assert mask.begin_stroke(*points[0])
    for point in points[1:]:
        mask.stroke_to(*point)
    mask.end_stroke()


def test_a_new_picture_has_an_empty_mask_at_the_output_size(layer):
    assert layer.has_layer() and layer.size() == (128, 96)
    assert layer.is_empty() and layer.mask_image() is None and not layer.is_active()


def test_a_hard_brush_stroke_covers_its_path_and_nothing_far_from_it(layer):
    layer.brush_size, layer.hardness = 10, 100
    stroke(layer, (10, 20), (100, 20))
    mask = pixels(layer)
    assert (mask[20, 10:101] == 255).all()  # every pixel along the path
    assert mask[20 + 8, 50] == 0 and mask[20 - 8, 50] == 0
    assert set(np.unique(mask)) == {0, 255}  # hard: no soft edge
    assert layer.is_active() and 0 < layer.coverage() < 0.15


def test_a_soft_brush_falls_off_and_never_builds_up_where_dabs_overlap(layer):
    layer.brush_size, layer.hardness = 40, 0
    stroke(layer, (60, 48), (61, 48), (60, 48), (61, 48))  # scrubbing over one place
    mask = pixels(layer)
    assert mask[48, 60] >= 250
    assert 0 < mask[48, 60 + 14] < 128  # the edge stays soft however often it is painted
    assert mask[48, 60 + 25] == 0


def test_the_eraser_removes_only_where_it_goes(layer):
    layer.fill()
    layer.tool, layer.brush_size, layer.hardness = "eraser", 12, 100
    stroke(layer, (64, 0), (64, 95))
    mask = pixels(layer)
    assert (mask[:, 64] == 0).all() and (mask[:, 10] == 255).all()


def test_clear_invert_fill_and_undo_redo_of_each_step(layer):
    layer.brush_size, layer.hardness = 16, 100
    stroke(layer, (20, 20), (40, 20))
    painted = pixels(layer).copy()
    layer.invert()
    assert (pixels(layer) == 255 - painted).all()
    layer.clear()
    assert layer.is_empty()
    layer.fill()
    assert (pixels(layer) == 255).all()
    assert layer.undo() and layer.is_empty()
    assert layer.undo() and (pixels(layer) == 255 - painted).all()
    assert layer.undo() and (pixels(layer) == painted).all()
    assert layer.undo() and layer.is_empty() and not layer.can_undo()
    assert not layer.undo()
    assert layer.redo() and (pixels(layer) == painted).all()
    layer.clear()  # a new step forgets what could be redone
    assert not layer.can_redo()


def test_a_stroke_that_changes_nothing_is_not_an_undo_step(layer):
    layer.tool = "eraser"
    stroke(layer, (10, 10), (50, 50))
    assert not layer.can_undo()


def test_the_mask_follows_its_picture_through_a_change_of_size_and_fit(qapp):
    canvas = CanvasImage(output_size=(100, 100), fit_mode="crop")
    picture = Image.new("RGB", (200, 100), "white")
    canvas.set_image(picture, "wide")
    layer = CanvasMask(canvas)
    layer.brush_size, layer.hardness = 10, 100
    stroke(layer, (50, 50), (50, 50))  # the picture's centre
    canvas.set_output_size(200, 100)  # crop -> the whole picture shows: the centre is (100, 50)
    assert layer.size() == (200, 100)
    assert layer.value_at(100, 50) == 255 and layer.value_at(50, 50) == 0
    canvas.set_fit_mode("fit")
    assert layer.value_at(100, 50) == 255
    assert layer.undo() and layer.value_at(100, 50) == 0  # undo redraws the old step for today's placement
    assert layer.redo() and layer.value_at(100, 50) == 255
    canvas.shutdown()


def test_a_new_picture_starts_empty_and_the_old_mask_is_one_undo_away(layer):
    layer.fill()
    layer.canvas.set_image(Image.new("RGB", (128, 96), "black"), "another")
    assert layer.is_empty()
    assert layer.undo() and not layer.is_empty()


def test_a_picture_with_holes_uses_them_as_the_mask(qapp, qtbot):
    canvas = CanvasImage(output_size=(64, 64), fit_mode="stretch")
    layer = CanvasMask(canvas)
    messages = []
    layer.message.connect(messages.append)
    picture = Image.new("RGBA", (64, 64), (200, 10, 10, 255))
    ImageDraw.Draw(picture).rectangle((0, 0, 31, 63), fill=(0, 0, 0, 0))  # the left half erased
    canvas.set_image(picture, "holes.png")
    assert layer.value_at(5, 30) == 255 and layer.value_at(50, 30) == 0
    assert "transparent" in messages[-1]
    canvas.shutdown()


def test_a_dropped_png_with_transparency_is_loaded_with_its_holes(qapp, qtbot, tmp_path):
    path = tmp_path / "erased.png"
    picture = Image.new("RGBA", (64, 64), (10, 200, 10, 255))
    ImageDraw.Draw(picture).rectangle((32, 0, 63, 63), fill=(0, 0, 0, 0))
    picture.save(path)
    canvas = CanvasImage(output_size=(64, 64), fit_mode="stretch")
    layer = CanvasMask(canvas)
    with qtbot.waitSignal(canvas.image_changed, timeout=10_000):
        assert canvas.load_file(path)
    assert layer.value_at(50, 10) == 255 and layer.value_at(10, 10) == 0
    canvas.shutdown()


def test_loading_a_mask_file_of_the_pictures_size_places_it_as_the_picture_is(qapp, tmp_path):
    canvas = CanvasImage(output_size=(64, 64), fit_mode="crop")
    canvas.set_image(Image.new("RGB", (128, 64), "white"), "wide")
    layer = CanvasMask(canvas)
    file = tmp_path / "mask.png"
    drawn = Image.new("L", (128, 64), 0)
    ImageDraw.Draw(drawn).rectangle((64, 0, 127, 63), fill=255)  # the right half of the picture
    drawn.save(file)
    assert layer.load_file(file)
    assert layer.value_at(40, 30) == 255 and layer.value_at(20, 30) == 0  # crop shows its middle
    assert layer.undo() and layer.is_empty()
    canvas.shutdown()


def test_a_mask_file_that_is_not_an_image_is_refused_with_a_message(layer, tmp_path):
    bad = tmp_path / "mask.png"
    bad.write_bytes(b"not a png")
    messages = []
    layer.message.connect(messages.append)
    assert not layer.load_file(bad)
    assert messages and messages[-1].startswith("Mask not loaded") and layer.is_empty()


def test_without_a_picture_nothing_can_be_painted(qapp):
    canvas = CanvasImage(output_size=(64, 64))
    layer = CanvasMask(canvas)
    assert not layer.has_layer() and not layer.begin_stroke(5, 5) and layer.mask_image() is None
    canvas.shutdown()


def test_outpainting_grows_by_whole_multiples_of_the_side_rule(layer):
    layer.side_multiple = 64
    layer.set_expansion("right", 70)
    assert layer.expansion() == (0, 0, 64, 0) and layer.grown_size() == (192, 96)
    layer.expand_left = 10  # a spin box's odd value: snapped up to the rule
    assert layer.expand_left == 64
    assert layer.is_active() and layer.mask_image() is None  # the engine masks the new area itself
    preview = layer.expanded_preview()
    assert (preview.width(), preview.height()) == (256, 96)
    layer.canvas.set_image(Image.new("RGB", (128, 96)), "next")
    assert layer.expansion() is None  # a new picture starts ungrown


def test_a_change_of_picture_or_size_in_the_middle_of_a_stroke_ends_it_cleanly(layer):
    layer.brush_size, layer.hardness = 8, 100
    assert layer.begin_stroke(10, 10)
    layer.stroke_to(40, 10)
    layer.canvas.set_output_size(128, 128)  # the stroke ends: one undo step, redrawn for the new size
    layer.stroke_to(100, 10)  # the pointer goes on moving: nothing happens
    assert not layer.is_stroking() and layer.value_at(20, 13) == 255 and layer.value_at(90, 13) == 0
    assert layer.undo() and layer.is_empty()
    assert layer.begin_stroke(10, 10)
    layer.canvas.clear()
    layer.stroke_to(60, 60)
    layer.end_stroke()
    assert not layer.has_layer()


def test_sizes_and_fit_modes_back_and_forth_never_wear_the_mask_away(qapp):
    canvas = CanvasImage(output_size=(128, 128), fit_mode="crop")
    canvas.set_image(Image.new("RGB", (128, 128), "white"), "square")
    layer = CanvasMask(canvas)
    layer.brush_size, layer.hardness = 12, 50
    stroke(layer, (20, 8), (100, 8))  # near the top: cropped away at 128x64
    painted = pixels_of(layer).copy()
    for size in [(128, 64), (128, 40), (90, 128), (128, 128)]:
        canvas.set_output_size(*size)
    assert np.array_equal(pixels_of(layer), painted)  # redrawn from what was painted, not from the last redrawing
    canvas.shutdown()


def test_removing_the_picture_keeps_its_mask_one_undo_away(layer):
    layer.fill()
    layer.canvas.clear()
    layer.canvas.set_image(Image.new("RGB", (128, 96)), "again")
    assert layer.is_empty() and layer.undo() and layer.coverage() == 1.0


def pixels_of(mask: CanvasMask) -> np.ndarray:
    image = mask.mask_image()
    size = mask.size()
    return np.zeros((size[1], size[0]), np.uint8) if image is None else np.asarray(image)
