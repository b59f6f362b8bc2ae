"""The canvas's mask layer: what an artist paints over the init image to have it regenerated, and how far
the canvas is grown for outpainting.

The mask is kept at the output size, over the prepared image the model gets (what the user sees is what
the model gets, as for the picture itself), as 8-bit coverage: 255 regenerates, 0 keeps. It follows its
picture: a change of output size or fit mode redraws it through the picture's placement
(:func:`studio.library.image_fit.placement`, :func:`studio.library.masks.moved`); a new picture starts
with an empty mask, or with the picture's own transparent area (a PNG with holes erased in GIMP or
Krita). Brush strokes are built from round dabs whose edge softness is the hardness; a stroke covers
each pixel once, at the most any dab gave it (never darker where dabs overlap), so a soft brush
painted slowly is as soft as one painted fast.

Every change (a stroke, clear, invert, fill, a loaded mask, a new picture) can be undone and redone.
The history is bounded by memory (:data:`HISTORY_BYTES`), oldest first out; each entry remembers the
placement it was painted for, and is redrawn for today's when they differ.

Outpainting: ``expand_left`` ... ``expand_bottom`` grow the canvas by whole multiples of the model's
side rule (``side_multiple``: 8 px, 64 for DeciDiffusion), so the engine makes exactly the size shown;
the new area is masked and pre-filled by the engine (the preview shows the same fill).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from studio.library.display import printable
from studio.library.image_fit import placement
from studio.library.masks import MAX_EXPAND, OUTPAINT_FILLS, Expansion, MaskError, expanded, moved, read_mask
from studio.viewmodel.canvas_image import CanvasImage
from studio.viewmodel.properties import Property, ViewModel, between, one_of
from studio.worker.qimage import pil_to_qimage

__all__ = ["HISTORY_BYTES", "MAX_BRUSH", "SIDES", "TOOLS", "CanvasMask"]

TOOLS = ("brush", "eraser")
SIDES = ("left", "top", "right", "bottom")
MAX_BRUSH = 1024
HISTORY_BYTES = 256 * 2**20
"""Undo memory: 1,000 strokes on a 512 px canvas, 16 on a 2048 px one."""
MAX_HISTORY = 1000
DAB_SPACING = 0.1
"""Dabs along a stroke, in brush diameters: close enough that a hard brush's edge shows no scallops."""

Geometry = tuple[tuple[int, int], tuple[int, int], str]
"""(source size, output size, fit mode): where the picture lies under the mask."""


@dataclass
class _Entry:
    """One undo step: the mask before it, and the placement it was painted for."""

    mask: np.ndarray
    geometry: Geometry | None


class CanvasMask(ViewModel):
    """The mask layer over a :class:`CanvasImage` (see the module docstring).

    Signals: ``mask_changed(object)`` with the (x, y, width, height) of the pixels that changed, or None
    for all of them; ``history_changed()`` when undo or redo become possible or not; ``message(str)`` a
    one-line, user-facing report or refusal; and the properties' ``<name>_changed``.
    """

    tool = Property("brush", check=one_of(TOOLS), doc="brush paints the mask, eraser removes it")
    brush_size = Property(48, persist=True, check=between(1, MAX_BRUSH), key="mask_brush_size", doc="diameter, output px")
    hardness = Property(60, persist=True, check=between(0, 100), key="mask_brush_hardness", doc="%: 100 is a sharp edge")
    expand_left = Property(0, check=between(0, MAX_EXPAND), doc="outpainting: px added on the left")
    expand_top = Property(0, check=between(0, MAX_EXPAND))
    expand_right = Property(0, check=between(0, MAX_EXPAND))
    expand_bottom = Property(0, check=between(0, MAX_EXPAND))
    side_multiple = Property(8, check=between(1, 512), doc="the model's side rule: expansions are multiples of it")
    outpaint_fill = Property("edge", check=one_of(OUTPAINT_FILLS), doc="what the preview shows in the new area")

    mask_changed = Signal(object)
    history_changed = Signal()
    message = Signal(str)

    def __init__(self, canvas: CanvasImage, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self._mask: np.ndarray | None = None  # the mask over today's placement of the picture
        self._geometry: Geometry | None = None
        self._master: _Entry | None = None  # the mask as last edited, and the placement it was edited on
        self._undo: list[_Entry] = []
        self._redo: list[_Entry] = []
        self._stroke: np.ndarray | None = None  # this stroke's coverage so far
        self._before: np.ndarray | None = None  # the mask when the stroke began
        self._stroke_undo: _Entry | None = None  # the undo step the stroke makes, if it changes anything
        self._stroke_erases = False
        self._last: tuple[float, float] | None = None
        self._to_next_dab = 0.0
        self._dirty: list[int] | None = None  # x0, y0, x1, y1 changed since the last signal
        self._stats: tuple[bool, float] | None = None  # (empty, coverage), computed when asked
        self._preview_key: tuple | None = None
        self._preview: QImage | None = None
        canvas.image_changed.connect(self._on_image_changed)
        canvas.output_size_changed.connect(self._on_geometry_changed)
        canvas.fit_mode_changed.connect(self._on_geometry_changed)
        for side in SIDES:
            getattr(self, f"expand_{side}_changed").connect(self._snap_expansion)
        self.side_multiple_changed.connect(self._snap_expansion)
        self._on_image_changed()

    # ----------------------------------------------------------------------------------------- state
    def has_layer(self) -> bool:
        """Whether there is a picture to paint over."""
        return self._mask is not None

    def size(self) -> tuple[int, int] | None:
        """(width, height) of the mask: the output size, while there is a picture."""
        return None if self._mask is None else (self._mask.shape[1], self._mask.shape[0])

    def is_empty(self) -> bool:
        return self._measured()[0]

    def coverage(self) -> float:
        """The share of the picture the mask regenerates, 0..1 (partly covered pixels count in part)."""
        return self._measured()[1]

    def _measured(self) -> tuple[bool, float]:
        """(empty, coverage), computed once per change: a stroke changes the mask at every dab, and a
        4-megapixel mean at each would make painting lag."""
        if self._stats is None:
            if self._mask is None:
                self._stats = (True, 0.0)
            else:
                empty = not self._mask.any()
                self._stats = (empty, 0.0 if empty else float(self._mask.mean()) / 255.0)
        return self._stats

    def value_at(self, x: int, y: int) -> int:
        """The mask at one pixel (0 keeps, 255 regenerates); 0 outside the picture."""
        if self._mask is None or not (0 <= y < self._mask.shape[0] and 0 <= x < self._mask.shape[1]):
            return 0
        return int(self._mask[y, x])

    def mask_image(self) -> Image.Image | None:
        """The mask as an L image at the output size, or None when nothing is masked: what a job gets."""
        if self.is_empty():
            return None
        return Image.fromarray(self._mask.copy(), mode="L")

    def mask_qimage(self) -> QImage | None:
        """The mask as an 8-bit indexed QImage (a copy), for a view to recolour with its colour table."""
        if self._mask is None:
            return None
        height, width = self._mask.shape
        image = QImage(self._mask.tobytes(), width, height, width, QImage.Format.Format_Indexed8).copy()
        image.setColorTable([0xFF000000 | (v << 16) | (v << 8) | v for v in range(256)])
        return image

    def is_active(self) -> bool:
        """Whether the next job inpaints or outpaints (a mask is painted, or the canvas is grown)."""
        return self.has_layer() and (not self.is_empty() or self.expansion() is not None)

    # ----------------------------------------------------------------------------------- outpainting
    def expansion(self) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) px the canvas grows by, or None when it does not."""
        values = tuple(getattr(self, f"expand_{side}") for side in SIDES)
        return values if any(values) else None

    def set_expansion(self, side: str, pixels: float) -> None:
        """Grow one side by `pixels` (rounded to the nearest multiple of the side rule, within 0..MAX_EXPAND)."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
        step = self.side_multiple
        setattr(self, f"expand_{side}", int(min(max(round(pixels / step) * step, 0), MAX_EXPAND // step * step)))

    def clear_expansion(self) -> None:
        for side in SIDES:
            setattr(self, f"expand_{side}", 0)

    def grown_size(self) -> tuple[int, int] | None:
        """The canvas's size with its expansion: the size the next job makes."""
        size = self.size()
        if size is None:
            return None
        left, top, right, bottom = self.expansion() or (0, 0, 0, 0)
        return size[0] + left + right, size[1] + top + bottom

    def expanded_preview(self) -> QImage | None:
        """The prepared picture grown as the engine will grow it (edge stretch or noise in the new area),
        or None without an expansion. Cached: the view paints it often."""
        expansion = self.expansion()
        prepared = self.canvas.prepared_image() if expansion is not None else None
        if prepared is None:
            return None
        key = (self.canvas.display_image().cacheKey(), expansion, self.outpaint_fill)
        if key != self._preview_key:
            grown, _mask, _made = expanded(prepared, None, Expansion(*expansion), multiple=1, fill=self.outpaint_fill)
            self._preview, self._preview_key = pil_to_qimage(grown), key
        return self._preview

    def _snap_expansion(self, *_args: object) -> None:
        step = self.side_multiple
        for side in SIDES:
            value = getattr(self, f"expand_{side}")
            if value % step:
                self.set_expansion(side, math.ceil(value / step) * step)

    # --------------------------------------------------------------------------------------- strokes
    def begin_stroke(self, x: float, y: float, *, erase: bool | None = None) -> bool:
        """Start a stroke at (x, y) output pixels, erasing or painting as `erase` says (None: as the
        current tool does); False without a picture. A stroke still open is finished first."""
        self._close_stroke()
        if self._mask is None:
            return False
        self._before = self._mask.copy()
        same = self._master is not None and self._master.geometry == self._geometry
        self._stroke_undo = _Entry(self._before, self._geometry) if same or self._master is None else self._master
        self._stroke = np.zeros_like(self._mask)
        self._stroke_erases = self.tool == "eraser" if erase is None else bool(erase)
        self._last, self._to_next_dab = (x, y), 0.0
        self._dab(x, y)
        self._flush()
        return True

    def stroke_to(self, x: float, y: float) -> None:
        """Continue the stroke to (x, y): dabs every tenth of the brush's diameter along the way, and one
        ``mask_changed`` for all of them."""
        if self._stroke is None or self._last is None:
            return
        x0, y0 = self._last
        length = math.hypot(x - x0, y - y0)
        spacing = max(1.0, self.brush_size * DAB_SPACING)
        travelled = self._to_next_dab
        while travelled <= length:
            t = travelled / length if length else 1.0
            self._dab(x0 + (x - x0) * t, y0 + (y - y0) * t)
            travelled += spacing
        self._to_next_dab = travelled - length
        self._last = (x, y)
        self._flush()

    def is_stroking(self) -> bool:
        return self._stroke is not None

    def end_stroke(self) -> None:
        """Finish the stroke: one undo step, if it changed anything."""
        self._close_stroke()

    def _close_stroke(self) -> None:
        """End the open stroke, if any (also before anything replaces the mask or the picture)."""
        if self._stroke is None:
            return
        before, undo = self._before, self._stroke_undo
        self._before = self._stroke = self._stroke_undo = self._last = None
        if self._mask is not None and before is not None and not np.array_equal(before, self._mask):
            self._master = _Entry(self._mask, self._geometry)
            self._remember(undo)

    def _dab(self, cx: float, cy: float) -> None:
        """One round dab into the stroke's coverage, then the mask there from the stroke and its start."""
        if self._mask is None or self._stroke is None or self._stroke.shape != self._mask.shape:
            return
        radius = self.brush_size / 2
        height, width = self._mask.shape
        x0, x1 = max(int(math.floor(cx - radius)), 0), min(int(math.ceil(cx + radius)) + 1, width)
        y0, y1 = max(int(math.floor(cy - radius)), 0), min(int(math.ceil(cy + radius)) + 1, height)
        if x0 >= x1 or y0 >= y1:
            return
        xs = np.arange(x0, x1, dtype=np.float32) + 0.5 - cx
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
        distance = np.sqrt(xs * xs + ys * ys)
        solid = radius * self.hardness / 100
        if radius - solid < 0.5:  # hard: a crisp disc (at least the pixel under the pointer)
            alpha = (distance <= max(radius, 0.5)).astype(np.float32)
        else:
            alpha = np.clip((radius - distance) / (radius - solid), 0.0, 1.0)
            alpha = alpha * alpha * (3 - 2 * alpha)  # smoothstep: no visible ring where the fall-off starts
        value = np.rint(alpha * 255).astype(np.uint8)
        region = (slice(y0, y1), slice(x0, x1))
        np.maximum(self._stroke[region], value, out=self._stroke[region])
        if self._stroke_erases:
            self._mask[region] = np.minimum(self._before[region], 255 - self._stroke[region])
        else:
            self._mask[region] = np.maximum(self._before[region], self._stroke[region])
        if self._dirty is None:
            self._dirty = [x0, y0, x1, y1]
        else:
            d = self._dirty
            d[0], d[1], d[2], d[3] = min(d[0], x0), min(d[1], y0), max(d[2], x1), max(d[3], y1)

    def _flush(self) -> None:
        if self._dirty is not None:
            x0, y0, x1, y1 = self._dirty
            self._dirty, self._stats = None, None
            self.mask_changed.emit((x0, y0, x1 - x0, y1 - y0))

    # ------------------------------------------------------------------------------- whole-mask edits
    def clear(self) -> None:
        """Unmask everything (undoable)."""
        if self._mask is not None and self._mask.any():
            self._replace(np.zeros_like(self._mask))

    def fill(self) -> None:
        """Mask everything: the whole picture is regenerated (undoable)."""
        if self._mask is not None and not (self._mask == 255).all():
            self._replace(np.full_like(self._mask, 255))

    def invert(self) -> None:
        """Swap masked and kept (undoable)."""
        if self._mask is not None:
            self._replace(255 - self._mask)

    def set_mask(self, mask: Image.Image) -> bool:
        """Use `mask` (any image: its alpha if it has transparency, else its brightness) over the current
        picture, placed as :meth:`load_file` places a file's (undoable); False without a picture."""
        if self._mask is None:
            return False
        layer, _how = self._placed(read_mask(mask))
        self._replace(np.array(layer, dtype=np.uint8))
        return True

    def load_file(self, path: str | Path) -> bool:
        """Load a mask file (white, or a PNG's opaque pixels, is regenerated), placed over the picture
        (:meth:`_placed`); the message says how. False (and a message) when it cannot be read."""
        if self._mask is None:
            self.message.emit("Open a picture first: a mask is painted over it")
            return False
        try:
            layer = read_mask(str(path))
        except MaskError as exc:
            self.message.emit(f"Mask not loaded: {printable(exc)}")
            return False
        name, drawn = printable(Path(path).name), layer.size
        layer, how = self._placed(layer)
        self._replace(np.array(layer, dtype=np.uint8))
        source = self._geometry[0]
        self.message.emit({
            "as is": f"Mask loaded from {name}",
            "placed": f"Mask loaded from {name}, placed as the picture is",
            "stretched": f"Mask loaded from {name}: it is {drawn[0]}×{drawn[1]} and the picture "
            f"{source[0]}×{source[1]}, so it was stretched to fit",
        }[how])
        return True

    def _placed(self, layer: Image.Image) -> tuple[Image.Image, str]:
        """A mask at the output size: one of that size "as is"; one of the picture's own size "placed"
        where the fit mode puts the picture; any other size "stretched"."""
        size = self.size()
        source, _output, mode = self._geometry
        if layer.size == size:
            return layer, "as is"
        if layer.size == source:
            return moved(layer, (0, 0, *source), placement(source, size, mode), size), "placed"
        return layer.resize(size, Image.Resampling.BILINEAR), "stretched"

    def _replace(self, mask: np.ndarray) -> None:
        self._close_stroke()
        self._remember(self._master)
        self._show(np.ascontiguousarray(mask, dtype=np.uint8))
        self._master = _Entry(self._mask, self._geometry)

    def _show(self, mask: np.ndarray | None) -> None:
        self._mask, self._stats = mask, None
        self.mask_changed.emit(None)

    # -------------------------------------------------------------------------------------- history
    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Back one step; False when there is none (or no picture to paint over)."""
        return self._step(self._undo, self._redo)

    def redo(self) -> bool:
        return self._step(self._redo, self._undo)

    def _step(self, source: list[_Entry], target: list[_Entry]) -> bool:
        self._close_stroke()
        if not source or self._mask is None:
            return False
        entry = source.pop()
        target.append(self._master if self._master is not None else _Entry(self._mask, self._geometry))
        self._master = entry
        self._show(self._fitted(entry, self._geometry))
        self.history_changed.emit()
        return True

    def _remember(self, entry: _Entry | None) -> None:
        """An undo step back to `entry`; redo is forgotten, and the oldest steps beyond the memory bound."""
        if entry is None:
            return
        self._undo.append(entry)
        self._redo.clear()
        total = sum(step.mask.nbytes for step in self._undo)
        while self._undo and (total > HISTORY_BYTES or len(self._undo) > MAX_HISTORY):
            total -= self._undo.pop(0).mask.nbytes
        self.history_changed.emit()

    def _fitted(self, entry: _Entry, geometry: Geometry) -> np.ndarray:
        """A mask painted for `entry.geometry`, redrawn for the picture placed as `geometry` says."""
        source, size, mode = geometry
        if entry.geometry == geometry and entry.mask.shape == (size[1], size[0]):
            return entry.mask
        layer = Image.fromarray(entry.mask, mode="L")
        if entry.geometry and entry.geometry[0] == source:  # the same picture, another size or fit
            old_box = placement(source, entry.geometry[1], entry.geometry[2])
            layer = moved(layer, old_box, placement(source, size, mode), size)
        else:
            layer = layer.resize(size, Image.Resampling.BILINEAR)
        return np.array(layer, dtype=np.uint8)

    # ----------------------------------------------------------------------- following the picture
    def _current_geometry(self) -> Geometry | None:
        source = self.canvas.source_image()
        if source is None:
            return None
        return source.size, tuple(self.canvas.output_size), self.canvas.fit_mode

    def _on_image_changed(self) -> None:
        """A new picture: an empty mask, or its transparent area; the old mask stays one undo away (also
        when the picture is removed: the next one can have it back)."""
        self._close_stroke()
        geometry = self._current_geometry()
        self.clear_expansion()
        old = self._master if self._master is not None and self._master.mask.any() else None
        if geometry is None:
            self._remember(old)
            self._master, self._geometry = None, None
            self._show(None)
            return
        source, size, mode = geometry
        fresh = np.zeros((size[1], size[0]), dtype=np.uint8)
        holes = self.canvas.source_transparency()
        if holes is not None:
            fresh = np.array(moved(holes, (0, 0, *source), placement(source, size, mode), size), dtype=np.uint8)
        self._remember(old)
        self._geometry = geometry
        self._show(fresh)
        self._master = _Entry(fresh, geometry)
        if holes is not None:
            self.message.emit(f"The picture's transparent area is the mask ({self.coverage():.0%} of it): inpaint to fill it")

    def _on_geometry_changed(self, *_args: object) -> None:
        """The output size or fit mode changed: the mask is redrawn from the one last edited (never from
        an earlier redrawing, which would blur or lose it step by step)."""
        geometry = self._current_geometry()
        if geometry is None or self._mask is None or geometry == self._geometry:
            return
        self._close_stroke()
        self._geometry = geometry
        master = self._master or _Entry(self._mask, geometry)
        self._show(self._fitted(master, geometry))
