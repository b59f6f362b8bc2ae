"""Declared properties: types, checks, one changed signal per real change, persistence by declaration."""

from __future__ import annotations

import subprocess
import sys

import pytest

from studio.viewmodel.properties import (
    Property,
    ViewModel,
    between,
    one_of,
    persisted_values,
    properties,
    restore_values,
)


class Sample(ViewModel):
    count = Property(3, persist=True, check=between(1, 10))
    ratio = Property(0.5, persist=True, check=between(0.0, 1.0))
    flavour = Property("plain", persist=True, check=one_of(["plain", "salted"]))
    label = Property(None, kind=str, persist=True)
    items = Property([], kind=list, persist=True, key="stored_items")
    enabled = Property(True, persist=True)
    note = Property("")  # shown, not kept


class Derived(Sample):
    extra = Property(1, persist=True)


class Recorder:
    """Every emission of a property's own signal and of ``changed``."""

    def __init__(self, model: ViewModel, name: str) -> None:
        self.values: list = []
        self.names: list[str] = []
        getattr(model, f"{name}_changed").connect(self.values.append)
        model.changed.connect(self.names.append)


@pytest.fixture
def sample(qapp) -> Sample:
    return Sample()


def test_defaults_and_a_changed_signal_for_every_declared_property(sample):
    assert (sample.count, sample.ratio, sample.flavour, sample.label, sample.items, sample.enabled, sample.note) == (
        3, 0.5, "plain", None, [], True, "",
    )
    for name in properties(Sample):
        assert hasattr(sample, f"{name}_changed")
    assert list(properties(Sample)) == ["count", "ratio", "flavour", "label", "items", "enabled", "note"]
    assert list(properties(Derived)) == [*properties(Sample), "extra"]  # base classes first
    derived = Derived()
    seen = Recorder(derived, "extra")
    derived.extra = 2
    derived.count = 4  # the inherited signal works on the subclass
    assert seen.values == [2] and seen.names == ["extra", "count"]


def test_the_signal_fires_once_per_real_change(sample):
    seen = Recorder(sample, "count")
    sample.count = 5
    sample.count = 5  # the same value: no signal
    sample.count = 3
    assert seen.values == [5, 3] and seen.names == ["count", "count"]
    ratio = Recorder(sample, "ratio")
    sample.ratio = 1  # an int for a float property is stored as a float
    sample.ratio = 1.0
    assert ratio.values == [1.0] and isinstance(sample.ratio, float)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("count", "5", TypeError),
        ("count", 5.0, TypeError),
        ("count", True, TypeError),  # bool is an int to Python, not to a property
        ("count", None, TypeError),
        ("count", 0, ValueError),
        ("count", 11, ValueError),
        ("ratio", True, TypeError),
        ("ratio", "0.3", TypeError),
        ("ratio", float("nan"), ValueError),
        ("ratio", float("inf"), ValueError),
        ("ratio", 1.5, ValueError),
        ("flavour", "sweet", ValueError),
        ("flavour", 1, TypeError),
        ("label", 3, TypeError),
        ("items", ("a",), TypeError),
        ("items", "ab", TypeError),
        ("enabled", 1, TypeError),
        ("enabled", None, TypeError),
        ("note", None, TypeError),
    ],
)
def test_a_refused_value_raises_and_changes_nothing(sample, name, value, error):
    before = getattr(sample, name)
    seen = Recorder(sample, name)
    with pytest.raises(error):
        setattr(sample, name, value)
    assert getattr(sample, name) == before and seen.values == [] and seen.names == []


def test_bounds_are_inclusive_and_optional_properties_take_none(sample):
    sample.count = 1
    sample.count = 10
    sample.ratio = 0.0
    sample.label = "x"
    sample.label = None
    assert (sample.count, sample.ratio, sample.label) == (10, 0.0, None)


def test_one_of_can_ask_its_choices_each_time(qapp):
    allowed = ["a"]

    class Choosy(ViewModel):
        pick = Property("a", check=one_of(lambda: allowed))

    model = Choosy()
    with pytest.raises(ValueError):
        model.pick = "b"
    allowed.append("b")
    model.pick = "b"
    assert model.pick == "b"


def test_a_check_may_convert_the_value(qapp):
    class Upper(ViewModel):
        name = Property("", check=str.upper)

    model = Upper()
    model.name = "abc"
    assert model.name == "ABC"


def test_lists_are_copied_in_and_out_and_never_shared(sample):
    other = Sample()
    sample.items.append("leak")  # a copy: the model is unchanged
    assert sample.items == [] and other.items == []
    given = ["a"]
    sample.items = given
    given.append("b")
    assert sample.items == ["a"] and other.items == []
    assert Sample.items.default == []  # the declared default is never mutated


def test_reset_goes_back_to_the_default(sample):
    sample.count = 7
    seen = Recorder(sample, "count")
    sample.reset("count")
    assert sample.count == 3 and seen.values == [3]


def test_persisted_values_are_the_persist_properties_by_key(sample):
    sample.items = ["x"]
    values = persisted_values(sample)
    assert values == {
        "count": 3, "ratio": 0.5, "flavour": "plain", "label": None, "stored_items": ["x"], "enabled": True,
    }
    values["stored_items"].append("y")  # a copy
    assert sample.items == ["x"]


def test_restore_sets_what_it_can_and_names_what_it_refused(sample):
    seen = Recorder(sample, "count")
    refused = restore_values(
        sample,
        {
            "count": 8,
            "ratio": "high",  # wrong type
            "flavour": "sweet",  # refused by its check
            "label": None,
            "stored_items": ["p", "q"],
            "items": ["by name, not key"],  # not its key: ignored
            "enabled": 0,  # not a bool
            "note": "not persisted",
            "unknown": 1,
        },
    )
    assert refused == ["ratio", "flavour", "enabled"]
    assert (sample.count, sample.ratio, sample.flavour, sample.items, sample.enabled, sample.note) == (
        8, 0.5, "plain", ["p", "q"], True, "",
    )
    assert seen.values == [8]
    assert restore_values(sample, {}) == [] and sample.count == 8  # nothing there: values kept


def test_restore_follows_declaration_order(qapp):
    class Ordered(ViewModel):
        first = Property(0, persist=True)
        second = Property(0, persist=True)

        def __init__(self):
            super().__init__()
            self.first_changed.connect(lambda _v: setattr(self, "second", 99))  # like a model's defaults

    model = Ordered()
    restore_values(model, {"second": 5, "first": 1})  # file order does not matter
    assert (model.first, model.second) == (1, 5)


def test_view_models_never_import_widgets_or_torch():
    code = (
        "import importlib, pkgutil, sys, studio.viewmodel as vm\n"
        "for m in pkgutil.iter_modules(vm.__path__): importlib.import_module('studio.viewmodel.' + m.name)\n"
        "print('PySide6.QtWidgets' in sys.modules, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
