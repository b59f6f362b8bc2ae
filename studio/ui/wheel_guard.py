"""Mouse wheels scroll panels, not the fields under the pointer.

Spin boxes and combo boxes take wheel events by default, so scrolling a long form changes whatever
passes under the pointer (Guidance 7.0 -> 5.5, another scheduler). Guarded fields take the wheel only
once they have keyboard focus (a click or Tab); otherwise the event goes to the scroll area behind them.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QWidget

GUARDED = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    """An event filter: a wheel over an unfocused field scrolls the scroll area around it instead."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = _scroll_area_of(watched)
        if area is not None and isinstance(event, QWheelEvent):
            viewport = area.viewport()
            position = QPointF(viewport.mapFromGlobal(event.globalPosition().toPoint()))
            forwarded = QWheelEvent(
                position, event.globalPosition(), event.pixelDelta(), event.angleDelta(), event.buttons(),
                event.modifiers(), event.phase(), event.inverted(), event.source(),
            )
            QApplication.sendEvent(viewport, forwarded)
        event.ignore()
        return True  # the field never sees it


def _scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and not isinstance(parent, GUARDED):
            return parent
        parent = parent.parentWidget()
    return None


def guard_wheel(root: QWidget) -> WheelGuard:
    """Guard every spin box and combo box under `root` (and `root` itself); returns the filter (owned by root)."""
    guard = WheelGuard(root)
    widgets = [root, *root.findChildren(QWidget)]
    for widget in widgets:
        if isinstance(widget, GUARDED):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # no focus by wheel: it would then take the wheel
            widget.installEventFilter(guard)
    return guard
