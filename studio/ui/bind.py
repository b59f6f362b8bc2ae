"""One line binds a widget to a view-model property, both ways.

    bind(self.steps, settings, "steps")

The widget shows the property's value now and whenever it changes; what the user enters is written
to the property. A value the property refuses (its check) puts the property's value back in the
widget. Each kind of widget has one reading and one writing of its value here, so no panel maps its
fields by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QAbstractButton, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QSpinBox, QWidget

from studio.viewmodel.properties import ViewModel

__all__ = ["bind", "show_text"]


def bind(
    widget: QWidget,
    model: ViewModel,
    name: str,
    *,
    to_widget: Callable[[Any], Any] | None = None,
    from_widget: Callable[[Any], Any] | None = None,
) -> None:
    """Bind `widget` two-way to ``model.<name>``; `to_widget`/`from_widget` convert values (for
    example an int property in a line edit)."""
    read, write, edited = _accessors(widget)
    show = to_widget or (lambda v: v)
    take = from_widget or (lambda v: v)
    updating = [False]

    def model_to_widget(value: Any) -> None:
        if updating[0]:
            return
        updating[0] = True
        try:
            if read() != show(value):
                write(show(value))
        finally:
            updating[0] = False

    def widget_to_model(*_args: Any) -> None:
        if updating[0]:
            return
        try:
            value = take(read())
        except (TypeError, ValueError):
            return  # not a value yet (an empty line edit): the model keeps its own
        try:
            setattr(model, name, value)
        except (TypeError, ValueError):
            model_to_widget(getattr(model, name))

    getattr(model, f"{name}_changed").connect(_Receiver(widget, model_to_widget).call)
    edited.connect(widget_to_model)
    model_to_widget(getattr(model, name))


def show_text(label: QLabel, model: ViewModel, name: str) -> None:
    """A label showing a text property, hidden while the text is empty (one way: labels are not edited)."""

    def show(text: str) -> None:
        label.setText(text)
        label.setVisible(bool(text))

    getattr(model, f"{name}_changed").connect(_Receiver(label, show).call)
    show(getattr(model, name))


class _Receiver(QObject):
    """Receives a view-model's signal for one widget, as the widget's child: when the widget is deleted
    (a closed panel, while its view-model lives on) Qt disconnects it, instead of the next change
    calling into a deleted widget."""

    def __init__(self, widget: QWidget, slot: Callable[[Any], None]) -> None:
        super().__init__(widget)
        self._slot = slot

    @Slot(object)
    def call(self, value: Any) -> None:
        self._slot(value)


def _accessors(widget: QWidget):
    """(read, write, edited signal) of a widget's value."""
    if isinstance(widget, QSpinBox | QDoubleSpinBox):
        return widget.value, widget.setValue, widget.valueChanged
    if isinstance(widget, QComboBox):
        def read() -> Any:
            return widget.currentData()

        def write(value: Any) -> None:
            index = _find(widget, value)
            if index >= 0:
                widget.setCurrentIndex(index)

        return read, write, widget.currentIndexChanged
    if isinstance(widget, QAbstractButton):
        return widget.isChecked, widget.setChecked, widget.toggled
    if isinstance(widget, QLineEdit):
        return widget.text, widget.setText, widget.textEdited
    raise TypeError(f"no binding for {type(widget).__name__}")


def _find(box: QComboBox, value: Any) -> int:
    """The row whose item data is `value` (None included, which QComboBox.findData cannot look for)."""
    for row in range(box.count()):
        if box.itemData(row) == value:
            return row
    return -1
