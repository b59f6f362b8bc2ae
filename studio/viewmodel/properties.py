"""Properties declared once: a value with a type, a default, a changed signal, and whether it persists.

    class GenerationSettings(ViewModel):
        steps = Property(25, persist=True, check=between(1, 500))

declares ``settings.steps`` (read and written like an attribute), the signal ``settings.steps_changed``
(emitted with the new value when it changes, never when it is set to what it was), and a place in
:func:`persisted_values` / :func:`restore_values`, which read the declarations rather than a
hand-written list of fields. A widget binds to it in one line (:func:`studio.ui.bind.bind`).

Restoring is lenient, since the values come from a file the user may have edited or an older version
wrote: a value of the wrong type, or one ``check`` refuses, is skipped and the property keeps its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, Signal

__all__ = ["Property", "ViewModel", "between", "one_of", "persisted_values", "properties", "restore_values"]

T = TypeVar("T")
Check = Callable[[Any], Any]
"""Returns the value to store (possibly converted), or raises ValueError/TypeError to refuse it."""


class Property(Generic[T]):
    """A declared value of a :class:`ViewModel`; see the module docstring."""

    def __init__(
        self,
        default: T,
        *,
        persist: bool = False,
        check: Check | None = None,
        kind: type | tuple[type, ...] | None = None,
        optional: bool = False,
        key: str | None = None,
        doc: str = "",
    ) -> None:
        self.default = default
        self.persist = persist
        self.check = check
        self.optional = optional or default is None
        self.kind = kind or _kind_of(default)
        self.name = ""
        self._key = key
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def key(self) -> str:
        """Its name in the preferences file (its own name unless declared, to keep old files readable)."""
        return self._key or self.name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._property_values.get(self.name, _copy(self.default))

    def __set__(self, obj: Any, value: Any) -> None:
        value = self.accept(value)
        if self.__get__(obj) == value:
            return
        obj._property_values[self.name] = value
        getattr(obj, f"{self.name}_changed").emit(value)
        obj.changed.emit(self.name)

    def accept(self, value: Any) -> Any:
        """The value to store, or ValueError/TypeError: its type, then its check."""
        if value is None:
            if not self.optional:
                raise TypeError(f"{self.name} cannot be empty")
            return None
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is not None and (not isinstance(value, self.kind) or (isinstance(value, bool) and self.kind in (int, float))):
            raise TypeError(f"{self.name} must be {getattr(self.kind, '__name__', self.kind)}, not {type(value).__name__}")
        if isinstance(value, list):
            value = list(value)
        return self.check(value) if self.check is not None else value


class _ViewModelMeta(type(QObject)):  # type: ignore[misc]
    """Adds a ``<name>_changed`` signal for every :class:`Property` the class declares."""

    def __new__(mcs, name: str, bases: tuple, namespace: dict[str, Any]):
        for key, value in list(namespace.items()):
            if isinstance(value, Property):
                namespace.setdefault(f"{key}_changed", Signal(object))
        return super().__new__(mcs, name, bases, namespace)


class ViewModel(QObject, metaclass=_ViewModelMeta):
    """Base of the view-models: holds property values; ``changed(name)`` follows every property change."""

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._property_values: dict[str, Any] = {}

    def reset(self, name: str) -> None:
        """Back to the declared default."""
        setattr(self, name, _copy(properties(type(self))[name].default))


def properties(cls: type) -> dict[str, Property]:
    """The declared properties of a view-model class, in declaration order (base classes first)."""
    found: dict[str, Property] = {}
    for klass in reversed(cls.__mro__):
        for key, value in vars(klass).items():
            if isinstance(value, Property):
                found[key] = value
    return found


def persisted_values(model: ViewModel) -> dict[str, Any]:
    """The values of the properties declared ``persist=True``, by key."""
    return {prop.key: _copy(getattr(model, name)) for name, prop in properties(type(model)).items() if prop.persist}


def restore_values(model: ViewModel, values: dict[str, Any]) -> list[str]:
    """Set the persisted properties found in `values` (by key), in declaration order; returns the names refused
    (a wrong type, a value ``check`` refused), which keep their current value."""
    refused = []
    for name, prop in properties(type(model)).items():
        if not prop.persist or prop.key not in values:
            continue
        try:
            setattr(model, name, values[prop.key])
        except (TypeError, ValueError):
            refused.append(name)
    return refused


def between(low: float, high: float) -> Check:
    """A check: numbers from `low` to `high`, inclusive."""

    def check(value: Any) -> Any:
        if not low <= value <= high:
            raise ValueError(f"{value} is not between {low} and {high}")
        return value

    return check


def one_of(choices: Iterable[Any]) -> Check:
    """A check: one of `choices` (evaluated each time when a callable is given)."""

    def check(value: Any) -> Any:
        allowed = choices() if callable(choices) else choices
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {list(allowed)!r}")
        return value

    return check


def _kind_of(default: Any) -> type | None:
    if default is None:
        return None
    if isinstance(default, bool):
        return bool
    return type(default)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
