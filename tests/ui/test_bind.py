"""bind(): each kind of widget shows its property and writes what the user enters; refusals are undone."""

from __future__ import annotations

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QSlider, QSpinBox

from studio.ui.bind import bind, show_text
from studio.viewmodel.properties import Property, ViewModel, between, one_of


class Model(ViewModel):
    count = Property(3, check=between(1, 10))
    ratio = Property(0.5, check=between(0.0, 1.0))
    choice = Property(None, kind=str, check=one_of([None, "a", "b"]))
    enabled = Property(True)
    number = Property(7, check=between(0, 100))
    text = Property("")


@pytest.fixture
def model(qapp) -> Model:
    return Model()


def make(qtbot, widget):
    qtbot.addWidget(widget)
    return widget


def test_spin_box(qtbot, model):
    box = make(qtbot, QSpinBox(minimum=0, maximum=20))
    bind(box, model, "count")
    assert box.value() == 3  # shows the value now
    model.count = 8
    assert box.value() == 8  # and when it changes
    box.setValue(5)  # the user's edit
    assert model.count == 5
    box.setValue(15)  # within the box's range, refused by the property
    assert model.count == 5 and box.value() == 5  # the model's value is put back


def test_double_spin_box(qtbot, model):
    box = make(qtbot, QDoubleSpinBox(minimum=-1.0, maximum=2.0, decimals=2))
    bind(box, model, "ratio")
    assert box.value() == 0.5
    model.ratio = 0.25
    assert box.value() == 0.25
    box.setValue(0.75)
    assert model.ratio == 0.75
    box.setValue(1.5)
    assert model.ratio == 0.75 and box.value() == 0.75


def test_combo_box_with_none_data(qtbot, model):
    box = make(qtbot, QComboBox())
    box.addItem("Default", None)
    box.addItem("A", "a")
    box.addItem("B", "b")
    box.addItem("Refused", "c")
    box.setCurrentIndex(2)
    bind(box, model, "choice")
    assert box.currentIndex() == 0  # None is found too (QComboBox.findData cannot look for it)
    model.choice = "b"
    assert box.currentIndex() == 2
    model.choice = None
    assert box.currentIndex() == 0
    box.setCurrentIndex(1)
    assert model.choice == "a"
    box.setCurrentIndex(0)
    assert model.choice is None
    box.setCurrentIndex(3)  # an entry the property refuses
    assert model.choice is None and box.currentIndex() == 0


def test_combo_box_without_the_value_keeps_its_entry(qtbot, model):
    box = make(qtbot, QComboBox())
    box.addItem("A", "a")
    bind(box, model, "choice")  # None is not listed: the box shows what it has, the model keeps None
    assert model.choice is None and box.currentIndex() == 0
    model.choice = "b"
    assert box.currentIndex() == 0


def test_check_box(qtbot, model):
    box = make(qtbot, QCheckBox("On"))
    bind(box, model, "enabled")
    assert box.isChecked()
    model.enabled = False
    assert not box.isChecked()
    box.click()  # the user's click
    assert model.enabled is True
    box.setChecked(False)
    assert model.enabled is False


def test_line_edit_with_converters(qtbot, model):
    edit = make(qtbot, QLineEdit())
    bind(edit, model, "number", to_widget=str, from_widget=int)
    assert edit.text() == "7"
    model.number = 42
    assert edit.text() == "42"
    edit.clear()
    qtbot.keyClicks(edit, "12")
    assert model.number == 12 and edit.text() == "12"
    qtbot.keyClick(edit, Qt.Key.Key_Backspace)
    qtbot.keyClick(edit, Qt.Key.Key_Backspace)
    assert edit.text() == "" and model.number == 1  # an empty field is not a value yet: the model keeps its own
    qtbot.keyClicks(edit, "x")  # not a number: nothing written
    assert model.number == 1 and edit.text() == "x"
    edit.clear()
    qtbot.keyClicks(edit, "500")  # "5", "50", then "500" is refused and undone
    assert model.number == 50 and edit.text() == "50"
    edit.setText("99")  # a programmatic change is not an edit
    assert model.number == 50


def test_line_edit_with_text(qtbot, model):
    edit = make(qtbot, QLineEdit())
    bind(edit, model, "text")
    qtbot.keyClicks(edit, "a fox")
    assert model.text == "a fox"
    model.text = "a cat"
    assert edit.text() == "a cat"


def test_two_widgets_on_one_property_stay_in_step(qtbot, model):
    spin, edit = make(qtbot, QSpinBox(maximum=100)), make(qtbot, QLineEdit())
    bind(spin, model, "number")
    bind(edit, model, "number", to_widget=str, from_widget=int)
    spin.setValue(30)
    assert model.number == 30 and edit.text() == "30"
    edit.clear()
    qtbot.keyClicks(edit, "4")
    assert model.number == 4 and spin.value() == 4


def test_each_edit_writes_once(qtbot, model):
    box = make(qtbot, QSpinBox(maximum=20))
    bind(box, model, "count")
    seen = []
    model.count_changed.connect(seen.append)
    box.setValue(6)
    model.count = 9
    assert seen == [6, 9]


def test_show_text_hides_an_empty_label(qtbot, model):
    label = make(qtbot, QLabel("stale"))
    label.show()
    show_text(label, model, "text")
    assert label.text() == "" and label.isHidden()
    model.text = "width 520 px: this model needs multiples of 64 px"
    assert label.text() == model.text and not label.isHidden()
    model.text = ""
    assert label.isHidden()


def test_a_deleted_widget_is_no_longer_updated(qtbot, model):
    """A closed panel's widgets go while its view-model lives on: later changes must not reach them."""
    box, label = QSpinBox(maximum=20), QLabel()
    bind(box, model, "count")
    show_text(label, model, "text")
    shiboken6.delete(box)
    shiboken6.delete(label)
    with qtbot.capture_exceptions() as errors:
        model.count = 9
        model.text = "still alive"
    assert errors == [] and model.count == 9


def test_widgets_without_a_binding_are_refused(qtbot, model):
    with pytest.raises(TypeError, match="QSlider"):
        bind(make(qtbot, QSlider()), model, "count")
